import ArgumentParser
import WebhookDispatcher

/// `webhook-dispatcher [serve]`: delivers the calls' status events as signed webhooks. Configuration comes from the
/// environment (see the README); the process stops gracefully on SIGTERM.
struct WebhookDispatcherCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webhook-dispatcher",
        abstract: "Delivers call status events from Kafka to the clients' webhook endpoints, signed and retried.",
        subcommands: [Serve.self],
        defaultSubcommand: Serve.self
    )
}

/// Runs the dispatcher.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the dispatcher (configured from the environment) until SIGTERM or SIGINT.")

    func run() async throws {
        try await DispatcherProcess.serve()
    }
}

/// As in the other services: inside an async function the asynchronous `main()` is chosen.
func runCommand() async {
    await WebhookDispatcherCommand.main()
}

await runCommand()
