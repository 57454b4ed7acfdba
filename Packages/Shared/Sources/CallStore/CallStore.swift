import CallDomain
import Foundation
import Logging
import PostgresNIO

/// The call history and users, in PostgreSQL.
///
/// Every change of a call's status is a conditional update (the stored status must be one the state machine allows
/// to move to the new one, and the stored `seq` must be lower), so concurrent writers never need locks of their
/// own: whoever loses a race learns it from the update's result.
public struct CallStore: Sendable {
    /// The pooled client; its `run()` must be running (add it to the service group).
    public let client: PostgresClient
    let logger: Logger

    /// Creates a store on a client.
    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// A round trip to the server, for readiness checks.
    public func ping() async throws {
        try await client.query("SELECT 1", logger: logger)
    }

    // MARK: - Users

    /// Creates a user; throws `StoreError.duplicateUsername` if the name is taken.
    public func createUser(username: String, passwordHash: String, role: UserRole) async throws -> User {
        let id = UUID()
        do {
            let rows = try await client.query(
                """
                INSERT INTO users (id, username, password_hash, role) VALUES (\(id), \(username), \(passwordHash), \(role.rawValue))
                RETURNING \(unescaped: Self.userColumns)
                """,
                logger: logger
            )
            for try await row in rows { return try Self.decodeUser(row) }
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
            throw StoreError.duplicateUsername
        }
        throw StoreError.corruptRow("INSERT returned no row")
    }

    /// The user with this name, if any.
    public func user(named username: String) async throws -> User? {
        let rows = try await client.query(
            "SELECT \(unescaped: Self.userColumns) FROM users WHERE username = \(username)", logger: logger)
        for try await row in rows { return try Self.decodeUser(row) }
        return nil
    }

    /// The user with this id, if any.
    public func user(id: UUID) async throws -> User? {
        let rows = try await client.query(
            "SELECT \(unescaped: Self.userColumns) FROM users WHERE id = \(id)", logger: logger)
        for try await row in rows { return try Self.decodeUser(row) }
        return nil
    }

    /// Every user, by name.
    public func users() async throws -> [User] {
        let rows = try await client.query(
            "SELECT \(unescaped: Self.userColumns) FROM users ORDER BY username", logger: logger)
        var users: [User] = []
        for try await row in rows { users.append(try Self.decodeUser(row)) }
        return users
    }

    /// Enables or disables a user; returns whether the user exists.
    @discardableResult
    public func setDisabled(userID: UUID, disabled: Bool) async throws -> Bool {
        let rows = try await client.query(
            "UPDATE users SET disabled = \(disabled), updated_at = now() WHERE id = \(userID) RETURNING id",
            logger: logger)
        for try await _ in rows { return true }
        return false
    }

    /// Deletes a user; returns whether it existed.
    @discardableResult
    public func deleteUser(id: UUID) async throws -> Bool {
        let rows = try await client.query("DELETE FROM users WHERE id = \(id) RETURNING id", logger: logger)
        for try await _ in rows { return true }
        return false
    }

    static let userColumns = "id, username, password_hash, role, disabled, created_at, updated_at"

    static func decodeUser(_ row: PostgresRow) throws -> User {
        let (id, username, hash, role, disabled, createdAt, updatedAt) = try row.decode(
            (UUID, String, String, String, Bool, Date, Date).self)
        guard let role = UserRole(rawValue: role) else { throw StoreError.corruptRow("role \(role)") }
        return User(
            id: id, username: username, passwordHash: hash, role: role, disabled: disabled,
            createdAt: createdAt, updatedAt: updatedAt)
    }

    // MARK: - Idempotency keys

    /// Binds `key` of `userID` to a request fingerprint and call id, unless it is bound already.
    ///
    /// Concurrent reservations of one key serialize on the primary key: exactly one gets `.reserved`, the others
    /// see the winner's fingerprint and call id.
    public func reserveIdempotencyKey(
        userID: UUID, key: String, fingerprint: String, callID: CallID
    ) async throws
        -> IdempotencyReservation
    {
        let inserted = try await client.query(
            """
            INSERT INTO idempotency_keys (user_id, key, fingerprint, call_id)
            VALUES (\(userID), \(key), \(fingerprint), \(callID.uuid))
            ON CONFLICT (user_id, key) DO NOTHING
            RETURNING call_id
            """,
            logger: logger)
        for try await _ in inserted { return .reserved }
        let rows = try await client.query(
            "SELECT fingerprint, call_id FROM idempotency_keys WHERE user_id = \(userID) AND key = \(key)",
            logger: logger)
        for try await (fingerprint, callID) in rows.decode((String, UUID).self) {
            return .existing(fingerprint: fingerprint, callID: CallID(uuid: callID))
        }
        throw StoreError.corruptRow("idempotency key vanished between insert and select")
    }

    /// Removes a reservation whose command could not be published, so the client's retry is not mistaken for a
    /// replay of a call that was never accepted.
    public func releaseIdempotencyKey(userID: UUID, key: String) async throws {
        try await client.query(
            "DELETE FROM idempotency_keys WHERE user_id = \(userID) AND key = \(key)", logger: logger)
    }
}
