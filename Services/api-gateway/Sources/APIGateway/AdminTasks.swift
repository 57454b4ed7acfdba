import CallDomain
import CallStore
import Foundation
import Logging
import PostgresNIO
import ServiceSupport

/// The one-off commands of the executable (`migrate`, `create-user`), kept here so `main` stays thin and they can
/// be tested.
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
        /// The generated password, when none was given.
        public var generatedPassword: String?
    }

    /// Why `create-user` refused its input.
    public struct InvalidInput: Error, CustomStringConvertible {
        /// What is wrong.
        public var description: String
    }

    /// Creates a user. `password == nil` generates one (returned once, never stored in clear).
    public static func createUser(
        databaseURL: String, username: String, role: UserRole, password: String?, bcryptCost: Int, logger: Logger
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
            do {
                let user = try await CallStore(client: client, logger: logger).createUser(
                    username: username, passwordHash: hash, role: role)
                return CreatedUser(id: user.id, username: user.username, role: user.role, generatedPassword: generated)
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
