import CallDomain
import CallMessaging
import CallStore
import CampaignScheduler
import Campaigns
import EmbeddedKafka
import Foundation
import Kafka
import Logging
import Synchronization
import TestSupport
import Testing

let testLogger: Logger = {
    var logger = Logger(label: "campaign-scheduler-tests")
    logger.logLevel = .warning
    return logger
}()

/// A clock the test moves by hand: windows, retry waits and leases all follow it.
final class ManualClock: CampaignClock {
    private let current: Mutex<Date>

    init(_ start: Date) {
        current = Mutex(start)
    }

    func now() -> Date { current.withLock { $0 } }

    func advance(by seconds: TimeInterval) {
        current.withLock { $0 = $0.addingTimeInterval(seconds) }
    }
}

/// How the stand-in for the dialer workers ends each call, by the number's last digit: 7 is always busy, 8 busy on
/// its first attempt then answered, 9 an invalid number, any other digit answered.
enum DialOutcomes {
    static func outcome(for phone: String, attempt: Int) -> (CallStatus, FailureReason?) {
        switch phone.last {
        case "7": (.busy, nil)
        case "8": attempt == 1 ? (.busy, nil) : (.completed, nil)
        case "9": (.failed, .invalidNumber)
        default: (.completed, nil)
        }
    }

    /// The attempts and the final disposition the rules below (busy: retried once) must come to.
    static func expected(for phone: String) -> (attempts: Int, disposition: String) {
        switch phone.last {
        case "7": (2, "busy")
        case "8": (2, "completed")
        case "9": (1, "invalid_number")
        default: (1, "completed")
        }
    }
}

/// Stands in for the dialer workers: reads the originate commands, dials each call id once (a worker's claim), and
/// after `ringTime` publishes the call's end as `DialOutcomes` says. It records every command it read.
final class WorkerStandIn: Sendable {
    struct Dial: Sendable {
        var callID: CallID
        var phone: String
        var contactID: String
        var attempt: Int
        var machineDetection: MachineDetection?
        var record: Bool
        var receivedAt: ContinuousClock.Instant
        var endedAt: ContinuousClock.Instant?
    }

    private let state = Mutex<(dials: [CallID: Dial], commands: Int)>(([:], 0))

    var dials: [Dial] { state.withLock { Array($0.dials.values) } }
    var commandsRead: Int { state.withLock { $0.commands } }

    func run(
        kafka: KafkaConfiguration, topics: CallTopics, publisher: CallMessagePublisher, ringTime: Duration
    ) async throws {
        let consumer = try KafkaConsumer(
            configuration: kafka, groupID: unique("workers"), topics: [topics.originate], logger: testLogger)
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await consumer.run() }
            for try await message in consumer.messages {
                let (command, _) = try CallMessageDecoder.originate(message)
                let contact: String
                let attempt: Int
                if case .string(let id)? = command.metadata.values["contact_id"],
                    case .number(let number)? = command.metadata.values["attempt"]
                {
                    contact = id
                    attempt = Int(number)
                } else {
                    Issue.record("a campaign command without its contact and attempt: \(command.metadata)")
                    continue
                }
                let first = state.withLock { state -> Bool in
                    state.commands += 1
                    guard state.dials[command.callID] == nil else { return false }
                    state.dials[command.callID] = Dial(
                        callID: command.callID, phone: command.to.value, contactID: contact, attempt: attempt,
                        machineDetection: command.machineDetection, record: command.record, receivedAt: .now)
                    return true
                }
                guard first else { continue }
                group.addTask {
                    try await Task.sleep(for: ringTime)
                    let (status, reason) = DialOutcomes.outcome(for: command.to.value, attempt: attempt)
                    let event = CallStatusEvent(
                        callID: command.callID, seq: 3, status: status, previousStatus: .ringing, occurredAt: Date(),
                        failureReason: reason, organizationID: command.organizationID)
                    _ = try await publisher.publish(event, traceParent: nil)
                    self.state.withLock { $0.dials[command.callID]?.endedAt = .now }
                }
            }
        }
    }
}

/// One test's world: a migrated database, an embedded Kafka cluster with its own topics, a producer, the worker
/// stand-in, and an organization with a contact list.
struct SchedulerEnvironment: Sendable {
    let store: CallStore
    let databaseURL: String
    let kafka: EmbeddedKafkaCluster
    let topics: CallTopics
    let workers: WorkerStandIn
    let organization: OrganizationID

    static let actor = AuditActor(name: "tester")

    var kafkaConfiguration: KafkaConfiguration {
        KafkaConfiguration(
            bootstrapServers: kafka.bootstrapServers, clientID: unique("tests"),
            properties: [
                "heartbeat.interval.ms": "500", "session.timeout.ms": "6000",
                "topic.metadata.refresh.interval.ms": "1000",
            ])
    }

    static func run<Result: Sendable>(
        ringTime: Duration = .milliseconds(50), _ body: @Sendable (SchedulerEnvironment) async throws -> Result
    ) async throws -> Result {
        try await TestDatabase.withStore { store, databaseURL in
            let topics = CallTopics(
                originate: unique("originate"), control: unique("control"), status: unique("status"),
                deadLetter: unique("deadletter"))
            let kafka = try EmbeddedKafkaCluster(
                brokers: 1,
                topics: [topics.originate: 4, topics.control: 1, topics.status: 4, topics.deadLetter: 1],
                logger: testLogger)
            defer { kafka.shutdown() }
            let producer = try KafkaProducer(
                configuration: KafkaConfiguration(bootstrapServers: kafka.bootstrapServers, clientID: unique("p")),
                deliveryTimeout: .seconds(30), logger: testLogger)
            let producerTask = Task { _ = try? await producer.run() }
            let organization = try await store.createOrganization(name: unique("org"), by: actor).id
            let workers = WorkerStandIn()
            let environment = SchedulerEnvironment(
                store: store, databaseURL: databaseURL, kafka: kafka, topics: topics, workers: workers,
                organization: organization)
            let publisher = CallMessagePublisher(producer: producer, topics: topics, source: "/test-workers")
            let workersTask = Task {
                _ = try? await workers.run(
                    kafka: environment.kafkaConfiguration, topics: topics, publisher: publisher, ringTime: ringTime)
            }
            do {
                let result = try await body(environment)
                await stop(workersTask, within: .seconds(15), "worker stand-in")
                await stop(producerTask, within: .seconds(15), "test producer")
                return result
            } catch {
                await stop(workersTask, within: .seconds(15), "worker stand-in")
                await stop(producerTask, within: .seconds(15), "test producer")
                throw error
            }
        }
    }

    /// A scheduler configuration for this environment: fast ticks and short leases.
    func configuration(id: String = unique("scheduler")) -> SchedulerConfiguration {
        SchedulerConfiguration(
            schedulerID: id, kafka: kafkaConfiguration, topics: topics, databaseURL: databaseURL,
            databaseMaxConnections: 4, lease: .seconds(4), renewInterval: .milliseconds(500), tick: .milliseconds(20))
    }

    /// Runs an in-process scheduler for the duration of `body`, then stops it gracefully.
    func withScheduler<Result: Sendable>(
        _ configuration: SchedulerConfiguration, clock: any CampaignClock = SystemCampaignClock(),
        _ body: () async throws -> Result
    ) async throws -> Result {
        let services = try buildScheduler(configuration: configuration, logger: testLogger, clock: clock)
        let task = Task { try await services.run() }
        do {
            let result = try await body()
            await services.triggerGracefulShutdown()
            try await value(of: task, within: .seconds(30), "the campaign scheduler")
            return result
        } catch {
            await services.triggerGracefulShutdown()
            _ = try? await value(of: task, within: .seconds(30), "the campaign scheduler")
            throw error
        }
    }

    /// A ready list of `count` numbers (+1 212 555 01xx, New York) and a started campaign over it.
    func startCampaign(
        count: Int, rate: Double, live: Int, windows: CallingWindows, at now: Date,
        machineDetection: MachineDetection? = nil, record: Bool = false
    ) async throws -> Campaign {
        let list = try await store.createContactList(name: "list", in: organization, by: Self.actor)
        let rows = try (0..<count).map { index in
            NewContact(
                line: index + 2,
                phone: try PhoneNumber(parsing: "+1212555\(String(format: "%04d", index))", defaultRegion: nil).e164,
                timeZone: "America/New_York", fieldsJSON: #"{"customer":"c\#(index)"}"#)
        }
        try await store.appendContacts(rows, to: list.id)
        _ = try await store.finishContactImport(list: list.id, rowsRead: count, error: nil)
        let settings = CampaignSettings(
            name: "test", listIDs: [list.id], callerID: nil, dialplan: nil, timeoutSeconds: 30,
            callingWindows: windows, startsAt: nil, endsAt: nil, maxCallsPerSecond: rate, maxLiveCalls: live,
            retryRules: try RetryRules([.busy: try RetryRule(delaySeconds: 1, maxRetries: 1)]), maxAttempts: 3,
            machineDetection: machineDetection, record: record)
        let draft = try await store.createCampaign(settings, in: organization, by: Self.actor)
        return try await store.changeCampaignState(
            id: draft.id, in: organization, to: .running, at: now, by: Self.actor)
    }

    func contacts(of campaign: Campaign) async throws -> [CampaignContact] {
        try await store.campaignContacts(id: campaign.id, in: organization, after: nil, limit: 1000) ?? []
    }
}
