import CallDomain
import Foundation

/// A team or client account: everything the API shows belongs to exactly one.
public struct Organization: Sendable, Hashable {
    /// Stable id.
    public var id: OrganizationID
    /// Unique name, 1 to 64 characters.
    public var name: String
    /// When it was created.
    public var createdAt: Date
    /// Its dialing limits.
    public var limits: OrganizationLimits
}

/// How much an organization may dial, across every gateway and worker (`nil`: no limit).
public struct OrganizationLimits: Sendable, Hashable {
    /// Calls being dialed or up at once; a claim beyond it waits, and the gateway refuses new calls at it.
    public var maxLiveCalls: Int?
    /// Originates per second; calls beyond it wait queued (paced, at most one call of burst).
    public var maxCallsPerSecond: Double?

    /// Creates limits.
    public init(maxLiveCalls: Int? = nil, maxCallsPerSecond: Double? = nil) {
        self.maxLiveCalls = maxLiveCalls
        self.maxCallsPerSecond = maxCallsPerSecond
    }

    /// No limit at all.
    public static let none = OrganizationLimits()

    /// The limits as audit-log detail (`none` for an absent one).
    var auditDetail: [String: String] {
        [
            "max_live_calls": maxLiveCalls.map(String.init) ?? "none",
            "max_calls_per_second": maxCallsPerSecond.map { String($0) } ?? "none",
        ]
    }

    /// The largest `max_calls_per_second` accepted (a database constraint).
    public static let callsPerSecondRange = 0.001...10_000.0
}

/// Which organization limit held a claim back.
public enum OrganizationLimit: String, Sendable, Hashable {
    /// `max_live_calls`.
    case liveCalls = "max_live_calls"
    /// `max_calls_per_second`.
    case callsPerSecond = "max_calls_per_second"
}

/// What an API key may do; each route of the API needs one scope (user tokens get the scopes of their role).
public enum APIScope: String, Sendable, Hashable, CaseIterable, Codable {
    /// Read calls, their timelines and their event streams.
    case callsRead = "calls:read"
    /// Place and hang up calls.
    case callsWrite = "calls:write"
    /// Manage the organization's users and API keys, read its audit log.
    case admin
    /// Manage the organization's webhook endpoints and signing secrets, read and resend its deliveries.
    case webhooks
    /// Manage the organization's contact lists, do-not-call lists and campaigns.
    case campaigns

    /// The scopes a user of `role` holds.
    public static func granted(to role: UserRole) -> Set<APIScope> {
        switch role {
        case .viewer: [.callsRead]
        case .operator: [.callsRead, .callsWrite, .campaigns]
        case .admin: [.callsRead, .callsWrite, .admin, .webhooks, .campaigns]
        }
    }
}

/// An API key as stored: never the key itself, only its SHA-256.
public struct APIKey: Sendable, Hashable {
    /// Stable id (the API's `id`).
    public var id: UUID
    /// The organization the key acts for.
    public var organizationID: OrganizationID
    /// A name chosen by its creator.
    public var name: String
    /// The public part of the key that finds its row (`dk_<lookupID>_<secret>`).
    public var lookupID: String
    /// SHA-256 of the whole key.
    public var keyHash: Data
    /// What it may do.
    public var scopes: Set<APIScope>
    /// The user who created it.
    public var createdBy: UUID?
    /// When it was created.
    public var createdAt: Date
    /// After this instant the key is refused (`nil`: never expires).
    public var expiresAt: Date?
    /// When it was revoked (`nil`: active).
    public var revokedAt: Date?
    /// When it last authenticated a request (updated at most once a minute).
    public var lastUsedAt: Date?

    /// Whether the key may authenticate a request at `now`.
    public func isUsable(at now: Date) -> Bool {
        revokedAt == nil && (expiresAt.map { now < $0 } ?? true)
    }
}

/// A key to create: the caller generated the secret and hashed it.
public struct NewAPIKey: Sendable, Hashable {
    /// The organization it acts for.
    public var organizationID: OrganizationID
    /// Its name.
    public var name: String
    /// Its lookup id.
    public var lookupID: String
    /// SHA-256 of the whole key.
    public var keyHash: Data
    /// What it may do.
    public var scopes: Set<APIScope>
    /// The creating user.
    public var createdBy: UUID?
    /// Optional expiry.
    public var expiresAt: Date?

    /// Creates the description of a key.
    public init(
        organizationID: OrganizationID, name: String, lookupID: String, keyHash: Data, scopes: Set<APIScope>,
        createdBy: UUID?, expiresAt: Date?
    ) {
        self.organizationID = organizationID
        self.name = name
        self.lookupID = lookupID
        self.keyHash = keyHash
        self.scopes = scopes
        self.createdBy = createdBy
        self.expiresAt = expiresAt
    }
}

/// Who did a security-relevant change, for the audit log.
public struct AuditActor: Sendable, Hashable {
    /// A user name, `api-key:<name>`, or `cli` for the command line.
    public var name: String
    /// The request id of the change, when it came through the API.
    public var requestID: String?

    /// Describes an actor.
    public init(name: String, requestID: String? = nil) {
        self.name = name
        self.requestID = requestID
    }

    /// The command line (`api-gateway create-org`, `create-user`).
    public static let commandLine = AuditActor(name: "cli")
}

/// One entry of an organization's audit log.
public struct AuditEvent: Sendable, Hashable {
    /// Increasing id (the listing's cursor).
    public var id: Int64
    /// The organization it concerns.
    public var organizationID: OrganizationID
    /// When it happened.
    public var occurredAt: Date
    /// Who did it.
    public var actor: String
    /// What was done, e.g. `user.created`, `api_key.revoked`, `user.role_changed`.
    public var action: String
    /// The kind of thing changed: `user`, `api_key`, `organization`.
    public var targetType: String
    /// Its id.
    public var targetID: String
    /// Facts of the change (new role, scopes, ...), never secrets.
    public var detail: [String: String]
    /// The request id of the change.
    public var requestID: String?
}
