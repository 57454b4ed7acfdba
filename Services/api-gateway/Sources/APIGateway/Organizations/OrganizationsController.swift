import CallDomain
import CallStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// Organizations, for platform operators: `POST /organizations`, `GET /organizations`, `PATCH /organizations/{id}`
/// (limits), and `GET /organizations/{id}` for them and the organization's own members (under `/api/v1`); and the
/// organization's audit log for its admins: `GET /audit-events`.
struct OrganizationsController: Sendable {
    typealias Context = AuthenticatedRequestContext

    let repository: any OrganizationRepository
    let maxBodyBytes: Int

    func addRoutes(to group: RouterGroup<Context>) {
        group.post("organizations", use: create)
        group.get("organizations", use: list)
        group.get("organizations/:id", use: show)
        group.patch("organizations/:id", use: update)
        group.get("audit-events", use: auditEvents)
    }

    /// Organization names: the rules of user names (1 to 64 of ASCII letters, digits, `.`, `_`, `-`, `@`).
    static func validateName(_ name: String) throws(FieldError) {
        do {
            try UsersController.validateUsername(name)
        } catch {
            throw FieldError(field: "name", message: error.message)
        }
    }

    struct OrganizationResource: Encodable {
        var organization: Organization

        enum CodingKeys: String, CodingKey {
            case id, name
            case createdAt = "created_at"
            case maxLiveCalls = "max_live_calls"
            case maxCallsPerSecond = "max_calls_per_second"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(organization.id, forKey: .id)
            try container.encode(organization.name, forKey: .name)
            try container.encode(organization.createdAt, forKey: .createdAt)
            try container.encode(organization.limits.maxLiveCalls, forKey: .maxLiveCalls)
            try container.encode(organization.limits.maxCallsPerSecond, forKey: .maxCallsPerSecond)
        }
    }

    struct OrganizationList: Encodable {
        var organizations: [OrganizationResource]
    }

    @Sendable func create(_ request: Request, context: Context) async throws -> Response {
        try context.requirePlatformOperator()
        let body = try await JSONInput.object(from: request, limit: maxBodyBytes)
        var reader = JSONObjectReader(body)
        reader.refuseUnknown(["name", "max_live_calls", "max_calls_per_second"])
        let name = reader.string("name", required: true)
        if let name {
            do { try Self.validateName(name) } catch { reader.add([error]) }
        }
        let limits = Self.limits(&reader, current: .none)
        guard reader.errors.isEmpty, let name else { throw Problem.validation(reader.errors) }
        let organization: Organization
        do {
            organization = try await context.store {
                try await repository.createOrganization(name: name, limits: limits, by: context.auditActor)
            }
        } catch StoreError.duplicateOrganization {
            throw Problem(.organizationNameTaken, detail: "an organization named \(name) exists")
        }
        context.logger.notice(
            "organization created",
            metadata: ["organization.created": .stringConvertible(organization.id), "organization.name": .string(name)])
        return try JSONResponse.make(
            OrganizationResource(organization: organization), status: .created,
            headers: [.location: "/api/v1/organizations/\(organization.id)"])
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        try context.requirePlatformOperator()
        let organizations = try await context.store { try await repository.organizations() }
        return try JSONResponse.make(
            OrganizationList(organizations: organizations.map { OrganizationResource(organization: $0) }))
    }

    @Sendable func show(_ request: Request, context: Context) async throws -> Response {
        let id = try Self.organizationID(context)
        // Members see their own organization (its limits); only platform operators see others.
        guard context.caller.platformOperator || id == context.caller.organizationID,
            let organization = try await context.store({ try await repository.organization(id: id) })
        else {
            throw Problem(.notFound, detail: "no organization \(id)")
        }
        return try JSONResponse.make(OrganizationResource(organization: organization))
    }

    /// `PATCH /organizations/{id}`: `max_live_calls`, `max_calls_per_second` (a number, or `null` for no limit); the
    /// fields absent keep their value.
    @Sendable func update(_ request: Request, context: Context) async throws -> Response {
        try context.requirePlatformOperator()
        let id = try Self.organizationID(context)
        let body = try await JSONInput.object(from: request, limit: maxBodyBytes)
        var reader = JSONObjectReader(body)
        reader.refuseUnknown(["max_live_calls", "max_calls_per_second"])
        if body.isEmpty { reader.fail("max_live_calls", "or max_calls_per_second is required") }
        guard reader.errors.isEmpty else { throw Problem.validation(reader.errors) }
        guard let current = try await context.store({ try await repository.organization(id: id) })
        else {
            throw Problem(.notFound, detail: "no organization \(id)")
        }
        let limits = Self.limits(&reader, current: current.limits)
        guard reader.errors.isEmpty else { throw Problem.validation(reader.errors) }
        guard
            let updated = try await context.store(
                {
                    try await repository.setLimits(limits, of: id, by: context.auditActor)
                })
        else {
            throw Problem(.notFound, detail: "no organization \(id)")
        }
        context.logger.notice(
            "organization limits changed",
            metadata: [
                "organization.changed": .stringConvertible(id),
                "organization.max_live_calls": .string(limits.maxLiveCalls.map(String.init) ?? "none"),
                "organization.max_calls_per_second": .string(limits.maxCallsPerSecond.map { "\($0)" } ?? "none"),
            ])
        return try JSONResponse.make(OrganizationResource(organization: updated))
    }

    /// The limits in a body: a field present replaces the current value (`null` removes the limit).
    static func limits(_ reader: inout JSONObjectReader, current: OrganizationLimits) -> OrganizationLimits {
        var limits = current
        if reader.object.keys.contains("max_live_calls") {
            limits.maxLiveCalls = reader.int("max_live_calls", range: 1...1_000_000)
        }
        if reader.object.keys.contains("max_calls_per_second") {
            switch reader.object["max_calls_per_second"] {
            case .number(let value)? where OrganizationLimits.callsPerSecondRange.contains(value):
                limits.maxCallsPerSecond = value
            case .null?:
                limits.maxCallsPerSecond = nil
            default:
                reader.fail("max_calls_per_second", "must be a number from 0.001 to 10000, or null")
            }
        }
        return limits
    }

    static func organizationID(_ context: Context) throws -> OrganizationID {
        guard let text = context.parameters.get("id"), let id = OrganizationID(text.lowercased()) else {
            throw Problem.validation(field: "id", message: "must be an organization id (a UUID)")
        }
        return id
    }

    // MARK: - Audit log

    struct AuditEventResource: Encodable {
        var event: AuditEvent

        enum CodingKeys: String, CodingKey {
            case id, actor, action, detail
            case occurredAt = "occurred_at"
            case targetType = "target_type"
            case targetID = "target_id"
            case requestID = "request_id"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(event.id, forKey: .id)
            try container.encode(event.occurredAt, forKey: .occurredAt)
            try container.encode(event.actor, forKey: .actor)
            try container.encode(event.action, forKey: .action)
            try container.encode(event.targetType, forKey: .targetType)
            try container.encode(event.targetID, forKey: .targetID)
            try container.encode(event.detail, forKey: .detail)
            try container.encode(event.requestID, forKey: .requestID)
        }
    }

    struct AuditEventList: Encodable {
        var events: [AuditEventResource]
        /// The `before` of the next (older) page; absent on the last page.
        var nextBefore: Int64?

        enum CodingKeys: String, CodingKey {
            case events
            case nextBefore = "next_before"
        }
    }

    /// `GET /audit-events?limit=&before=`: the organization's security-relevant changes, newest first.
    @Sendable func auditEvents(_ request: Request, context: Context) async throws -> Response {
        try context.require(.admin)
        var errors: [FieldError] = []
        let query = QueryInput.values(request.uri.queryParameters, known: ["limit", "before"], errors: &errors)
        var limit = 100
        if let text = query["limit"] {
            if let value = Int(text), (1...500).contains(value) {
                limit = value
            } else {
                errors.append(FieldError(field: "limit", message: "must be an integer from 1 to 500"))
            }
        }
        var before: Int64?
        if let text = query["before"] {
            if let value = Int64(text), value > 0 {
                before = value
            } else {
                errors.append(FieldError(field: "before", message: "must be a positive integer (an event id)"))
            }
        }
        guard errors.isEmpty else { throw Problem.validation(errors) }
        let events = try await context.store {
            try await repository.auditEvents(in: context.caller.organizationID, limit: limit + 1, before: before)
        }
        let page = Array(events.prefix(limit))
        return try JSONResponse.make(
            AuditEventList(
                events: page.map { AuditEventResource(event: $0) },
                nextBefore: events.count > limit ? page.last?.id : nil))
    }
}
