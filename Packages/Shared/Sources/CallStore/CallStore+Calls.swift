import CallDomain
import Foundation
import Logging
import PostgresNIO

extension CallStore {
    // MARK: - Recording commands

    static func upsertCommand(
        _ command: OriginateCommand, on connection: PostgresConnection, logger: Logger
    )
        async throws
    {
        let variables = try WireCoding.encodeText(command.variables)
        let metadata = try WireCoding.encodeText(command.metadata)
        let callbackEvents = (command.statusCallback?.events ?? []).map(\.rawValue).sorted()
        let machineDetection = try command.machineDetection.map { try WireCoding.encodeText($0) }
        let inserted = try await connection.query(
            """
            INSERT INTO calls (id, status, seq, to_number, caller_id_name, caller_id_number, context, extension,
                priority, timeout_seconds, variables, metadata, requested_by, request_id, created_at, expires_at,
                organization_id, status_callback, status_callback_events, machine_detection, record)
            VALUES (\(command.callID.uuid), 'queued', 0, \(command.to.value), \(command.callerID?.name),
                \(command.callerID?.number), \(command.dialplan?.context), \(command.dialplan?.extension),
                \(command.dialplan?.priority), \(command.timeoutSeconds), \(variables)::jsonb, \(metadata)::jsonb,
                \(command.requestedBy), \(command.requestID), \(command.requestedAt), \(command.expiresAt),
                \(command.organizationID.uuid), \(command.statusCallback?.url), \(callbackEvents)::text[],
                \(machineDetection)::jsonb, \(command.record))
            ON CONFLICT (id) DO UPDATE SET
                to_number = EXCLUDED.to_number, caller_id_name = EXCLUDED.caller_id_name,
                caller_id_number = EXCLUDED.caller_id_number, context = EXCLUDED.context,
                extension = EXCLUDED.extension, priority = EXCLUDED.priority,
                timeout_seconds = EXCLUDED.timeout_seconds, variables = EXCLUDED.variables,
                metadata = EXCLUDED.metadata, requested_by = EXCLUDED.requested_by,
                request_id = EXCLUDED.request_id, created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at,
                organization_id = EXCLUDED.organization_id, status_callback = EXCLUDED.status_callback,
                status_callback_events = EXCLUDED.status_callback_events, machine_detection = EXCLUDED.machine_detection,
                record = EXCLUDED.record
            WHERE calls.to_number IS NULL
            RETURNING (xmax = 0) AS inserted
            """,
            logger: logger)
        var isNew = false
        for try await flag in inserted.decode(Bool.self) { isNew = flag }
        if isNew {
            try await connection.query(
                """
                INSERT INTO call_events (call_id, seq, event_id, status, previous_status, occurred_at)
                VALUES (\(command.callID.uuid), 0, \(UUID.systemRandom()), 'queued', NULL, \(command.requestedAt))
                ON CONFLICT DO NOTHING
                """,
                logger: logger)
        }
    }

    // MARK: - Claim, cancel, expire

    /// Claims a call for dialing: inserts it if unknown, then moves it `queued → dispatched` only if it is still
    /// queued. Exactly one of any number of concurrent claimants wins; the claim raises the call's owner epoch, which
    /// the `dispatched` event carries (``CallStatusEvent/ownerEpoch``).
    ///
    /// A claim that would take the call's organization past one of its limits is rolled back whole and answered
    /// `.deferred`: the call stays queued for a later claim (see ``admitUnderLimits(_:on:logger:)``).
    public func claim(
        _ command: OriginateCommand, nodeID: String, workerID: String, at now: Date = Date()
    )
        async throws -> ClaimResult
    {
        let logger = self.logger
        do {
            return try await transaction { connection in
                try await Self.upsertCommand(command, on: connection, logger: logger)
                var event = CallStatusEvent(
                    callID: command.callID, seq: 1, status: .dispatched, previousStatus: .queued, occurredAt: now,
                    nodeID: nodeID, workerID: workerID, channelID: command.callID.description,
                    to: command.to.value, metadata: command.metadata, organizationID: command.organizationID)
                let updated = try await connection.query(
                    """
                    UPDATE calls SET status = 'dispatched', seq = 1, node_id = \(nodeID), worker_id = \(workerID),
                        channel_id = \(event.channelID), dispatched_at = \(now), owner_epoch = owner_epoch + 1,
                        updated_at = now()
                    WHERE id = \(command.callID.uuid) AND status = 'queued' AND seq = 0
                    RETURNING owner_epoch, (SELECT max_live_calls IS NOT NULL OR max_calls_per_second IS NOT NULL
                        FROM organizations WHERE organizations.id = calls.organization_id)
                    """,
                    logger: logger)
                var limited = false
                for try await (epoch, hasLimits) in updated.decode((Int, Bool?).self) {
                    event.ownerEpoch = epoch
                    limited = hasLimits ?? false
                }
                if event.ownerEpoch != nil {
                    // Checked once the claim is known to win, so that a lost claim takes no rate token; the claim
                    // itself said whether there are limits, so an unlimited organization costs no extra round trip.
                    if limited,
                        let deferral = try await Self.admitUnderLimits(
                            command.organizationID, on: connection, logger: logger)
                    {
                        throw deferral
                    }
                    try await Self.insertTimeline(event, on: connection, logger: logger)
                    return .won(event)
                }
                let status = try await Self.currentStatus(of: command.callID, on: connection, logger: logger)
                return .alreadyTaken(status?.status ?? .queued)
            }
        } catch let deferral as ClaimDeferral {
            return .deferred(deferral.limit, retryAfter: deferral.retryAfter)
        }
    }

    /// A claim held back by an organization limit (thrown to roll the claim's transaction back).
    struct ClaimDeferral: Error {
        var limit: OrganizationLimit
        var retryAfter: Duration
    }

    /// How often a claim held back by the live-call limit is tried again: when a call ends is not known here.
    public static let liveLimitRetry = Duration.milliseconds(250)

    /// Checks, within a winning claim's transaction, the limits of the call's organization, which has some; `nil`
    /// when the claim may go on (a rate token is then taken).
    ///
    /// The organization's row is locked, so the claims of one limited organization serialize across every worker:
    /// its live calls are counted (the claimed call included) and its token bucket read and spent under one lock,
    /// with PostgreSQL's clock.
    static func admitUnderLimits(
        _ organization: OrganizationID, on connection: PostgresConnection, logger: Logger
    ) async throws -> ClaimDeferral? {
        let rows = try await connection.query(
            """
            SELECT max_live_calls, max_calls_per_second, at,
                least(1.0, dial_tokens + extract(epoch FROM at - dial_tokens_at) * coalesce(max_calls_per_second, 0))
            FROM organizations, clock_timestamp() AS at WHERE id = \(organization.uuid) FOR UPDATE OF organizations
            """,
            logger: logger)
        var limits: (maxLive: Int?, maxRate: Double?, at: Date, tokens: Double)?
        for try await row in rows.decode((Int?, Double?, Date, Double).self) { limits = row }
        guard let limits else { return nil }
        if let maxLive = limits.maxLive {
            var live = 0
            for try await count in try await connection.query(Self.liveCallCountQuery(organization), logger: logger)
                .decode(Int.self)
            {
                live = count
            }
            // The count includes the call being claimed.
            if live > maxLive { return ClaimDeferral(limit: .liveCalls, retryAfter: liveLimitRetry) }
        }
        if let rate = limits.maxRate {
            guard limits.tokens >= 1 else {
                let seconds = (1 - limits.tokens) / rate
                return ClaimDeferral(
                    limit: .callsPerSecond, retryAfter: .milliseconds(Int64(max(1, (seconds * 1000).rounded(.up)))))
            }
            try await connection.query(
                """
                UPDATE organizations SET dial_tokens = \(limits.tokens - 1), dial_tokens_at = \(limits.at)
                WHERE id = \(organization.uuid)
                """,
                logger: logger)
        }
        return nil
    }

    /// Moves a call `queued → canceled` if it is still queued (a cancel that wins means it will never be dialed).
    public func cancelQueued(
        callID: CallID, nodeID: String?, workerID: String?, at now: Date = Date()
    ) async throws
        -> QueuedChangeResult
    {
        try await changeQueued(
            callID: callID, to: .canceled, detail: "canceled before dialing", nodeID: nodeID,
            workerID: workerID, at: now)
    }

    /// Moves a call `queued → expired` if it is still queued (its command outlived its time to live).
    public func expireQueued(
        _ command: OriginateCommand, nodeID: String?, workerID: String?, at now: Date = Date()
    )
        async throws -> QueuedChangeResult
    {
        let logger = self.logger
        try await client.withTransaction(logger: logger) { connection in
            try await Self.upsertCommand(command, on: connection, logger: logger)
        }
        return try await changeQueued(
            callID: command.callID, to: .expired, detail: "time to live passed before dialing",
            nodeID: nodeID, workerID: workerID, at: now)
    }

    private func changeQueued(
        callID: CallID, to status: CallStatus, detail: String, nodeID: String?, workerID: String?, at now: Date
    ) async throws -> QueuedChangeResult {
        let logger = self.logger
        return try await client.withTransaction(logger: logger) { connection in
            let rows = try await connection.query(
                """
                UPDATE calls SET status = \(status.rawValue), seq = 1, detail = \(detail), ended_at = \(now),
                    node_id = COALESCE(node_id, \(nodeID)), worker_id = COALESCE(worker_id, \(workerID)),
                    updated_at = now()
                WHERE id = \(callID.uuid) AND status = 'queued' AND seq = 0
                RETURNING to_number, metadata::text, organization_id
                """,
                logger: logger)
            for try await (to, metadataText, organization) in rows.decode((String?, String, UUID?).self) {
                let metadata = (try? WireCoding.decode(ClientMetadata.self, from: Array(metadataText.utf8))) ?? .empty
                let event = CallStatusEvent(
                    callID: callID, seq: 1, status: status, previousStatus: .queued, occurredAt: now, nodeID: nodeID,
                    workerID: workerID, to: to, detail: detail, endedAt: now, metadata: metadata,
                    organizationID: organization.map(OrganizationID.init(uuid:)))
                try await Self.insertTimeline(event, on: connection, logger: logger)
                return .changed(event)
            }
            guard let current = try await Self.currentStatus(of: callID, on: connection, logger: logger) else {
                return .unknown
            }
            return .notQueued(current.status)
        }
    }

    // MARK: - Applying status events

    static func insertTimeline(_ event: CallStatusEvent, on connection: PostgresConnection, logger: Logger) async throws
    {
        try await connection.query(
            """
            INSERT INTO call_events (call_id, seq, event_id, status, previous_status, occurred_at, node_id, worker_id,
                hangup_cause, hangup_cause_text, failure_reason, detail)
            VALUES (\(event.callID.uuid), \(event.seq), \(event.eventID), \(event.status.rawValue),
                \(event.previousStatus.rawValue), \(event.occurredAt), \(event.nodeID), \(event.workerID),
                \(event.hangupCause?.code), \(event.hangupCause?.text), \(event.failureReason?.rawValue),
                \(event.detail))
            ON CONFLICT (call_id, seq) DO NOTHING
            """,
            logger: logger)
    }

    static func currentStatus(
        of callID: CallID, on connection: PostgresConnection, logger: Logger
    ) async throws
        -> (status: CallStatus, seq: Int)?
    {
        let rows = try await connection.query(
            "SELECT status, seq FROM calls WHERE id = \(callID.uuid)", logger: logger)
        for try await (status, seq) in rows.decode((String, Int).self) {
            guard let status = CallStatus(rawValue: status) else { throw StoreError.corruptRow("status \(status)") }
            return (status, seq)
        }
        return nil
    }
}
