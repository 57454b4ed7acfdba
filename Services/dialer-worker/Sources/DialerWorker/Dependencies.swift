import ARI
import CallDomain
import CallMessaging
import CallStore
import Foundation
import Kafka

// The worker's dependencies as the worker sees them, so that its rules (placement, retries, fencing) can be tested
// with in-memory fakes while the integration tests run against PostgreSQL, the broker and the simulator. The
// production implementations are the shared adapters: `CallStore`, `ARIClient` and `CallMessagePublisher`.

/// The call history and call ownership, as the worker uses them.
protocol CallRepository: Sendable {
    /// Claims a queued call (`queued → dispatched`, owner epoch raised); see ``CallStore/claim(_:nodeID:workerID:at:)``.
    func claim(_ command: OriginateCommand, nodeID: String, workerID: String, at now: Date) async throws -> ClaimResult
    /// Moves a queued call to `expired`.
    func expireQueued(
        _ command: OriginateCommand, nodeID: String?, workerID: String?, at now: Date
    ) async throws -> QueuedChangeResult
    /// Moves a queued call to `canceled`.
    func cancelQueued(
        callID: CallID, nodeID: String?, workerID: String?, at now: Date
    ) async throws -> QueuedChangeResult
    /// The call with its timeline.
    func call(id: CallID) async throws -> CallRecord?
    /// The live calls of a node.
    func liveCalls(nodeID: String) async throws -> [CallRecord]
    /// How far the history has applied each call's status events.
    func sequences(of ids: [CallID]) async throws -> [CallID: Int]
    /// Records originate commands as queued calls.
    func recordQueued(_ commands: [OriginateCommand]) async throws
    /// Applies status events idempotently.
    func apply(_ events: [CallStatusEvent]) async throws -> [ApplyResult]
    /// A round trip, to tell whether the store is reachable.
    func ping() async throws
    /// Records that the worker is alive.
    func heartbeat(workerID: String, nodeID: String) async throws
    /// Live calls of the node whose owner stopped sending heartbeats.
    func abandonedCalls(
        nodeID: String, ownerTimeout: Duration, excludingWorker workerID: String, limit: Int
    ) async throws -> [CallRecord]
    /// Takes a live call over, conditionally on the owner epoch seen (and on its owner being silent).
    func takeOver(
        _ callID: CallID, expectedEpoch: Int, nodeID: String, workerID: String, ownerTimeout: Duration?
    ) async throws -> CallRecord?
    /// The fenced write before an originate: `false` when the call is no longer this epoch's.
    func markOriginating(_ callID: CallID, epoch: Int) async throws -> Bool
    /// The stored owner of each call.
    func owners(of ids: [CallID]) async throws -> [CallID: CallStore.CallOwner]
}

extension CallStore: CallRepository {}

/// The Asterisk node, through ARI's REST API, as the worker uses it.
protocol NodeClient: Sendable {
    /// `POST /channels`: an app-style originate.
    func originate(_ request: OriginateRequest) async throws -> ARIChannel
    /// `GET /channels/{id}`.
    func channel(id: String) async throws -> ARIChannel
    /// `GET /channels`.
    func channels() async throws -> [ARIChannel]
    /// `POST /channels/{id}/continue`.
    func continueInDialplan(channelID: String, context: String, extension: String, priority: Int) async throws
    /// `GET /channels/{id}/variable`: `nil` when the channel has no such variable.
    func variable(_ name: String, channelID: String) async throws -> String?
    /// `DELETE /channels/{id}`.
    func hangup(channelID: String, reason: String?) async throws
    /// `POST /applications/{app}/subscription`.
    func subscribe(application: String, eventSource: String) async throws -> ARIApplication
    /// `GET /asterisk/ping`: answers once the node is fully booted.
    func ping() async throws -> String
}

extension ARIClient: NodeClient {}

/// The status topic and the dead-letter topic, as the worker uses them.
protocol StatusPublisher: Sendable {
    /// Publishes a status event; returns once the brokers acknowledged it.
    @discardableResult
    func publish(_ event: CallStatusEvent, traceParent: String?) async throws -> KafkaDeliveryReceipt
    /// Copies a message that can never be processed to the dead-letter topic.
    @discardableResult
    func deadLetter(
        _ message: KafkaMessage, reason: DeadLetterReason, detail: String, consumerGroup: String
    ) async throws -> KafkaDeliveryReceipt
}

extension CallMessagePublisher: StatusPublisher {}
