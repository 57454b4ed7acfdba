import ArgumentParser

/// `devstack`: runs the pieces of the system's environment on one machine for development and tests.
@main
struct DevStackCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devstack",
        abstract: "Development stack: embedded Kafka broker and other local stand-ins. Not for production.",
        subcommands: [UpCommand.self, KafkaCommand.self, ARISimCommand.self]
    )
}
