import DevStack
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
        let executable = executable.path
        return try await withThrowingTaskGroup(of: Run?.self) { group in
            group.addTask {
                let run = try await ChildProcess.run(
                    executable: executable, arguments: arguments, environment: environment,
                    input: Array((input ?? "").utf8))
                return Run(status: run.termination.status, output: run.output + run.errors)
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            // Whichever ends first; cancelling the run ends the process (swift-subprocess tears it down).
            let first = try await group.next() ?? nil
            group.cancelAll()
            guard let first else {
                throw TestEnvironmentError("api-gateway \(arguments.joined(separator: " ")) still ran after \(timeout)")
            }
            return first
        }
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
