import CallStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// Current user records by id, re-read after a short time so that disabling or deleting a user takes effect
/// within `USER_CACHE_SECONDS` while the hot path (placing calls) does not read the database on every request.
final class UserDirectory: Sendable {
    private let repository: any UserRepository
    private let ttl: Duration
    /// `nil` values are remembered too: a deleted user's tokens are refused without a read each time.
    private let entries = ExpiringCache<UUID, User?, ContinuousClock.Instant>(capacity: 10_000)

    init(repository: any UserRepository, ttlSeconds: Double) {
        self.repository = repository
        ttl = .milliseconds(Int64(ttlSeconds * 1000))
    }

    /// The user as the database knows it (at most `ttl` old), or `nil` when it does not exist.
    func user(id: UUID) async throws -> User? {
        let now = ContinuousClock.now
        if ttl > .zero, let user = entries.value(for: id, now: now) {
            return user
        }
        let user = try await repository.user(id: id)
        if ttl > .zero {
            entries.insert(user, for: id, until: now + ttl, now: now)
        }
        return user
    }

    /// Forgets a user at once (after an admin changed it through this instance).
    func invalidate(_ id: UUID) {
        entries.remove(id)
    }
}

/// Checks the credential of every request of the authenticated group: a user's bearer token (and that the user
/// may still act) or an API key (read from the database on each request, so a revocation applies at once on every
/// gateway).
///
/// Every refusal is a 401 with a `WWW-Authenticate` challenge; the reason is logged (without the credential) but the
/// client only learns that it is not valid.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = GatewayRequestContext

    let tokens: TokenService
    let users: UserDirectory
    let keys: any OrganizationRepository

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard let authorization = request.headers[.authorization] else {
            throw Problem.unauthenticated("a bearer token or API key is required", tokenPresented: false)
        }
        let parts = authorization.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw Problem.unauthenticated("use the Authorization: Bearer <token> scheme", tokenPresented: false)
        }
        let credential = String(parts[1].trimmingHTTPWhitespace)
        let caller =
            if APIKeySecret.looksLikeKey(credential) {
                try await callerWithKey(credential, context: context)
            } else {
                try await callerWithToken(credential, context: context)
            }
        var context = context
        context.identity = caller
        context.annotations.username = caller.name
        context.logger[metadataKey: "user.name"] = .string(caller.name)
        context.logger[metadataKey: "organization.id"] = .stringConvertible(caller.organizationID)
        return try await next(request, context)
    }

    private func callerWithToken(_ token: String, context: Context) async throws -> Caller {
        let verified: (userID: UUID, tokenID: String)
        do {
            verified = try await tokens.verify(token)
        } catch {
            context.logger.info("token refused", metadata: ["auth.reason": .string(error.description)])
            throw Problem.unauthenticated("the access token is not valid", tokenPresented: true)
        }
        let user: User?
        do {
            user = try await users.user(id: verified.userID)
        } catch {
            context.logger.error("user lookup failed", metadata: ["error": .string(String(describing: error))])
            throw Problem.retryLater(.databaseUnavailable, detail: "cannot check the user right now", after: 2)
        }
        guard let user, !user.disabled else {
            context.logger.info(
                "token refused",
                metadata: ["auth.reason": .string(user == nil ? "user deleted" : "user disabled")])
            throw Problem.unauthenticated("the access token is not valid", tokenPresented: true)
        }
        return Caller(user: user, tokenID: verified.tokenID)
    }

    private func callerWithKey(_ text: String, context: Context) async throws -> Caller {
        guard let lookupID = APIKeySecret.lookupID(of: text) else {
            context.logger.info("API key refused", metadata: ["auth.reason": "malformed"])
            throw Problem.unauthenticated("the API key is not valid", tokenPresented: true)
        }
        let key: APIKey?
        do {
            key = try await keys.apiKey(lookupID: lookupID)
        } catch {
            context.logger.error("API key lookup failed", metadata: ["error": .string(String(describing: error))])
            throw Problem.retryLater(.databaseUnavailable, detail: "cannot check the API key right now", after: 2)
        }
        let now = Date()
        guard let key, APIKeySecret.matches(text, hash: key.keyHash), key.isUsable(at: now) else {
            let reason =
                if let key {
                    key.revokedAt != nil ? "revoked" : (key.isUsable(at: now) ? "wrong secret" : "expired")
                } else { "unknown lookup id" }
            context.logger.info(
                "API key refused", metadata: ["auth.reason": .string(reason), "api_key.lookup_id": .string(lookupID)])
            throw Problem.unauthenticated("the API key is not valid", tokenPresented: true)
        }
        if key.lastUsedAt.map({ now.timeIntervalSince($0) >= 60 }) ?? true {
            do {
                try await keys.recordAPIKeyUse(id: key.id, at: now)
            } catch {
                // The request is authenticated; only the last-use time is late.
                context.logger.warning(
                    "could not record the API key's use", metadata: ["error": .string(String(describing: error))])
            }
        }
        return Caller(key: key)
    }
}
