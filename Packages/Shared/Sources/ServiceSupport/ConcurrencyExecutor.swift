import Foundation
import NIOCore
import NIOPosix

/// Where a service's Swift concurrency jobs run (`CONCURRENCY_EXECUTOR`).
public enum ConcurrencyExecutor: String, CaseIterable, Sendable {
    /// The event loops Hummingbird, PostgresNIO and AsyncHTTPClient do their I/O on are also Swift concurrency's
    /// global executor (the default).
    ///
    /// By default an `await` on a socket crosses threads twice: the read completes on an event loop, the task
    /// resumes on Swift's cooperative pool, and its write goes back to the event loop. In profiles of the gateway
    /// those switches were the kernel's largest share of a request's CPU. With the event loops as the global executor
    /// a resumed task runs where its I/O completed. The services do no blocking work on tasks (bcrypt runs on NIO's
    /// thread pool, librdkafka on its own poll threads), which this requires: a task that blocks would block the
    /// connections of its event loop as well.
    case eventLoops = "event-loops"
    /// Swift's own cooperative thread pool, as without this setting.
    case cooperative

    /// Applies `CONCURRENCY_EXECUTOR` (`event-loops` by default). Call it once, first thing in `main`, on the main
    /// thread; a value that is neither ends the process with the configuration error (exit code 2).
    public static func apply(environment: EnvironmentReader = EnvironmentReader()) {
        do {
            let value = try environment.choice(
                "CONCURRENCY_EXECUTOR", default: Self.eventLoops.rawValue, allowed: allCases.map(\.rawValue))
            if Self(rawValue: value) == .eventLoops {
                NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
            }
        } catch {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            exit(2)
        }
    }
}
