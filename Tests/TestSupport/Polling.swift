import DevStack
import Foundation

/// A name no other test (or run) uses: `<prefix>-<8 hex digits>`.
public func unique(_ prefix: String) -> String {
    "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
}

/// A wait that ran out.
public struct TimeoutError: Error, CustomStringConvertible {
    /// What was awaited, and for how long.
    public var description: String

    /// Creates the error.
    public init(description: String) {
        self.description = description
    }
}

/// Polls `condition` every `interval` until it holds, or throws ``TimeoutError`` once `timeout` passed (a generous
/// bound: the test machine may be loaded). It waits; it never asserts on time.
public func eventually(
    _ what: String, timeout: Duration = .seconds(30), interval: Duration = .milliseconds(25),
    _ condition: @Sendable () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: interval)
    }
    throw TimeoutError(description: "timed out after \(timeout) waiting for \(what)")
}

/// A service executable of this package run as a separate process (`serve`), for the tests where process death
/// matters: its output goes to a log file the test can print when it fails.
public final class ServiceProcess: Sendable {
    /// The process's identity, passed in `idVariable`.
    public let id: String
    /// Where its output goes.
    public let logPath: String
    private let process: ChildProcess

    /// Starts `.build/debug/<executable> serve` with `environment` and `idVariable=id`.
    public init(executable: String, idVariable: String, id: String, environment: [String: String]) async throws {
        let path = Repository.path(".build/debug/\(executable)")
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw TestEnvironmentError("\(path) is missing: build the package first (make test does)")
        }
        self.id = id
        logPath = FileManager.default.temporaryDirectory.appendingPathComponent("\(id).log").path
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        var environment = environment
        environment[idVariable] = id
        process = try await ChildProcess.start(
            executable: path, arguments: ["serve"], environment: environment, output: .file(logPath))
    }

    /// Kills the process at once (SIGKILL): no shutdown, nothing flushed, nothing released.
    public func kill() {
        process.killSynchronously()
    }

    /// SIGTERM, then waits for the exit.
    public func terminate() async {
        process.send(SIGTERM)
        await process.waitForExit()
    }

    /// What it wrote so far.
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
}
