import CallDomain
import CallStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// User administration for admins, within their organization: `POST /users`, `GET /users`, `PATCH /users/{id}`,
/// `DELETE /users/{id}`. A user of another organization answers 404, as an unknown one does.
struct UsersController: Sendable {
    typealias Context = AuthenticatedRequestContext

    let users: any UserRepository
    let directory: UserDirectory
    let hasher: PasswordHasher
    let maxBodyBytes: Int

    func addRoutes(to group: RouterGroup<Context>) {
        group.post("users", use: create)
        group.get("users", use: list)
        group.patch("users/:id", use: update)
        group.delete("users/:id", use: delete)
    }

    /// A user as the API shows it (never the hash).
    struct UserResource: Encodable {
        var id: UUID
        var username: String
        var role: UserRole
        var organizationID: OrganizationID
        var disabled: Bool
        var createdAt: Date
        var updatedAt: Date
        /// Only in the answer to a creation without a password: shown once, never stored in clear.
        var generatedPassword: String?

        init(_ user: User, generatedPassword: String? = nil) {
            id = user.id
            username = user.username
            role = user.role
            organizationID = user.organizationID
            disabled = user.disabled
            createdAt = user.createdAt
            updatedAt = user.updatedAt
            self.generatedPassword = generatedPassword
        }

        enum CodingKeys: String, CodingKey {
            case id, username, role, disabled
            case organizationID = "organization_id"
            case createdAt = "created_at"
            case updatedAt = "updated_at"
            case generatedPassword = "generated_password"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(id.uuidString.lowercased(), forKey: .id)
            try container.encode(username, forKey: .username)
            try container.encode(role, forKey: .role)
            try container.encode(organizationID, forKey: .organizationID)
            try container.encode(disabled, forKey: .disabled)
            try container.encode(createdAt, forKey: .createdAt)
            try container.encode(updatedAt, forKey: .updatedAt)
            try container.encodeIfPresent(generatedPassword, forKey: .generatedPassword)
        }
    }

    struct UserList: Encodable {
        var users: [UserResource]
    }

    // MARK: - Rules shared with the create-user command

    /// User names: 1 to 64 of ASCII letters, digits, `.`, `_`, `-`, `@`.
    static func validateUsername(_ name: String) throws(FieldError) {
        guard !name.isEmpty, name.utf8.count <= 64 else {
            throw FieldError(field: "username", message: "must be 1 to 64 characters")
        }
        let allowed = name.utf8.allSatisfy { byte in
            (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                || [0x2E, 0x5F, 0x2D, 0x40].contains(byte)
        }
        guard allowed else {
            throw FieldError(field: "username", message: "may contain only ASCII letters, digits, '.', '_', '-', '@'")
        }
    }

    /// Passwords: at least 12 characters (Unicode code points, as JSON Schema's `minLength` counts them) and at most
    /// 72 bytes in UTF-8 (bcrypt ignores anything after 72 bytes, so longer ones would be misleading).
    static func validatePassword(_ password: String) throws(FieldError) {
        guard password.unicodeScalars.count >= 12, password.utf8.count <= 72 else {
            throw FieldError(field: "password", message: "must be at least 12 characters and at most 72 bytes long")
        }
    }

    /// A random password of 24 URL-safe characters (about 143 bits).
    static func generatePassword() -> String {
        let alphabet = Array("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789-_")
        var generator = SystemRandomNumberGenerator()
        return String((0..<24).map { _ in alphabet.randomElement(using: &generator)! })
    }

    // MARK: - Handlers

    @Sendable func create(_ request: Request, context: Context) async throws -> Response {
        try context.require(.admin)
        let body = try await JSONInput.object(from: request, limit: maxBodyBytes)
        var reader = JSONObjectReader(body)
        reader.refuseUnknown(["username", "password", "role"])
        let username = reader.string("username", required: true)
        let password = reader.string("password")
        let roleText = reader.string("role", required: true)
        if let username {
            do { try Self.validateUsername(username) } catch { reader.add([error]) }
        }
        if let password {
            do { try Self.validatePassword(password) } catch { reader.add([error]) }
        }
        let role = roleText.flatMap(UserRole.init(rawValue:))
        if roleText != nil, role == nil { reader.fail("role", "must be admin, operator or viewer") }
        guard reader.errors.isEmpty, let username, let role else { throw Problem.validation(reader.errors) }
        let generated = password == nil ? Self.generatePassword() : nil
        let hash = try await hasher.hash(password ?? generated ?? "")
        let user: User
        do {
            user = try await context.store {
                try await users.createUser(
                    username: username, passwordHash: hash, role: role, organization: context.caller.organizationID,
                    platformOperator: false, by: context.auditActor)
            }
        } catch StoreError.duplicateUsername {
            throw Problem(.usernameTaken, detail: "a user named \(username) exists")
        }
        context.logger.notice(
            "user created", metadata: ["user.created": .string(username), "user.role": .string(role.rawValue)])
        return try JSONResponse.make(
            UserResource(user, generatedPassword: generated), status: .created,
            headers: [.location: "/api/v1/users/\(user.id.uuidString.lowercased())", .cacheControl: "no-store"])
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        try context.require(.admin)
        let list = try await context.store {
            try await users.users(in: context.caller.organizationID)
        }
        return try JSONResponse.make(UserList(users: list.map { UserResource($0) }))
    }

    @Sendable func update(_ request: Request, context: Context) async throws -> Response {
        try context.require(.admin)
        let id = try Self.userID(context)
        let body = try await JSONInput.object(from: request, limit: maxBodyBytes)
        var reader = JSONObjectReader(body)
        reader.refuseUnknown(["disabled", "role"])
        let disabled = reader.bool("disabled")
        let roleText = reader.string("role")
        let role = roleText.flatMap(UserRole.init(rawValue:))
        if roleText != nil, role == nil { reader.fail("role", "must be admin, operator or viewer") }
        // `null` leaves a field as it is; a body naming neither field is a mistake.
        if body.isEmpty { reader.fail("disabled", "or role is required") }
        guard reader.errors.isEmpty else { throw Problem.validation(reader.errors) }
        if id == context.caller.id, disabled == true || (role.map { $0 != .admin } ?? false) {
            throw Problem(.conflict, detail: "an admin cannot disable or demote their own account")
        }
        guard
            let user = try await context.store(
                {
                    try await users.updateUser(
                        id: id, in: context.caller.organizationID, disabled: disabled, role: role,
                        by: context.auditActor)
                })
        else {
            throw Problem(.notFound, detail: "no user \(id.uuidString.lowercased())")
        }
        directory.invalidate(id)
        context.logger.notice(
            "user changed",
            metadata: [
                "user.changed": .string(user.username), "user.role": .string(user.role.rawValue),
                "user.disabled": .stringConvertible(user.disabled),
            ])
        return try JSONResponse.make(UserResource(user))
    }

    @Sendable func delete(_ request: Request, context: Context) async throws -> Response {
        try context.require(.admin)
        let id = try Self.userID(context)
        if id == context.caller.id {
            throw Problem(.conflict, detail: "an admin cannot delete their own account")
        }
        guard
            try await context.store(
                {
                    try await users.deleteUser(id: id, in: context.caller.organizationID, by: context.auditActor)
                })
        else {
            throw Problem(.notFound, detail: "no user \(id.uuidString.lowercased())")
        }
        directory.invalidate(id)
        context.logger.notice("user deleted", metadata: ["user.deleted": .string(id.uuidString.lowercased())])
        return Response(status: .noContent)
    }

    static func userID(_ context: Context) throws -> UUID {
        guard let text = context.parameters.get("id"), let id = UUID(uuidString: text) else {
            throw Problem.validation(field: "id", message: "must be a user id (a UUID)")
        }
        return id
    }
}
