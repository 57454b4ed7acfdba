import Synchronization

/// A bounded hand-off between one producer task and one consumer task that takes elements in batches.
///
/// The producer waits while the buffer is full (so memory stays bounded however far the consumer falls behind);
/// the consumer takes everything buffered, up to a batch size, waiting only while the buffer is empty. Batches grow
/// by themselves under load: while one batch is being written, the next one accumulates.
public final class BatchBuffer<Element: Sendable>: Sendable {
    private struct State {
        var elements: [Element] = []
        var finished = false
        var producer: CheckedContinuation<Void, Never>?
        var consumer: CheckedContinuation<Void, Never>?
    }

    private enum PutStep {
        case appended(CheckedContinuation<Void, Never>?)
        case full
        case finished
    }

    private enum TakeStep {
        case batch([Element], CheckedContinuation<Void, Never>?)
        case empty
        case finished
    }

    private let state = Mutex(State())
    private let capacity: Int

    public init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// Appends an element, waiting while the buffer is full; returns `false` once the buffer is finished.
    public func put(_ element: Element) async -> Bool {
        while true {
            let step: PutStep = state.withLock { state in
                if state.finished { return .finished }
                guard state.elements.count < capacity else { return .full }
                state.elements.append(element)
                let consumer = state.consumer
                state.consumer = nil
                return .appended(consumer)
            }
            switch step {
            case .appended(let consumer):
                consumer?.resume()
                return true
            case .finished:
                return false
            case .full:
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let resumeNow = state.withLock { state in
                        if state.finished || state.elements.count < capacity { return true }
                        state.producer = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
        }
    }

    /// Takes up to `maximum` elements, waiting while none is buffered; `nil` once finished and empty.
    public func take(upTo maximum: Int) async -> [Element]? {
        while true {
            let step: TakeStep = state.withLock { state in
                if !state.elements.isEmpty {
                    let count = min(maximum, state.elements.count)
                    let batch = Array(state.elements.prefix(count))
                    state.elements.removeFirst(count)
                    let producer = state.producer
                    state.producer = nil
                    return .batch(batch, producer)
                }
                return state.finished ? .finished : .empty
            }
            switch step {
            case .batch(let batch, let producer):
                producer?.resume()
                return batch
            case .finished:
                return nil
            case .empty:
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let resumeNow = state.withLock { state in
                        if state.finished || !state.elements.isEmpty { return true }
                        state.consumer = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
        }
    }

    /// No more elements will come: the consumer gets what is buffered, then `nil`; a waiting producer is released.
    public func finish() {
        let (producer, consumer) = state.withLock { state in
            state.finished = true
            defer {
                state.producer = nil
                state.consumer = nil
            }
            return (state.producer, state.consumer)
        }
        producer?.resume()
        consumer?.resume()
    }
}
