import Foundation
import Logging
import Synchronization

/// What to run as a supervised child process.
public struct ChildSpec: Sendable {
    /// A short name, used in messages and for the log file.
    public var name: String
    /// The executable.
    public var executable: URL
    /// Its arguments.
    public var arguments: [String]
    /// Its complete environment.
    public var environment: [String: String]

    /// Creates a spec.
    public init(name: String, executable: URL, arguments: [String], environment: [String: String]) {
        self.name = name
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
    }
}

/// Runs child processes, restarts the ones that die (with exponential back-off, reported on the console), and stops
/// them all, newest first, on shutdown: SIGTERM, then SIGKILL after a grace period, so none is left behind.
///
/// Each child's standard output and error go to `<logDirectory>/<name>.log`.
public actor ProcessSupervisor {
    private struct Child {
        var spec: ChildSpec
        var process: Process
        var restarts: Int
        var startedAt: ContinuousClock.Instant
    }

    private let logDirectory: URL
    private let logger: Logger
    private var children: [String: Child] = [:]
    private var order: [String] = []
    private var stopping = false
    private let console: @Sendable (String) -> Void

    /// Creates a supervisor writing child logs under `logDirectory` and notices to `console`.
    public init(logDirectory: URL, logger: Logger, console: @escaping @Sendable (String) -> Void) {
        self.logDirectory = logDirectory
        self.logger = logger
        self.console = console
    }

    /// Starts a child; it is restarted whenever it exits until `stopAll` is called.
    public func start(_ spec: ChildSpec) throws {
        try FileManager.default.createDirectory(at: logDirectory, withIntermediateDirectories: true)
        let process = try launch(spec)
        children[spec.name] = Child(spec: spec, process: process, restarts: 0, startedAt: .now)
        order.append(spec.name)
    }

    /// The process id of a running child.
    public func pid(of name: String) -> Int32? {
        children[name].map { $0.process.processIdentifier }
    }

    /// Stops every child, newest first: SIGTERM, then SIGKILL after `grace`.
    public func stopAll(grace: Duration = .seconds(15)) async {
        stopping = true
        for name in order.reversed() {
            guard let child = children[name], child.process.isRunning else { continue }
            child.process.terminate()
            let deadline = ContinuousClock.now + grace
            while child.process.isRunning, ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(50))
            }
            if child.process.isRunning {
                console("\(name) did not stop within \(grace); killing it")
                kill(child.process.processIdentifier, SIGKILL)
                child.process.waitUntilExit()
            }
        }
        children.removeAll()
        order.removeAll()
    }

    private func launch(_ spec: ChildSpec) throws -> Process {
        let logURL = logDirectory.appendingPathComponent("\(spec.name).log")
        if !FileManager.default.fileExists(atPath: logURL.path) {
            _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        }
        let log = try FileHandle(forWritingTo: logURL)
        try log.seekToEnd()
        let process = Process()
        process.executableURL = spec.executable
        process.arguments = spec.arguments
        process.environment = spec.environment
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        let name = spec.name
        process.terminationHandler = { [weak self] process in
            let status = process.terminationStatus
            let reason = process.terminationReason
            try? log.close()
            guard let self else { return }
            Task { await self.exited(name: name, pid: process.processIdentifier, status: status, reason: reason) }
        }
        try process.run()
        logger.debug("started child", metadata: ["child": "\(name)", "pid": "\(process.processIdentifier)"])
        return process
    }

    private func exited(name: String, pid: Int32, status: Int32, reason: Process.TerminationReason) async {
        guard !stopping, var child = children[name], child.process.processIdentifier == pid else { return }
        let how = reason == .uncaughtSignal ? "was killed by signal \(status)" : "exited with status \(status)"
        // A child that ran a while before dying starts again from the shortest back-off.
        if ContinuousClock.now - child.startedAt > .seconds(60) { child.restarts = 0 }
        let delay = Duration.milliseconds(min(30_000, 500 * (1 << min(child.restarts, 6))))
        console("\(name) \(how); restarting in \(delay) (log: \(logDirectory.path)/\(name).log)")
        try? await Task.sleep(for: delay)
        guard !stopping, children[name]?.process.processIdentifier == pid else { return }
        do {
            child.process = try launch(child.spec)
            child.restarts += 1
            child.startedAt = .now
            children[name] = child
        } catch {
            console("\(name) could not be restarted: \(error)")
        }
    }
}
