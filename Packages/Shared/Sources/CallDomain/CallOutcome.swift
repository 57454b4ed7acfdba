/// Why a call that was not completed failed, when its status is `failed`.
public enum FailureReason: String, Hashable, Sendable, Codable, CaseIterable {
    /// The node refused the originate (HTTP 4xx/5xx or transport error).
    case originateRefused = "originate_refused"
    /// The network was congested (dialstatus CONGESTION, causes 34, 38, 41, 42, 44).
    case congestion
    /// The callee's line is unavailable (dialstatus CHANUNAVAIL, cause 20).
    case unavailable
    /// The number does not exist or is malformed (causes 1, 3, 22, 28).
    case invalidNumber = "invalid_number"
    /// The channel vanished while we were not watching and nothing tells how it ended.
    case lost
    /// Asterisk gave no cause we can interpret (cause 0 after a nonexistent extension, for instance).
    case unknown

    /// Whether dialing the same number again later may succeed.
    public var isRetryable: Bool {
        switch self {
        case .congestion, .unavailable, .originateRefused, .lost: true
        case .invalidNumber, .unknown: false
        }
    }
}

/// The terminal status of a call and, for failures, the reason.
public struct CallOutcome: Hashable, Sendable {
    /// The terminal status.
    public var status: CallStatus
    /// For `failed`, why.
    public var failureReason: FailureReason?

    /// Creates an outcome.
    public init(status: CallStatus, failureReason: FailureReason? = nil) {
        self.status = status
        self.failureReason = failureReason
    }

    /// Whether redialing later may succeed.
    public var isRetryable: Bool { failureReason?.isRetryable ?? false }

    /// Decides how a call ended from what ARI showed, by the table in DESIGN.md.
    ///
    /// The cause alone is not enough: Asterisk's `Busy()` and `Congestion()` end the originated channel with cause 0,
    /// and only the last `Dial` event's `dialstatus` tells them apart. The rows are checked in order; the first that
    /// matches wins.
    /// - Parameters:
    ///   - answered: StasisStart was seen (app-style originate), or dialstatus ANSWER, or the channel was Up.
    ///   - hangupRequested: we asked for the hangup or the cancel.
    ///   - lastDialStatus: the `dialstatus` of the last `Dial` event for the channel (empty or nil when none).
    ///   - cause: `ChannelDestroyed.cause` (Q.850).
    ///   - ringTimeReachedTimeout: the call rang for at least the originate timeout.
    public static func decide(
        answered: Bool,
        hangupRequested: Bool,
        lastDialStatus: String?,
        cause: Int,
        ringTimeReachedTimeout: Bool
    ) -> CallOutcome {
        if answered { return CallOutcome(status: .completed) }
        if hangupRequested { return CallOutcome(status: .canceled) }
        let dialStatus = (lastDialStatus ?? "").uppercased()
        if dialStatus == "BUSY" || cause == 17 { return CallOutcome(status: .busy) }
        if dialStatus == "CONGESTION" || [34, 38, 41, 42, 44].contains(cause) {
            return CallOutcome(status: .failed, failureReason: .congestion)
        }
        if dialStatus == "CHANUNAVAIL" || cause == 20 {
            return CallOutcome(status: .failed, failureReason: .unavailable)
        }
        if cause == 21 { return CallOutcome(status: .rejected) }
        if [1, 3, 22, 28].contains(cause) { return CallOutcome(status: .failed, failureReason: .invalidNumber) }
        let finalDialStatuses: Set<String> = [
            "ANSWER", "BUSY", "NOANSWER", "CANCEL", "CONGESTION", "CHANUNAVAIL", "DONTCALL", "TORTURE", "INVALIDARGS",
        ]
        if cause == 18 || cause == 19 || (!finalDialStatuses.contains(dialStatus) && ringTimeReachedTimeout) {
            return CallOutcome(status: .noAnswer)
        }
        return CallOutcome(status: .failed, failureReason: .unknown)
    }
}

/// A Q.850 hangup cause as Asterisk reports it.
public struct HangupCause: Hashable, Sendable, Codable {
    /// The cause number (`ChannelDestroyed.cause`).
    public var code: Int
    /// Asterisk's text for it (`ChannelDestroyed.cause_txt`).
    public var text: String

    /// Creates a hangup cause.
    public init(code: Int, text: String) {
        self.code = code
        self.text = text
    }
}
