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

/// Checks the bearer token and its user on every request of the authenticated group.
///
/// Every refusal is a 401 with a `WWW-Authenticate` challenge; the reason is logged (without the token) but the
/// client only learns that the token is not valid.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = GatewayRequestContext

    let tokens: TokenService
    let users: UserDirectory

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard let authorization = request.headers[.authorization] else {
            throw Problem.unauthenticated("a bearer token is required", tokenPresented: false)
        }
        let parts = authorization.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw Problem.unauthenticated("use the Authorization: Bearer <token> scheme", tokenPresented: false)
        }
        let token = parts[1].trimmingCharacters(in: .whitespaces)
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
        var context = context
        context.identity = AuthenticatedUser(
            id: user.id, username: user.username, role: user.role, tokenID: verified.tokenID)
        context.annotations.username = user.username
        context.logger[metadataKey: "user.name"] = .string(user.username)
        return try await next(request, context)
    }
}
