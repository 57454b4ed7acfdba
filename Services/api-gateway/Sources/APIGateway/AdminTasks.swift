import CallDomain
import CallStore
import Foundation
import Logging
import PostgresNIO
import ServiceSupport

/// The one-off commands of the executable (`migrate`, `create-org`, `create-user`), kept here so `main` stays thin
/// and they can be tested.
public enum AdminTasks {
    /// Applies pending migrations to `databaseURL`; returns the versions applied.
    public static func migrate(databaseURL: String, logger: Logger) async throws -> [Int] {
        try await withDatabase(databaseURL, logger: logger) { client in
            try await Migrator(client: client, logger: logger).migrate()
        }
    }

    /// A user created by `create-user`, with the password when it was generated (to print once).
    public struct CreatedUser: Sendable {
        /// The user id.
        public var id: UUID
        /// The login name.
        public var username: String
        /// The role.
        public var role: UserRole
        /// The organization's name.
        public var organization: String
        /// The generated password, when none was given.
        public var generatedPassword: String?
    }

    /// Why `create-user` refused its input.
    public struct InvalidInput: Error, CustomStringConvertible {
        /// What is wrong.
        public var description: String
    }

    /// Creates an organization (`create-org`).
    public static func createOrganization(
        databaseURL: String, name: String, limits: OrganizationLimits = .none, logger: Logger
    ) async throws -> Organization {
        do {
            try OrganizationsController.validateName(name)
        } catch {
            throw InvalidInput(description: "\(error.field) \(error.message)")
        }
        return try await withDatabase(databaseURL, logger: logger) { client in
            do {
                return try await CallStore(client: client, logger: logger).createOrganization(
                    name: name, limits: limits, by: .commandLine)
            } catch StoreError.duplicateOrganization {
                throw InvalidInput(description: "an organization named \(name) exists")
            }
        }
    }

    /// Creates a user in the organization named `organization` (`default` when `nil`). `password == nil` generates
    /// one (returned once, never stored in clear). A platform operator may also create organizations.
    public static func createUser(
        databaseURL: String, username: String, role: UserRole, organization: String?, platformOperator: Bool,
        password: String?, bcryptCost: Int, logger: Logger
    ) async throws -> CreatedUser {
        do {
            try UsersController.validateUsername(username)
            if let password { try UsersController.validatePassword(password) }
        } catch {
            throw InvalidInput(description: "\(error.field) \(error.message)")
        }
        let generated = password == nil ? UsersController.generatePassword() : nil
        let hasher = try await PasswordHasher(cost: bcryptCost)
        let hash = try await hasher.hash(password ?? generated ?? "")
        return try await withDatabase(databaseURL, logger: logger) { client in
            let store = CallStore(client: client, logger: logger)
            let name = organization ?? "default"
            guard let found = try await store.organization(named: name) else {
                throw InvalidInput(description: "no organization named \(name) (create it with create-org)")
            }
            do {
                let user = try await store.createUser(
                    username: username, passwordHash: hash, role: role, organization: found.id,
                    platformOperator: platformOperator, by: .commandLine)
                return CreatedUser(
                    id: user.id, username: user.username, role: user.role, organization: found.name,
                    generatedPassword: generated)
            } catch StoreError.duplicateUsername {
                throw InvalidInput(description: "username \(username) is taken")
            }
        }
    }

    private static func withDatabase<Result: Sendable>(
        _ url: String, logger: Logger, _ body: @Sendable (PostgresClient) async throws -> Result
    ) async throws -> Result {
        let configuration: PostgresClient.Configuration
        do {
            configuration = try DatabaseConfiguration.client(
                url: url, maximumConnections: 2, applicationName: "api-gateway")
        } catch {
            throw ConfigurationError(variable: "DATABASE_URL", message: "\(error)")
        }
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }
}
