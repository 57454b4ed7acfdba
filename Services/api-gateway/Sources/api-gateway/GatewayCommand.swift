import APIGateway
import ArgumentParser
import Foundation

/// `api-gateway`: the REST front door of the outbound dialer.
@main
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "api-gateway",
        abstract: "REST API of the outbound dialer: auth, call requests to Kafka, call queries, live status.",
        discussion: "Configuration comes from environment variables (see the README).",
        subcommands: [Serve.self, Migrate.self, CreateOrganization.self, CreateUser.self],
        defaultSubcommand: Serve.self)
}

/// Runs a subcommand, turning an operator's mistake into its message on standard error and an exit code.
func reportingFailures(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let failure as GatewayEntryPoint.Failure {
        FileHandle.standardError.write(Data("api-gateway: \(failure.description)\n".utf8))
        throw ExitCode(failure.exitCode)
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve the API until SIGTERM or SIGINT (the default).")

    func run() async throws {
        try await reportingFailures { try await GatewayEntryPoint.serve() }
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply the database migrations to DATABASE_URL (safe to run repeatedly and concurrently).")

    func run() async throws {
        try await reportingFailures { print(try await GatewayEntryPoint.migrate()) }
    }
}

struct CreateOrganization: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create-org",
        abstract: "Create an organization (its users, keys and calls are invisible to every other organization).")

    @Option(help: "The name (ASCII letters, digits, '.', '_', '-', '@'; at most 64).")
    var name: String

    @Option(help: "Most calls being dialed or up at once (default: no limit).")
    var maxLiveCalls: Int?

    @Option(help: "Most originates per second; calls beyond it wait queued (default: no limit).")
    var maxCallsPerSecond: Double?

    func validate() throws {
        if let maxLiveCalls, !(1...1_000_000).contains(maxLiveCalls) {
            throw ValidationError("--max-live-calls must be from 1 to 1000000")
        }
        if let maxCallsPerSecond, !(0.001...10_000).contains(maxCallsPerSecond) {
            throw ValidationError("--max-calls-per-second must be from 0.001 to 10000")
        }
    }

    func run() async throws {
        try await reportingFailures {
            print(
                try await GatewayEntryPoint.createOrganization(
                    name: name, maxLiveCalls: maxLiveCalls, maxCallsPerSecond: maxCallsPerSecond))
        }
    }
}

struct CreateUser: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create-user",
        abstract: "Create an API user.",
        discussion: """
            The password is read from standard input (e.g. `printf %s "$PASSWORD" | api-gateway create-user ...`). \
            On a terminal or with empty input a password is generated and printed once.
            """)

    @Option(help: "The login name (ASCII letters, digits, '.', '_', '-', '@'; at most 64).")
    var username: String

    @Option(help: "admin, operator or viewer.")
    var role: String

    @Option(name: .customLong("org"), help: "The organization's name (default: the default organization).")
    var organization: String?

    @Flag(help: "May also create organizations (through the API as well as here).")
    var platformOperator = false

    func validate() throws {
        guard ["admin", "operator", "viewer"].contains(role) else {
            throw ValidationError("--role must be admin, operator or viewer")
        }
    }

    func run() async throws {
        let password = Self.passwordFromStandardInput()
        try await reportingFailures {
            let lines = try await GatewayEntryPoint.createUser(
                username: username, role: role, organization: organization, platformOperator: platformOperator,
                password: password)
            for line in lines {
                print(line)
            }
        }
    }

    /// The password piped in, without its final line break; `nil` on a terminal or for empty input.
    static func passwordFromStandardInput() -> String? {
        guard isatty(STDIN_FILENO) == 0 else { return nil }
        let data = FileHandle.standardInput.readDataToEndOfFile()
        var text = String(decoding: data, as: UTF8.self)
        while let last = text.last, last == "\n" || last == "\r" { text.removeLast() }
        return text.isEmpty ? nil : text
    }
}
