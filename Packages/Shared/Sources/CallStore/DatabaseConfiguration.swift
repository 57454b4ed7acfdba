import Foundation
import Logging
import NIOSSL
import PostgresNIO
import ServiceSupport

/// Builds a `PostgresClient` configuration from a `postgres://user:password@host:port/database?sslmode=...` URL.
public enum DatabaseConfiguration {
    /// What is wrong with a database URL (the message never contains the password).
    public struct InvalidURL: Error, CustomStringConvertible {
        /// Why the URL was refused.
        public var description: String
    }

    /// Parses `url`. `sslmode=require` (or `verify-full`) turns TLS on; anything else connects in plain text,
    /// which is only right on loopback or a trusted network.
    public static func client(
        url: String,
        maximumConnections: Int = 20,
        applicationName: String? = nil
    ) throws -> PostgresClient.Configuration {
        guard let components = URLComponents(string: url),
            components.scheme == "postgres" || components.scheme == "postgresql"
        else { throw InvalidURL(description: "must look like postgres://user:password@host:port/database") }
        guard let host = components.host, !host.isEmpty else { throw InvalidURL(description: "has no host") }
        guard let user = components.user, !user.isEmpty else { throw InvalidURL(description: "has no user name") }
        let database = String(components.path.drop(while: { $0 == "/" }))
        let query = Dictionary(
            (components.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { _, last in last })
        let tls: PostgresClient.Configuration.TLS
        switch query["sslmode"] ?? "disable" {
        case "require", "verify-ca", "verify-full":
            tls = .require(.makeClientConfiguration())
        case "prefer":
            tls = .prefer(.makeClientConfiguration())
        default:
            tls = .disable
        }
        var configuration = PostgresClient.Configuration(
            host: host, port: components.port ?? 5432, username: user,
            password: components.password?.removingPercentEncoding ?? components.password,
            database: database.isEmpty ? nil : database, tls: tls)
        configuration.options.maximumConnections = maximumConnections
        configuration.options.minimumConnections = 0
        configuration.options.connectTimeout = .seconds(5)
        if let applicationName {
            configuration.options.additionalStartupParameters = [("application_name", applicationName)]
        }
        return configuration
    }
}

extension EnvironmentReader {
    /// `DATABASE_URL`, refused with a `ConfigurationError` when it is missing or PostgresNIO cannot use it.
    public func databaseURL() throws -> String {
        let url = try required("DATABASE_URL")
        do {
            _ = try DatabaseConfiguration.client(url: url)
        } catch {
            throw ConfigurationError(variable: "DATABASE_URL", message: "\(error)")
        }
        return url
    }
}
