import Foundation

/// Runs short-lived commands to completion with `posix_spawn` and a blocking `waitpid`.
///
/// Foundation's `Process` proved unreliable here for commands that leave a daemon behind (`runuser … pg_ctl start`
/// ended as an unreaped zombie while `waitUntilExit` kept waiting), so the dev stack's one-shot commands use the
/// system calls directly. Output goes to a file, never a pipe a daemon could inherit.
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
    ) throws -> Result {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("devstack-\(UUID().uuidString)")
        let outputPath = scratch.path + ".out"
        let inputPath = scratch.path + ".in"
        _ = FileManager.default.createFile(atPath: inputPath, contents: Data((input ?? "").utf8))
        defer {
            try? FileManager.default.removeItem(atPath: outputPath)
            try? FileManager.default.removeItem(atPath: inputPath)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, inputPath, O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let env = (environment ?? ProcessInfo.processInfo.environment).map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            env.forEach { free($0) }
        }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, env)
        guard spawned == 0 else { throw DevStackError("cannot start \(executable): error \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else { throw DevStackError("waitpid failed for \(executable): \(errno)") }
        }
        // WIFEXITED / WEXITSTATUS / WTERMSIG are macros Swift cannot import.
        let exitStatus = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        return Result(status: exitStatus, output: output)
    }
}
