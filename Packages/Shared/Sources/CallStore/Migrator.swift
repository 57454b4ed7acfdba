import Foundation
import Logging
import PostgresNIO

/// Applies the versioned SQL migrations shipped in this module, in order, exactly once per database.
///
/// All pending migrations run in one transaction that first takes a transaction-scoped advisory lock, so two
/// processes migrating at once serialize: the second waits, then finds nothing left to do. Each applied version is
/// recorded in `schema_migrations`.
public struct Migrator: Sendable {
    /// One migration: its version (the file's numeric prefix), name and SQL.
    public struct Migration: Sendable, Hashable {
        /// Ordering key, from the file name's numeric prefix.
        public var version: Int
        /// The file name without extension.
        public var name: String
        /// The statements.
        public var sql: String

        /// The file split into statements, each executed on its own (the extended query protocol takes one
        /// statement at a time). A statement ends with `;` at the end of a line; migrations therefore keep
        /// function bodies, if ever needed, free of line-final semicolons.
        public var statements: [String] {
            var statements: [String] = []
            var current: [Substring] = []
            for line in sql.split(separator: "\n", omittingEmptySubsequences: false) {
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                if trimmed.hasPrefix("--") || trimmed.isEmpty { continue }
                current.append(line)
                if trimmed.hasSuffix(";") {
                    statements.append(current.joined(separator: "\n"))
                    current.removeAll()
                }
            }
            let rest = current.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
            if !rest.isEmpty { statements.append(rest) }
            return statements
        }
    }

    /// The advisory lock key every migrating process contends for ("dialer" in ASCII).
    static let advisoryLockKey: Int64 = 0x6469_616C_6572

    private let client: PostgresClient
    private let logger: Logger

    /// Creates a migrator on a running client.
    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// The migrations bundled with this module, sorted by version.
    public static func bundledMigrations() throws -> [Migration] {
        guard let directory = Bundle.module.url(forResource: "Migrations", withExtension: nil) else {
            throw StoreError.migrationsMissing
        }
        let files = try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
        return try files.filter { $0.pathExtension == "sql" }.map { url in
            let name = url.deletingPathExtension().lastPathComponent
            guard let version = Int(name.prefix(while: \.isNumber)) else { throw StoreError.migrationsMissing }
            return Migration(version: version, name: name, sql: try String(contentsOf: url, encoding: .utf8))
        }.sorted { $0.version < $1.version }
    }

    /// Applies every pending migration; returns the versions applied by this call (empty when up to date).
    @discardableResult
    public func migrate() async throws -> [Int] {
        let migrations = try Self.bundledMigrations()
        let logger = self.logger
        return try await client.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.advisoryLockKey))", logger: logger)
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version integer PRIMARY KEY,
                    name text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """,
                logger: logger
            )
            var applied = Set<Int>()
            for try await version in try await connection.query(
                "SELECT version FROM schema_migrations", logger: logger
            ).decode(Int.self) {
                applied.insert(version)
            }
            var newlyApplied: [Int] = []
            for migration in migrations where !applied.contains(migration.version) {
                logger.info("applying migration", metadata: ["migration.name": "\(migration.name)"])
                for statement in migration.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO schema_migrations (version, name) VALUES (\(migration.version), \(migration.name))",
                    logger: logger
                )
                newlyApplied.append(migration.version)
            }
            return newlyApplied
        }
    }
}
