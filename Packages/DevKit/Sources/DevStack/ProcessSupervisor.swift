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
        var process: ChildProcess
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
    public func start(_ spec: ChildSpec) async throws {
        try FileManager.default.createDirectory(at: logDirectory, withIntermediateDirectories: true)
        let process = try await launch(spec)
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
            child.process.send(SIGTERM)
            if await child.process.waitForExit(timeout: grace) == nil {
                console("\(name) did not stop within \(grace); killing it")
                child.process.send(SIGKILL)
                await child.process.waitForExit()
            }
        }
        children.removeAll()
        order.removeAll()
    }

    private func launch(_ spec: ChildSpec) async throws -> ChildProcess {
        let process = try await ChildProcess.start(
            executable: spec.executable.path, arguments: spec.arguments, environment: spec.environment,
            output: .file(logDirectory.appendingPathComponent("\(spec.name).log").path))
        let name = spec.name
        let pid = process.processIdentifier
        logger.debug("started child", metadata: ["child": "\(name)", "pid": "\(pid)"])
        Task { [weak self] in
            let termination = await process.waitForExit()
            await self?.exited(name: name, pid: pid, termination: termination)
        }
        return process
    }

    private func exited(name: String, pid: Int32, termination: ChildProcess.Termination) async {
        guard !stopping, var child = children[name], child.process.processIdentifier == pid else { return }
        // A child that ran a while before dying starts again from the shortest back-off.
        if ContinuousClock.now - child.startedAt > .seconds(60) { child.restarts = 0 }
        let delay = Duration.milliseconds(min(30_000, 500 * (1 << min(child.restarts, 6))))
        console("\(name) \(termination); restarting in \(delay) (log: \(logDirectory.path)/\(name).log)")
        try? await Task.sleep(for: delay)
        guard !stopping, children[name]?.process.processIdentifier == pid else { return }
        do {
            child.process = try await launch(child.spec)
            child.restarts += 1
            child.startedAt = .now
            children[name] = child
        } catch {
            console("\(name) could not be restarted: \(error)")
        }
    }
}
