import Foundation
import TestSupport

/// The built `api-gateway` executable (next to `devstack`, as `make test` builds them).
enum GatewayBinary {
    static var executable: URL {
        DevStackProcess.executable.deletingLastPathComponent().appendingPathComponent("api-gateway")
    }

    /// What a finished run printed and its exit status.
    struct Run: Sendable {
        var status: Int32
        var output: String
    }

    /// Runs the executable to completion (killed after `timeout`) with standard output and error captured.
    static func run(
        _ arguments: [String], environment: [String: String], input: String? = nil, timeout: Duration
    ) async throws -> Run {
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw TestEnvironmentError("\(executable.path) is missing: run the tests with `make test`")
        }
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        let stdin = Pipe()
        process.standardInput = stdin
        try process.run()
        if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
        try? stdin.fileHandleForWriting.close()
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            throw TestEnvironmentError("api-gateway \(arguments.joined(separator: " ")) still ran after \(timeout)")
        }
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return Run(status: process.terminationStatus, output: text)
    }

    /// Whether something accepts TCP connections on the loopback port.
    static func isListening(port: Int) throws -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestEnvironmentError("socket() failed") }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        return result == 0
    }
}
