import ArgumentParser
import CampaignScheduler

/// `campaign-scheduler [serve]`: runs the organizations' campaigns. Configuration comes from the environment (see the
/// README); the process stops gracefully on SIGTERM.
struct CampaignSchedulerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "campaign-scheduler",
        abstract: "Dispatches the running campaigns' due contacts as originate commands and applies their retry rules.",
        subcommands: [Serve.self],
        defaultSubcommand: Serve.self
    )
}

/// Runs the scheduler.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the scheduler (configured from the environment) until SIGTERM or SIGINT.")

    func run() async throws {
        try await SchedulerProcess.serve()
    }
}

/// As in the other services: inside an async function the asynchronous `main()` is chosen.
func runCommand() async {
    await CampaignSchedulerCommand.main()
}

await runCommand()
