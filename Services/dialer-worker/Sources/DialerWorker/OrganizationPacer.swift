import CallDomain
import CallStore
import Synchronization

/// Orders this worker's claims that an organization limit held back (`ClaimResult.deferred`).
///
/// The limits themselves are kept in PostgreSQL, across every worker (`CallStore.admitUnderLimits`); this only
/// keeps one worker from asking more often than can succeed. Per organization, the deferred calls wait in arrival
/// order and only the first one tries its claim again, no earlier than the delay the last refusal named: a backlog
/// of a thousand calls of an organization paced at 5 per second costs 5 claims a second, not a thousand, and is
/// dialed first in, first out.
final class OrganizationPacer: Sendable {
    /// A first-in, first-out line of tickets: an array read from `head`, compacted when half of it is behind.
    private struct Line {
        private var tickets: [UInt64] = []
        private var head = 0

        var first: UInt64? { head < tickets.count ? tickets[head] : nil }
        var isEmpty: Bool { head >= tickets.count }
        var count: Int { tickets.count - head }

        mutating func append(_ ticket: UInt64) { tickets.append(ticket) }

        mutating func removeFirst() {
            head += 1
            if head > 64, head * 2 > tickets.count {
                tickets.removeFirst(head)
                head = 0
            }
        }
    }

    private struct Queue {
        var waiting = Line()
        /// Tickets that gave up (cancelled) while not first; dropped when they reach the front.
        var abandoned = Set<UInt64>()
        var probing = false
        var notBefore = ContinuousClock.Instant.now
    }

    private struct State {
        var nextTicket: UInt64 = 0
        var queues: [OrganizationID: Queue] = [:]
    }

    private let state = Mutex(State())

    /// Takes a place in the organization's line, to try again no earlier than `retryAfter` from now.
    func enqueue(_ organization: OrganizationID, retryAfter: Duration) -> UInt64 {
        state.withLock { state in
            state.nextTicket += 1
            let ticket = state.nextTicket
            var queue = state.queues[organization] ?? Queue()
            if queue.waiting.isEmpty { queue.notBefore = .now + retryAfter }
            queue.waiting.append(ticket)
            state.queues[organization] = queue
            return ticket
        }
    }

    /// Waits until `ticket` is first in line, nothing else of the organization is being claimed, and the delay has
    /// passed; `false` when the task is cancelled (the ticket is then given up).
    func waitForTurn(_ organization: OrganizationID, ticket: UInt64) async -> Bool {
        while true {
            let wait: Duration? = state.withLock { state in
                guard var queue = state.queues[organization] else { return nil }
                while let first = queue.waiting.first, queue.abandoned.remove(first) != nil {
                    queue.waiting.removeFirst()
                }
                defer { state.queues[organization] = queue }
                guard queue.waiting.first == ticket, !queue.probing else { return .milliseconds(100) }
                let now = ContinuousClock.now
                guard now >= queue.notBefore else { return queue.notBefore - now }
                queue.probing = true
                return nil
            }
            guard let wait else { return true }
            guard (try? await Task.sleep(for: wait)) != nil else {
                leave(organization, ticket: ticket)
                return false
            }
        }
    }

    /// The claim of the first in line was held back again: it stays first, and tries again after `retryAfter`.
    func deferredAgain(_ organization: OrganizationID, retryAfter: Duration) {
        state.withLock { state in
            state.queues[organization]?.probing = false
            state.queues[organization]?.notBefore = .now + retryAfter
        }
    }

    /// A ticket leaves the line: the first in line once its claim went through or it gave up, any other when it was
    /// cancelled while waiting (it is then dropped when it reaches the front).
    func leave(_ organization: OrganizationID, ticket: UInt64) {
        state.withLock { state in
            guard var queue = state.queues[organization] else { return }
            if queue.waiting.first == ticket {
                queue.waiting.removeFirst()
                queue.probing = false
            } else {
                queue.abandoned.insert(ticket)
            }
            state.queues[organization] = queue.waiting.isEmpty ? nil : queue
        }
    }

    /// Calls waiting in line, all organizations together (a gauge).
    var waiting: Int {
        state.withLock { state in state.queues.values.reduce(0) { $0 + $1.waiting.count - $1.abandoned.count } }
    }
}
