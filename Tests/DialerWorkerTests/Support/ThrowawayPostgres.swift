import Foundation
import TestSupport
import Testing

/// A PostgreSQL server of its own, in a temporary directory, that a test can stop and start again (the shared test
/// server must never be stopped). Runs as the `postgres` user when the tests run as root, as PostgreSQL requires.
final class ThrowawayPostgres: Sendable {
    let directory: String
    let port: Int
    private let binaries: String
    private let runAs: [String]

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    var url: String { "postgres://postgres@127.0.0.1:\(port)/postgres" }

    init() throws {
        let candidates = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        guard let version = candidates.sorted(by: { (Int($0) ?? 0) < (Int($1) ?? 0) }).last else {
            throw TestEnvironmentError("no PostgreSQL server binaries under /usr/lib/postgresql")
        }
        binaries = "/usr/lib/postgresql/\(version)/bin"
        directory =
            FileManager.default.temporaryDirectory
            .appendingPathComponent("dialer-pg-\(UUID().uuidString.prefix(8))").path
        port = try FreePort.pick()
        runAs = getuid() == 0 ? ["/usr/sbin/runuser", "-u", "postgres", "--"] : []
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if getuid() == 0 {
            try Self.shell(["/bin/chown", "postgres", directory])
        }
        try Self.shell(
            runAs + ["\(binaries)/initdb", "-D", "\(directory)/data", "-U", "postgres", "--auth=trust", "-E", "UTF8"])
        try Self.shell(startCommand)
    }

    private var startCommand: [String] {
        runAs + [
            "\(binaries)/pg_ctl", "-D", "\(directory)/data", "-l", "\(directory)/server.log", "-w", "-t", "30",
            "-o", "-p \(port) -k \(directory) -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
            "start",
        ]
    }

    private var stopCommand: [String] {
        runAs + ["\(binaries)/pg_ctl", "-D", "\(directory)/data", "-m", "immediate", "-w", "stop"]
    }

    /// Starts the server again and waits until it accepts connections.
    func start() async throws {
        try await Self.onThread(startCommand)
    }

    /// Stops the server at once (clients see their connections closed).
    func stop() async throws {
        try await Self.onThread(stopCommand)
    }

    /// Stops the server and removes its files.
    func destroy() {
        try? Self.shell(stopCommand)
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Runs a command on a thread of its own, keeping the concurrency pool free while it waits.
    private static func onThread(_ arguments: [String]) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            Thread.detachNewThread {
                do {
                    try shell(arguments)
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    /// Runs a command and waits for it, with `posix_spawn` and `waitpid` rather than `Process`: `pg_ctl start`
    /// leaves a server daemon behind that inherits the parent's descriptors, and `Process` (which watches them)
    /// would never see the command end. Output goes to a file, shown when the command fails.
    private static func shell(_ arguments: [String]) throws {
        let outputPath = FileManager.default.temporaryDirectory
            .appendingPathComponent("dialer-pg-cmd-\(UUID().uuidString.prefix(8)).log").path
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, arguments[0], &actions, nil, &argv, environ)
        guard spawned == 0 else {
            throw TestEnvironmentError("cannot run \(arguments[0]): error \(spawned)")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        // WIFEXITED && WEXITSTATUS == 0, spelled out (the macros are not imported).
        guard status & 0x7F == 0, (status >> 8) & 0xFF == 0 else {
            let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
            throw TestEnvironmentError("\(arguments.joined(separator: " ")) failed (\(status)): \(text)")
        }
    }
}

/// A free TCP port on loopback (bound, read, released: another process could take it meanwhile, which is unlikely
/// on a test machine and only fails that test's start-up).
enum FreePort {
    static func pick() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestEnvironmentError("socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else { throw TestEnvironmentError("bind() failed") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw TestEnvironmentError("getsockname() failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
