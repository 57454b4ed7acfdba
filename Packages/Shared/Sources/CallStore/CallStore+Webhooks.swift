import CallDomain
import Foundation
import Logging
import PostgresNIO
import Webhooks

// Webhook endpoints, their secrets and deliveries.
//
// Deliveries are the durable queue of the webhook dispatcher: a status event becomes one row per endpoint before its
// Kafka offset is committed, and a row leaves `pending` only when an attempt's outcome is stored. Every time used
// here is passed in (the dispatcher's clock), so the retry schedule can be tested without waiting for it.
extension CallStore {
    static let endpointColumns = endpointColumns(of: nil)

    /// The columns ``decodeEndpoint(_:from:)`` reads, of the table aliased `alias` if given.
    static func endpointColumns(of alias: String?) -> String {
        [
            "id", "organization_id", "kind", "url", "description", "event_types", "enabled", "disabled_reason",
            "consecutive_failures", "circuit_open_until", "created_at", "updated_at",
        ].map { column in alias.map { "\($0).\(column)" } ?? column }.joined(separator: ", ")
    }

    /// The columns ``decodeDelivery(_:)`` reads, of the table aliased `d`. A pending delivery of an endpoint whose
    /// circuit is open is attempted when the circuit may close, whatever its own time says.
    static let deliveryColumns = """
        d.id, d.organization_id, d.endpoint_id, d.call_id, d.event_id, d.event_type, d.payload, d.state, d.attempts,
        CASE WHEN d.state = 'pending' THEN GREATEST(d.next_attempt_at,
            (SELECT circuit_open_until FROM webhook_endpoints ce WHERE ce.id = d.endpoint_id)) END,
        d.last_status, d.last_error, d.created_at, d.delivered_at
        """

    // MARK: - Endpoints (the API)

    /// Creates a subscription endpoint with its first secret (audited).
    public func createWebhookEndpoint(
        in organization: OrganizationID, url: String, description: String, eventTypes: Set<WebhookEventType>,
        enabled: Bool, secret: WebhookSecret, by actor: AuditActor
    ) async throws -> WebhookEndpoint {
        let id = UUID.systemRandom()
        let logger = self.logger
        return try await retryingDeadlocks { connection in
            let rows = try await connection.query(
                """
                INSERT INTO webhook_endpoints (id, organization_id, kind, url, description, event_types, enabled)
                VALUES (\(id), \(organization.uuid), 'subscription', \(url), \(description),
                    \(eventTypes.map(\.rawValue).sorted())::text[], \(enabled))
                RETURNING \(unescaped: Self.endpointColumns)
                """,
                logger: logger)
            var created: WebhookEndpoint?
            for try await row in rows { created = try Self.decodeEndpoint(row) }
            guard let created else { throw StoreError.corruptRow("INSERT returned no row") }
            try await connection.query(
                "INSERT INTO webhook_secrets (owner_id, secret) VALUES (\(id), \(secret.text))", logger: logger)
            try await Self.audit(
                AuditRecord(
                    organizationID: organization, action: "webhook_endpoint.created", targetType: "webhook_endpoint",
                    targetID: id.uuidString.lowercased(), detail: ["url": url]),
                by: actor, on: connection, logger: logger)
            return created
        }
    }

    /// The organization's subscription endpoints, newest first.
    public func webhookEndpoints(in organization: OrganizationID) async throws -> [WebhookEndpoint] {
        let rows = try await client.query(
            """
            SELECT \(unescaped: Self.endpointColumns) FROM webhook_endpoints
            WHERE organization_id = \(organization.uuid) AND kind = 'subscription'
            ORDER BY created_at DESC, id DESC
            """,
            logger: logger)
        var endpoints: [WebhookEndpoint] = []
        for try await row in rows { endpoints.append(try Self.decodeEndpoint(row)) }
        return endpoints
    }

    /// One endpoint of the organization (a subscription or a status callback URL's).
    public func webhookEndpoint(id: UUID, in organization: OrganizationID) async throws -> WebhookEndpoint? {
        let rows = try await client.query(
            """
            SELECT \(unescaped: Self.endpointColumns) FROM webhook_endpoints
            WHERE id = \(id) AND organization_id = \(organization.uuid)
            """,
            logger: logger)
        for try await row in rows { return try Self.decodeEndpoint(row) }
        return nil
    }

    /// A change to an endpoint; `nil` fields stay as they are.
    public struct WebhookEndpointChange: Sendable, Hashable {
        /// A new URL.
        public var url: String?
        /// A new description.
        public var description: String?
        /// A new filter.
        public var eventTypes: Set<WebhookEventType>?
        /// Enable or disable it.
        public var enabled: Bool?

        /// Creates a change.
        public init(
            url: String? = nil, description: String? = nil, eventTypes: Set<WebhookEventType>? = nil,
            enabled: Bool? = nil
        ) {
            self.url = url
            self.description = description
            self.eventTypes = eventTypes
            self.enabled = enabled
        }
    }

    /// Changes an endpoint of the organization (audited); `nil` when it has none with this id. Disabling it
    /// cancels its pending deliveries; enabling it closes its circuit.
    public func updateWebhookEndpoint(
        id: UUID, in organization: OrganizationID, change: WebhookEndpointChange, by actor: AuditActor
    ) async throws -> WebhookEndpoint? {
        let logger = self.logger
        let eventTypes = change.eventTypes.map { $0.map(\.rawValue).sorted() }
        return try await retryingDeadlocks { connection in
            let rows = try await connection.query(
                """
                UPDATE webhook_endpoints SET url = COALESCE(\(change.url)::text, url),
                    description = COALESCE(\(change.description)::text, description),
                    event_types = COALESCE(\(eventTypes)::text[], event_types),
                    enabled = COALESCE(\(change.enabled)::boolean, enabled),
                    disabled_reason = CASE WHEN \(change.enabled)::boolean IS NULL THEN disabled_reason
                        WHEN \(change.enabled)::boolean THEN NULL ELSE \("disabled by \(actor.name)")::text END,
                    consecutive_failures = CASE WHEN \(change.enabled)::boolean THEN 0 ELSE consecutive_failures END,
                    circuit_open_until = CASE WHEN \(change.enabled)::boolean THEN NULL ELSE circuit_open_until END,
                    updated_at = now()
                WHERE id = \(id) AND organization_id = \(organization.uuid) AND kind = 'subscription'
                RETURNING \(unescaped: Self.endpointColumns)
                """,
                logger: logger)
            var updated: WebhookEndpoint?
            for try await row in rows { updated = try Self.decodeEndpoint(row) }
            guard let updated else { return nil }
            if change.enabled == false {
                try await Self.cancelPending(endpoint: id, reason: "endpoint disabled", on: connection, logger: logger)
            }
            var detail: [String: String] = [:]
            if let url = change.url { detail["url"] = url }
            if let enabled = change.enabled { detail["enabled"] = String(enabled) }
            if let eventTypes { detail["event_types"] = eventTypes.joined(separator: ",") }
            try await Self.audit(
                AuditRecord(
                    organizationID: organization, action: "webhook_endpoint.updated", targetType: "webhook_endpoint",
                    targetID: id.uuidString.lowercased(), detail: detail),
                by: actor, on: connection, logger: logger)
            return updated
        }
    }

    /// Deletes a subscription endpoint with its deliveries and secrets (audited); whether it existed.
    public func deleteWebhookEndpoint(
        id: UUID, in organization: OrganizationID, by actor: AuditActor
    ) async throws
        -> Bool
    {
        let logger = self.logger
        return try await retryingDeadlocks { connection in
            let rows = try await connection.query(
                """
                DELETE FROM webhook_endpoints
                WHERE id = \(id) AND organization_id = \(organization.uuid) AND kind = 'subscription' RETURNING url
                """,
                logger: logger)
            var url: String?
            for try await value in rows.decode(String.self) { url = value }
            guard let url else { return false }
            try await connection.query("DELETE FROM webhook_secrets WHERE owner_id = \(id)", logger: logger)
            try await Self.audit(
                AuditRecord(
                    organizationID: organization, action: "webhook_endpoint.deleted", targetType: "webhook_endpoint",
                    targetID: id.uuidString.lowercased(), detail: ["url": url]),
                by: actor, on: connection, logger: logger)
            return true
        }
    }

    /// Adds `secret` as the newest signing secret of `owner` (an endpoint of the organization, or the organization
    /// itself for its status callbacks) and lets the older ones sign for `overlap` more; audited. Returns when the
    /// older ones stop, or `nil` when the owner is not the organization's.
    public func rotateWebhookSecret(
        owner: UUID, in organization: OrganizationID, secret: WebhookSecret, overlap: Duration, at now: Date,
        by actor: AuditActor
    ) async throws -> Date? {
        let logger = self.logger
        let expiry = now.addingTimeInterval(overlap.timeInterval)
        return try await retryingDeadlocks { connection in
            if owner != organization.uuid {
                let rows = try await connection.query(
                    """
                    SELECT 1 FROM webhook_endpoints
                    WHERE id = \(owner) AND organization_id = \(organization.uuid) AND kind = 'subscription'
                    FOR UPDATE
                    """,
                    logger: logger)
                var found = false
                for try await _ in rows { found = true }
                guard found else { return nil }
            } else {
                // Serializes rotations of the organization's callback secret.
                try await connection.query(
                    "SELECT 1 FROM organizations WHERE id = \(organization.uuid) FOR UPDATE", logger: logger)
            }
            try await connection.query(
                """
                UPDATE webhook_secrets SET expires_at = LEAST(COALESCE(expires_at, \(expiry)), \(expiry))
                WHERE owner_id = \(owner)
                """,
                logger: logger)
            try await connection.query(
                "INSERT INTO webhook_secrets (owner_id, secret) VALUES (\(owner), \(secret.text))", logger: logger)
            try await Self.audit(
                AuditRecord(
                    organizationID: organization, action: "webhook_secret.rotated",
                    targetType: owner == organization.uuid ? "status_callback_secret" : "webhook_endpoint",
                    targetID: owner.uuidString.lowercased(), detail: [:]),
                by: actor, on: connection, logger: logger)
            return expiry
        }
    }

    /// Whether the organization has a secret for its status callbacks (a call may ask for one only then).
    public func hasStatusCallbackSecret(_ organization: OrganizationID, at now: Date = Date()) async throws -> Bool {
        let rows = try await client.query(
            """
            SELECT 1 FROM webhook_secrets
            WHERE owner_id = \(organization.uuid) AND (expires_at IS NULL OR expires_at > \(now)) LIMIT 1
            """,
            logger: logger)
        for try await _ in rows { return true }
        return false
    }

    /// Queues a `webhook.test` message for an endpoint of the organization, due at once; `nil` without one.
    public func queueTestDelivery(
        endpoint id: UUID, in organization: OrganizationID, at now: Date
    ) async throws
        -> WebhookDelivery?
    {
        let payload = try WebhookPayload.testBody(endpointID: id, at: now)
        let rows = try await client.query(
            """
            INSERT INTO webhook_deliveries AS d (id, organization_id, endpoint_id, event_type, payload, state,
                next_attempt_at, created_at)
            SELECT \(UUID.systemRandom()), organization_id, id, \(WebhookEventType.test.rawValue), \(payload),
                'pending', GREATEST(\(now), COALESCE(circuit_open_until, \(now))), \(now)
            FROM webhook_endpoints WHERE id = \(id) AND organization_id = \(organization.uuid) AND enabled
            RETURNING \(unescaped: Self.deliveryColumns)
            """,
            logger: logger)
        for try await row in rows { return try Self.decodeDelivery(row) }
        return nil
    }

    // MARK: - The delivery log (the API)

    /// An endpoint's deliveries, newest first, before the delivery `before` (keyset pagination).
    public func webhookDeliveries(
        endpoint: UUID, in organization: OrganizationID, limit: Int, before: UUID?
    ) async throws -> [WebhookDelivery] {
        let limit = min(max(limit, 1), 200)
        let rows = try await client.query(
            """
            SELECT \(unescaped: Self.deliveryColumns) FROM webhook_deliveries d
            WHERE endpoint_id = \(endpoint) AND organization_id = \(organization.uuid)
                AND (\(before)::uuid IS NULL OR (d.created_at, d.id) < (
                    SELECT created_at, id FROM webhook_deliveries WHERE id = \(before)))
            ORDER BY d.created_at DESC, d.id DESC LIMIT \(limit)
            """,
            logger: logger)
        var deliveries: [WebhookDelivery] = []
        for try await row in rows { deliveries.append(try Self.decodeDelivery(row)) }
        return deliveries
    }

    /// A call's deliveries, oldest first.
    public func webhookDeliveries(call: CallID, in organization: OrganizationID) async throws -> [WebhookDelivery] {
        let rows = try await client.query(
            """
            SELECT \(unescaped: Self.deliveryColumns) FROM webhook_deliveries d
            WHERE call_id = \(call.uuid) AND organization_id = \(organization.uuid)
            ORDER BY created_at, id LIMIT 1000
            """,
            logger: logger)
        var deliveries: [WebhookDelivery] = []
        for try await row in rows { deliveries.append(try Self.decodeDelivery(row)) }
        return deliveries
    }

    /// One delivery of the organization with its attempts, oldest first.
    public func webhookDelivery(
        id: UUID, in organization: OrganizationID
    ) async throws
        -> (WebhookDelivery, [WebhookAttempt])?
    {
        let rows = try await client.query(
            """
            SELECT \(unescaped: Self.deliveryColumns) FROM webhook_deliveries d
            WHERE id = \(id) AND organization_id = \(organization.uuid)
            """,
            logger: logger)
        var delivery: WebhookDelivery?
        for try await row in rows { delivery = try Self.decodeDelivery(row) }
        guard let delivery else { return nil }
        let attemptRows = try await client.query(
            """
            SELECT attempt, started_at, duration_ms, response_status, error, dispatcher_id
            FROM webhook_attempts WHERE delivery_id = \(id) ORDER BY id
            """,
            logger: logger)
        var attempts: [WebhookAttempt] = []
        for try await (attempt, startedAt, duration, status, error, dispatcher) in attemptRows.decode(
            (Int, Date, Int, Int?, String?, String).self)
        {
            attempts.append(
                WebhookAttempt(
                    attempt: attempt, startedAt: startedAt, durationMilliseconds: duration, responseStatus: status,
                    error: error, dispatcherID: dispatcher))
        }
        return (delivery, attempts)
    }

    /// Sends a delivery again, at once, with a fresh retry schedule, whatever its state; `nil` when the
    /// organization has no such delivery or its endpoint is disabled.
    public func redeliver(id: UUID, in organization: OrganizationID, at now: Date) async throws -> WebhookDelivery? {
        let rows = try await client.query(
            """
            UPDATE webhook_deliveries d SET state = 'pending', step = 0, next_attempt_at = \(now), lease_until = NULL,
                leased_by = NULL, updated_at = now()
            FROM webhook_endpoints e
            WHERE d.id = \(id) AND d.organization_id = \(organization.uuid) AND e.id = d.endpoint_id AND e.enabled
            RETURNING \(unescaped: Self.deliveryColumns)
            """,
            logger: logger)
        for try await row in rows { return try Self.decodeDelivery(row) }
        return nil
    }

    // MARK: - Fan-out (the dispatcher)

    /// Turns status events into deliveries: one per enabled subscription of the call's organization whose filter
    /// takes the event's type, and one for the call's own status callback if it asked for this status. Idempotent:
    /// an event read twice makes no second delivery.
    ///
    /// With `handOff`, deliveries due at once are leased to that dispatcher in the same statement, up to each
    /// endpoint's room, and returned ready to attempt: the dispatcher that read the event attempts it without a
    /// claim. The rest wait in the table for claims.
    public func fanOut(
        _ events: [CallStatusEvent], at now: Date, handOff: WebhookHandOff? = nil
    ) async throws -> WebhookFanOut {
        guard !events.isEmpty else { return WebhookFanOut(created: 0, handedOff: [], waitingDue: false) }
        let logger = self.logger
        let organizations = Set(events.map { ($0.organizationID ?? .default).uuid })
        return try await retryingDeadlocks { connection in
            var subscriptions: [UUID: [WebhookEndpoint]] = [:]
            let endpointRows = try await connection.query(
                """
                SELECT \(unescaped: Self.endpointColumns) FROM webhook_endpoints
                WHERE organization_id = ANY(\(Array(organizations))::uuid[]) AND kind = 'subscription' AND enabled
                """,
                logger: logger)
            for try await row in endpointRows {
                let endpoint = try Self.decodeEndpoint(row)
                subscriptions[endpoint.organizationID.uuid, default: []].append(endpoint)
            }
            // Each call's own callback, as its command recorded it (the claim stored it before any event).
            var callbacks: [UUID: (organization: UUID, url: String, events: Set<String>)] = [:]
            let callRows = try await connection.query(
                """
                SELECT id, organization_id, status_callback, status_callback_events FROM calls
                WHERE id = ANY(\(Array(Set(events.map(\.callID.uuid))))::uuid[]) AND status_callback IS NOT NULL
                """,
                logger: logger)
            for try await (id, organization, url, statuses) in callRows.decode((UUID, UUID?, String, [String]).self) {
                callbacks[id] = (organization ?? OrganizationID.default.uuid, url, Set(statuses))
            }
            var callbackEndpoints: [String: WebhookEndpoint] = [:]
            let wanted = Set(callbacks.values.map { "\($0.organization.uuidString)|\($0.url)" })
            if !wanted.isEmpty {
                let pairs = wanted.map { $0.split(separator: "|", maxSplits: 1).map(String.init) }
                let organizationIDs = pairs.map { UUID(uuidString: $0[0])! }
                let urls = pairs.map { $0[1] }
                let ids = pairs.map { _ in UUID.systemRandom() }
                try await connection.query(
                    """
                    INSERT INTO webhook_endpoints (id, organization_id, kind, url, description)
                    SELECT id, organization_id, 'call_callback', url, 'status callbacks of calls'
                    FROM unnest(\(ids)::uuid[], \(organizationIDs)::uuid[], \(urls)::text[]) AS t(id, organization_id, url)
                    ON CONFLICT (organization_id, url) WHERE kind = 'call_callback' DO NOTHING
                    """,
                    logger: logger)
                let rows = try await connection.query(
                    """
                    SELECT \(unescaped: Self.endpointColumns) FROM webhook_endpoints
                    WHERE kind = 'call_callback' AND (organization_id, url) IN (
                        SELECT * FROM unnest(\(organizationIDs)::uuid[], \(urls)::text[]))
                    """,
                    logger: logger)
                for try await row in rows {
                    let endpoint = try Self.decodeEndpoint(row)
                    callbackEndpoints["\(endpoint.organizationID.uuid.uuidString)|\(endpoint.url)"] = endpoint
                }
            }

            var ids: [UUID] = [], organizationIDs: [UUID] = [], endpointIDs: [UUID] = [], callIDs: [UUID] = []
            var eventIDs: [UUID] = [], types: [String] = [], payloads: [String] = [], due: [Date] = []
            var leased: [Bool] = [], endpointsByID: [UUID: WebhookEndpoint] = [:]
            var room = handOff?.room ?? [:]
            func add(_ event: CallStatusEvent, _ endpoint: WebhookEndpoint, payload: String, type: WebhookEventType) {
                ids.append(UUID.systemRandom())
                organizationIDs.append(endpoint.organizationID.uuid)
                endpointIDs.append(endpoint.id)
                endpointsByID[endpoint.id] = endpoint
                callIDs.append(event.callID.uuid)
                eventIDs.append(event.eventID)
                types.append(type.rawValue)
                payloads.append(payload)
                // An endpoint whose circuit is open gets its new deliveries when the circuit may close.
                let dueAt = max(now, endpoint.circuitOpenUntil ?? now)
                due.append(dueAt)
                let left = room[endpoint.id] ?? handOff?.defaultRoom ?? 0
                let handed = handOff != nil && dueAt <= now && left > 0
                if handed { room[endpoint.id] = left - 1 }
                leased.append(handed)
            }
            for event in events where event.status != .queued {
                let type = WebhookEventType(status: event.status)
                let organization = (event.organizationID ?? .default).uuid
                let payload = try WebhookPayload.body(for: event)
                for endpoint in subscriptions[organization] ?? [] where endpoint.accepts(type) {
                    add(event, endpoint, payload: payload, type: type)
                }
                if let callback = callbacks[event.callID.uuid], callback.organization == organization,
                    callback.events.contains(event.status.rawValue),
                    let endpoint = callbackEndpoints["\(organization.uuidString)|\(callback.url)"], endpoint.enabled
                {
                    add(event, endpoint, payload: payload, type: type)
                }
            }
            guard !ids.isEmpty else { return WebhookFanOut(created: 0, handedOff: [], waitingDue: false) }
            let leaseUntil = now.addingTimeInterval((handOff?.lease ?? .zero).timeInterval)
            let inserted = try await connection.query(
                """
                INSERT INTO webhook_deliveries (id, organization_id, endpoint_id, call_id, event_id, event_type,
                    payload, state, next_attempt_at, created_at, lease_until, leased_by)
                SELECT id, organization_id, endpoint_id, call_id, event_id, event_type, payload, 'pending', due,
                    \(now), CASE WHEN leased THEN \(leaseUntil)::timestamptz END,
                    CASE WHEN leased THEN \(handOff?.dispatcherID ?? "")::text END
                FROM unnest(\(ids)::uuid[], \(organizationIDs)::uuid[], \(endpointIDs)::uuid[], \(callIDs)::uuid[],
                    \(eventIDs)::uuid[], \(types)::text[], \(payloads)::text[], \(due)::timestamptz[], \(leased)::bool[])
                    AS t(id, organization_id, endpoint_id, call_id, event_id, event_type, payload, due, leased)
                ON CONFLICT (endpoint_id, event_id) WHERE event_id IS NOT NULL DO NOTHING
                RETURNING id
                """,
                logger: logger)
            var created = Set<UUID>()
            for try await id in inserted.decode(UUID.self) { created.insert(id) }
            var handed: [Int] = []
            var waitingDue = false
            for index in ids.indices where created.contains(ids[index]) {
                if leased[index] {
                    handed.append(index)
                } else if due[index] <= now {
                    waitingDue = true
                }
            }
            guard !handed.isEmpty else {
                return WebhookFanOut(created: created.count, handedOff: [], waitingDue: waitingDue)
            }
            let secrets = try await Self.signingSecrets(
                of: Set(handed.compactMap { endpointsByID[endpointIDs[$0]]?.signingOwner }), at: now,
                on: connection, logger: logger)
            let deliveries = handed.compactMap { index -> DueDelivery? in
                guard let endpoint = endpointsByID[endpointIDs[index]] else { return nil }
                return DueDelivery(
                    id: ids[index], endpoint: endpoint, payload: payloads[index], attempts: 0, step: 0,
                    secrets: secrets[endpoint.signingOwner] ?? [], createdAt: now)
            }
            return WebhookFanOut(created: created.count, handedOff: deliveries, waitingDue: waitingDue)
        }
    }

    /// The live secrets of each signing owner (an endpoint, or an organization for its calls' callbacks), newest
    /// first.
    static func signingSecrets(
        of owners: Set<UUID>, at now: Date, on connection: PostgresConnection, logger: Logger
    ) async throws -> [UUID: [WebhookSecret]] {
        guard !owners.isEmpty else { return [:] }
        var secrets: [UUID: [WebhookSecret]] = [:]
        let rows = try await connection.query(
            """
            SELECT owner_id, secret FROM webhook_secrets
            WHERE owner_id = ANY(\(Array(owners))::uuid[]) AND (expires_at IS NULL OR expires_at > \(now))
            ORDER BY id DESC
            """,
            logger: logger)
        for try await (owner, text) in rows.decode((UUID, String).self) {
            guard let secret = WebhookSecret(text) else { throw StoreError.corruptRow("webhook secret of \(owner)") }
            secrets[owner, default: []].append(secret)
        }
        return secrets
    }

    // MARK: - Attempts (the dispatcher)

    /// Leases up to `limit` due deliveries for `dispatcherID` until `now + lease`, oldest due first, and at most
    /// `perEndpoint` of any one endpoint, or its `room` where given (what its concurrency limit leaves in this
    /// process; an endpoint with no room is skipped). Rows another dispatcher holds are skipped. A lease that passes
    /// (its dispatcher died mid-attempt) makes the delivery due again.
    public func claimDueDeliveries(
        dispatcherID: String, limit: Int, perEndpoint: Int, room: [UUID: Int], lease: Duration, at now: Date
    ) async throws -> [DueDelivery] {
        let logger = self.logger
        let leaseUntil = now.addingTimeInterval(lease.timeInterval)
        let roomEndpoints = Array(room.keys)
        let roomValues = roomEndpoints.map { room[$0] ?? 0 }
        let full = room.filter { $0.value <= 0 }.map(\.key)
        // The endpoints with due work are found by one index probe each, whatever their backlogs (a dead endpoint's
        // pile of due deliveries is never walked); each then gives its own oldest, up to its room.
        let rows = try await client.query(
            """
            WITH endpoints AS (
                SELECT e.id AS endpoint_id FROM webhook_endpoints e
                CROSS JOIN LATERAL (
                    SELECT 1 FROM webhook_deliveries
                    WHERE endpoint_id = e.id AND state = 'pending' AND next_attempt_at <= \(now)
                        AND (lease_until IS NULL OR lease_until <= \(now))
                    ORDER BY next_attempt_at LIMIT 1
                ) due
                WHERE e.enabled AND (e.circuit_open_until IS NULL OR e.circuit_open_until <= \(now))
                    AND NOT (e.id = ANY(\(full)::uuid[]))
            ),
            picked AS (
                SELECT candidate.id FROM endpoints
                LEFT JOIN unnest(\(roomEndpoints)::uuid[], \(roomValues)::int[]) AS r(endpoint_id, room)
                    ON r.endpoint_id = endpoints.endpoint_id
                CROSS JOIN LATERAL (
                    SELECT id FROM webhook_deliveries
                    WHERE endpoint_id = endpoints.endpoint_id AND state = 'pending' AND next_attempt_at <= \(now)
                        AND (lease_until IS NULL OR lease_until <= \(now))
                    ORDER BY next_attempt_at LIMIT COALESCE(r.room, \(perEndpoint))
                    FOR UPDATE SKIP LOCKED
                ) candidate
                LIMIT \(limit)
            )
            UPDATE webhook_deliveries d SET lease_until = \(leaseUntil), leased_by = \(dispatcherID)
            FROM picked, webhook_endpoints e
            WHERE d.id = picked.id AND e.id = d.endpoint_id
            RETURNING d.id, d.payload, d.attempts, d.step, d.created_at, \(unescaped: Self.endpointColumns(of: "e"))
            """,
            logger: logger)
        var claimed:
            [(id: UUID, payload: String, attempts: Int, step: Int, createdAt: Date, endpoint: WebhookEndpoint)] = []
        for try await row in rows {
            let columns = row.makeRandomAccess()
            let (id, payload, attempts, step, createdAt) = try (
                columns[0].decode(UUID.self), columns[1].decode(String.self), columns[2].decode(Int.self),
                columns[3].decode(Int.self), columns[4].decode(Date.self)
            )
            claimed.append((id, payload, attempts, step, createdAt, try Self.decodeEndpoint(row, from: 5)))
        }
        guard !claimed.isEmpty else { return [] }
        let secrets = try await client.withConnection { connection in
            try await Self.signingSecrets(
                of: Set(claimed.map { $0.endpoint.signingOwner }), at: now, on: connection, logger: logger)
        }
        return claimed.map { row in
            DueDelivery(
                id: row.id, endpoint: row.endpoint, payload: row.payload, attempts: row.attempts, step: row.step,
                secrets: secrets[row.endpoint.signingOwner] ?? [], createdAt: row.createdAt)
        }
    }

    /// Cancels pending deliveries (their endpoint was disabled while they were being claimed).
    public func cancelDeliveries(_ ids: [UUID], reason: String) async throws {
        guard !ids.isEmpty else { return }
        try await client.query(
            """
            UPDATE webhook_deliveries SET state = 'canceled', next_attempt_at = NULL, last_error = \(reason),
                lease_until = NULL, leased_by = NULL, updated_at = now()
            WHERE id = ANY(\(ids)::uuid[]) AND state = 'pending'
            """,
            logger: logger)
    }

    /// Gives leases back without an attempt (an endpoint over its concurrency limit here, or a dispatcher
    /// stopping): the deliveries are due again at `until` (at once when `nil`).
    public func releaseDeliveries(_ ids: [UUID], until: Date? = nil) async throws {
        guard !ids.isEmpty else { return }
        try await client.query(
            """
            UPDATE webhook_deliveries SET lease_until = NULL, leased_by = NULL,
                next_attempt_at = GREATEST(next_attempt_at, COALESCE(\(until)::timestamptz, next_attempt_at))
            WHERE id = ANY(\(ids)::uuid[]) AND state = 'pending'
            """,
            logger: logger)
    }

    /// Stores the outcome of attempts, in one transaction: the attempt log, each delivery's new state (delivered,
    /// due again after the schedule's next wait or the receiver's `Retry-After`, or failed), and each endpoint's
    /// circuit. An endpoint whose failures reach the threshold has its circuit opened (claims pass over it until it
    /// may close); one that answered 410 Gone is disabled and its pending deliveries canceled.
    ///
    /// Only the dispatcher holding a delivery's lease may record it: an attempt whose lease passed and was taken by
    /// another dispatcher is logged but changes nothing (the other attempt decides).
    public func recordAttempts(_ records: [WebhookAttemptRecord], dispatcherID: String, at now: Date) async throws {
        guard !records.isEmpty else { return }
        let logger = self.logger
        var deliveryIDs: [UUID] = [], attemptNumbers: [Int] = [], starts: [Date] = [], durations: [Int] = []
        var statuses: [Int] = [], errors: [String] = [], states: [String] = [], nextAttempts: [Date] = []
        var steps: [Int] = []
        var failuresByEndpoint: [UUID: Int] = [:]
        var succeeded = Set<UUID>()
        var gone = Set<UUID>()
        for record in records {
            let delivery = record.delivery
            deliveryIDs.append(delivery.id)
            attemptNumbers.append(delivery.attempts + 1)
            starts.append(record.startedAt)
            durations.append(Int(record.duration.timeInterval * 1000))
            var status = -1
            var error = ""
            var state = "pending"
            var next = now
            var step = delivery.step
            switch record.result {
            case .delivered(let code):
                status = code
                state = "delivered"
                succeeded.insert(delivery.endpoint.id)
                failuresByEndpoint[delivery.endpoint.id] = nil
            case .failed(let code, let reason, let retryAfter):
                status = code ?? -1
                error = reason
                if let wait = WebhookRetrySchedule.delay(after: delivery.step) {
                    let honoured = min(max(wait, retryAfter ?? .zero), WebhookRetrySchedule.maximumRetryAfter)
                    next = now.addingTimeInterval(max(wait, honoured).timeInterval)
                    step += 1
                } else {
                    state = "failed"
                }
                failuresByEndpoint[delivery.endpoint.id, default: 0] += 1
                succeeded.remove(delivery.endpoint.id)
            case .gone:
                status = 410
                error = "the endpoint answered 410 Gone: disabled"
                state = "failed"
                gone.insert(delivery.endpoint.id)
            case .refused(let reason):
                error = reason
                if let wait = WebhookRetrySchedule.delay(after: delivery.step) {
                    next = now.addingTimeInterval(wait.timeInterval)
                    step += 1
                } else {
                    state = "failed"
                }
            }
            statuses.append(status)
            errors.append(error)
            states.append(state)
            nextAttempts.append(next)
            steps.append(step)
        }
        let dispatcher = dispatcherID
        try await retryingDeadlocks {
            [
                deliveryIDs, attemptNumbers, starts, durations, statuses, errors, states, nextAttempts, steps,
                succeeded, failuresByEndpoint, gone, logger
            ] connection in
            try await connection.query(
                """
                WITH input AS (
                    SELECT * FROM unnest(\(deliveryIDs)::uuid[], \(attemptNumbers)::int[], \(starts)::timestamptz[],
                        \(durations)::int[], \(statuses)::int[], \(errors)::text[], \(states)::text[],
                        \(nextAttempts)::timestamptz[], \(steps)::int[])
                        AS t(id, attempt, started_at, duration_ms, status, error, state, next_attempt_at, step)
                ),
                logged AS (
                    INSERT INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms, response_status,
                        error, dispatcher_id)
                    SELECT input.id, attempt, started_at, duration_ms, NULLIF(status, -1), NULLIF(error, ''),
                        \(dispatcher)
                    FROM input JOIN webhook_deliveries d ON d.id = input.id
                )
                UPDATE webhook_deliveries d SET state = input.state, attempts = d.attempts + 1, step = input.step,
                    next_attempt_at = CASE WHEN input.state = 'pending' THEN input.next_attempt_at END,
                    last_status = NULLIF(input.status, -1), last_error = NULLIF(input.error, ''),
                    delivered_at = CASE WHEN input.state = 'delivered' THEN \(now) ELSE d.delivered_at END,
                    lease_until = NULL, leased_by = NULL, updated_at = now()
                FROM input
                WHERE d.id = input.id AND d.state = 'pending' AND d.leased_by = \(dispatcher)
                """,
                logger: logger)
            if !succeeded.isEmpty {
                // Most endpoints are healthy: the condition spares their rows a write (and a lock) per delivery.
                try await connection.query(
                    """
                    UPDATE webhook_endpoints SET consecutive_failures = 0, circuit_open_until = NULL
                    WHERE id = ANY(\(Array(succeeded))::uuid[])
                        AND (consecutive_failures <> 0 OR circuit_open_until IS NOT NULL)
                    """,
                    logger: logger)
            }
            for (endpoint, failures) in failuresByEndpoint.sorted(by: { $0.key.uuidString < $1.key.uuidString }) {
                // A circuit that opens now starts at the threshold however many attempts failed at once (those in
                // flight fail together); past it, each failed probe doubles the cool-down.
                let threshold = WebhookCircuit.threshold
                let rows = try await connection.query(
                    """
                    UPDATE webhook_endpoints SET consecutive_failures = CASE
                        WHEN consecutive_failures < \(threshold) AND consecutive_failures + \(failures) >= \(threshold)
                        THEN \(threshold) ELSE consecutive_failures + \(failures) END
                    WHERE id = \(endpoint) RETURNING consecutive_failures
                    """,
                    logger: logger)
                var total = 0
                for try await value in rows.decode(Int.self) { total = value }
                guard let cooldown = WebhookCircuit.cooldown(afterFailures: total) else { continue }
                let until = now.addingTimeInterval(cooldown.timeInterval)
                // Its deliveries wait for the circuit without spending attempts: claims pass over an endpoint whose
                // circuit is open (its deliveries keep their own times, so opening costs one row, not its backlog).
                try await connection.query(
                    "UPDATE webhook_endpoints SET circuit_open_until = \(until) WHERE id = \(endpoint)",
                    logger: logger)
            }
            for endpoint in gone.sorted(by: { $0.uuidString < $1.uuidString }) {
                try await connection.query(
                    """
                    UPDATE webhook_endpoints SET enabled = false, disabled_reason = 'the endpoint answered 410 Gone',
                        updated_at = now()
                    WHERE id = \(endpoint)
                    """,
                    logger: logger)
                try await Self.cancelPending(
                    endpoint: endpoint, reason: "the endpoint answered 410 Gone", on: connection, logger: logger)
            }
        }
    }

    /// Fails pending deliveries older than the whole retry schedule (they waited behind an open circuit for
    /// longer than their attempts would have taken); returns how many.
    public func failStaleDeliveries(olderThan age: Duration, at now: Date) async throws -> Int {
        let rows = try await client.query(
            """
            UPDATE webhook_deliveries SET state = 'failed', next_attempt_at = NULL,
                last_error = 'not delivered within the retry schedule', updated_at = now()
            WHERE state = 'pending' AND created_at < \(now.addingTimeInterval(-age.timeInterval))
                AND (lease_until IS NULL OR lease_until <= \(now))
            RETURNING 1
            """,
            logger: logger)
        var count = 0
        for try await _ in rows { count += 1 }
        return count
    }

    /// Deletes up to `limit` finished deliveries (delivered, failed or canceled before `cutoff`) with their attempts;
    /// returns how many. Rows another dispatcher is deleting at the same moment are skipped.
    public func purgeFinishedDeliveries(finishedBefore cutoff: Date, limit: Int) async throws -> Int {
        let rows = try await client.query(
            """
            DELETE FROM webhook_deliveries WHERE id IN (
                SELECT id FROM webhook_deliveries WHERE state <> 'pending' AND updated_at < \(cutoff)
                ORDER BY updated_at LIMIT \(limit) FOR UPDATE SKIP LOCKED)
            RETURNING 1
            """,
            logger: logger)
        var count = 0
        for try await _ in rows { count += 1 }
        return count
    }

    /// Pending deliveries: how many are due now, and how many wait for a later attempt (or for their endpoint's
    /// circuit to close).
    public func webhookBacklog(at now: Date) async throws -> (due: Int, waiting: Int) {
        let rows = try await client.query(
            """
            SELECT count(*) FILTER (WHERE d.next_attempt_at <= \(now) AND NOT open),
                count(*) FILTER (WHERE d.next_attempt_at > \(now) OR open)
            FROM webhook_deliveries d
            JOIN LATERAL (
                SELECT COALESCE(circuit_open_until > \(now), false) AS open FROM webhook_endpoints e
                WHERE e.id = d.endpoint_id
            ) circuit ON true
            WHERE d.state = 'pending'
            """,
            logger: logger)
        for try await (due, waiting) in rows.decode((Int, Int).self) { return (due, waiting) }
        return (0, 0)
    }

    // MARK: - Helpers

    /// A transaction, run again (up to three times) when PostgreSQL ends it as a deadlock victim or a serialization
    /// failure: the dispatcher updates deliveries then their endpoint, while deleting or disabling an endpoint locks
    /// it then its deliveries, so the two can meet; each is complete or absent, and simply tried again.
    func retryingDeadlocks<Result: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        var attempt = 1
        while true {
            do {
                return try await client.withTransaction(logger: logger) { connection in try await body(connection) }
            } catch  where attempt < 3 && ["40P01", "40001"].contains(Self.sqlState(of: error) ?? "") {
                attempt += 1
                try await Task.sleep(for: .milliseconds(Int64.random(in: 5...50)))
            }
        }
    }

    static func cancelPending(
        endpoint: UUID, reason: String, on connection: PostgresConnection, logger: Logger
    )
        async throws
    {
        try await connection.query(
            """
            UPDATE webhook_deliveries SET state = 'canceled', next_attempt_at = NULL, last_error = \(reason),
                lease_until = NULL, leased_by = NULL, updated_at = now()
            WHERE endpoint_id = \(endpoint) AND state = 'pending'
            """,
            logger: logger)
    }

    /// An endpoint from ``endpointColumns`` starting at column `first` of the row.
    static func decodeEndpoint(_ row: PostgresRow, from first: Int = 0) throws -> WebhookEndpoint {
        let columns = row.makeRandomAccess()
        let id = try columns[first].decode(UUID.self)
        let organization = try columns[first + 1].decode(UUID.self)
        let kind = try columns[first + 2].decode(String.self)
        let url = try columns[first + 3].decode(String.self)
        let description = try columns[first + 4].decode(String.self)
        let types = try columns[first + 5].decode([String].self)
        let enabled = try columns[first + 6].decode(Bool.self)
        let disabledReason = try columns[first + 7].decode(String?.self)
        let failures = try columns[first + 8].decode(Int.self)
        let openUntil = try columns[first + 9].decode(Date?.self)
        let createdAt = try columns[first + 10].decode(Date.self)
        let updatedAt = try columns[first + 11].decode(Date.self)
        guard let kind = WebhookEndpointKind(rawValue: kind) else { throw StoreError.corruptRow("endpoint kind") }
        var eventTypes = Set<WebhookEventType>()
        for type in types {
            guard let value = WebhookEventType(rawValue: type) else {
                throw StoreError.corruptRow("event type \(type)")
            }
            eventTypes.insert(value)
        }
        return WebhookEndpoint(
            id: id, organizationID: OrganizationID(uuid: organization), kind: kind, url: url, description: description,
            eventTypes: eventTypes, enabled: enabled, disabledReason: disabledReason, consecutiveFailures: failures,
            circuitOpenUntil: openUntil, createdAt: createdAt, updatedAt: updatedAt)
    }

    static func decodeDelivery(_ row: PostgresRow) throws -> WebhookDelivery {
        let (
            id, organization, endpoint, call, event, type, payload, state, attempts, next, lastStatus, lastError,
            createdAt, deliveredAt
        ) = try row.decode(
            (UUID, UUID, UUID, UUID?, UUID?, String, String, String, Int, Date?, Int?, String?, Date, Date?).self)
        guard let state = WebhookDeliveryState(rawValue: state) else { throw StoreError.corruptRow("delivery state") }
        return WebhookDelivery(
            id: id, organizationID: OrganizationID(uuid: organization), endpointID: endpoint,
            callID: call.map { CallID(uuid: $0) }, eventID: event, eventType: type, payload: payload, state: state,
            attempts: attempts, nextAttemptAt: next, lastStatus: lastStatus, lastError: lastError,
            createdAt: createdAt, deliveredAt: deliveredAt)
    }
}
