import Foundation
import Synchronization

/// A per-key rate limit (the generic cell rate algorithm): at most `count` requests in any `seconds`-long window,
/// as a burst, then one every `seconds / count`.
///
/// One number per key (its theoretical arrival time), so memory stays small however many addresses knock; keys
/// whose budget is whole again are pruned. The limit is per gateway instance: with N instances behind a load
/// balancer a client may get up to N times the budget, which still bounds password guessing.
final class RateLimiter: Sendable {
    /// The outcome of one request.
    enum Decision: Equatable {
        case allowed
        /// Refused; the client may retry after this many seconds.
        case limited(retryAfter: Int)
    }

    private struct State {
        var arrival: [String: Double] = [:]
        var lastPrune: Double = 0
    }

    private let interval: Double
    private let period: Double
    private let state = Mutex(State())

    /// Allows `count` requests per `seconds` per key.
    init(count: Int, seconds: Int) {
        precondition(count > 0 && seconds > 0)
        period = Double(seconds)
        interval = Double(seconds) / Double(count)
    }

    /// Counts one request of `key` at `now` (seconds on a monotonic clock).
    func check(_ key: String, now: Double = RateLimiter.monotonicNow()) -> Decision {
        state.withLock { state in
            if now - state.lastPrune > period {
                state.arrival = state.arrival.filter { $0.value > now }
                state.lastPrune = now
            }
            let arrival = max(state.arrival[key] ?? now, now)
            let next = arrival + interval
            if next - now > period + 1e-9 {
                return .limited(retryAfter: max(1, Int((next - now - period).rounded(.up))))
            }
            state.arrival[key] = next
            return .allowed
        }
    }

    static func monotonicNow() -> Double {
        let duration = ContinuousClock.now - referenceInstant
        return Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    private static let referenceInstant = ContinuousClock.now
}
