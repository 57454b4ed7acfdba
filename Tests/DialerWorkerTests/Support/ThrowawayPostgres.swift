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
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("dialer-pg-\(UUID().uuidString.prefix(8))").path
        port = try FreePort.pick()
        runAs = getuid() == 0 ? ["/usr/sbin/runuser", "-u", "postgres", "--"] : []
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if getuid() == 0 {
            try Self.shell(["/bin/chown", "postgres", directory])
        }
        try Self.shell(runAs + ["\(binaries)/initdb", "-D", "\(directory)/data", "-U", "postgres", "--auth=trust", "-E", "UTF8"])
        try start()
    }

    /// Starts the server (again) and waits until it accepts connections.
    func start() throws {
        try Self.shell(
            runAs + [
                "\(binaries)/pg_ctl", "-D", "\(directory)/data", "-l", "\(directory)/server.log", "-w", "-t", "30",
                "-o", "-p \(port) -k \(directory) -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
                "start",
            ])
    }

    /// Stops the server at once (clients see their connections closed).
    func stop() throws {
        try Self.shell(runAs + ["\(binaries)/pg_ctl", "-D", "\(directory)/data", "-m", "immediate", "-w", "stop"])
    }

    /// Stops the server and removes its files.
    func destroy() {
        try? stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    @discardableResult
    private static func shell(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw TestEnvironmentError("\(arguments.joined(separator: " ")) failed: \(text)")
        }
        return text
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
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
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
