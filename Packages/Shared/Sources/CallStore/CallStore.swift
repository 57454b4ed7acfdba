import CallDomain
import Foundation
import Logging
import PostgresNIO

/// The call history, organizations, users, API keys and the audit log, in PostgreSQL.
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

    /// A transaction whose body's own error (a refusal such as ``CampaignStoreError``, or a deferral) reaches the
    /// caller as itself once the transaction is rolled back, rather than wrapped in PostgresNIO's transaction error.
    func transaction<Result: Sendable>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result {
        do {
            return try await client.withTransaction(logger: logger) { connection in try await body(connection) }
        } catch let error as PostgresTransactionError {
            if let cause = error.closureError, error.rollbackError == nil { throw cause }
            throw error
        }
    }
}
