import Foundation

/// Runs short-lived commands to completion (swift-subprocess, through ``ChildProcess``).
///
/// Output goes to a file, never a pipe: a command that leaves a daemon behind (`runuser … pg_ctl start`) would hand
/// the pipe to the daemon, and reading it would wait for the daemon's end. The end of the command itself is learnt
/// from the process (a pidfd), not from its output.
public enum Command {
    /// The outcome of a command.
    public struct Result: Sendable {
        /// The exit status (128 + signal when killed by one).
        public var status: Int32
        /// Standard output and error, interleaved.
        public var output: String
    }

    /// Runs `executable` with `arguments`; `input` is fed to its standard input.
    public static func run(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil, input: String? = nil
    ) async throws -> Result {
        let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent(
            "devstack-\(UUID().uuidString).out"
        ).path
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        let process = try await ChildProcess.start(
            executable: executable, arguments: arguments, environment: environment, input: Array((input ?? "").utf8),
            output: .file(outputPath))
        let termination = await process.waitForExit()
        let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        return Result(status: termination.status, output: output)
    }
}
