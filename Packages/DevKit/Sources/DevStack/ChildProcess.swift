import Foundation
import Subprocess
import Synchronization

#if canImport(System)
    import System
#else
    import SystemPackage
#endif

/// A child process that outlives the call that started it (a service, a broker, a stack), run by swift-subprocess.
///
/// swift-subprocess scopes a process to a closure; the dev kit's children live across calls (started by one, signalled
/// and awaited by others), so a task holds that scope: its closure hands the process id out and returns, and `run`
/// then waits for the exit, which this value records. The process id stays valid until then (it is reaped only by
/// that wait), so signalling it never reaches another process.
public final class ChildProcess: Sendable {
    /// Where the child's standard output and error go.
    public enum Output: Sendable {
        /// Nowhere (`/dev/null`).
        case discarded
        /// Appended to a file (created if missing).
        case file(String)
        /// To this process's standard error.
        case standardError
        /// Standard output appended to one file, standard error to another.
        case files(output: String, error: String)
    }

    /// How the child ended.
    public enum Termination: Sendable, Equatable, CustomStringConvertible {
        /// It exited with this status.
        case exited(Int32)
        /// A signal ended it.
        case signaled(Int32)

        /// The exit status, or 128 + the signal, as a shell reports it.
        public var status: Int32 {
            switch self {
            case .exited(let code): code
            case .signaled(let signal): 128 + signal
            }
        }

        public var description: String {
            switch self {
            case .exited(let code): "exited with status \(code)"
            case .signaled(let signal): "was killed by signal \(signal)"
            }
        }
    }

    /// The child's process id.
    public let processIdentifier: Int32
    private let waiting: Task<Void, Never>
    private let box: TerminationBox

    private init(processIdentifier: Int32, waiting: Task<Void, Never>, box: TerminationBox) {
        self.processIdentifier = processIdentifier
        self.waiting = waiting
        self.box = box
    }

    /// Starts `executable` with `arguments` and `environment` (the whole environment; `nil` inherits this
    /// process's), `input` on its standard input; returns once it runs. Throws when it cannot be started.
    public static func start(
        executable: String, arguments: [String] = [], environment: [String: String]? = nil, input: [UInt8] = [],
        output: Output = .discarded
    ) async throws -> ChildProcess {
        let started = AsyncStream<Result<Int32, any Error>>.makeStream()
        let box = TerminationBox()
        let waiting = Task {
            do {
                let result = try await Subprocess.run(
                    .path(FilePath(executable)), arguments: Arguments(arguments),
                    environment: environment.map(Self.environment) ?? .inherit,
                    input: .array(input), output: try output.descriptor(forError: false),
                    error: try output.descriptor(forError: true)
                ) { execution in
                    // The process id out, and the scope's wait for the exit begins.
                    started.continuation.yield(.success(execution.processIdentifier.value))
                }
                box.set(Termination(result.terminationStatus))
            } catch {
                started.continuation.yield(.failure(error))
            }
            started.continuation.finish()
        }
        for await outcome in started.stream {
            return ChildProcess(processIdentifier: try outcome.get(), waiting: waiting, box: box)
        }
        throw ChildProcessError("\(executable) did not start")
    }

    /// How it ended, or `nil` while it runs.
    public var termination: Termination? { box.value }

    /// Whether it still runs.
    public var isRunning: Bool { box.value == nil }

    /// Sends `signal` (SIGTERM, SIGKILL, SIGSTOP, ...) unless it has ended.
    public func send(_ signal: Int32) {
        guard isRunning else { return }
        kill(processIdentifier, signal)
    }

    /// SIGKILL, and a wait for its end on this thread: for `defer` blocks and other places that cannot suspend. The
    /// kernel ends a killed process in milliseconds; the wait gives up after 5 s.
    public func killSynchronously() {
        send(SIGKILL)
        let deadline = ContinuousClock.now + .seconds(5)
        while isRunning, ContinuousClock.now < deadline { usleep(1000) }
    }

    /// Waits for it to end.
    @discardableResult
    public func waitForExit() async -> Termination {
        await waiting.value
        // The task records the termination before it ends; a start that failed never returned a value.
        return box.value ?? .exited(-1)
    }

    /// Waits up to `timeout` for it to end; `nil` if it still runs then.
    public func waitForExit(timeout: Duration) async -> Termination? {
        let deadline = ContinuousClock.now + timeout
        while isRunning, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        return termination
    }

    /// SIGTERM, then SIGKILL if it has not ended within `grace`; returns how it ended.
    @discardableResult
    public func stop(grace: Duration) async -> Termination {
        send(SIGTERM)
        if let ended = await waitForExit(timeout: grace) { return ended }
        send(SIGKILL)
        return await waitForExit()
    }

    /// What a finished run wrote, and how it ended.
    public struct Completed: Sendable {
        /// How it ended.
        public var termination: Termination
        /// Its standard output, as bytes.
        public var outputBytes: [UInt8]
        /// Its standard error.
        public var errors: String
        /// Its standard output, as UTF-8 text.
        public var output: String { String(decoding: outputBytes, as: UTF8.self) }
    }

    /// Runs `executable` to its end, `input` written to its standard input; returns how it ended and what it wrote
    /// to its standard output and its standard error (each up to `limit` bytes). Not for a command that leaves a
    /// process behind holding its output open (`pg_ctl start`): this waits for the output's end too.
    public static func run(
        executable: String, arguments: [String] = [], environment: [String: String]? = nil, input: [UInt8] = [],
        limit: Int = 64 << 20
    ) async throws -> Completed {
        let result = try await Subprocess.run(
            .path(FilePath(executable)), arguments: Arguments(arguments),
            environment: environment.map(Self.environment) ?? .inherit,
            input: .array(input), output: .bytes(limit: limit), error: .string(limit: limit))
        return Completed(
            termination: Termination(result.terminationStatus), outputBytes: result.standardOutput,
            errors: result.standardError)
    }

    /// The path of `name` on `PATH`, as a shell finds it; `name` itself when it is not found there.
    public static func resolve(_ name: String) -> String {
        guard !name.contains("/") else { return name }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return name
    }

    static func environment(_ variables: [String: String]) -> Environment {
        .custom(
            Dictionary(
                uniqueKeysWithValues: variables.compactMap { key, value in
                    Environment.Key(rawValue: key).map { ($0, value) }
                }))
    }
}

/// A child process could not be started or run.
public struct ChildProcessError: Error, CustomStringConvertible {
    /// What went wrong.
    public var description: String

    init(_ description: String) { self.description = description }
}

/// The termination a child's waiting task records.
private final class TerminationBox: Sendable {
    private let ended = Mutex<ChildProcess.Termination?>(nil)

    var value: ChildProcess.Termination? { ended.withLock { $0 } }

    func set(_ termination: ChildProcess.Termination) { ended.withLock { $0 = termination } }
}

extension ChildProcess.Termination {
    init(_ status: TerminationStatus) {
        switch status {
        case .exited(let code): self = .exited(code)
        case .signaled(let signal): self = .signaled(signal)
        }
    }
}

extension ChildProcess.Output {
    /// A descriptor for one of the child's streams, closed once the child has it.
    func descriptor(forError: Bool) throws -> FileDescriptorOutput {
        func appending(to path: String) throws -> FileDescriptorOutput {
            .fileDescriptor(
                try FileDescriptor.open(
                    FilePath(path), .writeOnly, options: [.append, .create], permissions: [.ownerReadWrite]),
                closeAfterSpawningProcess: true)
        }
        switch self {
        case .discarded:
            return .fileDescriptor(try FileDescriptor.open("/dev/null", .writeOnly), closeAfterSpawningProcess: true)
        case .file(let path):
            return try appending(to: path)
        case .files(let output, let error):
            return try appending(to: forError ? error : output)
        case .standardError:
            return .currentStandardError
        }
    }
}
