import CallDomain

/// The calls this worker ended lately, with the `seq` of their terminal event, oldest first.
///
/// The history writers apply status events a few milliseconds after they are published. A worker that stops (or is
/// restarted) within that window would leave PostgreSQL showing such a call live, and the next process of the node
/// would adopt it and end it a second time. So a stopping worker waits until the history holds the terminal events
/// it published lately; this is the list it waits on.
struct RecentlyEnded: Sendable {
    /// How long an ended call stays in the list: far beyond the history's usual lag, short enough to stay small.
    let window: Duration
    private var entries: [(callID: CallID, seq: Int, at: ContinuousClock.Instant)] = []
    private var head = 0

    init(window: Duration) {
        self.window = window
    }

    /// Records that the terminal event `seq` of `callID` was acknowledged by Kafka at `now`.
    mutating func ended(_ callID: CallID, seq: Int, at now: ContinuousClock.Instant) {
        prune(now: now)
        entries.append((callID, seq, now))
    }

    /// The calls ended within the window before `now`, with their terminal `seq`.
    mutating func within(now: ContinuousClock.Instant) -> [CallID: Int] {
        prune(now: now)
        var calls: [CallID: Int] = [:]
        for entry in entries[head...] { calls[entry.callID] = max(calls[entry.callID] ?? 0, entry.seq) }
        return calls
    }

    /// Number of calls in the list.
    var count: Int { entries.count - head }

    private mutating func prune(now: ContinuousClock.Instant) {
        while head < entries.count, now - entries[head].at > window { head += 1 }
        // Compact once the dropped prefix dominates, so appends stay amortised O(1) and memory bounded.
        if head > 1024, head * 2 > entries.count {
            entries.removeFirst(head)
            head = 0
        }
    }
}
