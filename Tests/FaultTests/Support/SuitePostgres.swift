import DevStack
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
    static func create() async throws -> SuitePostgres {
        let directory = URL(fileURLWithPath: "/tmp/fault-pg-\(UUID().uuidString.prefix(8))", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let server = SuitePostgres(
            directory: directory, port: try DevStackProcess.freePort(), binDirectory: try binDir())
        if getuid() == 0 { try await run("/bin/chown", ["-R", "postgres", directory.path]) }
        try await server.asOwner(
            "initdb", ["-D", server.dataDirectory, "-U", "postgres", "--auth=trust", "-E", "UTF8"])
        try await server.start()
        return server
    }

    private var dataDirectory: String { directory.appendingPathComponent("data").path }

    /// Starts the server and waits until it accepts connections. Commits are synchronous, as in production: the
    /// suite stops the server abruptly, and an asynchronous commit could then lose transactions already
    /// acknowledged (`fsync=off` only matters when the machine itself crashes).
    func start() async throws {
        try await asOwner(
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
    func stop() async throws {
        try await asOwner("pg_ctl", ["-D", dataDirectory, "-m", "immediate", "-w", "stop"])
    }

    /// Stops the server if it runs (SIGQUIT to the postmaster: `pg_ctl -m immediate`'s signal) and removes its
    /// directory. Synchronous, for a `defer`.
    func destroy() {
        let pidFile = directory.appendingPathComponent("data/postmaster.pid").path
        if let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
            let pid = text.split(separator: "\n").first.flatMap({ Int32($0) })
        {
            kill(pid, SIGQUIT)
            let deadline = ContinuousClock.now + .seconds(10)
            while kill(pid, 0) == 0, ContinuousClock.now < deadline { usleep(10_000) }
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// Runs a PostgreSQL tool as the directory's owner. swift-subprocess learns of the exit from the process itself
    /// (a pidfd), so the server that `pg_ctl start` leaves behind, holding the tool's output open, does not delay it.
    private func asOwner(_ tool: String, _ arguments: [String]) async throws {
        let path = "\(binDirectory)/\(tool)"
        let command =
            getuid() == 0 ? ["/usr/sbin/runuser", "-u", "postgres", "--", path] + arguments : [path] + arguments
        try await Self.run(command[0], Array(command.dropFirst()))
    }

    private static func binDir() throws -> String {
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        guard let newest = versions.compactMap(Int.init).max() else {
            throw TestEnvironmentError("PostgreSQL is not installed (make test-faults installs it)")
        }
        return "/usr/lib/postgresql/\(newest)/bin"
    }

    /// Runs a tool with its output in a file, not a pipe (which a server left running could hold open).
    private static func run(_ executable: String, _ arguments: [String]) async throws {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("fault-pg-\(UUID().uuidString).log")
        defer { try? FileManager.default.removeItem(at: log) }
        let process = try await ChildProcess.start(
            executable: executable, arguments: arguments, output: .file(log.path))
        guard await process.waitForExit() == .exited(0) else {
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            throw TestEnvironmentError("\(arguments.joined(separator: " ")) failed: \(text)")
        }
    }
}
