import CallDomain
import Foundation
import Logging
import PostgresNIO

/// The history writer's hot path: whole batches in a constant number of round trips, whatever their size.
///
/// Values travel as arrays (`unnest`), one array per column; PostgresNIO has no arrays of optionals, so absent
/// values use sentinels (`''` for text, `-1` for numbers and times) that the SQL turns back into NULL.
extension CallStore {
    // MARK: - Recording commands

    /// Records originate commands as `queued` calls in one statement; a call already known keeps its state and
    /// only gains the request's fields (its status event may have overtaken the command).
    public func recordQueued(_ commands: [OriginateCommand]) async throws {
        guard !commands.isEmpty else { return }
        // One row per call even if the batch repeats a command (redelivery).
        var seen = Set<CallID>()
        let unique = commands.filter { seen.insert($0.callID).inserted }
        var ids: [UUID] = [], to: [String] = [], callerName: [String] = [], callerNumber: [String] = []
        var context: [String] = [], exten: [String] = [], priority: [Int] = [], timeout: [Int] = []
        var variables: [String] = [], metadata: [String] = [], requestedBy: [String] = [], requestID: [String] = []
        var createdAt: [Double] = [], expiresAt: [Double] = [], timelineIDs: [UUID] = [], organizations: [UUID] = []
        // A call's callback statuses travel comma-joined: unnest cannot take an array per row.
        var callbacks: [String] = [], callbackEvents: [String] = [], machineDetection: [String] = []
        var record: [Bool] = []
        for command in unique {
            ids.append(command.callID.uuid)
            to.append(command.to.value)
            callerName.append(command.callerID?.name ?? "")
            callerNumber.append(command.callerID?.number ?? "")
            context.append(command.dialplan?.context ?? "")
            exten.append(command.dialplan?.extension ?? "")
            priority.append(command.dialplan?.priority ?? -1)
            timeout.append(command.timeoutSeconds)
            variables.append(try WireCoding.encodeText(command.variables))
            metadata.append(try WireCoding.encodeText(command.metadata))
            requestedBy.append(command.requestedBy)
            requestID.append(command.requestID ?? "")
            createdAt.append(command.requestedAt.timeIntervalSince1970)
            expiresAt.append(command.expiresAt.timeIntervalSince1970)
            timelineIDs.append(UUID.systemRandom())
            organizations.append(command.organizationID.uuid)
            callbacks.append(command.statusCallback?.url ?? "")
            callbackEvents.append(
                (command.statusCallback?.events ?? []).map(\.rawValue).sorted().joined(separator: ","))
            machineDetection.append(
                try command.machineDetection.map { try WireCoding.encodeText($0) } ?? "")
            record.append(command.record)
        }
        try await client.query(
            """
            WITH input AS (
                SELECT * FROM unnest(\(ids)::uuid[], \(to)::text[], \(callerName)::text[], \(callerNumber)::text[],
                    \(context)::text[], \(exten)::text[], \(priority)::bigint[], \(timeout)::bigint[],
                    \(variables)::text[], \(metadata)::text[], \(requestedBy)::text[], \(requestID)::text[],
                    \(createdAt)::float8[], \(expiresAt)::float8[], \(timelineIDs)::uuid[], \(organizations)::uuid[],
                    \(callbacks)::text[], \(callbackEvents)::text[], \(machineDetection)::text[], \(record)::bool[])
                    AS t(id, to_number, caller_name, caller_number, context, extension, priority, timeout_seconds,
                        variables, metadata, requested_by, request_id, created_at, expires_at, timeline_id,
                        organization_id, status_callback, status_callback_events, machine_detection, record)
            ),
            upserted AS (
                INSERT INTO calls (id, status, seq, to_number, caller_id_name, caller_id_number, context, extension,
                    priority, timeout_seconds, variables, metadata, requested_by, request_id, created_at, expires_at,
                    organization_id, status_callback, status_callback_events, machine_detection, record)
                SELECT id, 'queued', 0, to_number, NULLIF(caller_name, ''), NULLIF(caller_number, ''),
                    NULLIF(context, ''), NULLIF(extension, ''), NULLIF(priority, -1), timeout_seconds,
                    variables::jsonb, metadata::jsonb, requested_by, NULLIF(request_id, ''),
                    to_timestamp(created_at), to_timestamp(expires_at), organization_id, NULLIF(status_callback, ''),
                    COALESCE(string_to_array(NULLIF(status_callback_events, ''), ','), '{}'),
                    NULLIF(machine_detection, '')::jsonb, record
                FROM input
                ON CONFLICT (id) DO UPDATE SET
                    to_number = EXCLUDED.to_number, caller_id_name = EXCLUDED.caller_id_name,
                    caller_id_number = EXCLUDED.caller_id_number, context = EXCLUDED.context,
                    extension = EXCLUDED.extension, priority = EXCLUDED.priority,
                    timeout_seconds = EXCLUDED.timeout_seconds, variables = EXCLUDED.variables,
                    metadata = EXCLUDED.metadata, requested_by = EXCLUDED.requested_by,
                    request_id = EXCLUDED.request_id, created_at = EXCLUDED.created_at,
                    expires_at = EXCLUDED.expires_at, organization_id = EXCLUDED.organization_id,
                    status_callback = EXCLUDED.status_callback, status_callback_events = EXCLUDED.status_callback_events,
                    machine_detection = EXCLUDED.machine_detection, record = EXCLUDED.record
                WHERE calls.to_number IS NULL
                RETURNING id, (xmax = 0) AS inserted
            )
            INSERT INTO call_events (call_id, seq, event_id, status, previous_status, occurred_at)
            SELECT input.id, 0, input.timeline_id, 'queued', NULL, to_timestamp(input.created_at)
            FROM upserted JOIN input ON input.id = upserted.id
            WHERE upserted.inserted
            ON CONFLICT DO NOTHING
            """,
            logger: logger)
    }

    // MARK: - Applying status events

    /// Applies one status event idempotently.
    public func apply(_ event: CallStatusEvent) async throws -> ApplyResult {
        try await apply([event])[0]
    }

    /// Applies a batch of status events in one transaction, each idempotently and in `seq` order per call.
    ///
    /// An event at or below the stored `seq` is ignored, an illegal move is refused, a terminal status is final, and
    /// an event whose owner epoch is below the call's is refused (its worker lost the call to another).
    /// A call not yet known (its originate command is still on its way to the history writer) is created from the
    /// event, and the command fills in the request's fields when it arrives.
    ///
    /// The batch runs in rounds: round k applies the k-th event (by `seq`) of every call in the batch with one
    /// set-based statement, so a batch holding several changes of one call applies them in order, and a batch of
    /// distinct calls takes a single round.
    public func apply(_ events: [CallStatusEvent]) async throws -> [ApplyResult] {
        guard !events.isEmpty else { return [] }
        var byCall: [CallID: [Int]] = [:]
        for index in events.indices { byCall[events[index].callID, default: []].append(index) }
        for key in byCall.keys { byCall[key]!.sort { events[$0].seq < events[$1].seq } }
        let roundCount = byCall.values.map(\.count).max() ?? 0
        let logger = self.logger
        return try await client.withTransaction(logger: logger) { connection in
            try await Self.insertUnknownCalls(byCall.values.map { events[$0[0]] }, on: connection, logger: logger)
            var applied = Set<Int>()
            for round in 0..<roundCount {
                let indices = byCall.values.compactMap { $0.count > round ? $0[round] : nil }
                applied.formUnion(try await Self.applyRound(indices, of: events, on: connection, logger: logger))
            }
            var results = [ApplyResult](repeating: .applied, count: events.count)
            let notApplied = events.indices.filter { !applied.contains($0) }
            if !notApplied.isEmpty {
                let ids = Array(Set(notApplied.map { events[$0].callID.uuid }))
                var current: [UUID: (status: CallStatus, seq: Int, epoch: Int)] = [:]
                let rows = try await connection.query(
                    "SELECT id, status, seq, owner_epoch FROM calls WHERE id = ANY(\(ids))", logger: logger)
                for try await (id, status, seq, epoch) in rows.decode((UUID, String, Int, Int).self) {
                    guard let status = CallStatus(rawValue: status) else {
                        throw StoreError.corruptRow("status \(status)")
                    }
                    current[id] = (status, seq, epoch)
                }
                for index in notApplied {
                    let event = events[index]
                    guard let stored = current[event.callID.uuid] else {
                        throw StoreError.corruptRow("call \(event.callID) vanished")
                    }
                    if let epoch = event.ownerEpoch, epoch < stored.epoch {
                        results[index] = .staleOwner(epoch: epoch)
                        logger.warning(
                            "refused a status event of a worker that lost the call",
                            metadata: [
                                "call.id": "\(event.callID)", "event.owner_epoch": "\(epoch)",
                                "call.owner_epoch": "\(stored.epoch)", "event.worker_id": "\(event.workerID ?? "")",
                            ])
                    } else if stored.seq >= event.seq {
                        results[index] = .stale
                    } else if stored.status.isTerminal {
                        results[index] = .alreadyTerminal(stored.status)
                    } else {
                        results[index] = .illegalTransition(from: stored.status)
                        logger.warning(
                            "refused an illegal status transition",
                            metadata: [
                                "call.id": "\(event.callID)", "call.status": "\(stored.status.rawValue)",
                                "event.status": "\(event.status.rawValue)", "event.seq": "\(event.seq)",
                            ])
                    }
                }
            }
            return results
        }
    }

    static func insertUnknownCalls(
        _ events: [CallStatusEvent], on connection: PostgresConnection, logger: Logger
    )
        async throws
    {
        let ids = events.map(\.callID.uuid)
        let to = events.map { $0.to ?? "" }
        let metadata = try events.map { try WireCoding.encodeText($0.metadata) }
        let createdAt = events.map { ($0.callID.timestamp ?? $0.occurredAt).timeIntervalSince1970 }
        // An event from a producer older than organizations leaves the row without one until its command arrives.
        let organizations = events.map { $0.organizationID?.description ?? "" }
        try await connection.query(
            """
            INSERT INTO calls (id, status, seq, to_number, metadata, created_at, organization_id)
            SELECT id, 'queued', 0, NULLIF(to_number, ''), metadata::jsonb, to_timestamp(created_at),
                NULLIF(organization_id, '')::uuid
            FROM unnest(\(ids)::uuid[], \(to)::text[], \(metadata)::text[], \(createdAt)::float8[],
                    \(organizations)::text[])
                AS t(id, to_number, metadata, created_at, organization_id)
            ON CONFLICT (id) DO NOTHING
            """,
            logger: logger)
    }

    /// Applies at most one event per call; returns the indices of the events that moved their call.
    static func applyRound(
        _ indices: [Int], of events: [CallStatusEvent], on connection: PostgresConnection, logger: Logger
    ) async throws -> Set<Int> {
        let batch = indices.map { events[$0] }
        let ids = batch.map(\.callID.uuid)
        let position = Array(0..<batch.count)
        let status = batch.map(\.status.rawValue)
        let previous = batch.map(\.previousStatus.rawValue)
        let allowed = batch.map { $0.status.allowedPredecessors.map(\.rawValue).joined(separator: ",") }
        let seq = batch.map(\.seq)
        let eventID = batch.map(\.eventID)
        let occurredAt = batch.map(\.occurredAt.timeIntervalSince1970)
        let nodeID = batch.map { $0.nodeID ?? "" }
        let workerID = batch.map { $0.workerID ?? "" }
        let channelID = batch.map { $0.channelID ?? "" }
        let cause = batch.map { $0.hangupCause?.code ?? -1 }
        let causeText = batch.map { $0.hangupCause?.text ?? "" }
        let reason = batch.map { $0.failureReason?.rawValue ?? "" }
        let detail = batch.map { $0.detail ?? "" }
        let answeredAt = batch.map { $0.answeredAt?.timeIntervalSince1970 ?? -1 }
        let answeredBy = batch.map { $0.answeredBy?.rawValue ?? "" }
        let endedAt = batch.map {
            ($0.endedAt ?? ($0.status.isTerminal ? $0.occurredAt : nil))?.timeIntervalSince1970 ?? -1
        }
        let epoch = batch.map { $0.ownerEpoch ?? -1 }
        let rows = try await connection.query(
            """
            WITH input AS (
                SELECT * FROM unnest(\(ids)::uuid[], \(position)::bigint[], \(status)::text[], \(previous)::text[],
                    \(allowed)::text[], \(seq)::bigint[], \(eventID)::uuid[], \(occurredAt)::float8[],
                    \(nodeID)::text[], \(workerID)::text[], \(channelID)::text[], \(cause)::bigint[],
                    \(causeText)::text[], \(reason)::text[], \(detail)::text[], \(answeredAt)::float8[],
                    \(endedAt)::float8[], \(epoch)::bigint[], \(answeredBy)::text[])
                    AS t(id, position, status, previous_status, allowed, seq, event_id, occurred_at, node_id,
                        worker_id, channel_id, cause, cause_text, reason, detail, answered_at, ended_at, epoch,
                        answered_by)
            ),
            updated AS (
                UPDATE calls SET status = input.status, seq = input.seq,
                    node_id = COALESCE(NULLIF(input.node_id, ''), calls.node_id),
                    worker_id = COALESCE(NULLIF(input.worker_id, ''), calls.worker_id),
                    channel_id = COALESCE(NULLIF(input.channel_id, ''), calls.channel_id),
                    hangup_cause = COALESCE(NULLIF(input.cause, -1), calls.hangup_cause),
                    hangup_cause_text = COALESCE(NULLIF(input.cause_text, ''), calls.hangup_cause_text),
                    failure_reason = COALESCE(NULLIF(input.reason, ''), calls.failure_reason),
                    detail = COALESCE(NULLIF(input.detail, ''), calls.detail),
                    dispatched_at = CASE WHEN input.status = 'dispatched' THEN to_timestamp(input.occurred_at)
                        ELSE calls.dispatched_at END,
                    answered_at = CASE WHEN input.answered_at >= 0 THEN to_timestamp(input.answered_at)
                        ELSE calls.answered_at END,
                    answered_by = COALESCE(NULLIF(input.answered_by, ''), calls.answered_by),
                    ended_at = CASE WHEN input.ended_at >= 0 THEN to_timestamp(input.ended_at)
                        ELSE calls.ended_at END,
                    updated_at = now()
                FROM input
                WHERE calls.id = input.id AND calls.seq < input.seq
                    AND calls.status = ANY(string_to_array(input.allowed, ','))
                    AND (input.epoch < 0 OR calls.owner_epoch <= input.epoch)
                RETURNING calls.id
            ),
            timeline AS (
                INSERT INTO call_events (call_id, seq, event_id, status, previous_status, occurred_at, node_id,
                    worker_id, hangup_cause, hangup_cause_text, failure_reason, detail)
                SELECT input.id, input.seq, input.event_id, input.status, input.previous_status,
                    to_timestamp(input.occurred_at), NULLIF(input.node_id, ''), NULLIF(input.worker_id, ''),
                    NULLIF(input.cause, -1), NULLIF(input.cause_text, ''), NULLIF(input.reason, ''),
                    NULLIF(input.detail, '')
                FROM input JOIN updated ON updated.id = input.id
                ON CONFLICT (call_id, seq) DO NOTHING
            )
            SELECT input.position FROM input JOIN updated ON updated.id = input.id
            """,
            logger: logger)
        var applied = Set<Int>()
        for try await position in rows.decode(Int.self) { applied.insert(indices[position]) }
        return applied
    }
}
