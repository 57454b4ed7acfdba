import ArgumentParser
import EmbeddedKafka
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals

/// `devstack kafka`: an in-memory Kafka-protocol cluster (librdkafka's mock cluster) with the project's topics.
struct KafkaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kafka",
        abstract: "Run an embedded Kafka cluster (in memory, for development and tests; not for production).",
        discussion: """
            Starts librdkafka's mock cluster (a real Kafka wire-protocol server on 127.0.0.1), creates \
            calls.originate.v1, calls.control.v1 and calls.status.v1, prints the bootstrap servers as the first \
            line of stdout and runs until SIGINT or SIGTERM. Logs go to stderr.

            With --control-port, a loopback HTTP endpoint controls the cluster (its URL is the second stdout \
            line, useful with port 0):
              POST /brokers/down          every broker refuses connections
              POST /brokers/up            every broker accepts connections again
              POST /brokers/{id}/down     one broker (ids 1...N) down
              POST /brokers/{id}/up       one broker up
              POST /brokers/rtt?ms=N      delay every broker's responses by N ms (0 restores)
              POST /brokers/{id}/rtt?ms=N one broker's responses
              POST /topics/{name}?partitions=N   create a topic
              GET  /bootstrap             the bootstrap servers
            Each answers 204 (or 200 with a body) on success, 400/404 with a message otherwise.
            """
    )

    @Option(help: "Partitions of each project topic.")
    var partitions: Int32 = 12

    @Option(help: "Number of brokers.")
    var brokers: Int = 3

    @Option(help: "Serve the control HTTP endpoint on 127.0.0.1 at this port (0 picks a free port).")
    var controlPort: Int?

    @Option(help: "Log level (trace, debug, info, notice, warning, error, critical).")
    var logLevel: String = "info"

    func validate() throws {
        guard partitions >= 1 else { throw ValidationError("--partitions must be at least 1") }
        guard brokers >= 1 else { throw ValidationError("--brokers must be at least 1") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "devstack.kafka")
        let cluster = try EmbeddedKafkaCluster(
            brokers: brokers,
            topics: ProjectTopics.withPartitions(partitions),
            logger: logger
        )
        printLine(cluster.bootstrapServers)
        var services: [any Service] = [cluster]
        if let controlPort {
            services.append(Self.controlServer(cluster: cluster, port: controlPort, logger: logger))
        }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
    }

    /// The loopback control endpoint (see the command's discussion for the routes).
    static func controlServer(cluster: EmbeddedKafkaCluster, port: Int, logger: Logger) -> some Service {
        let router = Router()
        router.post("/brokers/down") { _, _ -> HTTPResponse.Status in
            try control { try cluster.setBrokersDown() }
        }
        router.post("/brokers/up") { _, _ -> HTTPResponse.Status in
            try control { try cluster.setBrokersUp() }
        }
        router.post("/brokers/:id/down") { _, context -> HTTPResponse.Status in
            let id = try context.parameters.require("id", as: Int32.self)
            return try control { try cluster.setBrokerDown(id) }
        }
        router.post("/brokers/:id/up") { _, context -> HTTPResponse.Status in
            let id = try context.parameters.require("id", as: Int32.self)
            return try control { try cluster.setBrokerUp(id) }
        }
        router.post("/brokers/rtt") { request, _ -> HTTPResponse.Status in
            let delay = try roundTripTime(request)
            return try control { try cluster.setRoundTripTime(delay) }
        }
        router.post("/brokers/:id/rtt") { request, context -> HTTPResponse.Status in
            let id = try context.parameters.require("id", as: Int32.self)
            let delay = try roundTripTime(request)
            return try control { try cluster.setRoundTripTime(delay, broker: id) }
        }
        router.post("/topics/:name") { request, context -> HTTPResponse.Status in
            let name = try context.parameters.require("name")
            let partitions = request.uri.queryParameters.get("partitions", as: Int32.self) ?? 1
            return try control { try cluster.createTopic(name, partitions: partitions) }
        }
        router.get("/bootstrap") { _, _ in
            cluster.bootstrapServers + "\n"
        }
        return Application(
            router: router,
            configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: port)),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? port
                printLine("control http://127.0.0.1:\(port)")
            },
            logger: logger
        )
    }

    private static func roundTripTime(_ request: Request) throws -> Duration {
        guard let milliseconds = request.uri.queryParameters.get("ms", as: Int.self), milliseconds >= 0 else {
            throw HTTPError(.badRequest, message: "give the round-trip time as ?ms=N (N >= 0)")
        }
        return .milliseconds(milliseconds)
    }

    /// Runs a cluster operation, turning its failure into a 400 with the cluster's message.
    private static func control(_ operation: () throws -> Void) throws -> HTTPResponse.Status {
        do {
            try operation()
            return .noContent
        } catch let error as EmbeddedKafkaError {
            throw HTTPError(.badRequest, message: error.message)
        }
    }
}

/// Writes a line to stdout and flushes it at once: scripts read these lines while the process keeps running.
func printLine(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
