import Foundation
import Logging

/// A private PostgreSQL cluster in a directory of the dev stack (initdb + pg_ctl on a free loopback port).
///
/// PostgreSQL refuses to run as root, so when this process is root the server runs as the `postgres` user, which
/// then owns the directory.
public struct LocalPostgres: Sendable {
    /// The cluster's directory.
    public let directory: URL
    /// The loopback port it listens on.
    public let port: Int
    private let binDirectory: String

    /// The connection URL (trust authentication on loopback; this is a development server).
    public var url: String { "postgres://postgres@127.0.0.1:\(port)/postgres" }

    /// Initializes the cluster on first use, then starts it on a free port; a server left running by an earlier
    /// run that died is stopped first.
    public static func start(directory: URL, logger: Logger) async throws -> LocalPostgres {
        let binDirectory = try await Self.binDirectory()
        let dataDirectory = directory.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        if isRoot { try await run("/bin/chown", ["-R", "postgres", directory.path]) }
        if !FileManager.default.fileExists(atPath: dataDirectory.appendingPathComponent("PG_VERSION").path) {
            logger.info("initializing PostgreSQL", metadata: ["path": "\(dataDirectory.path)"])
            try await runAsOwner(
                "\(binDirectory)/initdb", ["-D", dataDirectory.path, "-U", "postgres", "--auth=trust", "-E", "UTF8"])
        }
        // A server from an earlier run that was killed: stop it so this run owns the port it picks.
        _ = try? await runAsOwner("\(binDirectory)/pg_ctl", ["-D", dataDirectory.path, "-m", "fast", "stop"])
        let port = try FreePort.pick()
        try await runAsOwner(
            "\(binDirectory)/pg_ctl",
            [
                "-D", dataDirectory.path, "-l", directory.appendingPathComponent("server.log").path, "-w", "-t", "60",
                "-o", "-p \(port) -k \(directory.path) -c listen_addresses=127.0.0.1 -c max_connections=300", "start",
            ])
        return LocalPostgres(directory: directory, port: port, binDirectory: binDirectory)
    }

    /// Stops the server (fast shutdown: sessions are closed, data is kept).
    public func stop() async throws {
        try await Self.runAsOwner(
            "\(binDirectory)/pg_ctl", ["-D", directory.appendingPathComponent("data").path, "-m", "fast", "stop"])
    }

    static var isRoot: Bool { getuid() == 0 }

    static func binDirectory() async throws -> String {
        if let output = try? await capture("/usr/bin/env", ["pg_config", "--bindir"]), !output.isEmpty,
            FileManager.default.fileExists(atPath: "\(output)/pg_ctl")
        {
            return output
        }
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        guard let newest = versions.compactMap(Int.init).max() else {
            throw DevStackError("PostgreSQL is not installed (apt-get install postgresql), or set DATABASE_URL")
        }
        return "/usr/lib/postgresql/\(newest)/bin"
    }

    static func runAsOwner(_ executable: String, _ arguments: [String]) async throws {
        if isRoot {
            try await run("/usr/sbin/runuser", ["-u", "postgres", "--", executable] + arguments)
        } else {
            try await run(executable, arguments)
        }
    }

    static func run(_ executable: String, _ arguments: [String]) async throws {
        let result = try await Command.run(executable, arguments)
        guard result.status == 0 else {
            throw DevStackError("\(URL(fileURLWithPath: executable).lastPathComponent) failed: \(result.output)")
        }
    }

    static func capture(_ executable: String, _ arguments: [String]) async throws -> String {
        try await Command.run(executable, arguments).output.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
