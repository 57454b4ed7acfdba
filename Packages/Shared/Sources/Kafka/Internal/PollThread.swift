import Foundation

/// Runs librdkafka's blocking calls (queue polls with a timeout, synchronous commits, close) on a dedicated OS
/// thread, so that they never occupy one of the few threads of Swift's shared cooperative pool.
enum PollThread {
    /// Starts `body` on a new thread named `name` and suspends the caller until it returns.
    static func run<Result: Sendable>(name: String, _ body: @escaping @Sendable () -> Result) async -> Result {
        await withCheckedContinuation { continuation in
            let thread = Thread {
                continuation.resume(returning: body())
            }
            thread.name = name
            thread.start()
        }
    }
}
