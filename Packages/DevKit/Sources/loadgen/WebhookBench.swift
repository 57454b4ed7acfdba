import ArgumentParser
import CallDomain
import CallMessaging
import CallStore
import DevStack
import EmbeddedKafka
import Foundation
import Kafka
import Logging
import PostgresNIO
import Synchronization
import Webhooks

/// `loadgen webhooks`: status events at a fixed rate through a real `webhook-dispatcher` process to two endpoints of
/// one organization, a healthy one (answers 204 at once) and a dead one (answers nothing within the attempt
/// timeout); the measure is the healthy endpoint's latency from the event's publication to its arrival.
struct WebhookBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webhooks",
        abstract: "Healthy webhook latency at a fixed event rate with one dead endpoint beside it."
    )

    @Option(help: "A PostgreSQL database the benchmark may fill (migrations are applied).")
    var databaseUrl: String

    @Option(help: "The webhook-dispatcher executable.")
    var dispatcher: String

    @Option(help: "Status events per second.")
    var rate: Double = 1000

    @Option(help: "Seconds to publish for.")
    var duration: Double = 30

    @Option(help: "Write the figures as JSON to this file.")
    var out: String

    struct Result: Codable, Sendable {
        var rate: Double
        var achievedRate: Double
        var events: Int
        var healthyDelivered: Int
        var healthyVerified: Int
        var healthyLatencyMs: LatencySummary
        var deadAttempts: Int
        var dispatcherCores: Double
    }

    func run() async throws {
        var configuredLogger = Logger(label: "loadgen.webhooks")
        configuredLogger.logLevel = .error
        let logger = configuredLogger
        let published = Mutex<[String: ContinuousClock.Instant]>([:])
        let arrivals = Mutex<[(String, ContinuousClock.Instant, Bool)]>([])
        let healthy = WebhookReceiver(
            onDelivery: { delivery in
                let call = ((delivery.json?["data"] as? [String: Any])?["call_id"] as? String) ?? ""
                arrivals.withLock { $0.append((call, .now, delivery.verified)) }
            }, logger: logger)
        let dead = WebhookReceiver(respond: { _ in .init(status: 204, delay: .seconds(60)) }, logger: logger)
        let topics = CallTopics(
            originate: "bench.originate", control: "bench.control", status: "bench.status", deadLetter: "bench.dl")
        let cluster = try EmbeddedKafkaCluster(brokers: 1, topics: [topics.status: 12], logger: logger)
        defer { cluster.shutdown() }
        let producer = try KafkaProducer(
            configuration: KafkaConfiguration(
                bootstrapServers: cluster.bootstrapServers, clientID: "bench", properties: ["linger.ms": "5"]),
            deliveryTimeout: .seconds(30), logger: logger)
        let background = [
            Task { _ = try? await healthy.run() }, Task { _ = try? await dead.run() },
            Task { _ = try? await producer.run() },
        ]
        defer { for task in background { task.cancel() } }
        let healthyURL = try await healthy.baseURL + "/hooks"
        let deadURL = try await dead.baseURL + "/hooks"

        let organization = try await withPostgres(url: databaseUrl, logger: logger) { client in
            _ = try await Migrator(client: client, logger: logger).migrate()
            let store = CallStore(client: client, logger: logger)
            let actor = AuditActor(name: "bench")
            let organization = try await store.createOrganization(
                name: "bench-\(UInt32.random(in: 0 ... .max))", by: actor)
            let secret = WebhookSecret.generate()
            _ = try await store.createWebhookEndpoint(
                in: organization.id, url: healthyURL, description: "healthy", eventTypes: [], enabled: true,
                secret: secret, by: actor)
            healthy.setSecrets([secret])
            _ = try await store.createWebhookEndpoint(
                in: organization.id, url: deadURL, description: "dead", eventTypes: [], enabled: true,
                secret: WebhookSecret.generate(), by: actor)
            return organization.id
        }

        let environment = [
            "DATABASE_URL": databaseUrl, "DATABASE_MAX_CONNECTIONS": "20",
            "KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrapServers, "KAFKA_TOPIC_STATUS": topics.status,
            "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true", "DISPATCHER_HOST": "127.0.0.1", "DISPATCHER_PORT": "0",
            "LOG_LEVEL": "warning", "LOG_FORMAT": "json", "DISPATCHER_ID": "bench",
        ].merging(
            // The dispatcher's tunables of the bench's own environment (WEBHOOK_*, KAFKA_PROP_*) apply.
            ProcessInfo.processInfo.environment.filter {
                $0.key.hasPrefix("WEBHOOK_") || $0.key.hasPrefix("KAFKA_PROP_")
            }
        ) { _, tunable in tunable }
        let process = try await ChildProcess.start(
            executable: dispatcher, arguments: ["serve"], environment: environment, output: .standardError)
        defer { process.killSynchronously() }
        // The dispatcher joins its group before the clock starts (a first event it sees says so).
        let publisher = CallMessagePublisher(producer: producer, topics: topics, source: "/bench")
        let warmup = CallID.generate()
        _ = try await publisher.publish(
            CallStatusEvent(
                callID: warmup, seq: 1, status: .dispatched, previousStatus: .queued, occurredAt: Date(),
                organizationID: organization), traceParent: nil)
        let warmDeadline = ContinuousClock.now + .seconds(60)
        while !arrivals.withLock({ $0.contains { $0.0 == warmup.description } }) {
            guard ContinuousClock.now < warmDeadline else { throw BenchError("the dispatcher delivered nothing") }
            try await Task.sleep(for: .milliseconds(50))
        }
        arrivals.withLock { $0.removeAll() }
        let cpuBefore = ProcessProbe.cpuSeconds(process.processIdentifier) ?? 0

        // Open loop: each event is due at its slot whatever the acknowledgements do.
        let total = Int(rate * duration)
        let start = ContinuousClock.now
        try await withThrowingDiscardingTaskGroup { group in
            for index in 0..<total {
                let due = start + .nanoseconds(Int64(Double(index) / rate * 1e9))
                if due > .now { try await Task.sleep(until: due) }
                let callID = CallID.generate()
                published.withLock { $0[callID.description] = .now }
                let event = CallStatusEvent(
                    callID: callID, seq: 1, status: .answered, previousStatus: .ringing, occurredAt: Date(),
                    organizationID: organization)
                group.addTask { _ = try await publisher.publish(event, traceParent: nil) }
            }
        }
        let sendElapsed = ContinuousClock.now - start
        let drainDeadline = ContinuousClock.now + .seconds(60)
        while arrivals.withLock({ $0.count }) < total, ContinuousClock.now < drainDeadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        let elapsed = ContinuousClock.now - start
        let cpuAfter = ProcessProbe.cpuSeconds(process.processIdentifier) ?? cpuBefore
        process.send(SIGTERM)
        await process.waitForExit()

        let sent = published.withLock { $0 }
        let received = arrivals.withLock { $0 }
        var latencies: [Double] = []
        var seen = Set<String>()
        for (call, at, _) in received where seen.insert(call).inserted {
            if let publishedAt = sent[call] {
                let (seconds, attoseconds) = (at - publishedAt).components
                latencies.append(Double(seconds) * 1000 + Double(attoseconds) / 1e15)
            }
        }
        let elapsedSeconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let result = Result(
            rate: rate,
            achievedRate: Double(total)
                / (Double(sendElapsed.components.seconds) + Double(sendElapsed.components.attoseconds) / 1e18),
            events: total, healthyDelivered: seen.count, healthyVerified: received.filter(\.2).count,
            healthyLatencyMs: LatencySummary(milliseconds: latencies), deadAttempts: dead.deliveries.count,
            dispatcherCores: elapsedSeconds > 0 ? (cpuAfter - cpuBefore) / elapsedSeconds : 0)
        print(
            String(
                format: "webhooks: %d events at %.0f/s, healthy delivered %d, p50 %.1f ms p99 %.1f ms max %.1f ms, "
                    + "dead endpoint attempts %d, dispatcher %.2f cores",
                total, result.achievedRate, result.healthyDelivered, result.healthyLatencyMs.p50 ?? .nan,
                result.healthyLatencyMs.p99 ?? .nan, result.healthyLatencyMs.max ?? .nan, result.deadAttempts,
                result.dispatcherCores))
        try writeJSON(result, to: out)
    }
}
