import ARISimulator
import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

/// `devstack ari-sim`: the ARI simulator as a standalone server.
struct ARISimCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ari-sim",
        abstract: "Run the ARI simulator (Asterisk 22 REST + events WebSocket stand-in; not for production).",
        discussion: """
            Serves ARI under http://HOST:PORT/ari as Asterisk 22 does for a dialer: originate, hangup, \
            channels, continue, application subscriptions, /asterisk/info and the events WebSocket \
            (/ari/events?app=...&api_key=user:pass). Outcomes are chosen by the dialed number through a rule \
            table (docs/ari-simulator.md); --rules loads a JSON rules file.

            The first stdout line is the base URL (useful with --port 0); the next lines print the settings. \
            Logs go to stderr. Runs until SIGINT or SIGTERM.

            Fault controls (loopback clients, no credentials) on the same port:
              POST /__sim/drop-websockets[?app=NAME]
              POST /__sim/refuse-originates?count=N[&status=503]   (or ?seconds=S)
              POST /__sim/latency?ms=N
              POST /__sim/unresponsive?enabled=true|false
              POST /__sim/reset            POST /__sim/reset-counters
              POST /__sim/hangup?channel=ID[&cause=16]
              GET  /__sim/stats            GET  /__sim/originates?channel=ID
            """
    )

    @Option(help: "Address to listen on.")
    var host: String = "127.0.0.1"

    @Option(help: "Port to listen on (0 picks a free port).")
    var port: Int = 8088

    @Option(help: "ARI user name.")
    var username: String = "dialer"

    @Option(help: "ARI password.")
    var password: String = "dialer-secret"

    @Option(help: "JSON rules file (see docs/ari-simulator.md); the default rules apply without it.")
    var rules: String?

    @Option(help: "Seconds an answered call without a hold time stays up.")
    var defaultHold: Int = 3600

    @Option(help: "When the first events of an originate precede its HTTP response: never, always, immediate, every:N.")
    var earlyEvents: String = "immediate"

    @Option(help: "Log level (trace, debug, info, notice, warning, error, critical).")
    var logLevel: String = "info"

    @Option(help: "Seconds REST answers 503 'Asterisk not booted' after start while WebSockets are accepted.")
    var bootSeconds: Double = 0

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
        guard (0...600).contains(bootSeconds) else { throw ValidationError("--boot-seconds must be 0...600") }
        guard defaultHold > 0 else { throw ValidationError("--default-hold must be positive") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
        _ = try Self.earlyEventsPolicy(earlyEvents)
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "devstack.ari-sim")
        var configuration = ARISimulatorConfiguration(
            host: host,
            port: port,
            username: username,
            password: password,
            defaultHold: .seconds(defaultHold),
            earlyEvents: try Self.earlyEventsPolicy(earlyEvents),
            bootWindow: .milliseconds(Int64(bootSeconds * 1000))
        )
        if let rules {
            let file = try RuleFile.parse(try Data(contentsOf: URL(fileURLWithPath: rules)))
            configuration.rules = file.rules
            configuration.fallbackOutcome = file.fallback
        }
        let fallback = "\(configuration.fallbackOutcome)"
        let simulator = try ARISimulator(configuration: configuration, logger: logger)
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [simulator],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            tasks.addTask {
                let baseURL = try await simulator.baseURL
                Self.output(baseURL)
                Self.output("events:    \(try await simulator.eventsURL)?app=<app>&api_key=\(username):\(password)")
                Self.output("username:  \(username)")
                Self.output("password:  \(password)")
                Self.output("rules:     \(rules ?? "built-in (numbering plan +1555 01 OC AA HH and capture names)")")
                Self.output("fallback:  \(fallback)")
                Self.output("hold:      \(defaultHold) s    early events: \(earlyEvents)")
                Self.output("admin:     \(baseURL.replacingOccurrences(of: "/ari", with: "/__sim/"))")
            }
            try await tasks.waitForAll()
        }
    }

    private static func earlyEventsPolicy(_ text: String) throws -> EarlyEventsPolicy {
        switch text {
        case "never": return .never
        case "always": return .always
        case "immediate": return .whenAnsweredImmediately
        default:
            if text.hasPrefix("every:"), let n = Int(text.dropFirst("every:".count)), n > 0 { return .everyNth(n) }
            throw ValidationError("--early-events must be never, always, immediate or every:N")
        }
    }

    private static func output(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }
}
