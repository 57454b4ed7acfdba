import CallDomain
import CallStore
import Foundation

/// A call as the API shows it (`GET /api/v1/calls/{id}`, the 202 of `POST /api/v1/calls`, list items).
struct CallResource: Encodable, Sendable, Equatable {
    struct CallerIDBody: Encodable, Sendable, Equatable {
        var name: String?
        var number: String
    }

    struct TimelineEntry: Encodable, Sendable, Equatable {
        var seq: Int
        var status: CallStatus
        var previousStatus: CallStatus?
        var occurredAt: Date
        var nodeID: String?
        var workerID: String?
        var hangupCause: HangupCause?
        var failureReason: FailureReason?
        var detail: String?

        enum CodingKeys: String, CodingKey {
            case seq, status
            case previousStatus = "previous_status"
            case occurredAt = "occurred_at"
            case nodeID = "node_id"
            case workerID = "worker_id"
            case hangupCause = "hangup_cause"
            case failureReason = "failure_reason"
            case detail
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(seq, forKey: .seq)
            try container.encode(status, forKey: .status)
            try container.encode(previousStatus, forKey: .previousStatus)
            try container.encode(occurredAt, forKey: .occurredAt)
            try container.encode(nodeID, forKey: .nodeID)
            try container.encode(workerID, forKey: .workerID)
            try container.encode(hangupCause, forKey: .hangupCause)
            try container.encode(failureReason, forKey: .failureReason)
            try container.encode(detail, forKey: .detail)
        }
    }

    struct Links: Encodable, Sendable, Equatable {
        var this: String
        var events: String
        var hangup: String

        enum CodingKeys: String, CodingKey {
            case this = "self"
            case events, hangup
        }
    }

    var id: CallID
    var status: CallStatus
    var seq: Int
    var to: String?
    var callerID: CallerIDBody?
    var context: String?
    var `extension`: String?
    var priority: Int?
    var timeoutSeconds: Int?
    var variables: [String: String]
    var metadata: [String: JSONValue]
    var requestedBy: String?
    var requestID: String?
    var nodeID: String?
    var workerID: String?
    var channelID: String?
    var hangupCause: HangupCause?
    var failureReason: FailureReason?
    var detail: String?
    var createdAt: Date
    var expiresAt: Date?
    var dispatchedAt: Date?
    var answeredAt: Date?
    var endedAt: Date?
    var updatedAt: Date
    var machineDetection: MachineDetection?
    var answeredBy: AnsweredBy?
    /// Present on single-call answers.
    var timeline: [TimelineEntry]?
    var links: Links

    enum CodingKeys: String, CodingKey {
        case id, status, seq, to
        case callerID = "caller_id"
        case context, `extension`, priority
        case timeoutSeconds = "timeout_seconds"
        case variables, metadata
        case requestedBy = "requested_by"
        case requestID = "request_id"
        case nodeID = "node_id"
        case workerID = "worker_id"
        case channelID = "channel_id"
        case hangupCause = "hangup_cause"
        case failureReason = "failure_reason"
        case retryable, detail
        case createdAt = "created_at"
        case expiresAt = "expires_at"
        case dispatchedAt = "dispatched_at"
        case answeredAt = "answered_at"
        case endedAt = "ended_at"
        case updatedAt = "updated_at"
        case machineDetection = "machine_detection"
        case answeredBy = "answered_by"
        case timeline, links
    }

    /// Nulls are written out, so every field is always present (a stable shape for clients).
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(status, forKey: .status)
        try container.encode(seq, forKey: .seq)
        try container.encode(to, forKey: .to)
        try container.encode(callerID, forKey: .callerID)
        try container.encode(context, forKey: .context)
        try container.encode(`extension`, forKey: .extension)
        try container.encode(priority, forKey: .priority)
        try container.encode(timeoutSeconds, forKey: .timeoutSeconds)
        try container.encode(variables, forKey: .variables)
        try container.encode(metadata, forKey: .metadata)
        try container.encode(requestedBy, forKey: .requestedBy)
        try container.encode(requestID, forKey: .requestID)
        try container.encode(nodeID, forKey: .nodeID)
        try container.encode(workerID, forKey: .workerID)
        try container.encode(channelID, forKey: .channelID)
        try container.encode(hangupCause, forKey: .hangupCause)
        try container.encode(failureReason, forKey: .failureReason)
        try container.encode(status == .failed ? (failureReason?.isRetryable ?? false) : nil, forKey: .retryable)
        try container.encode(detail, forKey: .detail)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(expiresAt, forKey: .expiresAt)
        try container.encode(dispatchedAt, forKey: .dispatchedAt)
        try container.encode(answeredAt, forKey: .answeredAt)
        try container.encode(endedAt, forKey: .endedAt)
        try container.encode(updatedAt, forKey: .updatedAt)
        try container.encode(machineDetection, forKey: .machineDetection)
        try container.encode(answeredBy, forKey: .answeredBy)
        try container.encodeIfPresent(timeline, forKey: .timeline)
        try container.encode(links, forKey: .links)
    }

    static func links(for id: CallID) -> Links {
        Links(
            this: "/api/v1/calls/\(id)", events: "/api/v1/calls/\(id)/events", hangup: "/api/v1/calls/\(id)/hangup")
    }

    /// The view of a just-accepted command: `queued`, nothing known beyond the request.
    init(accepted command: OriginateCommand) {
        id = command.callID
        status = .queued
        seq = 0
        to = command.to.value
        callerID = command.callerID.map { CallerIDBody(name: $0.name, number: $0.number) }
        context = command.dialplan?.context
        `extension` = command.dialplan?.extension
        priority = command.dialplan?.priority
        timeoutSeconds = command.timeoutSeconds
        variables = command.variables.values
        metadata = command.metadata.values
        requestedBy = command.requestedBy
        requestID = command.requestID
        createdAt = command.requestedAt
        expiresAt = command.expiresAt
        updatedAt = command.requestedAt
        machineDetection = command.machineDetection
        timeline = [
            TimelineEntry(seq: 0, status: .queued, previousStatus: nil, occurredAt: command.requestedAt)
        ]
        links = Self.links(for: command.callID)
    }

    /// The view of a stored call; `includeTimeline` for single-call answers.
    init(record: CallRecord, includeTimeline: Bool) {
        id = record.id
        status = record.status
        seq = record.seq
        to = record.to
        callerID = record.callerIDNumber.map { CallerIDBody(name: record.callerIDName, number: $0) }
        context = record.context
        `extension` = record.extension
        priority = record.priority
        timeoutSeconds = record.timeoutSeconds
        variables = record.variables
        metadata = record.metadata
        requestedBy = record.requestedBy
        requestID = record.requestID
        nodeID = record.nodeID
        workerID = record.workerID
        channelID = record.channelID
        hangupCause = record.hangupCause
        failureReason = record.failureReason
        detail = record.detail
        createdAt = record.createdAt
        expiresAt = record.expiresAt
        dispatchedAt = record.dispatchedAt
        answeredAt = record.answeredAt
        endedAt = record.endedAt
        updatedAt = record.updatedAt
        machineDetection = record.machineDetection
        answeredBy = record.answeredBy
        timeline =
            includeTimeline
            ? record.timeline.map {
                TimelineEntry(
                    seq: $0.seq, status: $0.status, previousStatus: $0.previousStatus, occurredAt: $0.occurredAt,
                    nodeID: $0.nodeID, workerID: $0.workerID, hangupCause: $0.hangupCause,
                    failureReason: $0.failureReason, detail: $0.detail)
            } : nil
        links = Self.links(for: record.id)
    }
}

extension CallResource.TimelineEntry {
    init(seq: Int, status: CallStatus, previousStatus: CallStatus?, occurredAt: Date) {
        self.init(
            seq: seq, status: status, previousStatus: previousStatus, occurredAt: occurredAt, nodeID: nil,
            workerID: nil, hangupCause: nil, failureReason: nil, detail: nil)
    }
}

extension CallResource {
    /// The resource as JSON text, written directly (the same text as its `Encodable` form through `WireCoding`, which
    /// the list answers use; the tests hold the two to each other). Keys in sorted order, nulls written out.
    func jsonBytes() throws -> [UInt8] {
        var json = JSONTextWriter(capacity: timeline.map { 640 + 256 * $0.count } ?? 640)
        json.beginObject()
        json.key("answered_at")
        json.date(answeredAt)
        json.key("answered_by")
        json.string(answeredBy?.rawValue)
        json.key("caller_id")
        if let callerID {
            json.beginObject()
            json.key("name")
            json.string(callerID.name)
            json.key("number")
            json.string(callerID.number)
            json.endObject()
        } else {
            json.null()
        }
        json.key("channel_id")
        json.string(channelID)
        json.key("context")
        json.string(context)
        json.key("created_at")
        json.date(createdAt)
        json.key("detail")
        json.string(detail)
        json.key("dispatched_at")
        json.date(dispatchedAt)
        json.key("ended_at")
        json.date(endedAt)
        json.key("expires_at")
        json.date(expiresAt)
        json.key("extension")
        json.string(`extension`)
        json.key("failure_reason")
        json.string(failureReason?.rawValue)
        json.key("hangup_cause")
        Self.write(hangupCause, to: &json)
        json.key("id")
        json.string(id.description)
        json.key("links")
        json.beginObject()
        json.key("events")
        json.string(links.events)
        json.key("hangup")
        json.string(links.hangup)
        json.key("self")
        json.string(links.this)
        json.endObject()
        json.key("machine_detection")
        if let machineDetection {
            // Rare and nested: JSONEncoder's text, as is.
            json.raw(try WireCoding.encode(machineDetection))
        } else {
            json.null()
        }
        json.key("metadata")
        json.object(metadata) { writer, value in writer.value(value) }
        json.key("node_id")
        json.string(nodeID)
        json.key("priority")
        json.int(priority)
        json.key("request_id")
        json.string(requestID)
        json.key("requested_by")
        json.string(requestedBy)
        json.key("retryable")
        json.bool(status == .failed ? (failureReason?.isRetryable ?? false) : nil)
        json.key("seq")
        json.int(seq)
        json.key("status")
        json.string(status.rawValue)
        if let timeline {
            json.key("timeline")
            json.beginArray()
            for entry in timeline {
                json.beginObject()
                json.key("detail")
                json.string(entry.detail)
                json.key("failure_reason")
                json.string(entry.failureReason?.rawValue)
                json.key("hangup_cause")
                Self.write(entry.hangupCause, to: &json)
                json.key("node_id")
                json.string(entry.nodeID)
                json.key("occurred_at")
                json.date(entry.occurredAt)
                json.key("previous_status")
                json.string(entry.previousStatus?.rawValue)
                json.key("seq")
                json.int(entry.seq)
                json.key("status")
                json.string(entry.status.rawValue)
                json.key("worker_id")
                json.string(entry.workerID)
                json.endObject()
            }
            json.endArray()
        }
        json.key("timeout_seconds")
        json.int(timeoutSeconds)
        json.key("to")
        json.string(to)
        json.key("updated_at")
        json.date(updatedAt)
        json.key("variables")
        json.object(variables) { writer, value in writer.string(value) }
        json.key("worker_id")
        json.string(workerID)
        json.endObject()
        return json.bytes
    }

    private static func write(_ cause: HangupCause?, to json: inout JSONTextWriter) {
        guard let cause else { return json.null() }
        json.beginObject()
        json.key("code")
        json.int(cause.code)
        json.key("text")
        json.string(cause.text)
        json.endObject()
    }
}
