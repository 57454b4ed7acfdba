import CallDomain
import CallStore
import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// What every gateway request context carries, whether or not the caller is authenticated.
public protocol GatewayContextProtocol: RequestContext {
    /// The request id: the client's valid `X-Request-ID`, or a new one. Echoed, logged, sent to Kafka.
    var requestID: String { get }
    /// The client's address (the peer, or the first `X-Forwarded-For` entry when trusted).
    var clientAddress: String { get }
    /// The connection, so a stream can drop a client that cannot keep up.
    var channel: (any Channel)? { get }
}

/// The context of every request before authentication.
public struct GatewayRequestContext: GatewayContextProtocol {
    /// Hummingbird's per-request storage (logger, parameters, endpoint path).
    public var coreContext: CoreRequestContextStorage
    /// See ``GatewayContextProtocol/requestID``; set by the request-id middleware.
    public var requestID: String
    /// See ``GatewayContextProtocol/clientAddress``.
    public var clientAddress: String
    /// See ``GatewayContextProtocol/channel``.
    public let channel: (any Channel)?
    /// Set by the authentication middleware once the bearer token (and its user) or API key check out.
    public var identity: Caller?
    /// Facts learned while handling the request that the access log reports.
    public let annotations: RequestAnnotations

    /// Creates the context of a new request.
    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        requestID = ""
        channel = source.channel
        clientAddress = Self.address(of: source.channel)
        identity = nil
        annotations = RequestAnnotations()
    }

    static func address(of channel: any Channel) -> String {
        guard let address = channel.remoteAddress else { return "unknown" }
        return address.ipAddress ?? "\(address)"
    }
}

/// The context of routes that need a valid bearer token or API key: the compiler guarantees `caller` is there.
public struct AuthenticatedRequestContext: GatewayContextProtocol, ChildRequestContext {
    /// Hummingbird's per-request storage.
    public var coreContext: CoreRequestContextStorage
    /// See ``GatewayContextProtocol/requestID``.
    public var requestID: String
    /// See ``GatewayContextProtocol/clientAddress``.
    public var clientAddress: String
    /// See ``GatewayContextProtocol/channel``.
    public let channel: (any Channel)?
    /// The authenticated caller.
    public let caller: Caller
    /// Facts for the access log (shared with the outer context).
    public let annotations: RequestAnnotations

    /// Succeeds only when the authentication middleware has set an identity.
    public init(context: GatewayRequestContext) throws {
        guard let identity = context.identity else {
            throw Problem.unauthenticated("a bearer token is required", tokenPresented: false)
        }
        coreContext = context.coreContext
        requestID = context.requestID
        clientAddress = context.clientAddress
        channel = context.channel
        caller = identity
        annotations = context.annotations
    }

    /// Throws 403 unless the caller holds `scope` (a user through their role, a key through its scopes).
    public func require(_ scope: APIScope) throws {
        guard caller.scopes.contains(scope) else {
            throw Problem(
                .forbidden,
                detail: "this action needs the \(scope.rawValue) scope; \(caller.kindDescription) has "
                    + (caller.scopes.isEmpty ? "none" : caller.scopes.map(\.rawValue).sorted().joined(separator: ", ")))
        }
    }

    /// Throws 403 unless the caller is a platform operator (a user marked so from the command line).
    public func requirePlatformOperator() throws {
        guard caller.platformOperator else {
            throw Problem(.forbidden, detail: "only a platform operator may do this")
        }
    }

    /// Runs a store call: a problem or a refusal of the store (``StoreError``) goes through, any other failure of
    /// PostgreSQL is logged and answered 503 with `Retry-After`, saying what is `unavailable`.
    public func store<Value>(
        unavailable: String = "the database is unavailable", _ call: () async throws -> Value
    ) async throws -> Value {
        do {
            return try await call()
        } catch let problem as Problem {
            throw problem
        } catch let refusal as StoreError {
            throw refusal
        } catch {
            logger.error("database call failed", metadata: ["error": .string(String(describing: error))])
            throw Problem.retryLater(.databaseUnavailable, detail: unavailable, after: 2)
        }
    }

    /// The caller as the audit log names it.
    public var auditActor: AuditActor { AuditActor(name: caller.name, requestID: requestID) }
}

/// The caller of an authenticated request, as the database knows it now: a user (bearer token) or an API key.
public struct Caller: Sendable, Hashable {
    /// How the caller authenticated.
    public enum Credential: Sendable, Hashable {
        /// A bearer token of a user; its `jti`, for logs.
        case token(id: String)
        /// An API key.
        case apiKey
    }

    /// The user id or the key id: the principal idempotency keys belong to.
    public var id: UUID
    /// The user's login name, or `api-key:<name>`.
    public var name: String
    /// The organization the caller acts in; every resource it reaches is this organization's.
    public var organizationID: OrganizationID
    /// What it may do (a user's from their current role, so a role change applies at once).
    public var scopes: Set<APIScope>
    /// The user's role (`nil` for a key).
    public var role: UserRole?
    /// Whether it may create organizations.
    public var platformOperator: Bool
    /// How it authenticated.
    public var credential: Credential

    /// A user authenticated by a bearer token.
    public init(user: User, tokenID: String) {
        id = user.id
        name = user.username
        organizationID = user.organizationID
        scopes = APIScope.granted(to: user.role)
        role = user.role
        platformOperator = user.platformOperator
        credential = .token(id: tokenID)
    }

    /// A service authenticated by an API key.
    public init(key: APIKey) {
        id = key.id
        name = "api-key:\(key.name)"
        organizationID = key.organizationID
        scopes = key.scopes
        role = nil
        platformOperator = false
        credential = .apiKey
    }

    var kindDescription: String {
        if let role { "your role (\(role.rawValue))" } else { "this API key" }
    }
}

extension UserRole {
    /// Roles are ordered: admin includes operator, operator includes viewer.
    var rank: Int {
        switch self {
        case .viewer: 0
        case .operator: 1
        case .admin: 2
        }
    }

    /// Whether this role may do what `other` may do.
    public func includes(_ other: UserRole) -> Bool { rank >= other.rank }
}

/// Facts found deep in the middleware stack (who the caller is, which call a request created) that the outer
/// access log reports; a reference, because contexts are values copied on the way in. One line per request tells
/// an operator which request id became which call id, without a second log line per call request.
public final class RequestAnnotations: Sendable {
    private struct State {
        var username: String?
        var call: (id: String, replayed: Bool)?
    }

    private let state = Mutex(State())

    /// Creates empty annotations.
    public init() {}

    /// The authenticated caller's name, once known.
    public var username: String? {
        get { state.withLock { $0.username } }
        set { state.withLock { $0.username = newValue } }
    }

    /// Records the call a `POST /calls` accepted, or replayed for a repeated `Idempotency-Key`.
    public func record(call id: CallID, replayed: Bool) {
        state.withLock { $0.call = (id.description, replayed) }
    }

    /// The access log's metadata for these facts.
    func metadata(into metadata: inout Logger.Metadata) {
        let state = state.withLock { $0 }
        metadata["user.name"] = .string(state.username ?? "-")
        if let call = state.call {
            metadata["call.id"] = .string(call.id)
            if call.replayed { metadata["call.replayed"] = "true" }
        }
    }
}
