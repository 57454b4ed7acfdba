import CallDomain
import CallStore
import Foundation

/// The users the gateway authenticates and administers.
public protocol UserRepository: Sendable {
    /// Creates a user; throws `StoreError.duplicateUsername` if the name is taken.
    func createUser(username: String, passwordHash: String, role: UserRole) async throws -> User
    /// The user with this name, if any.
    func user(named username: String) async throws -> User?
    /// The user with this id, if any.
    func user(id: UUID) async throws -> User?
    /// Every user, by name.
    func users() async throws -> [User]
    /// Enables or disables a user; returns whether the user exists.
    func setDisabled(userID: UUID, disabled: Bool) async throws -> Bool
    /// Deletes a user; returns whether it existed.
    func deleteUser(id: UUID) async throws -> Bool
}

/// The call history the gateway answers queries from, and the idempotency keys it reserves.
public protocol CallRepository: Sendable {
    /// The call with its timeline, or `nil` (also for a call accepted but not yet recorded by the history writer).
    func call(id: CallID) async throws -> CallRecord?
    /// The call's timeline after `afterSeq`, oldest first.
    func timeline(of id: CallID, afterSeq: Int) async throws -> [CallTimelineEntry]
    /// One page of calls, newest first.
    func listCalls(filter: CallFilter, limit: Int, cursor: CallCursor?) async throws -> CallPage
    /// Binds an idempotency key to a fingerprint and call id unless it is bound already.
    func reserveIdempotencyKey(
        userID: UUID, key: String, fingerprint: String, callID: CallID
    ) async throws
        -> IdempotencyReservation
    /// Removes a reservation whose command could not be published.
    func releaseIdempotencyKey(userID: UUID, key: String) async throws
    /// A round trip to the database.
    func ping() async throws
}

extension CallStore: UserRepository {}
extension CallStore: CallRepository {}
