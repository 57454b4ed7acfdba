import CallDomain
import Foundation

/// What a user may do through the API.
public enum UserRole: String, Sendable, Codable, CaseIterable, Hashable {
    /// Reads calls and users' own data.
    case viewer
    /// Also places and hangs up calls.
    case `operator`
    /// Also manages users.
    case admin
}

/// A user of the API.
public struct User: Sendable, Hashable {
    /// Stable id, the JWT `sub`.
    public var id: UUID
    /// Login name.
    public var username: String
    /// bcrypt hash of the password.
    public var passwordHash: String
    /// What the user may do in their organization.
    public var role: UserRole
    /// The organization the user belongs to (one only).
    public var organizationID: OrganizationID
    /// A platform operator may also create organizations (set from the command line only).
    public var platformOperator: Bool
    /// A disabled user cannot log in and their tokens are refused.
    public var disabled: Bool
    /// When the user was created.
    public var createdAt: Date
    /// When the user last changed.
    public var updatedAt: Date
}

/// One row of a call's status timeline.
public struct CallTimelineEntry: Sendable, Hashable {
    /// Per-call sequence number (0 is `queued`).
    public var seq: Int
    /// The status entered.
    public var status: CallStatus
    /// The status left (`nil` for `queued`).
    public var previousStatus: CallStatus?
    /// When it happened.
    public var occurredAt: Date
    /// The event's id (`ce_id` on the topic).
    public var eventID: UUID
    /// Node and worker that reported it.
    public var nodeID: String?
    /// The worker that reported it.
    public var workerID: String?
    /// Hangup cause, for terminal statuses after a channel existed.
    public var hangupCause: HangupCause?
    /// Failure reason, for `failed`.
    public var failureReason: FailureReason?
    /// Free-text detail.
    public var detail: String?
}

/// A call as stored: its request and current state, and optionally its timeline.
public struct CallRecord: Sendable, Hashable {
    /// The call.
    public var id: CallID
    /// Current status.
    public var status: CallStatus
    /// Highest applied sequence number.
    public var seq: Int
    /// Dialed number (nil only while the originate command has not been recorded yet).
    public var to: String?
    /// Caller id name and number.
    public var callerIDName: String?
    /// Caller id number.
    public var callerIDNumber: String?
    /// Dialplan target.
    public var context: String?
    /// Dialplan extension.
    public var `extension`: String?
    /// Dialplan priority.
    public var priority: Int?
    /// Ring timeout.
    public var timeoutSeconds: Int?
    /// Channel variables.
    public var variables: [String: String]
    /// Client metadata.
    public var metadata: [String: JSONValue]
    /// Who requested the call.
    public var requestedBy: String?
    /// Request id at the gateway.
    public var requestID: String?
    /// Node, worker and channel.
    public var nodeID: String?
    /// The worker that claimed it.
    public var workerID: String?
    /// The ARI channel id.
    public var channelID: String?
    /// How it ended.
    public var hangupCause: HangupCause?
    /// Why it failed.
    public var failureReason: FailureReason?
    /// Free-text detail.
    public var detail: String?
    /// Timestamps.
    public var createdAt: Date
    /// When the command expires.
    public var expiresAt: Date?
    /// When a worker claimed it.
    public var dispatchedAt: Date?
    /// When the callee answered.
    public var answeredAt: Date?
    /// When it ended.
    public var endedAt: Date?
    /// Last change.
    public var updatedAt: Date
    /// The timeline, oldest first (empty when not requested).
    public var timeline: [CallTimelineEntry]
    /// Raised by every claim and takeover: the epoch the call's current owner holds.
    public var ownerEpoch: Int = 0
    /// When an owner was about to send the originate (`nil`: the call was never dialed).
    public var originateSentAt: Date?
    /// The organization whose history holds the call (`nil` while its command has not been recorded).
    public var organizationID: OrganizationID?
    /// The answering machine detection the request asked for.
    public var machineDetection: MachineDetection?
    /// Who answered, once the detection decided.
    public var answeredBy: AnsweredBy?
    /// Whether the request asked for the answered call to be recorded.
    public var record: Bool = false
}

/// Filters for listing calls.
public struct CallFilter: Sendable, Hashable {
    /// Only calls in this status.
    public var status: CallStatus?
    /// Only calls to this number.
    public var to: String?
    /// Only calls created at or after this instant.
    public var createdAfter: Date?
    /// Only calls created before this instant.
    public var createdBefore: Date?

    /// Creates a filter; every criterion is optional.
    public init(status: CallStatus? = nil, to: String? = nil, createdAfter: Date? = nil, createdBefore: Date? = nil) {
        self.status = status
        self.to = to
        self.createdAfter = createdAfter
        self.createdBefore = createdBefore
    }
}

/// An opaque position in the newest-first listing of calls: the (created_at, id) of the last call returned.
public struct CallCursor: Sendable, Hashable {
    /// Creation time of the last call, in microseconds since 1970 (PostgreSQL's precision).
    public var createdAtMicros: Int64
    /// Id of the last call.
    public var id: UUID

    /// Creates a cursor.
    public init(createdAtMicros: Int64, id: UUID) {
        self.createdAtMicros = createdAtMicros
        self.id = id
    }

    /// The URL-safe text given to clients.
    public var token: String {
        let raw = "v1:\(createdAtMicros):\(id.uuidString.lowercased())"
        return Data(raw.utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Parses a client's cursor; `nil` for anything this service did not produce.
    public init?(token: String) {
        guard token.utf8.count <= 128 else { return nil }
        var base64 = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.utf8.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64), let text = String(data: data, encoding: .utf8) else { return nil }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "v1", let micros = Int64(parts[1]),
            let id = UUID(uuidString: String(parts[2]))
        else { return nil }
        self.init(createdAtMicros: micros, id: id)
    }
}

/// One page of calls.
public struct CallPage: Sendable, Hashable {
    /// The calls, newest first.
    public var calls: [CallRecord]
    /// Where the next page starts; `nil` on the last page.
    public var nextCursor: CallCursor?
}

/// The result of a claim.
public enum ClaimResult: Sendable, Hashable {
    /// This caller won: the call is now `dispatched` and the event to publish is attached.
    case won(CallStatusEvent)
    /// Someone else got there first, or the call was canceled or ended: skip it.
    case alreadyTaken(CallStatus)
    /// The call's organization is at a limit: nothing changed, the call stays queued; claim it again after
    /// `retryAfter` (a live-call limit has no known end: the delay is a polling interval).
    case deferred(OrganizationLimit, retryAfter: Duration)
}

/// The result of applying one status event.
public enum ApplyResult: Sendable, Hashable {
    /// The call moved to the event's status.
    case applied
    /// The stored `seq` is at or above the event's: a duplicate or an overtaken event.
    case stale
    /// The call already ended; the event was ignored.
    case alreadyTerminal(CallStatus)
    /// The state machine forbids this move from the stored status.
    case illegalTransition(from: CallStatus)
    /// The event comes from an owner the call was taken from (its owner epoch is below the call's).
    case staleOwner(epoch: Int)
}

/// The result of a conditional change of a queued call (cancel or expire).
public enum QueuedChangeResult: Sendable, Hashable {
    /// The call was queued and has now changed; the event to publish is attached.
    case changed(CallStatusEvent)
    /// The call had already left `queued`.
    case notQueued(CallStatus)
    /// No such call.
    case unknown
}

/// The result of reserving an idempotency key.
public enum IdempotencyReservation: Sendable, Hashable {
    /// The key is new and is now bound to the given call.
    case reserved
    /// The key was used before, for this fingerprint and call.
    case existing(fingerprint: String, callID: CallID)
}

/// Errors of the store that callers handle.
public enum StoreError: Error, Hashable, Sendable {
    /// A user with that name exists.
    case duplicateUsername
    /// An organization with that name exists.
    case duplicateOrganization
    /// The organization named does not exist.
    case unknownOrganization
    /// The migrations are not in the bundle (a packaging error).
    case migrationsMissing
    /// A stored value cannot be read (a row written by a newer version, or corruption).
    case corruptRow(String)
}
