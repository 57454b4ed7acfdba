import CallDomain
import CallStore
import Foundation
import Webhooks

/// An endpoint as the API shows it; its secret only in the answer to its creation.
struct EndpointResource: Encodable {
    var endpoint: WebhookEndpoint
    var secret: String?

    enum CodingKeys: String, CodingKey {
        case id, kind, url, description, enabled, secret, circuit
        case eventTypes = "event_types"
        case disabledReason = "disabled_reason"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }

    enum CircuitKeys: String, CodingKey {
        case state
        case consecutiveFailures = "consecutive_failures"
        case openUntil = "open_until"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(endpoint.id.lowercased, forKey: .id)
        try container.encode(endpoint.kind.rawValue, forKey: .kind)
        try container.encode(endpoint.url, forKey: .url)
        try container.encode(endpoint.description, forKey: .description)
        try container.encode(endpoint.eventTypes.map(\.rawValue).sorted(), forKey: .eventTypes)
        try container.encode(endpoint.enabled, forKey: .enabled)
        try container.encode(endpoint.disabledReason, forKey: .disabledReason)
        var circuit = container.nestedContainer(keyedBy: CircuitKeys.self, forKey: .circuit)
        let open = endpoint.circuitOpenUntil.map { $0 > Date() } ?? false
        let state =
            open ? "open" : endpoint.consecutiveFailures >= WebhookCircuit.threshold ? "half_open" : "closed"
        try circuit.encode(state, forKey: .state)
        try circuit.encode(endpoint.consecutiveFailures, forKey: .consecutiveFailures)
        try circuit.encode(open ? endpoint.circuitOpenUntil : nil, forKey: .openUntil)
        try container.encode(endpoint.createdAt, forKey: .createdAt)
        try container.encode(endpoint.updatedAt, forKey: .updatedAt)
        try container.encodeIfPresent(secret, forKey: .secret)
    }
}

struct EndpointList: Encodable {
    var webhookEndpoints: [EndpointResource]

    enum CodingKeys: String, CodingKey {
        case webhookEndpoints = "webhook_endpoints"
    }
}

/// The answer to a rotation: the new secret, shown once.
struct SecretResource: Encodable {
    var secret: String
    var previousSecretsExpireAt: Date

    enum CodingKeys: String, CodingKey {
        case secret
        case previousSecretsExpireAt = "previous_secrets_expire_at"
    }
}

/// A delivery as the API shows it; with its attempts and exact body in the single view.
struct DeliveryResource: Encodable {
    var delivery: WebhookDelivery
    var attempts: [WebhookAttempt]?
    var includePayload = false

    enum CodingKeys: String, CodingKey {
        case id, state, attempts, payload
        case endpointID = "endpoint_id"
        case callID = "call_id"
        case eventID = "event_id"
        case eventType = "event_type"
        case attemptCount = "attempt_count"
        case nextAttemptAt = "next_attempt_at"
        case lastStatus = "last_status"
        case lastError = "last_error"
        case createdAt = "created_at"
        case deliveredAt = "delivered_at"
    }

    enum AttemptKeys: String, CodingKey {
        case attempt, error
        case startedAt = "started_at"
        case durationMS = "duration_ms"
        case responseStatus = "response_status"
        case dispatcherID = "dispatcher_id"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(delivery.id.lowercased, forKey: .id)
        try container.encode(delivery.endpointID.lowercased, forKey: .endpointID)
        try container.encode(delivery.callID?.description, forKey: .callID)
        try container.encode(delivery.eventID?.lowercased, forKey: .eventID)
        try container.encode(delivery.eventType, forKey: .eventType)
        try container.encode(delivery.state.rawValue, forKey: .state)
        try container.encode(delivery.attempts, forKey: .attemptCount)
        try container.encode(delivery.nextAttemptAt, forKey: .nextAttemptAt)
        try container.encode(delivery.lastStatus, forKey: .lastStatus)
        try container.encode(delivery.lastError, forKey: .lastError)
        try container.encode(delivery.createdAt, forKey: .createdAt)
        try container.encode(delivery.deliveredAt, forKey: .deliveredAt)
        if includePayload { try container.encode(delivery.payload, forKey: .payload) }
        if let attempts {
            var list = container.nestedUnkeyedContainer(forKey: .attempts)
            for attempt in attempts {
                var item = list.nestedContainer(keyedBy: AttemptKeys.self)
                try item.encode(attempt.attempt, forKey: .attempt)
                try item.encode(attempt.startedAt, forKey: .startedAt)
                try item.encode(attempt.durationMilliseconds, forKey: .durationMS)
                try item.encode(attempt.responseStatus, forKey: .responseStatus)
                try item.encode(attempt.error, forKey: .error)
                try item.encode(attempt.dispatcherID, forKey: .dispatcherID)
            }
        }
    }
}

struct DeliveryList: Encodable {
    var deliveries: [DeliveryResource]
    var nextBefore: String?

    enum CodingKeys: String, CodingKey {
        case deliveries
        case nextBefore = "next_before"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(deliveries, forKey: .deliveries)
        // Always present: `null` says there is no further page.
        try container.encode(nextBefore, forKey: .nextBefore)
    }
}
