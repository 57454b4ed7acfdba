import CallStore
import Foundation
import Logging
import PostgresNIO

/// A throwaway database per test: created on the server named by `TEST_DATABASE_URL` (set by `make test`), migrated,
/// and dropped afterwards, so tests running in parallel never see each other's rows.
public enum TestDatabase {
    /// The server's URL; tests that need PostgreSQL fail with a clear message when it is not set.
    public static func serverURL() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["TEST_DATABASE_URL"], !url.isEmpty else {
            throw TestEnvironmentError(
                "TEST_DATABASE_URL is not set: run the tests with `make test`, which starts a PostgreSQL server")
        }
        return url
    }

    /// The URL of a database named `name` on the test server.
    public static func url(database name: String) throws -> String {
        var components = URLComponents(string: try serverURL())!
        components.path = "/\(name)"
        return components.string!
    }

    /// Runs `body` with a store on a new, migrated database; drops the database afterwards.
    @discardableResult
    public static func withStore<Result: Sendable>(
        _ body: @Sendable (CallStore, _ databaseURL: String) async throws -> Result
    ) async throws -> Result {
        let name = "test_\(UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(20))"
        let logger = Logger(label: "test-db")
        try await createDatabase(name, logger: logger)
        let url = try url(database: name)
        do {
            let result = try await withClient(url: url) { client in
                try await Migrator(client: client, logger: logger).migrate()
                return try await body(CallStore(client: client, logger: logger), url)
            }
            try await drop(name)
            return result
        } catch {
            try? await drop(name)
            throw error
        }
    }

    /// Creates the database, each attempt on a fresh client and bounded: a connection lease asked for as the pool
    /// starts was once seen to wait forever (CI stalled at this step), and a test must fail, not hang.
    private static func createDatabase(_ name: String, logger: Logger) async throws {
        var lastError: (any Error)?
        for _ in 0..<3 {
            do {
                try await bounded(.seconds(30)) {
                    try await withClient(url: try serverURL()) { admin in
                        _ = try await admin.query("CREATE DATABASE \(unescaped: name)", logger: logger)
                    }
                }
                return
            } catch let error as PSQLError where error.serverInfo?[.sqlState] == "42P04" {
                return  // an attempt that timed out had created it
            } catch {
                lastError = error
            }
        }
        throw TestEnvironmentError("could not create the test database \(name): \(String(describing: lastError))")
    }

    /// Runs `body`, failing with an error when it has not finished after `limit`.
    static func bounded(_ limit: Duration, _ body: @escaping @Sendable () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await body()
                return true
            }
            group.addTask {
                try await Task.sleep(for: limit)
                return false
            }
            let finished = try await group.next() ?? false
            group.cancelAll()
            if !finished { throw TestEnvironmentError("no answer from the test PostgreSQL within \(limit)") }
        }
    }

    private static func drop(_ name: String) async throws {
        try await withClient(url: try serverURL()) { admin in
            try await admin.query(
                "DROP DATABASE IF EXISTS \(unescaped: name) WITH (FORCE)", logger: Logger(label: "test-db"))
        }
    }

    /// Runs `body` with a running `PostgresClient` for `url`.
    @discardableResult
    public static func withClient<Result: Sendable>(
        url: String,
        _ body: @Sendable (PostgresClient) async throws -> Result
    ) async throws -> Result {
        let client = PostgresClient(
            configuration: try DatabaseConfiguration.client(url: url, maximumConnections: 10),
            backgroundLogger: Logger(label: "test-db"))
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }
}

/// The test environment is missing something it needs.
public struct TestEnvironmentError: Error, CustomStringConvertible {
    /// What is missing.
    public var description: String

    /// Creates an error.
    public init(_ description: String) {
        self.description = description
    }
}
