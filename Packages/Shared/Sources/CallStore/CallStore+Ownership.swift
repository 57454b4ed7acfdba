import CallDomain
import Foundation
import Logging
import PostgresNIO

/// Who owns a live call, and taking calls over from workers that stopped.
///
/// A worker proves it is alive with a heartbeat in `dialer_workers`, timed by PostgreSQL's clock. The live calls of a
/// worker whose heartbeat is older than the owner timeout may be taken over by another worker of the same node: the
/// takeover raises the call's owner epoch, conditionally on the epoch it saw, so of several takers one wins, and the
/// status events of the previous owner (which carry its older epoch) are refused from then on.
extension CallStore {
    /// The owner of a call as stored.
    public struct CallOwner: Sendable, Hashable {
        /// The worker that claimed or took over the call last.
        public var workerID: String?
        /// The epoch of that claim or takeover.
        public var epoch: Int
        /// The call's status.
        public var status: CallStatus

        /// Creates an owner value.
        public init(workerID: String?, epoch: Int, status: CallStatus) {
            self.workerID = workerID
            self.epoch = epoch
            self.status = status
        }
    }

    /// Records that `workerID`, bound to `nodeID`, is alive now (PostgreSQL's clock).
    public func heartbeat(workerID: String, nodeID: String) async throws {
        try await client.query(
            """
            INSERT INTO dialer_workers (worker_id, node_id) VALUES (\(workerID), \(nodeID))
            ON CONFLICT (worker_id) DO UPDATE SET node_id = EXCLUDED.node_id, heartbeat_at = now()
            """,
            logger: logger)
    }

    /// Live calls of `nodeID` whose owner has no heartbeat newer than `ownerTimeout`, other than `excludingWorker`'s,
    /// oldest first, at most `limit`.
    public func abandonedCalls(
        nodeID: String, ownerTimeout: Duration, excludingWorker workerID: String, limit: Int
    ) async throws -> [CallRecord] {
        let seconds = Double(ownerTimeout.components.seconds) + Double(ownerTimeout.components.attoseconds) / 1e18
        let rows = try await client.query(
            """
            SELECT \(unescaped: Self.callColumns) FROM calls
            WHERE node_id = \(nodeID) AND status IN ('dispatched', 'initiated', 'ringing', 'answered')
                AND worker_id IS DISTINCT FROM \(workerID)
                AND NOT EXISTS (
                    SELECT 1 FROM dialer_workers w
                    WHERE w.worker_id = calls.worker_id AND w.heartbeat_at >= now() - make_interval(secs => \(seconds))
                )
            ORDER BY created_at
            LIMIT \(limit)
            """,
            logger: logger)
        var calls: [CallRecord] = []
        for try await row in rows { calls.append(try Self.decodeCall(row).record) }
        return calls
    }

    /// Takes a live call over: raises its owner epoch and names `workerID` its owner, if the epoch is still
    /// `expectedEpoch`, the call is live and, with `ownerTimeout`, its owner still has no heartbeat newer than that
    /// (checked in the same statement, so an owner that came back just before is not robbed). Returns the call as it
    /// is now, or `nil` when another worker took it first, its owner is alive, or it ended meanwhile.
    public func takeOver(
        _ callID: CallID, expectedEpoch: Int, nodeID: String, workerID: String, ownerTimeout: Duration? = nil
    ) async throws -> CallRecord? {
        let seconds =
            ownerTimeout.map {
                Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18
            } ?? -1
        let rows = try await client.query(
            """
            UPDATE calls SET owner_epoch = owner_epoch + 1, worker_id = \(workerID), node_id = \(nodeID),
                updated_at = now()
            WHERE id = \(callID.uuid) AND owner_epoch = \(expectedEpoch)
                AND status IN ('dispatched', 'initiated', 'ringing', 'answered')
                AND (\(seconds) < 0 OR NOT EXISTS (
                    SELECT 1 FROM dialer_workers w
                    WHERE w.worker_id = calls.worker_id AND w.heartbeat_at >= now() - make_interval(secs => \(seconds))
                ))
            RETURNING \(unescaped: Self.callColumns)
            """,
            logger: logger)
        var record: CallRecord?
        for try await row in rows { record = try Self.decodeCall(row).record }
        return record
    }

    /// Records, just before the originate is sent, that the owner holding `epoch` is dialing the call; `false` when the
    /// call was taken over (its epoch moved on) or is no longer live: the originate must not be sent.
    public func markOriginating(_ callID: CallID, epoch: Int) async throws -> Bool {
        let rows = try await client.query(
            """
            UPDATE calls SET originate_sent_at = COALESCE(originate_sent_at, now())
            WHERE id = \(callID.uuid) AND owner_epoch = \(epoch)
                AND status IN ('dispatched', 'initiated', 'ringing', 'answered')
            RETURNING id
            """,
            logger: logger)
        var marked = false
        for try await _ in rows { marked = true }
        return marked
    }

    /// The stored owner of each of `ids` that has a row.
    public func owners(of ids: [CallID]) async throws -> [CallID: CallOwner] {
        guard !ids.isEmpty else { return [:] }
        let rows = try await client.query(
            "SELECT id, worker_id, owner_epoch, status FROM calls WHERE id = ANY(\(ids.map(\.uuid)))",
            logger: logger)
        var owners: [CallID: CallOwner] = [:]
        for try await (id, worker, epoch, status) in rows.decode((UUID, String?, Int, String).self) {
            guard let status = CallStatus(rawValue: status) else { throw StoreError.corruptRow("status \(status)") }
            owners[CallID(uuid: id)] = CallOwner(workerID: worker, epoch: epoch, status: status)
        }
        return owners
    }
}

extension CallRecord {
    /// Where the request sent the answered call (`nil` when it named no target, or the stored one no longer
    /// validates).
    public var dialplan: DialplanTarget? {
        guard let context, let exten = self.extension else { return nil }
        return try? DialplanTarget(context: context, extension: exten, priority: priority ?? 1)
    }

    /// The originate command this call was recorded from, validated again (`nil` when the row lacks the request, or a
    /// stored value no longer passes validation): a new owner dials a call taken over before it was dialed from it.
    public var originateCommand: OriginateCommand? {
        guard let to, let dialTarget = try? DialTarget(to), let expiresAt else { return nil }
        var callerID: CallerID?
        if let number = callerIDNumber {
            guard let parsed = try? CallerID(name: callerIDName, number: number) else { return nil }
            callerID = parsed
        }
        if context != nil, dialplan == nil { return nil }
        guard let variables = try? ChannelVariables(variables), let metadata = try? ClientMetadata(metadata) else {
            return nil
        }
        return OriginateCommand(
            callID: id, requestedAt: createdAt, expiresAt: expiresAt, to: dialTarget, callerID: callerID,
            dialplan: dialplan, timeoutSeconds: timeoutSeconds ?? 30, variables: variables, metadata: metadata,
            requestedBy: requestedBy ?? "unknown", requestID: requestID, organizationID: organizationID ?? .default,
            machineDetection: machineDetection, record: record)
    }
}
