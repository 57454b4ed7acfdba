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
        try await withClient(url: try serverURL()) { admin in
            _ = try await admin.query("CREATE DATABASE \(unescaped: name)", logger: logger)
        }
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

    /// Runs `body` on a new database that has the bundled migrations below `version` applied and recorded, as a
    /// database of an earlier release has: the test fills it, then applies the rest.
    public static func withDatabase(
        migratedBelow version: Int, _ body: @Sendable (PostgresClient) async throws -> Void
    )
        async throws
    {
        try await TestDatabase.withStore { store, _ in
            let name = "test_mig\(version)_\(UInt32.random(in: 0 ... .max))"
            try await store.client.query("CREATE DATABASE \(unescaped: name)")
            try await TestDatabase.withClient(url: try TestDatabase.url(database: name)) { client in
                try await client.query(
                    """
                    CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
                        applied_at timestamptz NOT NULL DEFAULT now())
                    """)
                for migration in try Migrator.bundledMigrations() where migration.version < version {
                    for statement in migration.statements {
                        try await client.query(PostgresQuery(unsafeSQL: statement))
                    }
                    try await client.query(
                        "INSERT INTO schema_migrations (version, name) VALUES (\(migration.version), \(migration.name))"
                    )
                }
                try await body(client)
            }
        }
    }

    private static func drop(_ name: String) async throws {
        try await withClient(url: try serverURL()) { admin in
            try await admin.query(
                "DROP DATABASE IF EXISTS \(unescaped: name) WITH (FORCE)", logger: Logger(label: "test-db"))
        }
    }

    /// Runs `body` with a running `PostgresClient` for `url`, once the client has answered a `SELECT 1`.
    ///
    /// A connection lease asked for as the pool starts was seen to wait forever on this machine (CI stalled in test
    /// set-up, twice, right after PostgresNIO's "lease before run()" warning): the first query is bounded, and a client
    /// that does not answer it is replaced, so that a test fails rather than hangs.
    @discardableResult
    public static func withClient<Result: Sendable>(
        url: String,
        _ body: @Sendable (PostgresClient) async throws -> Result
    ) async throws -> Result {
        let configuration = try DatabaseConfiguration.client(url: url, maximumConnections: 10)
        for attempt in 1...3 {
            let client = PostgresClient(configuration: configuration, backgroundLogger: Logger(label: "test-db"))
            // Not a child task: a client whose run() ignores its cancellation (seen after a server restart) must not
            // hold the test, and the run, forever.
            let running = Task { await client.run() }
            let outcome: Started<Result>
            do {
                outcome = try await answers(client, within: .seconds(20)) ? .ran(try await body(client)) : .silent
            } catch {
                await stop(running, within: .seconds(15), "the test PostgreSQL client of \(url)")
                throw error
            }
            await stop(running, within: .seconds(15), "the test PostgreSQL client of \(url)")
            if case .ran(let result) = outcome { return result }
            Logger(label: "test-db").warning(
                "the test PostgreSQL client did not answer; replacing it (\(attempt) of 3)")
        }
        throw TestEnvironmentError("the test PostgreSQL at \(url) did not answer a SELECT 1 in three tries")
    }

    private enum Started<Value> {
        case ran(Value)
        case silent
    }

    /// Whether `client` answers `SELECT 1` within `limit`.
    private static func answers(_ client: PostgresClient, within limit: Duration) async throws -> Bool {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                _ = try await client.query("SELECT 1")
                return true
            }
            group.addTask {
                try await Task.sleep(for: limit)
                return false
            }
            let answered = try await group.next() ?? false
            group.cancelAll()
            return answered
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
