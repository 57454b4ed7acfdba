import DevStack
import Foundation

/// moto's S3-compatible server (`moto_server`, from PyPI), a real S3-protocol peer for the recording store's tests.
/// `scripts/install-deps.sh` (run by `make test`) installs it into a virtual environment under
/// `~/.cache/outbound-dialer/`; `MOTO_SERVER` names another executable.
public enum MotoServer {
    public struct NotInstalled: Error, CustomStringConvertible {
        public var description: String {
            "moto_server was not found (MOTO_SERVER, or ~/.cache/outbound-dialer/moto-*/bin/moto_server): run "
                + "scripts/install-deps.sh"
        }
    }

    public struct StartFailed: Error, CustomStringConvertible {
        public var output: String
        public var description: String { "moto_server did not start: \(output)" }
    }

    /// The executable, as `MOTO_SERVER` names it or as the install script placed it.
    public static func executable() throws -> String {
        if let path = ProcessInfo.processInfo.environment["MOTO_SERVER"] { return path }
        let cache = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/outbound-dialer")
        let candidates = (try? FileManager.default.contentsOfDirectory(atPath: cache.path)) ?? []
        for name in candidates.sorted().reversed() where name.hasPrefix("moto-") {
            let path = cache.appendingPathComponent(name).appendingPathComponent("bin/moto_server").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        throw NotInstalled()
    }

    /// Runs `body` with a fresh server on a port of its own (`http://127.0.0.1:<port>`), stopped afterwards.
    public static func with<Result>(_ body: (String) async throws -> Result) async throws -> Result {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("moto-\(UUID().uuidString).log")
        defer { try? FileManager.default.removeItem(at: log) }
        let process = try await ChildProcess.start(
            executable: try executable(), arguments: ["-H", "127.0.0.1", "-p", "0"], output: .file(log.path))
        // moto's development server does not always stop on SIGTERM: SIGKILL once it had a moment.
        defer {
            process.send(SIGTERM)
            let deadline = ContinuousClock.now + .seconds(2)
            while process.isRunning, ContinuousClock.now < deadline { usleep(20_000) }
            process.killSynchronously()
        }
        let deadline = ContinuousClock.now + .seconds(60)
        while true {
            let seen = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            if let range = seen.range(of: #"Running on http://127\.0\.0\.1:(\d+)"#, options: .regularExpression),
                let port = Int(seen[range].split(separator: ":").last ?? "")
            {
                return try await body("http://127.0.0.1:\(port)")
            }
            guard process.isRunning, ContinuousClock.now < deadline else { throw StartFailed(output: seen) }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}
