import CallDomain
import Foundation
import Logging
import PostgresNIO

// Organizations, their users and API keys, and the audit log.
//
// Every read or change of an organization's resources names the organization in its WHERE clause: a resource of
// another organization is indistinguishable from one that does not exist. Every security-relevant change writes its
// audit entry in the same transaction, so no change happens without its record.
extension CallStore {
    // MARK: - Organizations

    /// Creates an organization; throws `StoreError.duplicateOrganization` if the name is taken.
    public func createOrganization(
        name: String, limits: OrganizationLimits = .none, by actor: AuditActor
    ) async throws -> Organization {
        let id = OrganizationID.generate()
        let logger = self.logger
        do {
            return try await client.withTransaction(logger: logger) { connection in
                let rows = try await connection.query(
                    """
                    INSERT INTO organizations (id, name, max_live_calls, max_calls_per_second)
                    VALUES (\(id.uuid), \(name), \(limits.maxLiveCalls), \(limits.maxCallsPerSecond))
                    RETURNING \(unescaped: Self.organizationColumns)
                    """,
                    logger: logger)
                var created: Organization?
                for try await row in rows { created = try Self.decodeOrganization(row) }
                guard let created else { throw StoreError.corruptRow("INSERT returned no row") }
                try await Self.audit(
                    AuditRecord(
                        organizationID: id, action: "organization.created", targetType: "organization",
                        targetID: id.description, detail: ["name": name].merging(limits.auditDetail) { $1 }),
                    by: actor, on: connection, logger: logger)
                return created
            }
        } catch  where Self.sqlState(of: error) == "23505" {
            throw StoreError.duplicateOrganization
        }
    }

    /// The organization with this name, if any.
    public func organization(named name: String) async throws -> Organization? {
        let rows = try await client.query(
            "SELECT \(unescaped: Self.organizationColumns) FROM organizations WHERE name = \(name)", logger: logger)
        for try await row in rows { return try Self.decodeOrganization(row) }
        return nil
    }

    /// The organization with this id, if any.
    public func organization(id: OrganizationID) async throws -> Organization? {
        let rows = try await client.query(
            "SELECT \(unescaped: Self.organizationColumns) FROM organizations WHERE id = \(id.uuid)", logger: logger)
        for try await row in rows { return try Self.decodeOrganization(row) }
        return nil
    }

    /// Every organization, by name (for platform operators).
    public func organizations() async throws -> [Organization] {
        let rows = try await client.query(
            "SELECT \(unescaped: Self.organizationColumns) FROM organizations ORDER BY name", logger: logger)
        var organizations: [Organization] = []
        for try await row in rows { organizations.append(try Self.decodeOrganization(row)) }
        return organizations
    }

    /// Replaces an organization's limits (audited in its log); `nil` when there is no such organization.
    public func setLimits(
        _ limits: OrganizationLimits, of id: OrganizationID, by actor: AuditActor
    ) async throws -> Organization? {
        let logger = self.logger
        return try await client.withTransaction(logger: logger) { connection in
            let rows = try await connection.query(
                """
                UPDATE organizations SET max_live_calls = \(limits.maxLiveCalls),
                    max_calls_per_second = \(limits.maxCallsPerSecond)
                WHERE id = \(id.uuid) RETURNING \(unescaped: Self.organizationColumns)
                """,
                logger: logger)
            var updated: Organization?
            for try await row in rows { updated = try Self.decodeOrganization(row) }
            guard let updated else { return nil }
            try await Self.audit(
                AuditRecord(
                    organizationID: id, action: "organization.limits_changed", targetType: "organization",
                    targetID: id.description, detail: limits.auditDetail),
                by: actor, on: connection, logger: logger)
            return updated
        }
    }

    /// The organization's calls being dialed or up.
    public func liveCallCount(in organization: OrganizationID) async throws -> Int {
        let rows = try await client.query(Self.liveCallCountQuery(organization), logger: logger)
        for try await count in rows.decode(Int.self) { return count }
        return 0
    }

    /// Counts what the live-call limit counts (served by `calls_org_live_idx`), for the gateway and for claims.
    static func liveCallCountQuery(_ organization: OrganizationID) -> PostgresQuery {
        """
        SELECT count(*)::bigint FROM calls WHERE organization_id = \(organization.uuid)
            AND status IN ('dispatched', 'initiated', 'ringing', 'answered')
        """
    }

    static let organizationColumns = "id, name, created_at, max_live_calls, max_calls_per_second"

    static func decodeOrganization(_ row: PostgresRow) throws -> Organization {
        let (id, name, createdAt, maxLive, maxRate) = try row.decode((UUID, String, Date, Int?, Double?).self)
        return Organization(
            id: OrganizationID(uuid: id), name: name, createdAt: createdAt,
            limits: OrganizationLimits(maxLiveCalls: maxLive, maxCallsPerSecond: maxRate))
    }

    // MARK: - Users

    /// Creates a user in `organization`; throws `StoreError.duplicateUsername` if the name is taken (names are
    /// unique across organizations: they log in by name) and `StoreError.unknownOrganization`.
    public func createUser(
        username: String, passwordHash: String, role: UserRole, organization: OrganizationID,
        platformOperator: Bool = false, by actor: AuditActor
    ) async throws -> User {
        let id = UUID()
        let logger = self.logger
        do {
            return try await client.withTransaction(logger: logger) { connection in
                let rows = try await connection.query(
                    """
                    INSERT INTO users (id, username, password_hash, role, organization_id, platform_operator)
                    VALUES (\(id), \(username), \(passwordHash), \(role.rawValue), \(organization.uuid),
                        \(platformOperator))
                    RETURNING \(unescaped: Self.userColumns)
                    """,
                    logger: logger)
                var created: User?
                for try await row in rows { created = try Self.decodeUser(row) }
                guard let created else { throw StoreError.corruptRow("INSERT returned no row") }
                var detail = ["username": username, "role": role.rawValue]
                if platformOperator { detail["platform_operator"] = "true" }
                try await Self.audit(
                    AuditRecord(
                        organizationID: organization, action: "user.created", targetType: "user",
                        targetID: id.uuidString.lowercased(), detail: detail),
                    by: actor, on: connection, logger: logger)
                return created
            }
        } catch  where Self.sqlState(of: error) == "23505" {
            throw StoreError.duplicateUsername
        } catch  where Self.sqlState(of: error) == "23503" {
            throw StoreError.unknownOrganization
        }
    }

    /// The user with this name, in any organization (for logging in).
    public func user(named username: String) async throws -> User? {
        let rows = try await client.query(
            "SELECT \(unescaped: Self.userColumns) FROM users WHERE username = \(username)", logger: logger)
        for try await row in rows { return try Self.decodeUser(row) }
        return nil
    }

    /// The user with this id, in any organization (for checking a token, whose user names its organization).
    public func user(id: UUID) async throws -> User? {
        let rows = try await client.query(
            "SELECT \(unescaped: Self.userColumns) FROM users WHERE id = \(id)", logger: logger)
        for try await row in rows { return try Self.decodeUser(row) }
        return nil
    }

    /// The users of an organization, by name.
    public func users(in organization: OrganizationID) async throws -> [User] {
        let rows = try await client.query(
            """
            SELECT \(unescaped: Self.userColumns) FROM users WHERE organization_id = \(organization.uuid)
            ORDER BY username
            """,
            logger: logger)
        var users: [User] = []
        for try await row in rows { users.append(try Self.decodeUser(row)) }
        return users
    }

    /// Changes a user of `organization` (disabled flag, role); `nil` when it has no such user. Each change is
    /// audited; a request that changes nothing records nothing.
    public func updateUser(
        id: UUID, in organization: OrganizationID, disabled: Bool?, role: UserRole?, by actor: AuditActor
    ) async throws -> User? {
        let logger = self.logger
        return try await client.withTransaction(logger: logger) { connection in
            let rows = try await connection.query(
                """
                SELECT \(unescaped: Self.userColumns) FROM users
                WHERE id = \(id) AND organization_id = \(organization.uuid) FOR UPDATE
                """,
                logger: logger)
            var found: User?
            for try await row in rows { found = try Self.decodeUser(row) }
            guard var user = found else { return nil }
            var records: [AuditRecord] = []
            let target = id.uuidString.lowercased()
            if let disabled, disabled != user.disabled {
                user.disabled = disabled
                records.append(
                    AuditRecord(
                        organizationID: organization, action: disabled ? "user.disabled" : "user.enabled",
                        targetType: "user", targetID: target, detail: ["username": user.username]))
            }
            if let role, role != user.role {
                records.append(
                    AuditRecord(
                        organizationID: organization, action: "user.role_changed", targetType: "user",
                        targetID: target,
                        detail: ["username": user.username, "from": user.role.rawValue, "to": role.rawValue]))
                user.role = role
            }
            guard !records.isEmpty else { return user }
            let updated = try await connection.query(
                """
                UPDATE users SET disabled = \(user.disabled), role = \(user.role.rawValue), updated_at = now()
                WHERE id = \(id) RETURNING \(unescaped: Self.userColumns)
                """,
                logger: logger)
            for try await row in updated { user = try Self.decodeUser(row) }
            for record in records { try await Self.audit(record, by: actor, on: connection, logger: logger) }
            return user
        }
    }

    /// Deletes a user of `organization`; returns whether it existed there.
    public func deleteUser(id: UUID, in organization: OrganizationID, by actor: AuditActor) async throws -> Bool {
        let logger = self.logger
        return try await client.withTransaction(logger: logger) { connection in
            let rows = try await connection.query(
                """
                DELETE FROM users WHERE id = \(id) AND organization_id = \(organization.uuid) RETURNING username
                """,
                logger: logger)
            var deleted: String?
            for try await name in rows.decode(String.self) { deleted = name }
            guard let deleted else { return false }
            try await Self.audit(
                AuditRecord(
                    organizationID: organization, action: "user.deleted", targetType: "user",
                    targetID: id.uuidString.lowercased(), detail: ["username": deleted]),
                by: actor, on: connection, logger: logger)
            return true
        }
    }

    static let userColumns =
        "id, username, password_hash, role, organization_id, platform_operator, disabled, created_at, updated_at"

    static func decodeUser(_ row: PostgresRow) throws -> User {
        let (id, username, hash, role, organization, platformOperator, disabled, createdAt, updatedAt) =
            try row.decode((UUID, String, String, String, UUID, Bool, Bool, Date, Date).self)
        guard let role = UserRole(rawValue: role) else { throw StoreError.corruptRow("role \(role)") }
        return User(
            id: id, username: username, passwordHash: hash, role: role,
            organizationID: OrganizationID(uuid: organization), platformOperator: platformOperator,
            disabled: disabled, createdAt: createdAt, updatedAt: updatedAt)
    }

    // MARK: - API keys

    /// Stores a new key; the caller shows the secret once and forgets it.
    public func createAPIKey(_ key: NewAPIKey, by actor: AuditActor) async throws -> APIKey {
        let id = UUID()
        let scopes = key.scopes.map(\.rawValue).sorted()
        let logger = self.logger
        return try await client.withTransaction(logger: logger) { connection in
            let rows = try await connection.query(
                """
                INSERT INTO api_keys (id, organization_id, name, lookup_id, key_hash, scopes, created_by, expires_at)
                VALUES (\(id), \(key.organizationID.uuid), \(key.name), \(key.lookupID), \(key.keyHash),
                    \(scopes), \(key.createdBy), \(key.expiresAt))
                RETURNING \(unescaped: Self.apiKeyColumns)
                """,
                logger: logger)
            var created: APIKey?
            for try await row in rows { created = try Self.decodeAPIKey(row) }
            guard let created else { throw StoreError.corruptRow("INSERT returned no row") }
            var detail = ["name": key.name, "scopes": scopes.joined(separator: " ")]
            if let expiresAt = key.expiresAt { detail["expires_at"] = expiresAt.ISO8601Format() }
            try await Self.audit(
                AuditRecord(
                    organizationID: key.organizationID, action: "api_key.created", targetType: "api_key",
                    targetID: id.uuidString.lowercased(), detail: detail),
                by: actor, on: connection, logger: logger)
            return created
        }
    }

    /// The keys of an organization, newest first.
    public func apiKeys(in organization: OrganizationID) async throws -> [APIKey] {
        let rows = try await client.query(
            """
            SELECT \(unescaped: Self.apiKeyColumns) FROM api_keys WHERE organization_id = \(organization.uuid)
            ORDER BY created_at DESC, id
            """,
            logger: logger)
        var keys: [APIKey] = []
        for try await row in rows { keys.append(try Self.decodeAPIKey(row)) }
        return keys
    }

    /// One key of an organization.
    public func apiKey(id: UUID, in organization: OrganizationID) async throws -> APIKey? {
        let rows = try await client.query(
            """
            SELECT \(unescaped: Self.apiKeyColumns) FROM api_keys
            WHERE id = \(id) AND organization_id = \(organization.uuid)
            """,
            logger: logger)
        for try await row in rows { return try Self.decodeAPIKey(row) }
        return nil
    }

    /// The key with this lookup id, in any organization (for authenticating a request that presents it).
    public func apiKey(lookupID: String) async throws -> APIKey? {
        let rows = try await client.query(
            "SELECT \(unescaped: Self.apiKeyColumns) FROM api_keys WHERE lookup_id = \(lookupID)", logger: logger)
        for try await row in rows { return try Self.decodeAPIKey(row) }
        return nil
    }

    /// Revokes a key of `organization` (at once: every gateway reads the key on each request); `nil` when it has
    /// no such key. Revoking a revoked key changes nothing and records nothing.
    public func revokeAPIKey(id: UUID, in organization: OrganizationID, by actor: AuditActor) async throws -> APIKey? {
        let logger = self.logger
        return try await client.withTransaction(logger: logger) { connection in
            let rows = try await connection.query(
                """
                UPDATE api_keys SET revoked_at = now()
                WHERE id = \(id) AND organization_id = \(organization.uuid) AND revoked_at IS NULL
                RETURNING \(unescaped: Self.apiKeyColumns)
                """,
                logger: logger)
            var revoked: APIKey?
            for try await row in rows { revoked = try Self.decodeAPIKey(row) }
            if let revoked {
                try await Self.audit(
                    AuditRecord(
                        organizationID: organization, action: "api_key.revoked", targetType: "api_key",
                        targetID: id.uuidString.lowercased(), detail: ["name": revoked.name]),
                    by: actor, on: connection, logger: logger)
                return revoked
            }
            let existing = try await connection.query(
                """
                SELECT \(unescaped: Self.apiKeyColumns) FROM api_keys
                WHERE id = \(id) AND organization_id = \(organization.uuid)
                """,
                logger: logger)
            for try await row in existing { return try Self.decodeAPIKey(row) }
            return nil
        }
    }

    /// Records that a key authenticated a request, unless that was recorded within the last minute (a write per
    /// request would cost more than the request).
    public func recordAPIKeyUse(id: UUID, at now: Date) async throws {
        try await client.query(
            """
            UPDATE api_keys SET last_used_at = \(now)
            WHERE id = \(id) AND (last_used_at IS NULL OR last_used_at < \(now) - interval '1 minute')
            """,
            logger: logger)
    }

    static let apiKeyColumns = """
        id, organization_id, name, lookup_id, key_hash, scopes, created_by, created_at, expires_at, revoked_at,
        last_used_at
        """

    static func decodeAPIKey(_ row: PostgresRow) throws -> APIKey {
        let (id, organization, name, lookupID, hash, scopes, createdBy, createdAt, expiresAt, revokedAt, lastUsedAt) =
            try row.decode((UUID, UUID, String, String, Data, [String], UUID?, Date, Date?, Date?, Date?).self)
        var parsed = Set<APIScope>()
        for scope in scopes {
            guard let value = APIScope(rawValue: scope) else { throw StoreError.corruptRow("scope \(scope)") }
            parsed.insert(value)
        }
        return APIKey(
            id: id, organizationID: OrganizationID(uuid: organization), name: name, lookupID: lookupID,
            keyHash: hash, scopes: parsed, createdBy: createdBy, createdAt: createdAt, expiresAt: expiresAt,
            revokedAt: revokedAt, lastUsedAt: lastUsedAt)
    }

    /// The SQLSTATE of a server error, also when a transaction wrapped it.
    static func sqlState(of error: any Error) -> String? {
        if let error = error as? PSQLError { return error.serverInfo?[.sqlState] }
        if let error = error as? PostgresTransactionError, let cause = error.closureError {
            return sqlState(of: cause)
        }
        return nil
    }

    // MARK: - Audit log

    /// One change to record.
    struct AuditRecord {
        var organizationID: OrganizationID
        var action: String
        var targetType: String
        var targetID: String
        var detail: [String: String]
    }

    static func audit(
        _ record: AuditRecord, by actor: AuditActor, on connection: PostgresConnection, logger: Logger
    ) async throws {
        let detail = try WireCoding.encodeText(record.detail)
        try await connection.query(
            """
            INSERT INTO audit_events (organization_id, actor, action, target_type, target_id, detail, request_id)
            VALUES (\(record.organizationID.uuid), \(actor.name), \(record.action), \(record.targetType),
                \(record.targetID), \(detail)::jsonb, \(actor.requestID))
            """,
            logger: logger)
    }

    /// The organization's audit log, newest first, `limit` entries (1...500) with ids below `before`.
    public func auditEvents(
        in organization: OrganizationID, limit: Int, before: Int64?
    ) async throws
        -> [AuditEvent]
    {
        let limit = min(max(limit, 1), 500)
        let rows = try await client.query(
            """
            SELECT id, occurred_at, actor, action, target_type, target_id, detail::text, request_id
            FROM audit_events
            WHERE organization_id = \(organization.uuid) AND id < \(before ?? Int64.max)
            ORDER BY id DESC LIMIT \(limit)
            """,
            logger: logger)
        var events: [AuditEvent] = []
        for try await (id, occurredAt, actor, action, targetType, targetID, detail, requestID) in rows.decode(
            (Int64, Date, String, String, String, String, String, String?).self)
        {
            events.append(
                AuditEvent(
                    id: id, organizationID: organization, occurredAt: occurredAt, actor: actor, action: action,
                    targetType: targetType, targetID: targetID,
                    detail: try WireCoding.decode([String: String].self, from: Array(detail.utf8)),
                    requestID: requestID))
        }
        return events
    }
}
