import CallDomain
import Foundation
import Metrics
import Synchronization

/// Fans the status events read from Kafka (by one reader per process) out to the live streams.
///
/// Each subscriber has a bounded buffer: a client that falls more than `bufferSize` events behind is dropped (its
/// stream ends and its connection is closed) instead of slowing the reader or growing memory; it reconnects with
/// `Last-Event-ID` and replays from the history. The hub also keeps the most recent events, so that a subscriber
/// that replays from the history and then goes live also gets the events that were read from Kafka before it
/// subscribed but not yet recorded by the history writer.
final class StatusHub: Sendable {
    /// What a subscriber receives.
    enum Element: Sendable {
        /// An event, with its JSON encoded once for every subscriber (`nil` if it could not be encoded).
        case event(CallStatusEvent, json: [UInt8]?)
        case heartbeat
    }

    /// A live subscription; end it with ``StatusHub/unsubscribe(_:)``.
    struct Subscription: Sendable {
        let id: UInt64
        let elements: AsyncStream<Element>
        /// The recent events (matching the filter) read before the subscription started, oldest first.
        let recent: [CallStatusEvent]
    }

    private struct Subscriber {
        var callID: CallID?
        var continuation: AsyncStream<Element>.Continuation
        var onOverflow: @Sendable () -> Void
    }

    private struct State {
        var subscribers: [UInt64: Subscriber] = [:]
        var nextID: UInt64 = 0
        var recent: [CallStatusEvent] = []
        var recentStart = 0
        var closed = false
    }

    private let state = Mutex(State())
    private let bufferSize: Int
    private let recentCapacity: Int
    private let metrics: GatewayMetrics

    init(bufferSize: Int, recentCapacity: Int = 4096, metrics: GatewayMetrics) {
        self.bufferSize = bufferSize
        self.recentCapacity = recentCapacity
        self.metrics = metrics
    }

    /// Subscribes to the events of one call (or of every call with `callID == nil`).
    ///
    /// - Parameter onOverflow: called once if the subscriber is dropped for falling behind (closes its connection).
    func subscribe(callID: CallID?, onOverflow: @escaping @Sendable () -> Void) -> Subscription {
        let (stream, continuation) = AsyncStream.makeStream(
            of: Element.self, bufferingPolicy: .bufferingOldest(bufferSize))
        let (id, recent, closed) = state.withLock { state -> (UInt64, [CallStatusEvent], Bool) in
            state.nextID += 1
            let id = state.nextID
            let recent = Self.ordered(state).filter { callID == nil || $0.callID == callID }
            guard !state.closed else { return (id, recent, true) }
            state.subscribers[id] = Subscriber(callID: callID, continuation: continuation, onOverflow: onOverflow)
            return (id, recent, false)
        }
        if closed {
            continuation.finish()
        } else {
            metrics.streamClients.increment()
        }
        return Subscription(id: id, elements: stream, recent: recent)
    }

    /// Ends a subscription (the client went away or its stream finished).
    func unsubscribe(_ id: UInt64) {
        let removed = state.withLock { $0.subscribers.removeValue(forKey: id) }
        if let removed {
            removed.continuation.finish()
            metrics.streamClients.decrement()
        }
    }

    /// Delivers an event to every matching subscriber, dropping those whose buffer is full.
    func publish(_ event: CallStatusEvent) {
        // Encoded here, once, rather than by each stream: with many subscribers the encoding was the gateway's
        // main cost (1,000 streams × 1,000 events of 2 KB kept both cores busy for half a minute).
        let json = try? WireCoding.encode(event)
        let targets = state.withLock { state -> [(UInt64, AsyncStream<Element>.Continuation)] in
            if state.recent.count < recentCapacity {
                state.recent.append(event)
            } else {
                state.recent[state.recentStart] = event
                state.recentStart = (state.recentStart + 1) % recentCapacity
            }
            return state.subscribers.compactMap { id, subscriber in
                subscriber.callID == nil || subscriber.callID == event.callID ? (id, subscriber.continuation) : nil
            }
        }
        for (id, continuation) in targets {
            if case .dropped = continuation.yield(.event(event, json: json)) { drop(id) }
        }
    }

    /// Sends a heartbeat to one subscriber (a full buffer drops it, like an event would).
    func heartbeat(_ id: UInt64) {
        guard let continuation = state.withLock({ $0.subscribers[id]?.continuation }) else { return }
        if case .dropped = continuation.yield(.heartbeat) { drop(id) }
    }

    /// Ends every stream (shutdown); later subscriptions end at once.
    func close() {
        let subscribers = state.withLock { state -> [Subscriber] in
            state.closed = true
            defer { state.subscribers = [:] }
            return Array(state.subscribers.values)
        }
        for subscriber in subscribers {
            subscriber.continuation.finish()
            metrics.streamClients.decrement()
        }
    }

    /// How many subscribers are connected.
    var subscriberCount: Int { state.withLock { $0.subscribers.count } }

    private func drop(_ id: UInt64) {
        guard let subscriber = state.withLock({ $0.subscribers.removeValue(forKey: id) }) else { return }
        subscriber.continuation.finish()
        subscriber.onOverflow()
        metrics.streamClients.decrement()
        metrics.streamClientsDropped.increment()
    }

    private static func ordered(_ state: State) -> [CallStatusEvent] {
        Array(state.recent[state.recentStart...] + state.recent[..<state.recentStart])
    }
}
