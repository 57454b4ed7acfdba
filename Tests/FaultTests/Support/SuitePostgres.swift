import Foundation
import TestSupport

/// A PostgreSQL server of the fault suite alone (initdb in a temporary directory, one loopback port for its whole
/// life), so that the suite can stop it and start it again under the running system.
///
/// PostgreSQL refuses to run as root: when the tests run as root, the server runs as the `postgres` user, which then
/// owns the directory.
final class SuitePostgres: Sendable {
    /// The cluster's directory (data, socket, server log).
    let directory: URL
    /// The loopback port, kept across restarts so that the clients reconnect to the same address.
    let port: Int
    private let binDirectory: String

    /// The connection URL (trust authentication on loopback).
    var url: String { "postgres://postgres@127.0.0.1:\(port)/postgres" }

    private init(directory: URL, port: Int, binDirectory: String) {
        self.directory = directory
        self.port = port
        self.binDirectory = binDirectory
    }

    /// Creates a cluster and starts it.
    static func create() throws -> SuitePostgres {
        let directory = URL(fileURLWithPath: "/tmp/fault-pg-\(UUID().uuidString.prefix(8))", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let server = SuitePostgres(
            directory: directory, port: try DevStackProcess.freePort(), binDirectory: try binDir())
        if getuid() == 0 { try run("/bin/chown", ["-R", "postgres", directory.path]) }
        try server.asOwner(
            "initdb", ["-D", server.dataDirectory, "-U", "postgres", "--auth=trust", "-E", "UTF8"])
        try server.start()
        return server
    }

    private var dataDirectory: String { directory.appendingPathComponent("data").path }

    /// Starts the server and waits until it accepts connections. Commits are synchronous, as in production: the
    /// suite stops the server abruptly, and an asynchronous commit could then lose transactions already
    /// acknowledged (`fsync=off` only matters when the machine itself crashes).
    func start() throws {
        try asOwner(
            "pg_ctl",
            [
                "-D", dataDirectory, "-l", directory.appendingPathComponent("server.log").path, "-w", "-t", "60",
                "-o",
                "-p \(port) -k \(directory.path) -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off "
                    + "-c full_page_writes=off",
                "start",
            ])
    }

    /// Stops the server at once, as a crash would: sessions are cut, nothing is checkpointed (the WAL replays on the
    /// next start).
    func stop() throws {
        try asOwner("pg_ctl", ["-D", dataDirectory, "-m", "immediate", "-w", "stop"])
    }

    /// Stops the server if it runs and removes its directory.
    func destroy() {
        _ = try? asOwner("pg_ctl", ["-D", dataDirectory, "-m", "immediate", "stop"])
        try? FileManager.default.removeItem(at: directory)
    }

    private func asOwner(_ tool: String, _ arguments: [String]) throws {
        let path = "\(binDirectory)/\(tool)"
        let command =
            getuid() == 0 ? ["/usr/sbin/runuser", "-u", "postgres", "--", path] + arguments : [path] + arguments
        // Foundation's Process learns that a child ended when a socket the child inherited is closed, and the server
        // that `pg_ctl start` leaves behind would inherit it too: Python's subprocess (close_fds) runs the tool
        // without it.
        try Self.run(
            "/usr/bin/env",
            ["python3", "-c", "import subprocess, sys; sys.exit(subprocess.run(sys.argv[1:]).returncode)"] + command)
    }

    private static func binDir() throws -> String {
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        guard let newest = versions.compactMap(Int.init).max() else {
            throw TestEnvironmentError("PostgreSQL is not installed (make test-faults installs it)")
        }
        return "/usr/lib/postgresql/\(newest)/bin"
    }

    /// Runs a tool with its output in a file, not a pipe (which a server left running could hold open).
    private static func run(_ executable: String, _ arguments: [String]) throws {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("fault-pg-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: log) }
        let handle = try FileHandle(forWritingTo: log)
        defer { try? handle.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            throw TestEnvironmentError("\(arguments.joined(separator: " ")) failed: \(text)")
        }
    }
}
