import Foundation

extension Duration {
    /// The duration in seconds, fractions included, for `Date` arithmetic (due times, leases, retry waits).
    public var timeInterval: TimeInterval {
        let (seconds, attoseconds) = components
        return TimeInterval(seconds) + TimeInterval(attoseconds) / 1e18
    }
}
