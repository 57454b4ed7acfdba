import Synchronization

/// An operation took longer than it was given.
public struct OperationTimeout: Error, CustomStringConvertible {
    /// The bound that passed.
    public let timeout: Duration

    /// Creates the error.
    public init(timeout: Duration) {
        self.timeout = timeout
    }

    public var description: String { "no answer within \(timeout)" }
}

/// Runs `operation`, giving up after `timeout` with ``OperationTimeout`` even if the operation does not react to
/// cancellation (a PostgreSQL query waiting on a dead connection may not): it is cancelled and left to finish on its
/// own, unobserved. Use it only for operations whose late completion is harmless (idempotent writes, reads).
public func withTimeout<Result: Sendable>(
    _ timeout: Duration,
    _ operation: @escaping @Sendable () async throws -> Result
) async throws -> Result {
    let race = FirstResult<Result>()
    // Unstructured on purpose: the wait must end at the timeout whatever the operation does.
    let work = Task { try await operation() }
    let timer = Task {
        guard (try? await Task.sleep(for: timeout)) != nil else { return }
        work.cancel()
        race.resolve(.failure(OperationTimeout(timeout: timeout)))
    }
    Task {
        race.resolve(await work.result)
        timer.cancel()
    }
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { race.install($0) }
    } onCancel: {
        work.cancel()
    }
}

/// The first of several results, handed to one waiting continuation whichever comes first.
final class FirstResult<Value: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<Value, any Error>?
        var result: Result<Value, any Error>?
        var delivered = false
    }

    private let state = Mutex(State())

    /// Offers a result; only the first one counts.
    func resolve(_ result: Result<Value, any Error>) {
        let continuation = state.withLock { state -> CheckedContinuation<Value, any Error>? in
            guard !state.delivered, state.result == nil else { return nil }
            guard let continuation = state.continuation else {
                state.result = result
                return nil
            }
            state.continuation = nil
            state.delivered = true
            return continuation
        }
        continuation?.resume(with: result)
    }

    /// Installs the waiter; resumes it at once if a result is already there.
    func install(_ continuation: CheckedContinuation<Value, any Error>) {
        let ready = state.withLock { state -> Result<Value, any Error>? in
            guard let result = state.result else {
                state.continuation = continuation
                return nil
            }
            state.result = nil
            state.delivered = true
            return result
        }
        if let ready { continuation.resume(with: ready) }
    }
}
