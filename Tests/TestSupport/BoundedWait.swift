import Foundation
import Synchronization

/// A service that did not return within its bound after being asked to stop.
public struct StopTimeout: Error, CustomStringConvertible {
    /// What was being stopped.
    public var what: String
    /// How long the test waited.
    public var waited: Duration

    public var description: String { "\(what) did not return within \(waited) of being asked to stop" }
}

/// Waits for `task` to return, for at most `timeout`; past it, cancels the task and throws ``StopTimeout``.
///
/// `Task.value` is not cancellation-aware: a service that ignores its shutdown would hold the test (and the whole
/// serial run behind it) forever, and CI would end on its own deadline with nothing said about which test hung.
/// Here the waiter is resumed by whichever comes first, the task's result or the deadline, so a hung service
/// fails its test with a message and the run goes on.
public func value<Success: Sendable>(
    of task: Task<Success, any Error>, within timeout: Duration, _ what: String
) async throws -> Success {
    guard let result = await result(of: task, within: timeout) else {
        task.cancel()
        throw StopTimeout(what: what, waited: timeout)
    }
    return try result.get()
}

/// Cancels `task` and waits for it to end, for at most `timeout`; `false` (with a warning on standard error) when it
/// did not end in time: it is left behind, so that one component that ignores cancellation fails to stop without
/// holding up the rest of the run.
@discardableResult
public func stop<Success: Sendable>(
    _ task: Task<Success, Never>, within timeout: Duration, _ what: String
) async -> Bool {
    task.cancel()
    guard await result(of: task, within: timeout) != nil else {
        FileHandle.standardError.write(
            Data("warning: \(what) did not stop within \(timeout) of its cancellation\n".utf8))
        return false
    }
    return true
}

/// The task's result, or `nil` once `timeout` passed first.
private func result<Success: Sendable, Failure: Error>(
    of task: Task<Success, Failure>, within timeout: Duration
) async -> Result<Success, Failure>? {
    let outcome = FirstOutcome<Result<Success, Failure>>()
    return await withCheckedContinuation { continuation in
        outcome.install(continuation)
        let deadline = Task {
            // Cancelled once the task has returned: its result wins.
            guard (try? await Task.sleep(for: timeout)) != nil else { return }
            outcome.resume(with: nil)
        }
        Task {
            let result = await task.result
            deadline.cancel()
            outcome.resume(with: result)
        }
    }
}

/// Resumes a continuation once, with the first of several racing outcomes.
private final class FirstOutcome<Value: Sendable>: Sendable {
    private let waiter = Mutex<(continuation: CheckedContinuation<Value?, Never>?, done: Bool)>((nil, false))

    func install(_ continuation: CheckedContinuation<Value?, Never>) {
        waiter.withLock { $0.continuation = continuation }
    }

    func resume(with value: Value?) {
        let continuation = waiter.withLock { state -> CheckedContinuation<Value?, Never>? in
            guard !state.done, let continuation = state.continuation else { return nil }
            state.done = true
            state.continuation = nil
            return continuation
        }
        continuation?.resume(returning: value)
    }
}
