/// Where a call is in its life. The raw values are the wire and database form.
///
/// ```
/// queued ─▶ dispatched ─▶ initiated ─▶ ringing ─▶ answered ─▶ completed
///   │           │              │           │
///   ├─▶ canceled├─▶ canceled   └───────────┴─▶ busy | no_answer | rejected | failed | canceled
///   └─▶ expired └─▶ failed (originate refused)
/// ```
public enum CallStatus: String, CaseIterable, Hashable, Sendable, Codable {
    /// Accepted by the gateway; the command is in Kafka.
    case queued
    /// Claimed by a worker, which is about to originate it.
    case dispatched
    /// The node accepted the originate; the channel exists.
    case initiated
    /// The callee's phone is ringing.
    case ringing
    /// The callee answered.
    case answered
    /// An answered call ended.
    case completed
    /// The callee was busy.
    case busy
    /// Nobody answered before the timeout.
    case noAnswer = "no_answer"
    /// The callee rejected the call.
    case rejected
    /// The call could not be placed (refused, congestion, unavailable, invalid number, lost).
    case failed
    /// We hung up or canceled the call before it was answered.
    case canceled
    /// The command outlived its time to live before any worker could dial it.
    case expired

    /// The statuses a call ends in; exactly one of them is reached, once.
    public static let terminal: Set<CallStatus> = [
        .completed, .busy, .noAnswer, .rejected, .failed, .canceled, .expired,
    ]

    /// Whether the call has ended.
    public var isTerminal: Bool { Self.terminal.contains(self) }

    /// Progress order of the live statuses; terminal statuses come after all of them.
    private var rank: Int {
        switch self {
        case .queued: 0
        case .dispatched: 1
        case .initiated: 2
        case .ringing: 3
        case .answered: 4
        default: 5
        }
    }

    /// Whether a call may move from `self` to `next`.
    ///
    /// Live statuses only move forward, and may skip a step (an immediately answered call never rings). Each terminal
    /// status has the sources the diagram gives it; a terminal status is final.
    public func canTransition(to next: CallStatus) -> Bool {
        if isTerminal { return false }
        switch next {
        case .queued:
            return false
        case .dispatched, .initiated, .ringing, .answered:
            return next.rank > rank
        case .completed:
            return self == .answered
        case .busy, .noAnswer, .rejected:
            return self == .initiated || self == .ringing
        case .failed:
            return self == .dispatched || self == .initiated || self == .ringing
        case .canceled:
            return self != .answered
        case .expired:
            return self == .queued
        }
    }

    /// The statuses from which `self` may be reached; used to make database updates conditional.
    public var allowedPredecessors: [CallStatus] {
        CallStatus.allCases.filter { $0.canTransition(to: self) }
    }
}
