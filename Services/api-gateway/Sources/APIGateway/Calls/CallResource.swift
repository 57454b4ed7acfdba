import CallDomain
import CallStore
import Foundation

/// A call as the API shows it (`GET /api/v1/calls/{id}`, the 202 of `POST /api/v1/calls`, list items), written as
/// JSON by ``write(to:)``.
struct CallResource: Sendable, Equatable {
    struct CallerIDBody: Sendable, Equatable {
        var name: String?
        var number: String
    }

    struct TimelineEntry: Sendable, Equatable {
        var seq: Int
        var status: CallStatus
        var previousStatus: CallStatus?
        var occurredAt: Date
        var nodeID: String?
        var workerID: String?
        var hangupCause: HangupCause?
        var failureReason: FailureReason?
        var detail: String?
    }

    /// Where a recorded call's recording is (single-call answers).
    struct RecordingView: Sendable, Equatable {
        var status: RecordingStatus
        var detail: String?
        var format: String
        var durationSeconds: Int?
        var sizeBytes: Int64?
        var sha256: String?
        var startedAt: Date?
        var finishedAt: Date?
        var storedAt: Date?
        var deletedAt: Date?
        /// The file, once stored.
        var href: String?

        init(_ recording: CallRecording) {
            status = recording.status
            detail = recording.detail
            format = recording.format
            durationSeconds = recording.durationSeconds
            sizeBytes = recording.sizeBytes
            sha256 = recording.sha256
            startedAt = recording.startedAt
            finishedAt = recording.finishedAt
            storedAt = recording.storedAt
            deletedAt = recording.deletedAt
            href = recording.status == .stored ? "/api/v1/calls/\(recording.callID)/recording" : nil
        }
    }

    struct Links: Sendable, Equatable {
        /// `self`.
        var this: String
        var events: String
        var hangup: String
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
    /// Whether the request asked for the call to be recorded.
    var record = false
    /// The recording, on single-call answers (written there as `null` when there is none).
    var recording: RecordingView?
    /// Present on single-call answers.
    var timeline: [TimelineEntry]?
    var links: Links

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
        record = command.record
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
        self.record = record.record
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

extension CallResource: JSONTextWritable {
    /// Keys in sorted order, nulls written out, so every field is always present (a stable shape for clients).
    func write(to json: inout JSONTextWriter) throws {
        json.beginObject()
        json.field("answered_at", answeredAt)
        json.field("answered_by", answeredBy?.rawValue)
        try json.field("caller_id", callerID)
        json.field("channel_id", channelID)
        json.field("context", context)
        json.field("created_at", createdAt)
        json.field("detail", detail)
        json.field("dispatched_at", dispatchedAt)
        json.field("ended_at", endedAt)
        json.field("expires_at", expiresAt)
        json.field("extension", `extension`)
        json.field("failure_reason", failureReason?.rawValue)
        try json.field("hangup_cause", hangupCause)
        json.field("id", id.description)
        try json.field("links", links)
        try json.field("machine_detection", machineDetection)
        json.key("metadata")
        json.object(metadata) { writer, value in writer.value(value) }
        json.field("node_id", nodeID)
        json.field("priority", priority)
        json.field("record", record)
        if timeline != nil {
            json.key("recording")
            if let recording { recording.write(to: &json) } else { json.null() }
        }
        json.field("request_id", requestID)
        json.field("requested_by", requestedBy)
        json.field("retryable", status == .failed ? (failureReason?.isRetryable ?? false) : nil)
        json.field("seq", seq)
        json.field("status", status.rawValue)
        if let timeline {
            json.key("timeline")
            json.beginArray()
            for entry in timeline { try entry.write(to: &json) }
            json.endArray()
        }
        json.field("timeout_seconds", timeoutSeconds)
        json.field("to", to)
        json.field("updated_at", updatedAt)
        json.key("variables")
        json.object(variables) { writer, value in writer.string(value) }
        json.field("worker_id", workerID)
        json.endObject()
    }
}

extension CallResource.TimelineEntry: JSONTextWritable {
    func write(to json: inout JSONTextWriter) throws {
        json.beginObject()
        json.field("detail", detail)
        json.field("failure_reason", failureReason?.rawValue)
        try json.field("hangup_cause", hangupCause)
        json.field("node_id", nodeID)
        json.field("occurred_at", occurredAt)
        json.field("previous_status", previousStatus?.rawValue)
        json.field("seq", seq)
        json.field("status", status.rawValue)
        json.field("worker_id", workerID)
        json.endObject()
    }
}

extension CallResource.RecordingView: JSONTextWritable {
    func write(to json: inout JSONTextWriter) {
        json.beginObject()
        json.field("deleted_at", deletedAt)
        json.field("detail", detail)
        json.field("duration_seconds", durationSeconds)
        json.field("finished_at", finishedAt)
        json.field("format", format)
        json.field("href", href)
        json.field("sha256", sha256)
        json.field("size_bytes", sizeBytes.map(Int.init))
        json.field("started_at", startedAt)
        json.field("status", status.rawValue)
        json.field("stored_at", storedAt)
        json.endObject()
    }
}

extension CallResource.CallerIDBody: JSONTextWritable {
    func write(to json: inout JSONTextWriter) {
        json.beginObject()
        json.field("name", name)
        json.field("number", number)
        json.endObject()
    }
}

extension CallResource.Links: JSONTextWritable {
    func write(to json: inout JSONTextWriter) {
        json.beginObject()
        json.field("events", events)
        json.field("hangup", hangup)
        json.field("self", this)
        json.endObject()
    }
}
