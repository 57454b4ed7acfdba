import CallDomain
import CallStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Webhooks

/// `POST /calls`, `GET /calls`, `GET /calls/{id}`, `POST /calls/{id}/hangup` (under `/api/v1`).
struct CallsController: Sendable {
    typealias Context = AuthenticatedRequestContext

    let intake: CallIntake
    let repository: any CallRepository
    let publisher: any CommandPublishing
    let allowedContexts: Set<String>
    let defaultTimeoutSeconds: Int
    let defaultTTLSeconds: Int
    let maxBodyBytes: Int
    let publishRetryAfterSeconds: Int
    let webhookPolicy: WebhookTargetPolicy
    let webhooks: any WebhookRepository
    let recordings: any CallRecordingRepository

    /// The largest `limit` of a listing.
    static let maximumPageSize = 200
    /// The `limit` of a listing that gives none.
    static let defaultPageSize = 50

    func addRoutes(to group: RouterGroup<Context>) {
        group.post("calls", use: create)
        group.get("calls", use: list)
        group.get("calls/:id", use: show)
        group.post("calls/:id/hangup", use: hangup)
    }

    // MARK: - POST /calls

    @Sendable func create(_ request: Request, context: Context) async throws -> Response {
        try context.require(.callsWrite)
        let key = try Self.idempotencyKey(request)
        let body = try await JSONInput.object(from: request, limit: maxBodyBytes)
        let callRequest = try CallRequest(
            body: body, allowedContexts: allowedContexts, defaultTimeoutSeconds: defaultTimeoutSeconds,
            defaultTTLSeconds: defaultTTLSeconds, webhookPolicy: webhookPolicy)
        if callRequest.statusCallback != nil {
            let hasSecret = try await context.store {
                try await webhooks.hasStatusCallbackSecret(context.caller.organizationID, at: Date())
            }
            guard hasSecret else {
                throw Problem.validation(
                    field: "status_callback",
                    message: "the organization has no status callback secret to sign with yet: an admin creates "
                        + "one with POST /api/v1/status-callback-secret")
            }
        }
        let acceptance = try await intake.accept(
            callRequest, caller: context.caller, idempotencyKey: key, requestID: context.requestID,
            logger: context.logger)
        var headers: HTTPFields = [.location: acceptance.resource.links.this]
        if acceptance.replayed { headers[.idempotentReplayed] = "true" }
        context.annotations.record(call: acceptance.resource.id, replayed: acceptance.replayed)
        return try JSONResponse.make(
            acceptance.resource, status: acceptance.fromHistory ? .ok : .accepted, headers: headers)
    }

    /// The `Idempotency-Key` header: 1 to 255 printable ASCII characters.
    static func idempotencyKey(_ request: Request) throws -> String? {
        let values = request.headers[values: .idempotencyKey]
        guard let value = values.first else { return nil }
        guard values.count == 1 else {
            throw Problem.validation(field: "Idempotency-Key", message: "must be sent once")
        }
        guard !value.isEmpty, value.utf8.count <= 255, value.utf8.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E }) else {
            throw Problem.validation(
                field: "Idempotency-Key", message: "must be 1 to 255 printable ASCII characters without spaces")
        }
        return value
    }

    // MARK: - GET /calls/{id}

    @Sendable func show(_ request: Request, context: Context) async throws -> Response {
        try context.require(.callsRead)
        let id = try Self.callID(context)
        guard
            let record = try await context.store(
                unavailable: "the call history is unavailable",
                { try await repository.call(id: id, in: context.caller.organizationID) })
        else {
            throw Self.notFound(id)
        }
        var resource = CallResource(record: record, includeTimeline: true)
        if record.record {
            resource.recording = try await context.store(unavailable: "the call history is unavailable") {
                try await recordings.recording(of: id, in: context.caller.organizationID)
            }.map(CallResource.RecordingView.init)
        }
        return try JSONResponse.make(resource)
    }

    static func callID(_ context: some RequestContext) throws -> CallID {
        guard let text = context.parameters.get("id"), let id = CallID(text.lowercased()) else {
            throw Problem.validation(field: "id", message: "must be a call id (a UUID)")
        }
        return id
    }

    static func notFound(_ id: CallID) -> Problem {
        Problem(
            .notFound,
            detail: "no call \(id); a call accepted a moment ago appears once the history has recorded it "
                + "(normally within milliseconds)")
    }

    // MARK: - GET /calls

    struct CallList: JSONTextWritable {
        var calls: [CallResource]
        var nextCursor: String?

        func write(to json: inout JSONTextWriter) throws {
            json.beginObject()
            json.key("calls")
            json.beginArray()
            for call in calls { try call.write(to: &json) }
            json.endArray()
            json.field("next_cursor", nextCursor)
            json.endObject()
        }
    }

    static let listParameters: Set<String> = ["status", "to", "created_after", "created_before", "limit", "cursor"]

    /// The instants a cursor may carry, in microseconds since 1970: years 1 to 9999.
    static let validCursorMicros: ClosedRange<Int64> = -62_135_596_800_000_000...253_402_300_799_999_999

    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        try context.require(.callsRead)
        let query = try Self.listQuery(request.uri.queryParameters)
        let page = try await context.store(unavailable: "the call history is unavailable") {
            try await repository.listCalls(
                in: context.caller.organizationID, filter: query.filter, limit: query.limit, cursor: query.cursor)
        }
        return try JSONResponse.make(
            CallList(
                calls: page.calls.map { CallResource(record: $0, includeTimeline: false) },
                nextCursor: page.nextCursor?.token))
    }

    struct ListQuery {
        var filter: CallFilter
        var limit: Int
        var cursor: CallCursor?
    }

    /// Parses the listing's query; every bad parameter is reported (422), an unusable cursor is a 400.
    static func listQuery(_ parameters: Parameters) throws -> ListQuery {
        var errors: [FieldError] = []
        let values = QueryInput.values(parameters, known: listParameters, errors: &errors)
        var filter = CallFilter()
        if let status = values["status"] {
            if let parsed = CallStatus(rawValue: status) {
                filter.status = parsed
            } else {
                errors.append(
                    FieldError(
                        field: "status",
                        message: "must be one of \(CallStatus.allCases.map(\.rawValue).joined(separator: ", "))"))
            }
        }
        if let to = values["to"] {
            do { filter.to = try DialTarget(to).value } catch { errors.append(error) }
        }
        for name in ["created_after", "created_before"] {
            guard let text = values[name] else { continue }
            // A '+' in a query string may arrive as a space when the client did not encode it.
            let repaired = text.replacingOccurrences(of: " ", with: "+")
            guard let date = WireCoding.parseTimestamp(repaired) else {
                errors.append(
                    FieldError(field: name, message: "must be an RFC 3339 timestamp like 2026-01-31T12:00:00Z"))
                continue
            }
            if name == "created_after" { filter.createdAfter = date } else { filter.createdBefore = date }
        }
        var limit = defaultPageSize
        if let text = values["limit"] {
            if let parsed = Int(text), (1...maximumPageSize).contains(parsed) {
                limit = parsed
            } else {
                errors.append(FieldError(field: "limit", message: "must be an integer from 1 to \(maximumPageSize)"))
            }
        }
        if !errors.isEmpty { throw Problem.validation(errors) }
        var cursor: CallCursor?
        if let token = values["cursor"] {
            // A forged cursor can carry any instant; outside years 1-9999 PostgreSQL would refuse it (a 503, not the
            // client's 400).
            guard let parsed = CallCursor(token: token), validCursorMicros.contains(parsed.createdAtMicros) else {
                throw Problem(
                    .malformedRequest, detail: "the cursor is not one this API returned; start again without it")
            }
            cursor = parsed
        }
        return ListQuery(filter: filter, limit: limit, cursor: cursor)
    }

    // MARK: - POST /calls/{id}/hangup

    @Sendable func hangup(_ request: Request, context: Context) async throws -> Response {
        try context.require(.callsWrite)
        let id = try Self.callID(context)
        guard
            let record = try await context.store(
                unavailable: "the call history is unavailable",
                { try await repository.call(id: id, in: context.caller.organizationID) })
        else {
            throw Self.notFound(id)
        }
        if record.status.isTerminal {
            throw Problem(.callEnded, detail: "call \(id) already ended (\(record.status.rawValue))")
        }
        let now = Date()
        let command: ControlCommand =
            record.status == .queued
            ? .cancel(
                CancelCommand(
                    callID: id, requestedAt: now, requestedBy: context.caller.name, requestID: context.requestID))
            : .hangup(
                HangupCommand(
                    callID: id, requestedAt: now, requestedBy: context.caller.name, requestID: context.requestID))
        do {
            try await publisher.publish(command, traceParent: TraceContext.traceParent(requestID: context.requestID))
        } catch {
            throw Problem.retryLater(
                .kafkaUnavailable,
                detail: "Kafka did not acknowledge the hangup in time; it was not sent, retry later",
                after: publishRetryAfterSeconds)
        }
        context.logger.info(
            "hangup requested",
            metadata: [
                "call.id": .stringConvertible(id),
                "call.action": .string(record.status == .queued ? "cancel" : "hangup"),
            ])
        return try JSONResponse.make(
            CallResource(record: record, includeTimeline: true), status: .accepted,
            headers: [.location: "/api/v1/calls/\(id)"])
    }
}
