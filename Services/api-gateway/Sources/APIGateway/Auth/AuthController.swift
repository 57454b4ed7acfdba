import CallDomain
import CallStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import NIOCore

/// `POST /api/v1/auth/token`: the OAuth2 password grant (form or JSON) answering a bearer token.
struct AuthController: Sendable {
    typealias Context = GatewayRequestContext

    let users: any UserRepository
    let hasher: PasswordHasher
    let tokens: TokenService
    let limiter: RateLimiter
    let metrics: GatewayMetrics
    let maxBodyBytes: Int

    func addRoutes(to group: RouterGroup<Context>) {
        group.post("auth/token", use: token)
    }

    struct TokenResponse: Encodable {
        var accessToken: String
        var tokenType = "bearer"
        var expiresIn: Int

        enum CodingKeys: String, CodingKey {
            case accessToken = "access_token"
            case tokenType = "token_type"
            case expiresIn = "expires_in"
        }
    }

    @Sendable func token(_ request: Request, context: Context) async throws -> Response {
        if case .limited(let retryAfter) = limiter.check(context.clientAddress) {
            metrics.tokenRequestsLimited.increment()
            context.logger.notice(
                "token request rate limited", metadata: ["client.address": .string(context.clientAddress)])
            throw Problem.retryLater(
                .rateLimited, detail: "too many token requests from this address; retry later", after: retryAfter)
        }
        let (username, password) = try await Self.credentials(from: request, limit: maxBodyBytes)
        let user: User?
        do {
            user = try await users.user(named: username)
        } catch {
            context.logger.error("user lookup failed", metadata: ["error": .string("\(error)")])
            throw Problem.retryLater(.databaseUnavailable, detail: "cannot check credentials right now", after: 2)
        }
        // The hash is checked even for an unknown or disabled user, so every refusal takes the same time.
        let matches = try await hasher.verify(password, against: user?.passwordHash)
        guard let user, matches, !user.disabled else {
            context.logger.info(
                "token refused", metadata: ["auth.username": .string(JSONObjectReader.printable(username))])
            throw Problem(.invalidCredentials, detail: "the username or password is wrong, or the user is disabled")
        }
        let issued = try await tokens.issue(for: user)
        context.annotations.username = user.username
        context.logger.info("token issued", metadata: ["user.name": .string(user.username)])
        return try JSONResponse.make(
            TokenResponse(accessToken: issued.token, expiresIn: issued.expiresIn),
            headers: [.cacheControl: "no-store"])
    }

    /// `username` and `password` from a form (`application/x-www-form-urlencoded`) or JSON body.
    static func credentials(from request: Request, limit: Int) async throws -> (username: String, password: String) {
        let fields: [String: JSONValue]
        switch request.mediaType {
        case "application/x-www-form-urlencoded":
            let body = try await request.collectBody(limit: limit)
            fields = try Self.formFields(String(buffer: body))
        case "application/json":
            fields = try JSONInput.object(from: try await request.collectBody(limit: limit))
        default:
            throw Problem(
                .unsupportedMediaType, detail: "send application/x-www-form-urlencoded (OAuth2) or application/json")
        }
        var reader = JSONObjectReader(fields)
        reader.refuseUnknown(["username", "password", "grant_type", "scope", "client_id", "client_secret"])
        let username = reader.string("username", required: true)
        let password = reader.string("password", required: true)
        if let grant = reader.string("grant_type"), grant != "password" {
            reader.fail("grant_type", "must be password")
        }
        if let username, username.isEmpty || username.utf8.count > 64 {
            reader.fail("username", "must be 1 to 64 characters")
        }
        if let password, password.isEmpty || password.utf8.count > 1024 {
            reader.fail("password", "must be 1 to 1024 characters")
        }
        guard reader.errors.isEmpty, let username, let password else { throw Problem.validation(reader.errors) }
        return (username, password)
    }

    /// Decodes a URL-encoded form; a repeated field is refused (400).
    static func formFields(_ text: String) throws -> [String: JSONValue] {
        var fields: [String: JSONValue] = [:]
        for pair in text.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = decodeFormComponent(parts[0]),
                let value = decodeFormComponent(parts.count > 1 ? parts[1] : "")
            else {
                throw Problem(.malformedRequest, detail: "the form body is not valid URL encoding")
            }
            if fields[name] != nil {
                throw Problem(
                    .malformedRequest, detail: "the form field \(JSONObjectReader.printable(name)) is repeated")
            }
            fields[name] = .string(value)
        }
        return fields
    }

    static func decodeFormComponent(_ text: Substring) -> String? {
        text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }
}
