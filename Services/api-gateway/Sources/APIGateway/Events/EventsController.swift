import CallDomain
import CallStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// Server-Sent Events of call status: `GET /calls/{id}/events` and `GET /events` (under `/api/v1`).
///
/// Each event is `id: <seq>` (`<call id>:<seq>` on the all-calls stream), `event: status` and `data:` the
/// CallStatusEvent JSON of the topic. Comment lines are sent as heartbeats.
///
/// A call's stream first replays what the history holds after `Last-Event-ID` (everything when absent), then
/// the recent events this process read from Kafka, then continues live; duplicates are dropped by `seq`, so a
/// reconnecting client misses nothing and sees nothing twice. The all-calls stream is live only (a
/// `Last-Event-ID` is honoured as far as this process's recent events reach).
///
/// Both streams carry only events of the caller's organization (each event names its organization). A call
/// recorded in another organization's history answers 404; a call not recorded yet (just accepted) is followed,
/// and only its events of the caller's organization are sent.
struct EventsController: Sendable {
    typealias Context = AuthenticatedRequestContext

    let hub: StatusHub
    let repository: any CallRepository
    let heartbeat: Duration

    func addRoutes(to group: RouterGroup<Context>) {
        group.get("calls/:id/events", use: callEvents)
        group.get("events", use: allEvents)
    }

    static let headers: HTTPFields = [
        .contentType: "text/event-stream; charset=utf-8",
        .cacheControl: "no-cache",
        HTTPField.Name("X-Accel-Buffering")!: "no",
    ]

    // MARK: - One call

    @Sendable func callEvents(_ request: Request, context: Context) async throws -> Response {
        try context.require(.callsRead)
        let id = try CallsController.callID(context)
        let lastSeq = try Self.lastSeq(request)
        let organization = context.caller.organizationID
        let channel = context.channel
        let subscription = hub.subscribe(callID: id) { channel?.close(promise: nil) }
        let history: [CallStatusEvent]
        do {
            guard let found = try await replay(id, after: lastSeq, in: organization) else {
                hub.unsubscribe(subscription.id)
                throw CallsController.notFound(id)
            }
            history = found
        } catch let problem as Problem {
            throw problem
        } catch {
            hub.unsubscribe(subscription.id)
            context.logger.error("event replay failed", metadata: ["error": .string("\(error)")])
            throw Problem.retryLater(.databaseUnavailable, detail: "the call history is unavailable", after: 2)
        }
        var initial: [Int: CallStatusEvent] = [:]
        for event in history + subscription.recent where event.seq > lastSeq && Self.belongs(event, to: organization) {
            initial[event.seq] = event
        }
        let ordered = initial.values.sorted { $0.seq < $1.seq }
        let hub = self.hub
        let heartbeat = self.heartbeat
        let logger = context.logger
        return Response(
            status: .ok, headers: Self.headers,
            body: ResponseBody { writer in
                var delivered = lastSeq
                try await Self.stream(
                    subscription: subscription, hub: hub, heartbeat: heartbeat, logger: logger, channel: channel,
                    writer: &writer
                ) { event in
                    guard event.seq > delivered, Self.belongs(event, to: organization) else { return nil }
                    delivered = event.seq
                    return String(event.seq)
                } initial: {
                    ordered
                }
            })
    }

    /// `Last-Event-ID` as a seq (0 when absent); a malformed one is a 400.
    static func lastSeq(_ request: Request) throws -> Int {
        guard let text = request.headers[.lastEventID] else { return 0 }
        let trimmed = text.trimmingHTTPWhitespace
        if trimmed.isEmpty { return 0 }
        guard let seq = Int(trimmed), seq >= 0 else {
            throw Problem.validation(field: "Last-Event-ID", message: "must be the id (seq) of an event of this stream")
        }
        return seq
    }

    /// The call's history after `seq`, as the events that made it (status events start at seq 1): empty for a call
    /// not recorded yet, `nil` for a call of another organization.
    func replay(_ id: CallID, after seq: Int, in organization: OrganizationID) async throws -> [CallStatusEvent]? {
        if let record = try await repository.call(id: id, in: organization) {
            return Self.events(of: record, after: seq)
        }
        switch try await repository.organization(ofCall: id) {
        case nil:
            return []
        case organization:
            // The history writer recorded the call between the two reads (a stream opened right after the call was
            // accepted): this organization's call after all, so its history is replayed, not refused.
            return try await repository.call(id: id, in: organization).map { Self.events(of: $0, after: seq) } ?? []
        default:
            return nil
        }
    }

    static func events(of record: CallRecord, after seq: Int) -> [CallStatusEvent] {
        record.timeline.filter { $0.seq > max(seq, 0) }.map { event(from: $0, of: record) }
    }

    /// Whether a status event may go to a caller of `organization` (an event without one is the default's).
    static func belongs(_ event: CallStatusEvent, to organization: OrganizationID) -> Bool {
        (event.organizationID ?? .default) == organization
    }

    /// Rebuilds a status event from a timeline entry and its call (same event id, seq and status as on the topic).
    static func event(from entry: CallTimelineEntry, of record: CallRecord) -> CallStatusEvent {
        let answered = record.answeredAt.flatMap { $0 <= entry.occurredAt ? $0 : nil }
        let ended = entry.status.isTerminal ? (record.endedAt ?? entry.occurredAt) : nil
        var duration: Double?
        if entry.status == .completed, let answered, let ended { duration = ended.timeIntervalSince(answered) }
        return CallStatusEvent(
            eventID: entry.eventID, callID: record.id, seq: entry.seq, status: entry.status,
            previousStatus: entry.previousStatus ?? .queued, occurredAt: entry.occurredAt, nodeID: entry.nodeID,
            workerID: entry.workerID, channelID: record.channelID, to: record.to, hangupCause: entry.hangupCause,
            failureReason: entry.failureReason, detail: entry.detail, answeredAt: answered,
            answeredBy: answered == nil ? nil : record.answeredBy, endedAt: ended,
            durationSeconds: duration, metadata: (try? ClientMetadata(record.metadata)) ?? .empty,
            organizationID: record.organizationID)
    }

    // MARK: - All calls

    @Sendable func allEvents(_ request: Request, context: Context) async throws -> Response {
        try context.require(.callsRead)
        let organization = context.caller.organizationID
        let lastEventID = request.headers[.lastEventID].map { String($0.trimmingHTTPWhitespace) }
        let channel = context.channel
        let subscription = hub.subscribe(callID: nil) { channel?.close(promise: nil) }
        let initial: [CallStatusEvent] =
            if let lastEventID, let index = subscription.recent.firstIndex(where: { Self.globalID($0) == lastEventID })
            {
                Array(subscription.recent[(index + 1)...])
            } else {
                []
            }
        let hub = self.hub
        let heartbeat = self.heartbeat
        let logger = context.logger
        return Response(
            status: .ok, headers: Self.headers,
            body: ResponseBody { writer in
                var delivered: [CallID: Int] = [:]
                try await Self.stream(
                    subscription: subscription, hub: hub, heartbeat: heartbeat, logger: logger, channel: channel,
                    writer: &writer
                ) { event in
                    guard Self.belongs(event, to: organization), event.seq > delivered[event.callID, default: 0] else {
                        return nil
                    }
                    delivered[event.callID] = event.seq
                    if delivered.count > 100_000 { delivered.removeAll(keepingCapacity: true) }
                    return Self.globalID(event)
                } initial: {
                    initial
                }
            })
    }

    static func globalID(_ event: CallStatusEvent) -> String { "\(event.callID):\(event.seq)" }

    // MARK: - Writing

    /// Writes the initial events, then live events and heartbeats until the subscription ends, the client goes
    /// away or the server shuts down. `admit` returns the SSE id of an event to send, or `nil` to skip it.
    static func stream(
        subscription: StatusHub.Subscription, hub: StatusHub, heartbeat: Duration, logger: Logger,
        channel: (any Channel)?, writer: inout any ResponseBodyWriter, admit: (CallStatusEvent) -> String?,
        initial: () -> [CallStatusEvent]
    ) async throws {
        defer { hub.unsubscribe(subscription.id) }
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: heartbeat)
                if Task.isCancelled { break }
                hub.heartbeat(subscription.id)
            }
        }
        defer { ticker.cancel() }
        do {
            try await withGracefulShutdownHandler {
                try await writer.write(ByteBuffer(string: "retry: 2000\n: connected\n\n"))
                for event in initial() {
                    if let id = admit(event) { try await writer.write(try frame(event, id: id)) }
                }
                for await element in subscription.elements {
                    switch element {
                    case .event(let event, let json):
                        guard let id = admit(event) else { continue }
                        try await writer.write(try frame(event, id: id, json: json))
                        try await waitUntilWritable(channel)
                    case .heartbeat:
                        try await writer.write(ByteBuffer(string: ": heartbeat\n\n"))
                    }
                }
            } onGracefulShutdown: {
                hub.unsubscribe(subscription.id)
            }
            try await writer.finish(nil)
        } catch {
            // The client went away (or its connection was closed for falling behind): nothing to answer.
            logger.debug("event stream ended", metadata: ["error": .string("\(error)")])
        }
    }

    /// Waits until the frames written so far have reached the connection and it can take more.
    ///
    /// The body writer hands each frame to the event loop and returns before the loop has written it, so a stream
    /// whose client reads nothing could pile up frames in the loop's queue without ever seeing the connection turn
    /// unwritable (1,000 such clients held 2.9 GB). A hop through the event loop lets those writes land first; then a
    /// full connection holds the stream back, its bounded buffer fills, and the hub drops it.
    static func waitUntilWritable(_ channel: (any Channel)?) async throws {
        guard let channel else { return }
        try await channel.eventLoop.submit {}.get()
        while !channel.isWritable, channel.isActive {
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// One SSE frame; the JSON has no raw newlines, so one `data:` line carries it.
    static func frame(_ event: CallStatusEvent, id: String, json: [UInt8]? = nil) throws -> ByteBuffer {
        let json = try json ?? WireCoding.encode(event)
        var buffer = ByteBuffer()
        buffer.reserveCapacity(json.count + id.utf8.count + 32)
        buffer.writeString("id: \(id)\nevent: status\ndata: ")
        buffer.writeBytes(json)
        buffer.writeString("\n\n")
        return buffer
    }
}
