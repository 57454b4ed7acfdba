import ARI
import CallDomain
import CallStore
import Foundation

/// What the worker knows about one call it owns, from the claim until the call's terminal status.
struct TrackedCall: Sendable {
    /// Where the call is in the worker's own hands (the status says where it is for everybody else).
    enum Phase: Sendable, Equatable {
        /// Registered, the claim in PostgreSQL is under way.
        case claiming
        /// Claimed; the originate request is being sent.
        case originating
        /// The node accepted the originate (or the channel showed up in events): the channel exists.
        case originated
    }

    let callID: CallID
    /// The ARI channel id: the call id's canonical text; events are matched on it exactly.
    let channelID: String
    let to: String?
    let timeoutSeconds: Int
    /// Where the call goes once answered.
    let dialplan: DialplanTarget
    let metadata: ClientMetadata
    /// The call's organization, carried by every event.
    let organizationID: OrganizationID?
    /// The command's W3C trace context, carried on every status event of the call.
    let traceParent: String?
    /// The gateway's request id, for logs.
    let requestID: String?
    /// Whether the call was taken over from a previous process rather than originated by this one.
    let adopted: Bool
    /// Answering machine detection asked for by the request.
    let machineDetection: MachineDetection?
    /// Whether the request asked for the answered call to be recorded.
    let record: Bool

    var phase: Phase
    /// The owner epoch of this worker's claim or takeover, carried by every status event it publishes for the call.
    var ownerEpoch: Int
    var status: CallStatus
    /// The `seq` of the last status event produced for the call.
    var seq: Int
    var answered = false
    var answeredAt: Date?
    /// Someone asked (control topic) for the call to be hung up or canceled.
    var hangupRequested = false
    /// The last non-empty `Dial.dialstatus`.
    var lastDialStatus: String?
    /// `continue` was sent after StasisStart.
    var continued = false
    /// Who answered, once the detection decided (the `answered` status waits for it).
    var answeredBy: AnsweredBy?
    /// `AMDSTATUS` and `AMDCAUSE` as `ChannelVarset` events showed them while the channel ran the detection's dial
    /// plan: the verdict of a call that ends before it is back in Stasis (a machine's greeting outlasting the call).
    var heardVerdict: (status: String?, cause: String?) = (nil, nil)
    /// At least one event (or a channel listing) showed the channel exists.
    var sawChannel = false
    /// When the originate was sent (monotonic), for ring-time and stuck-call decisions.
    var originatedAt: ContinuousClock.Instant?
    /// A check for a vanished channel is scheduled.
    var vanishCheckPending = false
    /// The recording was asked of the ``Recorder`` (once per call and process).
    var recordingRequested = false

    init(
        command: OriginateCommand,
        traceParent: String?,
        dialplan: DialplanTarget
    ) {
        self.callID = command.callID
        self.channelID = command.callID.description
        self.to = command.to.value
        self.timeoutSeconds = command.timeoutSeconds
        self.dialplan = dialplan
        self.metadata = command.metadata
        self.organizationID = command.organizationID
        self.traceParent = traceParent
        self.requestID = command.requestID ?? traceParent.flatMap(TraceContext.traceID(fromTraceParent:))
        self.adopted = false
        self.machineDetection = command.machineDetection
        self.record = command.record
        self.phase = .claiming
        self.ownerEpoch = 0
        self.status = .queued
        self.seq = 0
    }

    /// A call taken over from PostgreSQL: after a restart, or from a worker that stopped (`record` carries the
    /// epoch of the takeover).
    ///
    /// `seqSkip` moves the sequence past any number the previous owner may have published without the history
    /// writer having stored it yet, so a number is never used twice for one call.
    init(adopting record: CallRecord, dialplan: DialplanTarget, seqSkip: Int, now: ContinuousClock.Instant) {
        self.callID = record.id
        self.channelID = record.channelID ?? record.id.description
        self.to = record.to
        self.timeoutSeconds = record.timeoutSeconds ?? 30
        self.dialplan = dialplan
        self.metadata = (try? ClientMetadata(record.metadata)) ?? .empty
        self.organizationID = record.organizationID
        self.traceParent = record.requestID.map { TraceContext.traceParent(requestID: $0) }
        self.requestID = record.requestID
        self.adopted = true
        self.machineDetection = record.machineDetection
        self.record = record.record
        self.answeredBy = record.answeredBy
        self.phase = .originated
        self.ownerEpoch = record.ownerEpoch
        self.status = record.status
        self.seq = record.seq + seqSkip
        self.answered = record.status == .answered || record.answeredAt != nil
        self.answeredAt = record.answeredAt
        // Ring time is measured from the claim, the closest stored instant to the originate.
        let age = Date().timeIntervalSince(record.dispatchedAt ?? record.createdAt)
        self.originatedAt = now - .milliseconds(Int64(max(0, age) * 1000))
    }

    /// A call taken over while still `dispatched` and never dialed (no originate was recorded): its new owner dials it.
    init(resuming command: OriginateCommand, record: CallRecord, dialplan: DialplanTarget, seqSkip: Int) {
        self.init(
            command: command, traceParent: record.requestID.map { TraceContext.traceParent(requestID: $0) },
            dialplan: dialplan)
        self.phase = .originating
        self.status = record.status
        self.seq = record.seq + seqSkip
        self.ownerEpoch = record.ownerEpoch
        self.originatedAt = .now
    }

    /// Whether the `answered` status waits for the detection's verdict.
    var awaitsDetection: Bool { machineDetection != nil && answeredBy == nil }

    /// The outcome when the channel is gone and its `ChannelDestroyed` was never seen: what the events seen so far
    /// say, with `failed`/`lost` where they say nothing.
    func bestKnownOutcome(now: ContinuousClock.Instant) -> CallOutcome {
        if status == .dispatched {
            return hangupRequested ? CallOutcome(status: .canceled) : CallOutcome(status: .failed, failureReason: .lost)
        }
        let rang = status == .ringing
        let ringTimeReached = rang && originatedAt.map { now - $0 >= .seconds(timeoutSeconds) } == true
        let outcome = CallOutcome.decide(
            answered: answered,
            hangupRequested: hangupRequested,
            lastDialStatus: lastDialStatus,
            cause: 0,
            ringTimeReachedTimeout: ringTimeReached
        )
        if outcome.status == .failed, outcome.failureReason == .unknown {
            return CallOutcome(status: .failed, failureReason: .lost)
        }
        return outcome
    }
}

/// A read-only view of a tracked call, for reconciliation passes.
struct TrackedCallSnapshot: Sendable {
    let callID: CallID
    let channelID: String
    let phase: TrackedCall.Phase
    let status: CallStatus
    let answered: Bool
    let timeoutSeconds: Int
    let originatedAt: ContinuousClock.Instant?
}
