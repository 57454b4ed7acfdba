import CallDomain
import CallStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Webhooks

/// Webhook endpoints, signing secrets and the delivery log of the caller's organization (under `/api/v1`):
///
/// - `POST/GET /webhook-endpoints`, `GET/PATCH/DELETE /webhook-endpoints/{id}`,
///   `POST /webhook-endpoints/{id}/rotate-secret`, `POST /webhook-endpoints/{id}/test`,
///   `GET /webhook-endpoints/{id}/deliveries`;
/// - `GET /webhook-deliveries/{id}`, `POST /webhook-deliveries/{id}/redeliver`;
/// - `POST /status-callback-secret` (the secret of the calls' own `status_callback`s);
/// - `GET /calls/{id}/webhook-deliveries` (with `calls:read`). Everything else needs the `webhooks` scope.
struct WebhooksController: Sendable {
    typealias Context = AuthenticatedRequestContext

    let repository: any WebhookRepository
    let calls: any CallRepository
    let policy: WebhookTargetPolicy
    let maxBodyBytes: Int

    /// How long the older secrets keep signing after a rotation: receivers switch within it.
    static let rotationOverlap = Duration.seconds(24 * 3600)
    /// The most endpoints an organization may have (each multiplies every event).
    static let maximumEndpoints = 50

    func addRoutes(to group: RouterGroup<Context>) {
        group.post("webhook-endpoints", use: create)
        group.get("webhook-endpoints", use: list)
        group.get("webhook-endpoints/:id", use: show)
        group.patch("webhook-endpoints/:id", use: update)
        group.delete("webhook-endpoints/:id", use: delete)
        group.post("webhook-endpoints/:id/rotate-secret", use: rotateSecret)
        group.post("webhook-endpoints/:id/test", use: sendTest)
        group.get("webhook-endpoints/:id/deliveries", use: endpointDeliveries)
        group.get("webhook-deliveries/:id", use: showDelivery)
        group.post("webhook-deliveries/:id/redeliver", use: redeliver)
        group.post("status-callback-secret", use: rotateCallbackSecret)
        group.get("calls/:id/webhook-deliveries", use: callDeliveries)
    }

    // MARK: - Endpoints

    @Sendable func create(_ request: Request, context: Context) async throws -> Response {
        try context.require(.webhooks)
        let body = try await JSONInput.object(from: request, limit: maxBodyBytes)
        var reader = JSONObjectReader(body)
        reader.refuseUnknown(["url", "description", "event_types", "enabled"])
        let url = readURL(&reader, required: true)
        let description = readDescription(&reader) ?? ""
        let eventTypes = readEventTypes(&reader) ?? []
        let enabled = reader.bool("enabled") ?? true
        guard reader.errors.isEmpty, let url else { throw Problem.validation(reader.errors) }
        let organization = context.caller.organizationID
        let existing = try await context.store { try await repository.webhookEndpoints(in: organization) }
        guard existing.count < Self.maximumEndpoints else {
            throw Problem(
                .conflict, detail: "an organization has at most \(Self.maximumEndpoints) webhook endpoints")
        }
        let secret = WebhookSecret.generate()
        let endpoint = try await context.store {
            try await repository.createWebhookEndpoint(
                in: organization, url: url, description: description, eventTypes: eventTypes, enabled: enabled,
                secret: secret, by: context.auditActor)
        }
        context.logger.notice(
            "webhook endpoint created", metadata: ["webhook_endpoint.id": .string(endpoint.id.lowercased)])
        return try JSONResponse.make(
            EndpointResource(endpoint: endpoint, secret: secret.text), status: .created,
            headers: [
                .location: "/api/v1/webhook-endpoints/\(endpoint.id.lowercased)", .cacheControl: "no-store",
            ])
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        try context.require(.webhooks)
        let endpoints = try await context.store {
            try await repository.webhookEndpoints(in: context.caller.organizationID)
        }
        return try JSONResponse.make(EndpointList(webhookEndpoints: endpoints.map { EndpointResource(endpoint: $0) }))
    }

    @Sendable func show(_ request: Request, context: Context) async throws -> Response {
        try context.require(.webhooks)
        return try JSONResponse.make(EndpointResource(endpoint: try await endpoint(context)))
    }

    @Sendable func update(_ request: Request, context: Context) async throws -> Response {
        try context.require(.webhooks)
        let id = try Self.id(context, of: "webhook endpoint")
        let body = try await JSONInput.object(from: request, limit: maxBodyBytes)
        var reader = JSONObjectReader(body)
        reader.refuseUnknown(["url", "description", "event_types", "enabled"])
        let change = CallStore.WebhookEndpointChange(
            url: readURL(&reader, required: false), description: readDescription(&reader),
            eventTypes: readEventTypes(&reader), enabled: reader.bool("enabled"))
        guard reader.errors.isEmpty else { throw Problem.validation(reader.errors) }
        guard
            let endpoint = try await context.store({
                try await repository.updateWebhookEndpoint(
                    id: id, in: context.caller.organizationID, change: change, by: context.auditActor)
            })
        else { throw Self.notFound("webhook endpoint", id) }
        return try JSONResponse.make(EndpointResource(endpoint: endpoint))
    }

    @Sendable func delete(_ request: Request, context: Context) async throws -> Response {
        try context.require(.webhooks)
        let id = try Self.id(context, of: "webhook endpoint")
        guard
            try await context.store({
                try await repository.deleteWebhookEndpoint(
                    id: id, in: context.caller.organizationID, by: context.auditActor)
            })
        else { throw Self.notFound("webhook endpoint", id) }
        return Response(status: .noContent)
    }

    @Sendable func rotateSecret(_ request: Request, context: Context) async throws -> Response {
        try context.require(.webhooks)
        let id = try Self.id(context, of: "webhook endpoint")
        return try await rotate(owner: id, context: context) ?? { throw Self.notFound("webhook endpoint", id) }()
    }

    @Sendable func rotateCallbackSecret(_ request: Request, context: Context) async throws -> Response {
        try context.require(.webhooks)
        guard let response = try await rotate(owner: context.caller.organizationID.uuid, context: context) else {
            throw Problem(.notFound, detail: "no such organization")
        }
        return response
    }

    /// A new newest secret; the older ones keep signing for ``rotationOverlap``.
    private func rotate(owner: UUID, context: Context) async throws -> Response? {
        let secret = WebhookSecret.generate()
        guard
            let expiry = try await context.store({
                try await repository.rotateWebhookSecret(
                    owner: owner, in: context.caller.organizationID, secret: secret, overlap: Self.rotationOverlap,
                    at: Date(), by: context.auditActor)
            })
        else { return nil }
        context.logger.notice("webhook secret rotated", metadata: ["owner.id": .string(owner.lowercased)])
        return try JSONResponse.make(
            SecretResource(secret: secret.text, previousSecretsExpireAt: expiry), headers: [.cacheControl: "no-store"])
    }

    @Sendable func sendTest(_ request: Request, context: Context) async throws -> Response {
        try context.require(.webhooks)
        let id = try Self.id(context, of: "webhook endpoint")
        guard
            let delivery = try await context.store({
                try await repository.queueTestDelivery(endpoint: id, in: context.caller.organizationID, at: Date())
            })
        else { throw Problem(.notFound, detail: "no enabled webhook endpoint \(id.lowercased)") }
        return try JSONResponse.make(
            DeliveryResource(delivery: delivery), status: .accepted,
            headers: [.location: "/api/v1/webhook-deliveries/\(delivery.id.lowercased)"])
    }

    // MARK: - Deliveries

    @Sendable func endpointDeliveries(_ request: Request, context: Context) async throws -> Response {
        try context.require(.webhooks)
        let endpoint = try await endpoint(context)
        var errors: [FieldError] = []
        let query = QueryInput.values(request.uri.queryParameters, known: ["limit", "before"], errors: &errors)
        var limit = 50
        if let text = query["limit"] {
            if let value = Int(text), (1...200).contains(value) {
                limit = value
            } else {
                errors.append(FieldError(field: "limit", message: "must be an integer from 1 to 200"))
            }
        }
        var before: UUID?
        if let text = query["before"] {
            if let value = UUID(uuidString: text) {
                before = value
            } else {
                errors.append(FieldError(field: "before", message: "must be a delivery id (a UUID)"))
            }
        }
        guard errors.isEmpty else { throw Problem.validation(errors) }
        let deliveries = try await context.store {
            try await repository.webhookDeliveries(
                endpoint: endpoint.id, in: context.caller.organizationID, limit: limit + 1, before: before)
        }
        let page = Array(deliveries.prefix(limit))
        return try JSONResponse.make(
            DeliveryList(
                deliveries: page.map { DeliveryResource(delivery: $0) },
                nextBefore: deliveries.count > limit ? page.last?.id.lowercased : nil))
    }

    @Sendable func callDeliveries(_ request: Request, context: Context) async throws -> Response {
        try context.require(.callsRead)
        guard let text = context.parameters.get("id"), let uuid = UUID(uuidString: text) else {
            throw Problem.validation(field: "id", message: "must be a call id (a UUID)")
        }
        let callID = CallID(uuid: uuid)
        let organization = context.caller.organizationID
        guard
            try await context.store(
                unavailable: "the call history is unavailable",
                { try await calls.call(id: callID, in: organization) }) != nil
        else {
            throw Problem(.notFound, detail: "no call \(callID)")
        }
        let deliveries = try await context.store {
            try await repository.webhookDeliveries(call: callID, in: organization)
        }
        return try JSONResponse.make(
            DeliveryList(deliveries: deliveries.map { DeliveryResource(delivery: $0) }, nextBefore: nil))
    }

    @Sendable func showDelivery(_ request: Request, context: Context) async throws -> Response {
        try context.require(.webhooks)
        let id = try Self.id(context, of: "webhook delivery")
        guard
            let (delivery, attempts) = try await context.store({
                try await repository.webhookDelivery(id: id, in: context.caller.organizationID)
            })
        else { throw Self.notFound("webhook delivery", id) }
        return try JSONResponse.make(DeliveryResource(delivery: delivery, attempts: attempts, includePayload: true))
    }

    @Sendable func redeliver(_ request: Request, context: Context) async throws -> Response {
        try context.require(.webhooks)
        let id = try Self.id(context, of: "webhook delivery")
        guard
            let delivery = try await context.store({
                try await repository.redeliver(id: id, in: context.caller.organizationID, at: Date())
            })
        else {
            throw Problem(.notFound, detail: "no webhook delivery \(id.lowercased) to an enabled endpoint")
        }
        context.logger.notice("webhook redelivery asked", metadata: ["webhook_delivery.id": .string(id.lowercased)])
        return try JSONResponse.make(DeliveryResource(delivery: delivery), status: .accepted)
    }

    // MARK: - Reading input

    private func readURL(_ reader: inout JSONObjectReader, required: Bool) -> String? {
        guard let url = reader.string("url", required: required) else { return nil }
        do {
            _ = try WebhookURL(url, policy: policy)
            return url
        } catch {
            reader.fail("url", error.description)
            return nil
        }
    }

    private func readDescription(_ reader: inout JSONObjectReader) -> String? {
        guard let text = reader.string("description") else { return nil }
        guard text.count <= 256, !text.unicodeScalars.contains(where: { $0.value < 0x20 }) else {
            reader.fail("description", "must be at most 256 printable characters")
            return nil
        }
        return text
    }

    /// `event_types`: `call.<status>` names; an empty list means every type.
    private func readEventTypes(_ reader: inout JSONObjectReader) -> Set<WebhookEventType>? {
        guard let names = reader.strings("event_types") else { return nil }
        guard Set(names).count == names.count else {
            reader.fail("event_types", "must not name a type twice")
            return nil
        }
        var types = Set<WebhookEventType>()
        for name in names {
            guard let type = WebhookEventType(rawValue: name), type != .test else {
                let known = WebhookEventType.subscribable.map(\.rawValue).joined(separator: ", ")
                reader.fail("event_types", "must name only known event types (\(known)); [] takes every type")
                return nil
            }
            types.insert(type)
        }
        return types
    }

    private func endpoint(_ context: Context) async throws -> WebhookEndpoint {
        let id = try Self.id(context, of: "webhook endpoint")
        guard
            let endpoint = try await context.store({
                try await repository.webhookEndpoint(id: id, in: context.caller.organizationID)
            })
        else { throw Self.notFound("webhook endpoint", id) }
        return endpoint
    }

    private static func id(_ context: Context, of kind: String) throws -> UUID {
        guard let text = context.parameters.get("id"), let id = UUID(uuidString: text) else {
            throw Problem.validation(field: "id", message: "must be a \(kind) id (a UUID)")
        }
        return id
    }

    private static func notFound(_ kind: String, _ id: UUID) -> Problem {
        Problem(.notFound, detail: "no \(kind) \(id.lowercased)")
    }
}

extension UUID {
    /// The lowercase form the API uses.
    var lowercased: String { uuidString.lowercased() }
}
