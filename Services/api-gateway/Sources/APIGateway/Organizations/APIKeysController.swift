import CallDomain
import CallStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// API keys of the caller's organization, for its admins: `POST /api-keys`, `GET /api-keys`,
/// `DELETE /api-keys/{id}` (under `/api/v1`).
struct APIKeysController: Sendable {
    typealias Context = AuthenticatedRequestContext

    let repository: any OrganizationRepository
    let maxBodyBytes: Int

    func addRoutes(to group: RouterGroup<Context>) {
        group.post("api-keys", use: create)
        group.get("api-keys", use: list)
        group.delete("api-keys/:id", use: revoke)
    }

    /// A key as the API shows it: never the secret, except once in the answer to its creation.
    struct KeyResource: Encodable {
        var key: APIKey
        /// Only in the answer to the creation.
        var secret: String?

        enum CodingKeys: String, CodingKey {
            case id, name, scopes, prefix, key
            case createdAt = "created_at"
            case expiresAt = "expires_at"
            case revokedAt = "revoked_at"
            case lastUsedAt = "last_used_at"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(key.id.uuidString.lowercased(), forKey: .id)
            try container.encode(key.name, forKey: .name)
            try container.encode(key.scopes.map(\.rawValue).sorted(), forKey: .scopes)
            // What identifies the key in a list or a log without revealing it.
            try container.encode("\(APIKeySecret.prefix)\(key.lookupID)", forKey: .prefix)
            try container.encode(key.createdAt, forKey: .createdAt)
            try container.encode(key.expiresAt, forKey: .expiresAt)
            try container.encode(key.revokedAt, forKey: .revokedAt)
            try container.encode(key.lastUsedAt, forKey: .lastUsedAt)
            try container.encodeIfPresent(secret, forKey: .key)
        }
    }

    struct KeyList: Encodable {
        var apiKeys: [KeyResource]

        enum CodingKeys: String, CodingKey {
            case apiKeys = "api_keys"
        }
    }

    @Sendable func create(_ request: Request, context: Context) async throws -> Response {
        try context.require(.admin)
        let body = try await JSONInput.object(from: request, limit: maxBodyBytes)
        var reader = JSONObjectReader(body)
        reader.refuseUnknown(["name", "scopes", "expires_at"])
        let name = reader.string("name", required: true)
        let scopeNames = reader.strings("scopes", required: true)
        let expiresText = reader.string("expires_at")
        if let name, name.isEmpty || name.count > 64 || name.unicodeScalars.contains(where: { $0.value < 0x20 }) {
            reader.fail("name", "must be 1 to 64 printable characters")
        }
        var scopes = Set<APIScope>()
        if let scopeNames {
            let known = APIScope.allCases.map(\.rawValue).joined(separator: ", ")
            for scopeName in scopeNames {
                guard let scope = APIScope(rawValue: scopeName) else {
                    reader.fail("scopes", "must name only known scopes (\(known))")
                    break
                }
                scopes.insert(scope)
            }
            if scopeNames.isEmpty { reader.fail("scopes", "must name at least one scope (\(known))") }
        }
        var expiresAt: Date?
        if let expiresText {
            if let date = WireCoding.parseTimestamp(expiresText), date > Date() {
                expiresAt = date
            } else {
                reader.fail("expires_at", "must be an RFC 3339 timestamp in the future")
            }
        }
        guard reader.errors.isEmpty, let name else { throw Problem.validation(reader.errors) }
        // A key never holds more than its creator: an admin key cannot mint rights it lacks.
        let excess = scopes.subtracting(context.caller.scopes)
        guard excess.isEmpty else {
            throw Problem(
                .forbidden,
                detail: "a key cannot have scopes its creator lacks: "
                    + excess.map(\.rawValue).sorted().joined(separator: ", "))
        }
        let generated = APIKeySecret.generate()
        let createdBy: UUID? = if case .token = context.caller.credential { context.caller.id } else { nil }
        let key = try await context.store {
            try await repository.createAPIKey(
                NewAPIKey(
                    organizationID: context.caller.organizationID, name: name, lookupID: generated.lookupID,
                    keyHash: generated.hash, scopes: scopes, createdBy: createdBy, expiresAt: expiresAt),
                by: context.auditActor)
        }
        context.logger.notice(
            "API key created",
            metadata: ["api_key.id": .string(key.id.uuidString.lowercased()), "api_key.name": .string(name)])
        return try JSONResponse.make(
            KeyResource(key: key, secret: generated.key), status: .created,
            headers: [.location: "/api/v1/api-keys/\(key.id.uuidString.lowercased())", .cacheControl: "no-store"])
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        try context.require(.admin)
        let keys = try await context.store { try await repository.apiKeys(in: context.caller.organizationID) }
        return try JSONResponse.make(KeyList(apiKeys: keys.map { KeyResource(key: $0) }))
    }

    @Sendable func revoke(_ request: Request, context: Context) async throws -> Response {
        try context.require(.admin)
        guard let text = context.parameters.get("id"), let id = UUID(uuidString: text) else {
            throw Problem.validation(field: "id", message: "must be an API key id (a UUID)")
        }
        guard
            try await context.store({
                try await repository.revokeAPIKey(id: id, in: context.caller.organizationID, by: context.auditActor)
            }) != nil
        else {
            throw Problem(.notFound, detail: "no API key \(id.uuidString.lowercased())")
        }
        context.logger.notice("API key revoked", metadata: ["api_key.id": .string(id.uuidString.lowercased())])
        return Response(status: .noContent)
    }
}
