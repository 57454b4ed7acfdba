import NIOCore
import NIOPosix

/// Where a service's Swift concurrency jobs run.
public enum ConcurrencyExecutor {
    /// Makes the event loops Hummingbird, PostgresNIO and AsyncHTTPClient do their I/O on Swift concurrency's global
    /// executor too.
    ///
    /// By default an `await` on a socket crosses threads twice: the read completes on an event loop, the handler
    /// resumes on Swift's cooperative pool, and its write goes back to the event loop. In profiles of the gateway and
    /// the workers those switches were the kernel's largest share of a call's CPU. With the event loops as the global
    /// executor a resumed task runs where its I/O completed. The services do no blocking work on tasks (bcrypt runs
    /// on NIO's thread pool, librdkafka on its own poll threads), which is what this requires: a task that blocks
    /// now blocks the connections of its event loop as well.
    ///
    /// Call it once, first thing in `main`, on the main thread.
    public static func runOnEventLoops() {
        NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    }
}
