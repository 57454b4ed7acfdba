import CallDomain
import Foundation
import Webhooks

/// Who an endpoint is for.
public enum WebhookEndpointKind: String, Sendable, Hashable, Codable {
    /// Managed through the API: the organization's subscription to call events.
    case subscription
    /// Made by the dispatcher for a per-call `status_callback` URL; signed with the organization's callback secret.
    case callCallback = "call_callback"
}

/// Where an organization's call events are delivered.
public struct WebhookEndpoint: Sendable, Hashable {
    /// Stable id.
    public var id: UUID
    /// The organization it belongs to.
    public var organizationID: OrganizationID
    /// Subscription or per-call callback.
    public var kind: WebhookEndpointKind
    /// The URL POSTed to.
    public var url: String
    /// Free text from its creator.
    public var description: String
    /// The event types delivered; empty: every type.
    public var eventTypes: Set<WebhookEventType>
    /// Whether deliveries are made.
    public var enabled: Bool
    /// Why it was disabled (by its owner, or after answering 410 Gone).
    public var disabledReason: String?
    /// Failed attempts in a row (the circuit breaker's count).
    public var consecutiveFailures: Int
    /// While in the future, no attempt is made to it (its circuit is open).
    public var circuitOpenUntil: Date?
    /// When it was created.
    public var createdAt: Date
    /// When it last changed.
    public var updatedAt: Date

    /// Whose secrets sign its messages: its own, or its organization's for a status callback URL.
    public var signingOwner: UUID {
        kind == .subscription ? id : organizationID.uuid
    }

    /// Whether it takes messages of `type` (a test message always).
    public func accepts(_ type: WebhookEventType) -> Bool {
        type == .test || eventTypes.isEmpty || eventTypes.contains(type)
    }
}

/// Where a delivery stands.
public enum WebhookDeliveryState: String, Sendable, Hashable, Codable, CaseIterable {
    /// Waiting for its next attempt (or in one).
    case pending
    /// The endpoint answered 2xx.
    case delivered
    /// Every attempt failed, or the endpoint answered 410 Gone.
    case failed
    /// Its endpoint was disabled or deleted before it was delivered.
    case canceled
}

/// One message to one endpoint, with its progress.
public struct WebhookDelivery: Sendable, Hashable {
    /// The `webhook-id` header: stable across attempts.
    public var id: UUID
    /// The organization.
    public var organizationID: OrganizationID
    /// The endpoint.
    public var endpointID: UUID
    /// The call it is about, if any.
    public var callID: CallID?
    /// The status event it carries, if any.
    public var eventID: UUID?
    /// Its type.
    public var eventType: String
    /// The exact body sent.
    public var payload: String
    /// Where it stands.
    public var state: WebhookDeliveryState
    /// Attempts made.
    public var attempts: Int
    /// When the next attempt is due (pending only).
    public var nextAttemptAt: Date?
    /// The HTTP status of the last attempt, if it got one.
    public var lastStatus: Int?
    /// Why the last attempt failed, if it did.
    public var lastError: String?
    /// When it was created.
    public var createdAt: Date
    /// When it was delivered.
    public var deliveredAt: Date?
}

/// One attempt of a delivery.
public struct WebhookAttempt: Sendable, Hashable {
    /// 1 for the first attempt.
    public var attempt: Int
    /// When it started.
    public var startedAt: Date
    /// How long it took, in milliseconds.
    public var durationMilliseconds: Int
    /// The HTTP status received, if any.
    public var responseStatus: Int?
    /// Why it failed, if it did (a status outside 2xx, a refused address, a timeout...).
    public var error: String?
    /// The dispatcher that made it.
    public var dispatcherID: String
}

/// A delivery claimed by a dispatcher for an attempt: everything it needs to send it.
public struct DueDelivery: Sendable, Hashable {
    /// The delivery (`webhook-id`).
    public var id: UUID
    /// Its endpoint.
    public var endpoint: WebhookEndpoint
    /// The body.
    public var payload: String
    /// Attempts made before this one.
    public var attempts: Int
    /// Its position in the retry schedule.
    public var step: Int
    /// The secrets to sign with, newest first (more than one during a rotation).
    public var secrets: [WebhookSecret]
    /// When the delivery was created (its event was read).
    public var createdAt: Date
}

/// What an attempt came to.
public enum WebhookAttemptResult: Sendable, Hashable {
    /// A 2xx answer.
    case delivered(status: Int)
    /// Anything else: a non-2xx answer (with its `Retry-After`, if any), or no answer at all.
    case failed(status: Int?, error: String, retryAfter: Duration?)
    /// 410 Gone: the receiver wants no more; the endpoint is disabled.
    case gone
    /// The attempt was not made: the URL or its address is refused by the target policy (never retried soon).
    case refused(String)
}

/// An attempt to record.
public struct WebhookAttemptRecord: Sendable, Hashable {
    /// The delivery as claimed.
    public var delivery: DueDelivery
    /// When the attempt started.
    public var startedAt: Date
    /// How long it took.
    public var duration: Duration
    /// What it came to.
    public var result: WebhookAttemptResult

    /// Creates a record.
    public init(delivery: DueDelivery, startedAt: Date, duration: Duration, result: WebhookAttemptResult) {
        self.delivery = delivery
        self.startedAt = startedAt
        self.duration = duration
        self.result = result
    }
}

/// The circuit breaker's rules: after ``threshold`` failures in a row an endpoint gets no attempt for a cool-down
/// that doubles with each failed probe, from ``firstCooldown`` to at most ``maximumCooldown``. Its deliveries wait
/// without spending attempts; the first one due after the cool-down is the probe.
public enum WebhookCircuit {
    /// Consecutive failures that open the circuit.
    public static let threshold = 5
    /// The first cool-down.
    public static let firstCooldown = Duration.seconds(30)
    /// The longest cool-down.
    public static let maximumCooldown = Duration.seconds(10 * 60)

    /// The cool-down after `failures` consecutive failures (`nil` below the threshold).
    public static func cooldown(afterFailures failures: Int) -> Duration? {
        guard failures >= threshold else { return nil }
        let doublings = min(failures - threshold, 10)
        return min(firstCooldown * (1 << doublings), maximumCooldown)
    }
}

/// Deliveries a dispatcher takes straight from its fan-out, leased in the statement that creates them.
public struct WebhookHandOff: Sendable, Hashable {
    /// The dispatcher that takes them.
    public var dispatcherID: String
    /// How long they stay leased to it.
    public var lease: Duration
    /// How many new deliveries each endpoint may hand over now (what its limits leave in this dispatcher).
    public var room: [UUID: Int]
    /// The room of an endpoint not in `room`.
    public var defaultRoom: Int

    /// Creates a hand-off.
    public init(dispatcherID: String, lease: Duration, room: [UUID: Int], defaultRoom: Int) {
        self.dispatcherID = dispatcherID
        self.lease = lease
        self.room = room
        self.defaultRoom = defaultRoom
    }
}

/// What a fan-out made.
public struct WebhookFanOut: Sendable, Hashable {
    /// Deliveries created (an event read again creates none).
    public var created: Int
    /// The created deliveries leased to the dispatcher that asked, ready to attempt.
    public var handedOff: [DueDelivery]
    /// Whether some created delivery is due now and waits for a claim.
    public var waitingDue: Bool
}
