import CallDomain
import Foundation
import Logging
import PostgresNIO

extension CallStore {
    static let callColumns = """
        id, status, seq, to_number, caller_id_name, caller_id_number, context, extension, priority, timeout_seconds,
        variables::text, metadata::text, requested_by, request_id, node_id, worker_id, channel_id, hangup_cause,
        hangup_cause_text, failure_reason, detail, created_at, expires_at, dispatched_at, answered_at, ended_at,
        updated_at, (extract(epoch from created_at) * 1000000)::bigint, owner_epoch, originate_sent_at, organization_id,
        machine_detection::text, answered_by, record
        """

    /// The call with its timeline, or `nil`, whatever its organization (for the workers, which serve them all).
    public func call(id: CallID) async throws -> CallRecord? {
        let rows = try await client.query(
            "SELECT \(unescaped: Self.callColumns) FROM calls WHERE id = \(id.uuid)", logger: logger)
        return try await withTimeline(rows, id: id)
    }

    /// The call with its timeline if it is in `organization`'s history, else `nil` (as if it did not exist).
    public func call(id: CallID, in organization: OrganizationID) async throws -> CallRecord? {
        let rows = try await client.query(
            """
            SELECT \(unescaped: Self.callColumns) FROM calls
            WHERE id = \(id.uuid) AND organization_id = \(organization.uuid)
            """,
            logger: logger)
        return try await withTimeline(rows, id: id)
    }

    /// The organization whose history holds the call, or `nil` when no row for it exists (yet).
    public func organization(ofCall id: CallID) async throws -> OrganizationID? {
        let rows = try await client.query("SELECT organization_id FROM calls WHERE id = \(id.uuid)", logger: logger)
        for try await organization in rows.decode(UUID.self) { return OrganizationID(uuid: organization) }
        return nil
    }

    private func withTimeline(_ rows: PostgresRowSequence, id: CallID) async throws -> CallRecord? {
        var record: CallRecord?
        for try await row in rows { record = try Self.decodeCall(row).record }
        guard var record else { return nil }
        record.timeline = try await timeline(of: id)
        return record
    }

    /// The call's timeline entries with `seq` above `afterSeq`, oldest first (for SSE replays).
    public func timeline(of id: CallID, afterSeq: Int = -1) async throws -> [CallTimelineEntry] {
        let rows = try await client.query(
            """
            SELECT seq, status, previous_status, occurred_at, event_id, node_id, worker_id, hangup_cause,
                hangup_cause_text, failure_reason, detail
            FROM call_events WHERE call_id = \(id.uuid) AND seq > \(afterSeq) ORDER BY seq
            """,
            logger: logger)
        var entries: [CallTimelineEntry] = []
        for try await row in rows {
            let (seq, status, previous, occurredAt, eventID, nodeID, workerID, cause, causeText, reason, detail) =
                try row.decode(
                    (Int, String, String?, Date, UUID, String?, String?, Int?, String?, String?, String?).self)
            guard let status = CallStatus(rawValue: status) else { throw StoreError.corruptRow("status \(status)") }
            entries.append(
                CallTimelineEntry(
                    seq: seq, status: status, previousStatus: previous.flatMap(CallStatus.init(rawValue:)),
                    occurredAt: occurredAt, eventID: eventID, nodeID: nodeID, workerID: workerID,
                    hangupCause: cause.map { HangupCause(code: $0, text: causeText ?? "") },
                    failureReason: reason.flatMap(FailureReason.init(rawValue:)), detail: detail))
        }
        return entries
    }

    /// One page of `organization`'s calls, newest first, matching `filter`, after `cursor`.
    ///
    /// Keyset pagination on (created_at, id): stable under concurrent inserts (a new call never shifts a later
    /// page) and as fast on page 1,000 as on page 1. `limit` is clamped to 1...1000.
    public func listCalls(
        in organization: OrganizationID, filter: CallFilter, limit: Int, cursor: CallCursor?
    ) async throws -> CallPage {
        let limit = min(max(limit, 1), 1000)
        var bindings = PostgresBindings()
        bindings.append(organization.uuid)
        var conditions = ["organization_id = $1"]
        if let status = filter.status {
            bindings.append(status.rawValue)
            conditions.append("status = $\(bindings.count)")
        }
        if let to = filter.to {
            bindings.append(to)
            conditions.append("to_number = $\(bindings.count)")
        }
        if let after = filter.createdAfter {
            bindings.append(after)
            conditions.append("created_at >= $\(bindings.count)")
        }
        if let before = filter.createdBefore {
            bindings.append(before)
            conditions.append("created_at < $\(bindings.count)")
        }
        if let cursor {
            bindings.append(cursor.createdAtMicros)
            let micros = bindings.count
            bindings.append(cursor.id)
            conditions.append(
                "(created_at, id) < (to_timestamp($\(micros)::double precision / 1000000), $\(bindings.count))")
        }
        bindings.append(limit + 1)
        let whereClause = "WHERE " + conditions.joined(separator: " AND ")
        // Only placeholders are interpolated into the text; every value travels as a bind parameter.
        let query = PostgresQuery(
            unsafeSQL: """
                SELECT \(Self.callColumns) FROM calls \(whereClause)
                ORDER BY created_at DESC, id DESC LIMIT $\(bindings.count)
                """,
            binds: bindings)
        var calls: [(record: CallRecord, micros: Int64)] = []
        for try await row in try await client.query(query, logger: logger) {
            calls.append(try Self.decodeCall(row))
        }
        var next: CallCursor?
        if calls.count > limit {
            calls.removeLast()
            if let last = calls.last { next = CallCursor(createdAtMicros: last.micros, id: last.record.id.uuid) }
        }
        return CallPage(calls: calls.map(\.record), nextCursor: next)
    }

    /// The calls of a node that have not ended, for a worker's adoption and reconciliation.
    public func liveCalls(nodeID: String) async throws -> [CallRecord] {
        let rows = try await client.query(
            """
            SELECT \(unescaped: Self.callColumns) FROM calls
            WHERE node_id = \(nodeID) AND status IN ('dispatched', 'initiated', 'ringing', 'answered')
            ORDER BY created_at
            """,
            logger: logger)
        var calls: [CallRecord] = []
        for try await row in rows { calls.append(try Self.decodeCall(row).record) }
        return calls
    }

    /// The stored `seq` of each of `ids` that has a row: how far the history has applied their status events.
    public func sequences(of ids: [CallID]) async throws -> [CallID: Int] {
        guard !ids.isEmpty else { return [:] }
        let rows = try await client.query(
            "SELECT id, seq FROM calls WHERE id = ANY(\(ids.map(\.uuid)))", logger: logger)
        var sequences: [CallID: Int] = [:]
        for try await (id, seq) in rows.decode((UUID, Int).self) { sequences[CallID(uuid: id)] = seq }
        return sequences
    }

    static func decodeCall(_ row: PostgresRow) throws -> (record: CallRecord, micros: Int64) {
        let cells = row.makeRandomAccess()
        func value<T: PostgresDecodable>(_ index: Int, _ type: T.Type) throws -> T {
            try cells[index].decode(T.self)
        }
        let statusText = try value(1, String.self)
        guard let status = CallStatus(rawValue: statusText) else { throw StoreError.corruptRow("status \(statusText)") }
        let variables = try WireCoding.decode([String: String].self, from: Array(try value(10, String.self).utf8))
        let metadata = try WireCoding.decode([String: JSONValue].self, from: Array(try value(11, String.self).utf8))
        let cause = try value(17, Int?.self)
        let record = CallRecord(
            id: CallID(uuid: try value(0, UUID.self)), status: status, seq: try value(2, Int.self),
            to: try value(3, String?.self), callerIDName: try value(4, String?.self),
            callerIDNumber: try value(5, String?.self), context: try value(6, String?.self),
            extension: try value(7, String?.self), priority: try value(8, Int?.self),
            timeoutSeconds: try value(9, Int?.self), variables: variables, metadata: metadata,
            requestedBy: try value(12, String?.self), requestID: try value(13, String?.self),
            nodeID: try value(14, String?.self), workerID: try value(15, String?.self),
            channelID: try value(16, String?.self),
            hangupCause: try cause.map { HangupCause(code: $0, text: try value(18, String?.self) ?? "") },
            failureReason: try value(19, String?.self).flatMap(FailureReason.init(rawValue:)),
            detail: try value(20, String?.self), createdAt: try value(21, Date.self),
            expiresAt: try value(22, Date?.self), dispatchedAt: try value(23, Date?.self),
            answeredAt: try value(24, Date?.self), endedAt: try value(25, Date?.self),
            updatedAt: try value(26, Date.self), timeline: [], ownerEpoch: try value(28, Int.self),
            originateSentAt: try value(29, Date?.self),
            organizationID: try value(30, UUID?.self).map(OrganizationID.init(uuid:)),
            machineDetection: try value(31, String?.self).map {
                try WireCoding.decode(MachineDetection.self, from: Array($0.utf8))
            },
            answeredBy: try value(32, String?.self).flatMap(AnsweredBy.init(rawValue:)),
            record: try value(33, Bool.self))
        return (record, try value(27, Int64.self))
    }
}
