import ARISimulator
import ArgumentParser
import DevStack
import EmbeddedKafka
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import UnixSignals

/// `devstack up`: the whole system on this machine, as `make run` starts it.
///
/// The embedded Kafka cluster and the ARI simulator run inside this process (they are development stand-ins and
/// cannot crash apart from it); PostgreSQL, the api-gateway and the dialer-workers are separate processes, as in
/// production. Children that die are restarted with back-off; SIGINT or SIGTERM stops everything.
struct UpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Run the whole system locally: Kafka, PostgreSQL, ARI simulator, api-gateway and dialer-workers.",
        discussion: """
            Honours DATABASE_URL (use that PostgreSQL instead of a private one under --state-dir), ARI_HTTP_URL with \
            ARI_USERNAME/ARI_PASSWORD (use that Asterisk instead of the simulator), ADMIN_PASSWORD (the admin \
            user's password; generated and kept in --state-dir otherwise) and every variable of the services, which \
            are passed through. Child logs are written to <state-dir>/logs.
            """
    )

    @Option(help: "Directory for PostgreSQL's data, the secrets and the logs.")
    var stateDir: String = ".devstack"

    @Option(help: "Port of the api-gateway (the first one: further gateways take the next ports).")
    var gatewayPort: Int = 8000

    @Option(help: "Number of api-gateway processes.")
    var gateways: Int = 1

    @Option(help: "Number of dialer-worker processes.")
    var workers: Int = 2

    @Option(help: "Number of webhook-dispatcher processes.")
    var dispatchers: Int = 1

    @Option(help: "Number of campaign-scheduler processes.")
    var schedulers: Int = 1

    @Option(help: "Partitions of each topic.")
    var partitions: Int32 = 12

    @Option(help: "Brokers of the embedded Kafka cluster.")
    var brokers: Int = 3

    @Option(help: "Port of the Kafka control endpoint (0 picks one).")
    var kafkaControlPort: Int = 0

    @Option(help: "Directory of the api-gateway and dialer-worker executables (default: next to devstack).")
    var binDir: String?

    @Option(
        help:
            "Seconds the ARI simulator answers 503 'Asterisk not booted' after it starts, as a starting Asterisk does.")
    var ariBootSeconds: Double = 2

    func validate() throws {
        guard (1...16).contains(workers) else { throw ValidationError("--workers must be between 1 and 16") }
        guard (1...8).contains(gateways) else { throw ValidationError("--gateways must be between 1 and 8") }
        guard (0...8).contains(dispatchers) else { throw ValidationError("--dispatchers must be between 0 and 8") }
        guard (0...8).contains(schedulers) else { throw ValidationError("--schedulers must be between 0 and 8") }
        guard partitions >= 1 else { throw ValidationError("--partitions must be at least 1") }
        guard brokers >= 1 else { throw ValidationError("--brokers must be at least 1") }
        guard (0...600).contains(ariBootSeconds) else { throw ValidationError("--ari-boot-seconds must be 0...600") }
    }

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        let logger = Logger(label: "devstack.up")
        let stack = try LocalStack(
            options: .init(
                stateDirectory: URL(fileURLWithPath: stateDir, isDirectory: true).standardizedFileURL,
                gatewayPort: gatewayPort, gateways: gateways, workers: workers, dispatchers: dispatchers,
                schedulers: schedulers,
                partitions: partitions,
                brokers: brokers,
                kafkaControlPort: kafkaControlPort, ariBootWindow: .milliseconds(Int64(ariBootSeconds * 1000)),
                binDirectory: binDir.map { URL(fileURLWithPath: $0, isDirectory: true) }
                    ?? URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
                    .deletingLastPathComponent()),
            logger: logger)
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [stack.cluster, stack.simulator, stack.kafkaControl, stack.receiver, stack],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
    }
}

/// Starts and stops the pieces in order; the service group's shutdown reaches it first (it is the last service),
/// so the children stop before the broker and the simulator they use.
final class LocalStack: Service, Sendable {
    struct Options: Sendable {
        var stateDirectory: URL
        var gatewayPort: Int
        var gateways: Int
        var workers: Int
        var dispatchers: Int
        var schedulers: Int
        var partitions: Int32
        var brokers: Int
        var kafkaControlPort: Int
        var ariBootWindow: Duration
        var binDirectory: URL
    }

    let options: Options
    let cluster: EmbeddedKafkaCluster
    let simulator: ARISimulator
    let kafkaControl: any Service
    let kafkaControlPort: Int
    /// Prints each webhook delivery it receives, verified with the secrets `up` creates.
    let receiver: WebhookReceiver
    let logger: Logger
    let environment = ProcessInfo.processInfo.environment

    init(options: Options, logger: Logger) throws {
        self.options = options
        self.logger = logger
        cluster = try EmbeddedKafkaCluster(
            brokers: options.brokers, topics: ProjectTopics.withPartitions(options.partitions), logger: logger)
        simulator = try ARISimulator(
            configuration: ARISimulatorConfiguration(
                username: "dialer", password: Self.secret(in: options.stateDirectory, "ari_password", bytes: 12),
                bootWindow: options.ariBootWindow),
            logger: logger)
        kafkaControlPort = options.kafkaControlPort == 0 ? try FreePort.pick() : options.kafkaControlPort
        kafkaControl = KafkaCommand.controlServer(cluster: cluster, port: kafkaControlPort, logger: logger)
        receiver = WebhookReceiver(onDelivery: Self.printDelivery, logger: logger)
    }

    /// One line per delivery: whether its signature verified, its type, call and `seq`.
    @Sendable static func printDelivery(_ delivery: WebhookReceiver.Delivery) {
        let json = delivery.json
        let type = json?["type"] as? String ?? "?"
        let data = json?["data"] as? [String: Any]
        let call = (data?["call_id"] as? String).map { " call \($0)" } ?? ""
        let seq = (data?["seq"] as? Int).map { " seq \($0)" } ?? ""
        let check = delivery.verified ? "signature verified" : "SIGNATURE NOT VERIFIED"
        printLine("webhook \(delivery.path) \(type)\(call)\(seq) (\(check), webhook-id \(delivery.id))")
    }

    func run() async throws {
        let supervisor = ProcessSupervisor(
            logDirectory: options.stateDirectory.appendingPathComponent("logs"), logger: logger, console: printLine)
        var postgres: LocalPostgres?
        do {
            let databaseURL: String
            if let url = environment["DATABASE_URL"], !url.isEmpty {
                databaseURL = url
            } else {
                let server = try await LocalPostgres.start(
                    directory: options.stateDirectory.appendingPathComponent("postgres"), logger: logger)
                postgres = server
                databaseURL = server.url
            }
            let ariURL: String
            let ariUsername: String
            let ariPassword: String
            if let url = environment["ARI_HTTP_URL"], !url.isEmpty {
                ariURL = url
                ariUsername = environment["ARI_USERNAME"] ?? ""
                ariPassword = environment["ARI_PASSWORD"] ?? ""
            } else {
                ariURL = try await waitForSimulator()
                ariUsername = "dialer"
                ariPassword = try Self.secret(in: options.stateDirectory, "ari_password", bytes: 12)
            }
            var common = environment
            common["DATABASE_URL"] = databaseURL
            common["KAFKA_BOOTSTRAP_SERVERS"] = cluster.bootstrapServers
            common["SECRET_KEY"] =
                try environment["SECRET_KEY"] ?? Self.secret(in: options.stateDirectory, "secret_key", bytes: 48)
            common["LOG_FORMAT"] = environment["LOG_FORMAT"] ?? "json"
            common["ALLOWED_CONTEXTS"] = environment["ALLOWED_CONTEXTS"] ?? "agents,outbound"
            common["DEFAULT_CONTEXT"] = environment["DEFAULT_CONTEXT"] ?? "agents"
            common["DEFAULT_EXTENSION"] = environment["DEFAULT_EXTENSION"] ?? "s"
            common["DEFAULT_PRIORITY"] = environment["DEFAULT_PRIORITY"] ?? "1"
            // The local receiver is on loopback over http: allowed here only (the default refuses both).
            common["WEBHOOK_ALLOW_PRIVATE_TARGETS"] = environment["WEBHOOK_ALLOW_PRIVATE_TARGETS"] ?? "true"
            // One recording store for the workers, which fill it, and the gateway, which serves it.
            common["RECORDING_DIR"] =
                environment["RECORDING_DIR"] ?? options.stateDirectory.appendingPathComponent("recordings").path

            let gateway = options.binDirectory.appendingPathComponent("api-gateway")
            let worker = options.binDirectory.appendingPathComponent("dialer-worker")
            let dispatcher = options.binDirectory.appendingPathComponent("webhook-dispatcher")
            let scheduler = options.binDirectory.appendingPathComponent("campaign-scheduler")
            for executable in [gateway, worker] + (options.dispatchers > 0 ? [dispatcher] : [])
                + (options.schedulers > 0 ? [scheduler] : [])
            where !FileManager.default.isExecutableFile(atPath: executable.path) {
                throw DevStackError("\(executable.path) is missing: build it first (make run does)")
            }
            try await runToCompletion(gateway, ["migrate"], environment: common, input: nil)
            let adminPassword =
                try environment["ADMIN_PASSWORD"]
                ?? Self.secret(in: options.stateDirectory, "admin_password", bytes: 12)
            try await ensureAdmin(gateway, password: adminPassword, environment: common)

            for index in 1...options.gateways {
                var gatewayEnvironment = common
                gatewayEnvironment["HOST"] = environment["HOST"] ?? "127.0.0.1"
                gatewayEnvironment["PORT"] = "\(options.gatewayPort + index - 1)"
                gatewayEnvironment["INSTANCE_ID"] = "gateway-\(index)"
                try await supervisor.start(
                    ChildSpec(
                        name: options.gateways == 1 ? "api-gateway" : "api-gateway-\(index)", executable: gateway,
                        arguments: ["serve"], environment: gatewayEnvironment))
            }
            var workerPorts: [Int] = []
            for index in 1...options.workers {
                var workerEnvironment = common
                let port = try FreePort.pick()
                workerPorts.append(port)
                workerEnvironment["NODE_ID"] = environment["NODE_ID"] ?? "node-a"
                workerEnvironment["ARI_HTTP_URL"] = ariURL
                workerEnvironment["ARI_USERNAME"] = ariUsername
                workerEnvironment["ARI_PASSWORD"] = ariPassword
                workerEnvironment["ARI_APP"] = "dialer-\(workerEnvironment["NODE_ID"]!)-\(index)"
                workerEnvironment["WORKER_ID"] = "worker-\(index)"
                workerEnvironment["WORKER_PORT"] = "\(port)"
                workerEnvironment["ENDPOINT_TEMPLATE"] = environment["ENDPOINT_TEMPLATE"] ?? "PJSIP/{to}@carrier"
                try await supervisor.start(
                    ChildSpec(
                        name: "dialer-worker-\(index)", executable: worker, arguments: ["serve"],
                        environment: workerEnvironment))
            }
            var dispatcherPorts: [Int] = []
            for index in stride(from: 1, through: options.dispatchers, by: 1) {
                var dispatcherEnvironment = common
                let port = try FreePort.pick()
                dispatcherPorts.append(port)
                dispatcherEnvironment["DISPATCHER_ID"] = "dispatcher-\(index)"
                dispatcherEnvironment["DISPATCHER_PORT"] = "\(port)"
                try await supervisor.start(
                    ChildSpec(
                        name: "webhook-dispatcher-\(index)", executable: dispatcher, arguments: ["serve"],
                        environment: dispatcherEnvironment))
            }
            var schedulerPorts: [Int] = []
            for index in stride(from: 1, through: options.schedulers, by: 1) {
                var schedulerEnvironment = common
                let port = try FreePort.pick()
                schedulerPorts.append(port)
                schedulerEnvironment["SCHEDULER_ID"] = "scheduler-\(index)"
                schedulerEnvironment["SCHEDULER_PORT"] = "\(port)"
                try await supervisor.start(
                    ChildSpec(
                        name: "campaign-scheduler-\(index)", executable: scheduler, arguments: ["serve"],
                        environment: schedulerEnvironment))
            }
            let apiURL = "http://127.0.0.1:\(options.gatewayPort)"
            for index in 0..<options.gateways {
                try await waitForReady("http://127.0.0.1:\(options.gatewayPort + index)/ready", timeout: .seconds(90))
            }
            let receiverURL = try await receiver.baseURL + "/webhooks"
            try await DevWebhooks.subscribe(
                receiver: receiver, url: receiverURL, apiURL: apiURL, adminPassword: adminPassword)
            printBanner(
                apiURL: apiURL, adminPassword: adminPassword, workerPorts: workerPorts, ariURL: ariURL,
                receiverURL: receiverURL, dispatcherPorts: dispatcherPorts, schedulerPorts: schedulerPorts,
                recordingDirectory: common["RECORDING_DIR"] ?? "")
            try await gracefulShutdown()
        } catch is CancellationError {
        } catch {
            printLine("devstack: \(error)")
            await supervisor.stopAll()
            try? await postgres?.stop()
            throw error
        }
        printLine("stopping…")
        await supervisor.stopAll()
        try? await postgres?.stop()
        printLine("stopped")
    }

    /// The simulator's URL once it listens (its `baseURL` waits for start-up).
    private func waitForSimulator() async throws -> String {
        try await simulator.baseURL
    }

    private func ensureAdmin(_ gateway: URL, password: String, environment: [String: String]) async throws {
        do {
            try await runToCompletion(
                gateway, ["create-user", "--username", "admin", "--role", "admin", "--platform-operator"],
                environment: environment,
                input: password + "\n")
        } catch let error as DevStackError where error.description.contains("exists") {
            return
        }
    }

    private func runToCompletion(
        _ executable: URL, _ arguments: [String], environment: [String: String], input: String?
    ) async throws {
        let result = try await Command.run(executable.path, arguments, environment: environment, input: input)
        guard result.status == 0 else {
            throw DevStackError("\(executable.lastPathComponent) \(arguments.first ?? "") failed: \(result.output)")
        }
    }

    private func waitForReady(_ url: String, timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let answer = try? await ControlHTTP.request(.GET, url, timeout: .seconds(2)), answer.status == 200 {
                return
            }
            try await Task.sleep(for: .milliseconds(250))
        }
        throw DevStackError(
            "the api-gateway did not become ready at \(url) within \(timeout); see \(options.stateDirectory.path)/logs")
    }

    private func printBanner(
        apiURL: String, adminPassword: String, workerPorts: [Int], ariURL: String, receiverURL: String,
        dispatcherPorts: [Int], schedulerPorts: [Int], recordingDirectory: String
    ) {
        let bootstrap = cluster.bootstrapServers
        let otherGateways = (1..<options.gateways).map { "   http://127.0.0.1:\(options.gatewayPort + $0)/api/v1" }
            .joined()
        printLine(
            """

            ready: the outbound dialer is running (Ctrl-C stops everything)

              API            \(apiURL)/api/v1\(otherGateways)
              Swagger UI     \(apiURL)/docs
              ReDoc          \(apiURL)/redoc
              metrics        \(apiURL)/metrics   workers: \(workerPorts.map { "http://127.0.0.1:\($0)/metrics" }.joined(separator: " "))
              dispatchers    \(dispatcherPorts.map { "http://127.0.0.1:\($0)/metrics" }.joined(separator: " "))
              schedulers     \(schedulerPorts.map { "http://127.0.0.1:\($0)/metrics" }.joined(separator: " "))
              webhooks       \(receiverURL)   (a local receiver: verified deliveries are printed here)
              Kafka          \(bootstrap)   (control: http://127.0.0.1:\(kafkaControlPort))
              ARI            \(ariURL)
              logs           \(options.stateDirectory.path)/logs
              recordings     \(recordingDirectory)
              admin user     admin / \(adminPassword)

            Try it (copy and paste):

              TOKEN=$(curl -s -X POST \(apiURL)/api/v1/auth/token \\
                  -d username=admin -d 'password=\(adminPassword)' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
              CALL=$(curl -s -X POST \(apiURL)/api/v1/calls -H "Authorization: Bearer $TOKEN" \\
                  -H 'Content-Type: application/json' \\
                  -d '{"to": "+155501000005", "status_callback": "\(receiverURL)/calls"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
              curl -N -H "Authorization: Bearer $TOKEN" \(apiURL)/api/v1/calls/$CALL/events
              curl -s -H "Authorization: Bearer $TOKEN" \(apiURL)/api/v1/calls/$CALL
              curl -s -H "Authorization: Bearer $TOKEN" \(apiURL)/api/v1/calls/$CALL/webhook-deliveries
              kcat -b \(bootstrap) -t calls.status.v1 -C -f '%k %h\\n%s\\n\\n'

            """)
    }

    /// A random secret kept in the state directory, so a second run reuses it.
    static func secret(in directory: URL, _ name: String, bytes: Int) throws -> String {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let url = directory.appendingPathComponent(name)
        if let existing = try? String(contentsOf: url, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines),
            !existing.isEmpty
        {
            return existing
        }
        var generator = SystemRandomNumberGenerator()
        let value = (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: .min ... .max, using: &generator)) }
            .joined()
        _ = FileManager.default.createFile(
            atPath: url.path, contents: Data(value.utf8), attributes: [.posixPermissions: 0o600])
        return value
    }
}
