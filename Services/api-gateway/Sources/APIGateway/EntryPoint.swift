import CallStore
import Foundation
import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle
import ServiceSupport

/// What the `api-gateway` executable does for each subcommand; the executable only parses arguments.
public enum GatewayEntryPoint {
    /// A problem the operator must fix (bad configuration or input); the process exits with `exitCode`.
    public struct Failure: Error, CustomStringConvertible {
        /// The message, naming the variable or option at fault.
        public var description: String
        /// 78 (EX_CONFIG) for configuration, 65 (EX_DATAERR) for bad input.
        public var exitCode: Int32
    }

    /// `serve`: reads the configuration, bootstraps logging and metrics, and runs until SIGTERM/SIGINT.
    public static func serve() async throws {
        let configuration: GatewayConfiguration
        let registry: PrometheusCollectorRegistry
        let tracing: [any Service]
        do {
            try LoggingSetup.bootstrap(service: "api-gateway")
            configuration = try GatewayConfiguration()
            registry = MetricsSetup.bootstrap()
            tracing = try TracingSetup.bootstrap(service: "api-gateway")
        } catch let error as ConfigurationError {
            throw Failure(description: "\(error)", exitCode: 78)
        }
        var logger = Logger(label: "api-gateway")
        logger[metadataKey: "instance"] = .string(configuration.instanceID)
        logger.info(
            "starting",
            metadata: ["http.host": .string(configuration.host), "http.port": .stringConvertible(configuration.port)])
        let application = try await buildApplication(
            configuration: configuration, registry: registry, logger: logger,
            leadingServices: tracing)
        try await application.runService()
        logger.info("stopped")
    }

    /// `migrate`: applies pending migrations to `DATABASE_URL`; returns a line to print.
    public static func migrate() async throws -> String {
        let url = try configurationValue { try EnvironmentReader().required("DATABASE_URL") }
        try configurationValue { try LoggingSetup.bootstrap(service: "api-gateway") }
        let applied = try await AdminTasks.migrate(databaseURL: url, logger: Logger(label: "api-gateway.migrate"))
        return applied.isEmpty
            ? "database is up to date" : "applied migrations: \(applied.map(String.init).joined(separator: ", "))"
    }

    /// `create-org`: creates an organization; returns the line to print.
    public static func createOrganization(
        name: String, maxLiveCalls: Int? = nil, maxCallsPerSecond: Double? = nil
    ) async throws -> String {
        let url = try configurationValue { try EnvironmentReader().required("DATABASE_URL") }
        try configurationValue { try LoggingSetup.bootstrap(service: "api-gateway") }
        do {
            let created = try await AdminTasks.createOrganization(
                databaseURL: url, name: name,
                limits: OrganizationLimits(maxLiveCalls: maxLiveCalls, maxCallsPerSecond: maxCallsPerSecond),
                logger: Logger(label: "api-gateway.create-org"))
            return "created organization \(created.name) id \(created.id)"
        } catch let error as AdminTasks.InvalidInput {
            throw Failure(description: error.description, exitCode: 65)
        } catch let error as ConfigurationError {
            throw Failure(description: "\(error)", exitCode: 78)
        }
    }

    /// `create-user`: creates a user; returns the lines to print (the generated password, once).
    public static func createUser(
        username: String, role: String, organization: String?, platformOperator: Bool, password: String?
    ) async throws -> [String] {
        guard let role = UserRole(rawValue: role) else {
            throw Failure(description: "--role must be admin, operator or viewer", exitCode: 64)
        }
        let environment = EnvironmentReader()
        let url = try configurationValue { try environment.required("DATABASE_URL") }
        let cost = try configurationValue { try environment.int("BCRYPT_COST", default: 12, range: 12...16) }
        try configurationValue { try LoggingSetup.bootstrap(service: "api-gateway") }
        do {
            let created = try await AdminTasks.createUser(
                databaseURL: url, username: username, role: role, organization: organization,
                platformOperator: platformOperator, password: password, bcryptCost: cost,
                logger: Logger(label: "api-gateway.create-user"))
            var lines = [
                "created user \(created.username) (\(created.role.rawValue)) in \(created.organization) id "
                    + created.id.uuidString.lowercased()
            ]
            if let generated = created.generatedPassword {
                lines.append("generated password (shown once): \(generated)")
            }
            return lines
        } catch let error as AdminTasks.InvalidInput {
            throw Failure(description: error.description, exitCode: 65)
        } catch let error as ConfigurationError {
            throw Failure(description: "\(error)", exitCode: 78)
        }
    }

    private static func configurationValue<Value>(_ read: () throws -> Value) throws -> Value {
        do {
            return try read()
        } catch let error as ConfigurationError {
            throw Failure(description: "\(error)", exitCode: 78)
        }
    }
}
