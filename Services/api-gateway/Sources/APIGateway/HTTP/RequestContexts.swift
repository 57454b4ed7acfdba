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
    /// Set by the authentication middleware once the bearer token and its user check out.
    public var identity: AuthenticatedUser?
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

/// The context of routes that need a valid bearer token: the compiler guarantees `user` is there.
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
    public let user: AuthenticatedUser
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
        user = identity
        annotations = context.annotations
    }

    /// Throws 403 unless the caller's role is at least `role`.
    public func require(_ role: UserRole) throws {
        guard user.role.includes(role) else {
            throw Problem(
                .forbidden, detail: "this action needs the \(role.rawValue) role; you are \(user.role.rawValue)")
        }
    }
}

/// The caller of an authenticated request, as the database knows it now.
public struct AuthenticatedUser: Sendable, Hashable {
    /// The user id (the token's `sub`).
    public var id: UUID
    /// The login name.
    public var username: String
    /// The current role (from the database, not the token, so a change applies at once).
    public var role: UserRole
    /// The token's `jti`, for logs.
    public var tokenID: String
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
