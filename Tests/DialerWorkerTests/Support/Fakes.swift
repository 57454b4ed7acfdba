import ARI
import CallDomain
import CallMessaging
import CallStore
import Foundation
import Kafka
import Synchronization

@testable import DialerWorker

// In-memory fakes of the worker's dependencies, for unit tests of its rules (the integration tests use PostgreSQL,
// the embedded broker and the ARI simulator).

/// A node whose originates answer from a script.
final class FakeNode: NodeClient {
    enum Answer: Sendable {
        case success
        case failure(ARIError)
    }

    private struct State {
        var answers: [Answer]
        var originates = 0
        var channelLookups = 0
        var channelExists = false
    }

    private let state: Mutex<State>

    init(answers: [Answer]) { state = Mutex(State(answers: answers)) }

    var originates: Int { state.withLock { $0.originates } }
    var channelLookups: Int { state.withLock { $0.channelLookups } }
    var channelExists: Bool {
        get { state.withLock { $0.channelExists } }
        set { state.withLock { $0.channelExists = newValue } }
    }

    func originate(_ request: OriginateRequest) async throws -> ARIChannel {
        let answer = state.withLock { state -> Answer in
            state.originates += 1
            return state.answers.isEmpty ? .success : state.answers.removeFirst()
        }
        switch answer {
        case .success: return Self.channel(request.channelID)
        case .failure(let error): throw error
        }
    }

    func channel(id: String) async throws -> ARIChannel {
        let exists = state.withLock { state in
            state.channelLookups += 1
            return state.channelExists
        }
        guard exists else { throw ARIError.notFound("Channel not found") }
        return Self.channel(id)
    }

    func channels() async throws -> [ARIChannel] { [] }
    func continueInDialplan(channelID: String, context: String, extension: String, priority: Int) async throws {}
    func hangup(channelID: String, reason: String?) async throws {}
    func variable(_ name: String, channelID: String) async throws -> String? { nil }
    func subscribe(application: String, eventSource: String) async throws -> ARIApplication {
        ARIApplication(name: application, channelIDs: [], bridgeIDs: [], endpointIDs: [], deviceNames: [])
    }
    func ping() async throws -> String { "pong" }

    static func channel(_ id: String) -> ARIChannel {
        ARIChannel(
            id: id, name: "PJSIP/carrier-00000001", state: "Down",
            dialplan: ARIDialplanLocation(context: "default", exten: "s", priority: 1), creationtime: Date())
    }
}

/// A store that knows the fenced originate mark, heartbeats and call owners; anything else is outside the rules
/// these fakes serve.
final class FakeRepository: CallRepository {
    struct Unsupported: Error {}
    struct Unreachable: Error {}

    private let state = Mutex((marks: 0, allowed: true))
    private let ownership = Mutex((owners: [CallID: CallStore.CallOwner](), heartbeats: 0, reachable: true))

    /// What ``owners(of:)`` answers.
    var owners: [CallID: CallStore.CallOwner] {
        get { ownership.withLock { $0.owners } }
        set { ownership.withLock { $0.owners = newValue } }
    }
    /// Heartbeats recorded.
    var heartbeats: Int { ownership.withLock { $0.heartbeats } }
    /// While `false`, heartbeats and owner reads fail as with PostgreSQL away.
    var reachable: Bool {
        get { ownership.withLock { $0.reachable } }
        set { ownership.withLock { $0.reachable = newValue } }
    }

    var marks: Int { state.withLock { $0.marks } }
    var markAllowed: Bool {
        get { state.withLock { $0.allowed } }
        set { state.withLock { $0.allowed = newValue } }
    }

    func markOriginating(_ callID: CallID, epoch: Int) async throws -> Bool {
        state.withLock { state in
            state.marks += 1
            return state.allowed && epoch == 1
        }
    }

    func claim(
        _ command: OriginateCommand, nodeID: String, workerID: String, at now: Date
    ) async throws
        -> ClaimResult
    { throw Unsupported() }
    func expireQueued(
        _ command: OriginateCommand, nodeID: String?, workerID: String?, at now: Date
    ) async throws -> QueuedChangeResult { throw Unsupported() }
    func cancelQueued(
        callID: CallID, nodeID: String?, workerID: String?, at now: Date
    ) async throws -> QueuedChangeResult { throw Unsupported() }
    func call(id: CallID) async throws -> CallRecord? { throw Unsupported() }
    func liveCalls(nodeID: String) async throws -> [CallRecord] { throw Unsupported() }
    func sequences(of ids: [CallID]) async throws -> [CallID: Int] { throw Unsupported() }
    func recordQueued(_ commands: [OriginateCommand]) async throws { throw Unsupported() }
    func apply(_ events: [CallStatusEvent]) async throws -> [ApplyResult] { throw Unsupported() }
    func ping() async throws {}
    func heartbeat(workerID: String, nodeID: String) async throws {
        try ownership.withLock { state throws(Unreachable) in
            guard state.reachable else { throw Unreachable() }
            state.heartbeats += 1
        }
    }
    func abandonedCalls(
        nodeID: String, ownerTimeout: Duration, excludingWorker workerID: String, limit: Int
    ) async throws -> [CallRecord] { [] }
    func takeOver(
        _ callID: CallID, expectedEpoch: Int, nodeID: String, workerID: String, ownerTimeout: Duration?
    ) async throws -> CallRecord? { nil }
    func owners(of ids: [CallID]) async throws -> [CallID: CallStore.CallOwner] {
        try ownership.withLock { state throws(Unreachable) in
            guard state.reachable else { throw Unreachable() }
            return state.owners.filter { ids.contains($0.key) }
        }
    }
}

/// A publisher the originate rules never use (the dialer publishes the tracker's events).
struct FakePublisher: StatusPublisher {
    struct Unsupported: Error {}

    func publish(_ event: CallStatusEvent, traceParent: String?) async throws -> KafkaDeliveryReceipt {
        throw Unsupported()
    }

    func deadLetter(
        _ message: KafkaMessage, reason: DeadLetterReason, detail: String, consumerGroup: String
    ) async throws -> KafkaDeliveryReceipt { throw Unsupported() }
}
