import Foundation

// The messages every call goes through, written without `JSONEncoder` (see ``JSONTextWriter``): the originate
// command once per call in the gateway, the status events about five times per call in the worker, and the
// metadata and variables with them into PostgreSQL. Each writes the bytes its `encode(to:)` gives with
// `WireCoding.encoder`: the same keys, in sorted order, with the same absent and `null` members; the tests compare
// the two on generated values.

extension OriginateCommand: JSONTextWritable {
    public func write(to json: inout JSONTextWriter) throws {
        json.beginObject()
        json.field("call_id", callID.description)
        if let callerID { try json.field("caller_id", callerID) }
        if let dialplan { try json.field("dialplan", dialplan) }
        json.field("expires_at", expiresAt)
        if let machineDetection { try json.field("machine_detection", machineDetection) }
        try json.field("metadata", metadata)
        json.field("organization_id", organizationID.description)
        if record { json.field("record", true) }
        if let requestID { json.field("request_id", requestID) }
        json.field("requested_at", requestedAt)
        json.field("requested_by", requestedBy)
        if let statusCallback {
            json.field("status_callback", statusCallback.url)
            json.key("status_callback_events")
            json.beginArray()
            for event in statusCallback.events.map(\.rawValue).sorted() { json.string(event) }
            json.endArray()
        }
        json.field("timeout_seconds", timeoutSeconds)
        json.field("to", to.value)
        try json.field("variables", variables)
        json.endObject()
    }
}

extension CallStatusEvent: JSONTextWritable {
    public func write(to json: inout JSONTextWriter) throws {
        json.beginObject()
        json.field("answered_at", answeredAt)
        if let answeredBy { json.field("answered_by", answeredBy.rawValue) }
        json.field("call_id", callID.description)
        json.field("channel_id", channelID)
        json.field("detail", detail)
        json.field("duration_seconds", durationSeconds)
        json.field("ended_at", endedAt)
        json.field("event_id", eventID.uuidString.lowercased())
        json.field("failure_reason", failureReason?.rawValue)
        try json.field("hangup_cause", hangupCause)
        try json.field("metadata", metadata)
        json.field("node_id", nodeID)
        json.field("occurred_at", occurredAt)
        if let organizationID { json.field("organization_id", organizationID.description) }
        if let ownerEpoch { json.field("owner_epoch", ownerEpoch) }
        json.field("previous_status", previousStatus.rawValue)
        json.field("retryable", retryable)
        json.field("seq", seq)
        json.field("status", status.rawValue)
        json.field("to", to)
        json.field("worker_id", workerID)
        json.endObject()
    }
}

extension HangupCause: JSONTextWritable {
    public func write(to json: inout JSONTextWriter) {
        json.beginObject()
        json.field("code", code)
        json.field("text", text)
        json.endObject()
    }
}

extension CallerID: JSONTextWritable {
    public func write(to json: inout JSONTextWriter) {
        json.beginObject()
        if let name { json.field("name", name) }
        json.field("number", number)
        json.endObject()
    }
}

extension DialplanTarget: JSONTextWritable {
    public func write(to json: inout JSONTextWriter) {
        json.beginObject()
        json.field("context", context)
        json.field("extension", `extension`)
        json.field("priority", priority)
        json.endObject()
    }
}

extension MachineDetection: JSONTextWritable {
    public func write(to json: inout JSONTextWriter) {
        // The timings' keys sort among `mode` and `on_machine`: one object of all of them, sorted by the writer.
        var members: [String: JSONValue] = ["mode": .string(mode.rawValue), "on_machine": .string(onMachine.rawValue)]
        for (timing, value) in timings { members[timing.rawValue] = .number(Double(value)) }
        json.value(.object(members))
    }
}

extension ChannelVariables: JSONTextWritable {
    public func write(to json: inout JSONTextWriter) {
        json.object(values) { writer, value in writer.string(value) }
    }
}

extension ClientMetadata: JSONTextWritable {
    public func write(to json: inout JSONTextWriter) {
        json.object(values) { writer, value in writer.value(value) }
    }
}

extension JSONValue: JSONTextWritable {
    public func write(to json: inout JSONTextWriter) {
        json.value(self)
    }
}
