import CallDomain
import Testing

/// Every pair of statuses, allowed or forbidden, against the diagram of DESIGN.md written out by hand.
@Suite struct StateMachineTests {
    static let allowed: Set<String> = [
        "queued>dispatched", "queued>initiated", "queued>ringing", "queued>answered", "queued>canceled",
        "queued>expired",
        "dispatched>initiated", "dispatched>ringing", "dispatched>answered", "dispatched>failed",
        "dispatched>canceled",
        "initiated>ringing", "initiated>answered", "initiated>busy", "initiated>no_answer", "initiated>rejected",
        "initiated>failed", "initiated>canceled",
        "ringing>answered", "ringing>busy", "ringing>no_answer", "ringing>rejected", "ringing>failed",
        "ringing>canceled",
        "answered>completed",
    ]

    static let pairs: [(CallStatus, CallStatus)] = CallStatus.allCases.flatMap { from in
        CallStatus.allCases.map { (from, $0) }
    }

    @Test(arguments: pairs)
    func transition(_ from: CallStatus, _ to: CallStatus) {
        let expected = Self.allowed.contains("\(from.rawValue)>\(to.rawValue)")
        #expect(from.canTransition(to: to) == expected, "\(from.rawValue) → \(to.rawValue)")
    }

    @Test func terminalStatusesAreFinal() {
        #expect(CallStatus.terminal == [.completed, .busy, .noAnswer, .rejected, .failed, .canceled, .expired])
        for status in CallStatus.terminal {
            #expect(CallStatus.allCases.allSatisfy { !status.canTransition(to: $0) })
        }
    }

    @Test func predecessorsMatchTransitions() {
        #expect(Set(CallStatus.completed.allowedPredecessors) == [.answered])
        #expect(Set(CallStatus.expired.allowedPredecessors) == [.queued])
        #expect(Set(CallStatus.failed.allowedPredecessors) == [.dispatched, .initiated, .ringing])
    }
}

/// The outcome table of DESIGN.md, row by row, including the captured Asterisk 22 behaviours.
@Suite struct CallOutcomeTests {
    struct Row: Sendable, CustomTestStringConvertible {
        var name: String
        var answered = false
        var hangupRequested = false
        var dialStatus: String?
        var cause: Int
        var ringTimeout = false
        var status: CallStatus
        var reason: FailureReason?
        var testDescription: String { name }
    }

    static let rows: [Row] = [
        Row(name: "answered, normal clearing", answered: true, dialStatus: "ANSWER", cause: 16, status: .completed),
        Row(name: "answered, we hung up", answered: true, hangupRequested: true, cause: 16, status: .completed),
        Row(name: "answered, ended with cause 17", answered: true, cause: 17, status: .completed),
        Row(
            name: "hangup requested while ringing", hangupRequested: true, dialStatus: "NOANSWER", cause: 16,
            status: .canceled),
        Row(
            name: "hangup requested beats busy", hangupRequested: true, dialStatus: "BUSY", cause: 17,
            status: .canceled),
        Row(name: "Busy(): cause 0 + BUSY", dialStatus: "BUSY", cause: 0, status: .busy),
        Row(name: "Hangup(17)", dialStatus: "BUSY", cause: 17, status: .busy),
        Row(name: "cause 17 alone", cause: 17, status: .busy),
        Row(
            name: "Congestion(): cause 0 + CONGESTION", dialStatus: "CONGESTION", cause: 0, status: .failed,
            reason: .congestion),
        Row(name: "Hangup(34)", dialStatus: "CONGESTION", cause: 34, status: .failed, reason: .congestion),
        Row(name: "cause 38", cause: 38, status: .failed, reason: .congestion),
        Row(name: "cause 41", cause: 41, status: .failed, reason: .congestion),
        Row(name: "cause 42", cause: 42, status: .failed, reason: .congestion),
        Row(name: "cause 44", cause: 44, status: .failed, reason: .congestion),
        Row(name: "CHANUNAVAIL + 20", dialStatus: "CHANUNAVAIL", cause: 20, status: .failed, reason: .unavailable),
        Row(name: "CHANUNAVAIL + 0", dialStatus: "CHANUNAVAIL", cause: 0, status: .failed, reason: .unavailable),
        Row(name: "cause 20 alone", cause: 20, status: .failed, reason: .unavailable),
        Row(name: "rejected 21", dialStatus: "NOANSWER", cause: 21, status: .rejected),
        Row(name: "unallocated 1", dialStatus: "NOANSWER", cause: 1, status: .failed, reason: .invalidNumber),
        Row(name: "no route 3", dialStatus: "NOANSWER", cause: 3, status: .failed, reason: .invalidNumber),
        Row(name: "number changed 22", dialStatus: "NOANSWER", cause: 22, status: .failed, reason: .invalidNumber),
        Row(name: "invalid format 28", dialStatus: "NOANSWER", cause: 28, status: .failed, reason: .invalidNumber),
        Row(name: "no user responding 18", cause: 18, status: .noAnswer),
        Row(
            name: "originate timeout: cause 19, last dialstatus RINGING", dialStatus: "RINGING", cause: 19,
            status: .noAnswer),
        Row(
            name: "rang until the timeout, no final dialstatus", dialStatus: "RINGING", cause: 16, ringTimeout: true,
            status: .noAnswer),
        Row(name: "nonexistent extension: cause 0, no Dial", cause: 0, status: .failed, reason: .unknown),
        Row(name: "cause 0, empty dialstatus", dialStatus: "", cause: 0, status: .failed, reason: .unknown),
        Row(
            name: "final NOANSWER with timeout flag but cause 16", dialStatus: "NOANSWER", cause: 16,
            ringTimeout: true, status: .failed, reason: .unknown),
    ]

    @Test(arguments: rows)
    func outcome(_ row: Row) {
        let outcome = CallOutcome.decide(
            answered: row.answered, hangupRequested: row.hangupRequested, lastDialStatus: row.dialStatus,
            cause: row.cause, ringTimeReachedTimeout: row.ringTimeout)
        #expect(outcome.status == row.status)
        #expect(outcome.failureReason == row.reason)
    }

    @Test func retryability() {
        #expect(CallOutcome(status: .failed, failureReason: .congestion).isRetryable)
        #expect(CallOutcome(status: .failed, failureReason: .unavailable).isRetryable)
        #expect(!CallOutcome(status: .failed, failureReason: .invalidNumber).isRetryable)
        #expect(!CallOutcome(status: .busy).isRetryable)
    }
}
