import ARI

/// The ARI events of a previous process's calls, held while a restarted worker waits for the history to catch up
/// before adopting them.
///
/// A call that hangs up during the wait must end with its real cause, not one inferred later from a vanished channel:
/// its events are kept here, in order, and handed to the tracker once the calls are adopted.
struct AdoptionHold: Sendable {
    /// The channels of the calls waiting to be adopted.
    let channels: Set<String>
    /// The most events held; beyond it the oldest are dropped (reconciliation then infers those calls' ends).
    let capacity: Int
    private(set) var events: [ARIEvent] = []
    private(set) var dropped = 0

    init(channels: Set<String>, capacity: Int = 100_000) {
        self.channels = channels
        self.capacity = capacity
    }

    /// Keeps `event` if it belongs to a held channel; `false` when it is someone else's (handle it as usual).
    mutating func capture(_ event: ARIEvent) -> Bool {
        guard let channelID = event.channelID, channels.contains(channelID) else { return false }
        if events.count >= capacity {
            events.removeFirst()
            dropped += 1
        }
        events.append(event)
        return true
    }
}
