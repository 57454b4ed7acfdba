import CallDomain
import Foundation
import Logging
import PostgresNIO

/// Where a call's recording is on its way from the Asterisk node to the recording store.
public enum RecordingStatus: String, Sendable, Hashable, CaseIterable {
    /// The worker is setting the recording up (snoop channel, `POST /channels/{id}/record`).
    case starting
    /// Asterisk said `RecordingStarted`.
    case recording
    /// Asterisk said `RecordingFinished`: the file is on the node, not yet in the store.
    case finished
    /// In the recording store (and removed from the node).
    case stored
    /// Asterisk said `RecordingFailed`, or the node could not give the file: there is no recording.
    case failed
    /// Erased on request or by retention.
    case deleted

    /// The recording's file is still on the node (or about to be): its worker must bring it home.
    public var isUnsettled: Bool { self == .starting || self == .recording || self == .finished }
}

/// A call's recording as stored: where its file is and what it is.
public struct CallRecording: Sendable, Hashable {
    /// The recorded call.
    public var callID: CallID
    /// The call's organization.
    public var organizationID: OrganizationID
    /// The node that records (and holds the file until it is stored).
    public var nodeID: String
    /// The recording's name on the node (`/recordings/stored/{name}`).
    public var name: String
    /// The file format (`wav`).
    public var format: String
    /// Where the recording is.
    public var status: RecordingStatus
    /// Why it failed or was deleted.
    public var detail: String?
    /// Length, as Asterisk measured it.
    public var durationSeconds: Int?
    /// Size of the stored file.
    public var sizeBytes: Int64?
    /// SHA-256 of the stored file (lowercase hex).
    public var sha256: String?
    /// The key of the file in the recording store.
    public var storageKey: String?
    /// When the worker asked for it.
    public var requestedAt: Date
    /// When Asterisk started it.
    public var startedAt: Date?
    /// When Asterisk finished it.
    public var finishedAt: Date?
    /// When it reached the store.
    public var storedAt: Date?
    /// When it was erased.
    public var deletedAt: Date?
    /// The recorded call's status (to tell a recording that can still finish from one whose call has ended).
    public var callStatus: CallStatus
}

extension CallStore {
    static let recordingColumns = """
        r.call_id, r.organization_id, r.node_id, r.name, r.format, r.status, r.detail, r.duration_seconds,
        r.size_bytes, r.sha256, r.storage_key, r.requested_at, r.started_at, r.finished_at, r.stored_at, r.deleted_at,
        c.status
        """

    /// Registers a recording the worker is about to start: `nil` when the call already has one (a redelivered
    /// action, or a takeover of a call whose previous owner started it), which is then left alone.
    public func beginRecording(
        callID: CallID, organization: OrganizationID, nodeID: String, name: String, format: String,
        at now: Date = Date()
    ) async throws -> CallRecording? {
        let rows = try await client.query(
            """
            WITH inserted AS (
                INSERT INTO call_recordings (call_id, organization_id, node_id, name, format, status, requested_at)
                VALUES (\(callID.uuid), \(organization.uuid), \(nodeID), \(name), \(format), 'starting', \(now))
                ON CONFLICT (call_id) DO NOTHING
                RETURNING *
            )
            SELECT \(unescaped: Self.recordingColumns) FROM inserted r JOIN calls c ON c.id = r.call_id
            """,
            logger: logger)
        for try await row in rows { return try Self.decodeRecording(row) }
        return nil
    }

    /// `RecordingStarted`: a recording being set up is now running.
    public func recordingStarted(callID: CallID, at now: Date = Date()) async throws {
        try await client.query(
            """
            UPDATE call_recordings SET status = 'recording', started_at = \(now), updated_at = now()
            WHERE call_id = \(callID.uuid) AND status = 'starting'
            """,
            logger: logger)
    }

    /// `RecordingFinished` (or the node listing the stored file): the file is on the node. `true` when this moved it
    /// there (the caller then brings it home); `false` when it was past that already.
    @discardableResult
    public func recordingFinished(callID: CallID, durationSeconds: Int?, at now: Date = Date()) async throws -> Bool {
        let rows = try await client.query(
            """
            UPDATE call_recordings SET status = 'finished', finished_at = \(now),
                duration_seconds = COALESCE(\(durationSeconds), duration_seconds),
                started_at = COALESCE(started_at, \(now)), updated_at = now()
            WHERE call_id = \(callID.uuid) AND status IN ('starting', 'recording')
            RETURNING call_id
            """,
            logger: logger)
        for try await _ in rows { return true }
        return false
    }

    /// The recording failed (`RecordingFailed`, or the node cannot give the file): there is none, and `detail` says
    /// why. A recording already stored or erased is not touched.
    public func recordingFailed(callID: CallID, detail: String, at now: Date = Date()) async throws {
        try await client.query(
            """
            UPDATE call_recordings SET status = 'failed', detail = \(detail), updated_at = now()
            WHERE call_id = \(callID.uuid) AND status IN ('starting', 'recording', 'finished')
            """,
            logger: logger)
    }

    /// The file is in the recording store under `key`: what the node may now delete.
    public func recordingStored(
        callID: CallID, key: String, sizeBytes: Int64, sha256: String, at now: Date = Date()
    ) async throws {
        try await client.query(
            """
            UPDATE call_recordings SET status = 'stored', storage_key = \(key), size_bytes = \(sizeBytes),
                sha256 = \(sha256), stored_at = \(now), updated_at = now()
            WHERE call_id = \(callID.uuid) AND status IN ('starting', 'recording', 'finished')
            """,
            logger: logger)
    }

    /// The call's recording if the call is in `organization`'s history.
    public func recording(of callID: CallID, in organization: OrganizationID) async throws -> CallRecording? {
        let rows = try await client.query(
            """
            SELECT \(unescaped: Self.recordingColumns) FROM call_recordings r JOIN calls c ON c.id = r.call_id
            WHERE r.call_id = \(callID.uuid) AND r.organization_id = \(organization.uuid)
            """,
            logger: logger)
        for try await row in rows { return try Self.decodeRecording(row) }
        return nil
    }

    /// The recordings a node still holds (or is making) whose last change is older than `quietFor`: what its worker
    /// brings home after a restart, a takeover or lost events. Oldest first.
    public func unsettledRecordings(
        on nodeID: String, quietFor: Duration = .seconds(30), limit: Int = 100
    ) async throws -> [CallRecording] {
        let quietSeconds = Double(quietFor.components.seconds)
        let rows = try await client.query(
            """
            SELECT \(unescaped: Self.recordingColumns) FROM call_recordings r JOIN calls c ON c.id = r.call_id
            WHERE r.node_id = \(nodeID) AND r.status IN ('starting', 'recording', 'finished')
                AND r.updated_at < now() - make_interval(secs => \(quietSeconds))
            ORDER BY r.updated_at LIMIT \(limit)
            """,
            logger: logger)
        var recordings: [CallRecording] = []
        for try await row in rows { recordings.append(try Self.decodeRecording(row)) }
        return recordings
    }

    /// Marks a stored recording erased (on request): the row keeps who, when and why; the caller deletes the file
    /// under the returned recording's key. `nil` when the call has no stored recording in the organization.
    public func eraseRecording(
        of callID: CallID, in organization: OrganizationID, by actor: AuditActor, at now: Date = Date()
    ) async throws -> CallRecording? {
        let logger = self.logger
        return try await transaction { connection in
            let rows = try await connection.query(
                """
                WITH erased AS (
                    UPDATE call_recordings SET status = 'deleted', deleted_at = \(now),
                        detail = \("erased on request by \(actor.name)"), updated_at = now()
                    WHERE call_id = \(callID.uuid) AND organization_id = \(organization.uuid) AND status = 'stored'
                    RETURNING *
                )
                SELECT \(unescaped: Self.recordingColumns) FROM erased r JOIN calls c ON c.id = r.call_id
                """,
                logger: logger)
            var erased: CallRecording?
            for try await row in rows { erased = try Self.decodeRecording(row) }
            guard let erased else { return nil }
            try await Self.audit(
                AuditRecord(
                    organizationID: organization, action: "call_recording.deleted", targetType: "call",
                    targetID: callID.description, detail: ["sha256": erased.sha256 ?? ""]),
                by: actor, on: connection, logger: logger)
            return erased
        }
    }

    /// Stored recordings older than the retention period (stored before `cutoff`), oldest first, marked erased in
    /// the same statement: the caller deletes their files. Two sweepers never take the same row.
    public func expireRecordings(storedBefore cutoff: Date, limit: Int = 100) async throws -> [CallRecording] {
        let rows = try await client.query(
            """
            WITH expired AS (
                UPDATE call_recordings SET status = 'deleted', deleted_at = now(),
                    detail = 'erased at the end of the retention period', updated_at = now()
                WHERE call_id IN (
                    SELECT call_id FROM call_recordings WHERE status = 'stored' AND stored_at < \(cutoff)
                    ORDER BY stored_at LIMIT \(limit) FOR UPDATE SKIP LOCKED)
                RETURNING *
            )
            SELECT \(unescaped: Self.recordingColumns) FROM expired r JOIN calls c ON c.id = r.call_id
            """,
            logger: logger)
        var recordings: [CallRecording] = []
        for try await row in rows { recordings.append(try Self.decodeRecording(row)) }
        return recordings
    }

    static func decodeRecording(_ row: PostgresRow) throws -> CallRecording {
        let cells = row.makeRandomAccess()
        let statusText = try cells[5].decode(String.self)
        guard let status = RecordingStatus(rawValue: statusText) else {
            throw StoreError.corruptRow("recording status \(statusText)")
        }
        let callStatusText = try cells[16].decode(String.self)
        guard let callStatus = CallStatus(rawValue: callStatusText) else {
            throw StoreError.corruptRow("status \(callStatusText)")
        }
        return CallRecording(
            callID: CallID(uuid: try cells[0].decode(UUID.self)),
            organizationID: OrganizationID(uuid: try cells[1].decode(UUID.self)),
            nodeID: try cells[2].decode(String.self), name: try cells[3].decode(String.self),
            format: try cells[4].decode(String.self), status: status, detail: try cells[6].decode(String?.self),
            durationSeconds: try cells[7].decode(Int?.self), sizeBytes: try cells[8].decode(Int64?.self),
            sha256: try cells[9].decode(String?.self), storageKey: try cells[10].decode(String?.self),
            requestedAt: try cells[11].decode(Date.self), startedAt: try cells[12].decode(Date?.self),
            finishedAt: try cells[13].decode(Date?.self), storedAt: try cells[14].decode(Date?.self),
            deletedAt: try cells[15].decode(Date?.self), callStatus: callStatus)
    }
}
