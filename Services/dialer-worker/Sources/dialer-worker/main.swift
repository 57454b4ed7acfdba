import ArgumentParser
import DialerWorker

/// `dialer-worker [serve]`: places the calls of the originate topic on one Asterisk node. Configuration comes from
/// the environment (see the README); the process stops gracefully on SIGTERM.
struct DialerWorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dialer-worker",
        abstract: "Places outbound calls from Kafka on an Asterisk node through ARI and tracks them.",
        subcommands: [Serve.self],
        defaultSubcommand: Serve.self
    )
}

/// Runs the worker.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the worker (configured from the environment) until SIGTERM or SIGINT.")

    func run() async throws {
        try await WorkerProcess.serve()
    }
}

/// Top-level `await DialerWorkerCommand.main()` resolves to `ParsableCommand`'s synchronous `main()` (Swift 6.3 ranks
/// top-level code as synchronous), which refuses an asynchronous root command and exits; inside an async function the
/// asynchronous `main()` is chosen.
func runCommand() async {
    await DialerWorkerCommand.main()
}

await runCommand()
