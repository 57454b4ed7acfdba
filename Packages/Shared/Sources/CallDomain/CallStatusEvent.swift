import Foundation

/// One status change of a call, published by the dialer on `calls.status.v1` (key: call id).
///
/// `seq` is strictly increasing per call, starting at 1 for the first change after `queued`; a consumer keeps the
/// highest `seq` it applied and ignores anything at or below it, which makes redelivery harmless.
public struct CallStatusEvent: Hashable, Sendable, Codable {
    /// The CloudEvents type of this message.
    public static let eventType = "com.outbound-dialer.call.status.v1"
    /// Unique per event (the CloudEvents `id`).
    public var eventID: UUID
    /// The call.
    public var callID: CallID
    /// Per-call sequence number.
    public var seq: Int
    /// The new status.
    public var status: CallStatus
    /// The status it left.
    public var previousStatus: CallStatus
    /// When the change happened (ARI event time where there is one).
    public var occurredAt: Date
    /// The Asterisk node the call is on.
    public var nodeID: String?
    /// The worker process that owns the call.
    public var workerID: String?
    /// The ARI channel id (equal to the call id when originated by us).
    public var channelID: String?
    /// The number dialed.
    public var to: String?
    /// For terminal statuses after a channel existed: the Q.850 cause.
    public var hangupCause: HangupCause?
    /// For `failed`: why.
    public var failureReason: FailureReason?
    /// A human-readable detail (for example the node's refusal message).
    public var detail: String?
    /// When the callee answered.
    public var answeredAt: Date?
    /// Who answered, once answering machine detection decided (absent for calls without detection).
    public var answeredBy: AnsweredBy?
    /// When the call ended.
    public var endedAt: Date?
    /// Seconds from answer to end, for completed calls.
    public var durationSeconds: Double?
    /// The client's metadata of the call.
    public var metadata: ClientMetadata
    /// The owner epoch the publishing worker held for the call (raised by every claim and takeover); the history
    /// refuses an event whose epoch is below the call's, so a worker that lost the call can no longer move it.
    /// Absent on events not published by a call's owner (a queued call canceled or expired).
    public var ownerEpoch: Int?
    /// The organization of the call, for consumers that scope by it (the gateway's all-calls stream); absent on
    /// events from producers older than organizations, which belong to ``OrganizationID/default``.
    public var organizationID: OrganizationID?

    /// The largest `seq` or owner epoch a consumer must accept: they are stored as PostgreSQL `integer`.
    public static let maximumCounter = Int(Int32.max)

    /// Creates an event.
    public init(
        eventID: UUID = .systemRandom(),
        callID: CallID,
        seq: Int,
        status: CallStatus,
        previousStatus: CallStatus,
        occurredAt: Date,
        nodeID: String? = nil,
        workerID: String? = nil,
        channelID: String? = nil,
        to: String? = nil,
        hangupCause: HangupCause? = nil,
        failureReason: FailureReason? = nil,
        detail: String? = nil,
        answeredAt: Date? = nil,
        answeredBy: AnsweredBy? = nil,
        endedAt: Date? = nil,
        durationSeconds: Double? = nil,
        metadata: ClientMetadata = .empty,
        ownerEpoch: Int? = nil,
        organizationID: OrganizationID? = nil
    ) {
        self.eventID = eventID
        self.callID = callID
        self.seq = seq
        self.status = status
        self.previousStatus = previousStatus
        self.occurredAt = occurredAt
        self.nodeID = nodeID
        self.workerID = workerID
        self.channelID = channelID
        self.to = to
        self.hangupCause = hangupCause
        self.failureReason = failureReason
        self.detail = detail
        self.answeredAt = answeredAt
        self.answeredBy = answeredBy
        self.endedAt = endedAt
        self.durationSeconds = durationSeconds
        self.metadata = metadata
        self.ownerEpoch = ownerEpoch
        self.organizationID = organizationID
    }

    /// Whether a failed call may succeed if dialed again (absent unless failed).
    public var retryable: Bool? {
        status == .failed ? (failureReason?.isRetryable ?? false) : nil
    }

    enum CodingKeys: String, CodingKey {
        case eventID = "event_id"
        case callID = "call_id"
        case seq, status
        case previousStatus = "previous_status"
        case occurredAt = "occurred_at"
        case nodeID = "node_id"
        case workerID = "worker_id"
        case channelID = "channel_id"
        case to
        case hangupCause = "hangup_cause"
        case failureReason = "failure_reason"
        case retryable, detail
        case answeredAt = "answered_at"
        case answeredBy = "answered_by"
        case endedAt = "ended_at"
        case durationSeconds = "duration_seconds"
        case metadata
        case ownerEpoch = "owner_epoch"
        case organizationID = "organization_id"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        eventID = try container.decode(UUID.self, forKey: .eventID)
        callID = try container.decode(CallID.self, forKey: .callID)
        seq = try container.decode(Int.self, forKey: .seq)
        guard seq >= 1, seq <= Self.maximumCounter else {
            throw DecodingError.dataCorruptedError(
                forKey: .seq, in: container, debugDescription: "seq must be 1...\(Self.maximumCounter)")
        }
        status = try container.decode(CallStatus.self, forKey: .status)
        previousStatus = try container.decode(CallStatus.self, forKey: .previousStatus)
        occurredAt = try container.decode(Date.self, forKey: .occurredAt)
        nodeID = try container.decodeIfPresent(String.self, forKey: .nodeID)
        workerID = try container.decodeIfPresent(String.self, forKey: .workerID)
        channelID = try container.decodeIfPresent(String.self, forKey: .channelID)
        to = try container.decodeIfPresent(String.self, forKey: .to)
        hangupCause = try container.decodeIfPresent(HangupCause.self, forKey: .hangupCause)
        failureReason = try container.decodeIfPresent(FailureReason.self, forKey: .failureReason)
        detail = try container.decodeIfPresent(String.self, forKey: .detail)
        answeredAt = try container.decodeIfPresent(Date.self, forKey: .answeredAt)
        answeredBy = try container.decodeIfPresent(AnsweredBy.self, forKey: .answeredBy)
        endedAt = try container.decodeIfPresent(Date.self, forKey: .endedAt)
        durationSeconds = try container.decodeIfPresent(Double.self, forKey: .durationSeconds)
        metadata = try container.decodeIfPresent(ClientMetadata.self, forKey: .metadata) ?? .empty
        ownerEpoch = try container.decodeIfPresent(Int.self, forKey: .ownerEpoch)
        if let ownerEpoch, ownerEpoch < 0 || ownerEpoch > Self.maximumCounter {
            throw DecodingError.dataCorruptedError(
                forKey: .ownerEpoch, in: container, debugDescription: "owner_epoch must be 0...\(Self.maximumCounter)")
        }
        organizationID = try container.decodeIfPresent(OrganizationID.self, forKey: .organizationID)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(eventID.uuidString.lowercased(), forKey: .eventID)
        try container.encode(callID, forKey: .callID)
        try container.encode(seq, forKey: .seq)
        try container.encode(status, forKey: .status)
        try container.encode(previousStatus, forKey: .previousStatus)
        try container.encode(occurredAt, forKey: .occurredAt)
        try container.encode(nodeID, forKey: .nodeID)
        try container.encode(workerID, forKey: .workerID)
        try container.encode(channelID, forKey: .channelID)
        try container.encode(to, forKey: .to)
        try container.encode(hangupCause, forKey: .hangupCause)
        try container.encode(failureReason, forKey: .failureReason)
        try container.encode(retryable, forKey: .retryable)
        try container.encode(detail, forKey: .detail)
        try container.encode(answeredAt, forKey: .answeredAt)
        try container.encodeIfPresent(answeredBy, forKey: .answeredBy)
        try container.encode(endedAt, forKey: .endedAt)
        try container.encode(durationSeconds, forKey: .durationSeconds)
        try container.encode(metadata, forKey: .metadata)
        try container.encodeIfPresent(ownerEpoch, forKey: .ownerEpoch)
        try container.encodeIfPresent(organizationID, forKey: .organizationID)
    }
}
