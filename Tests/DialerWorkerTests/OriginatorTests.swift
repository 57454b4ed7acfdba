import ARI
import CallDomain
import CallMessaging
import CallStore
import Foundation
import Kafka
import Logging
import Synchronization
import Testing

@testable import DialerWorker

/// The originate rules on in-memory fakes of the node and the store (fast; the same rules run against the simulator
/// and PostgreSQL in `Resilience` and `Takeover`): what counts as "no channel was created", what is sent again and
/// when, and what ends a call.
@Suite("Originate rules")
struct OriginatorTests {
    @Test("503 'not booted' waits for the node and is not an attempt; the call is dialed once the node is up")
    func notBootedWaitsForTheNode() async throws {
        let notBooted = ARIError.server(status: 503, message: "Asterisk not booted")
        let rig = try Rig(
            answers: [.failure(notBooted), .failure(notBooted), .failure(notBooted), .success], maxAttempts: 2)
        let probe = rig.probeNode()
        defer { probe.cancel() }
        let events = await rig.send()
        #expect(events.map(\.status) == [.dispatched, .initiated])
        #expect(rig.node.originates == 4, "three waits for the boot, then the originate the node took")
        #expect(rig.repository.marks == 4, "every originate is preceded by the fenced mark")
    }

    @Test("5xx from a booted node: sent again with back-off, then failed after ORIGINATE_MAX_ATTEMPTS")
    func serverErrorsCountAttempts() async throws {
        let failure = ARIError.server(status: 500, message: "Allocation failed")
        let rig = try Rig(answers: Array(repeating: .failure(failure), count: 5), maxAttempts: 3)
        let events = await rig.send()
        #expect(events.map(\.status) == [.dispatched, .failed])
        #expect(events.last?.failureReason == .originateRefused)
        #expect(events.last?.detail?.contains("after 3 attempts") == true)
        #expect(rig.node.originates == 3)
    }

    @Test("a 4xx is final: one originate, the call fails with the node's answer")
    func clientErrorsAreFinal() async throws {
        let rig = try Rig(answers: [.failure(.invalidRequest("Invalid endpoint specified")), .success])
        let events = await rig.send()
        #expect(events.map(\.status) == [.dispatched, .failed])
        #expect(events.last?.detail?.contains("Invalid endpoint") == true)
        #expect(rig.node.originates == 1)
    }

    @Test("no answer, but the channel exists: the originate was taken and is not sent again")
    func lostAnswerWithChannel() async throws {
        let rig = try Rig(answers: [.failure(.transport("read timed out")), .success])
        rig.node.channelExists = true
        let events = await rig.send()
        #expect(events.map(\.status) == [.dispatched, .initiated])
        #expect(rig.node.originates == 1)
    }

    @Test("no answer and no channel afterwards: nothing was dialed, the originate is sent again")
    func lostAnswerWithoutChannel() async throws {
        let rig = try Rig(answers: [.failure(.transport("connection refused")), .success])
        let probe = rig.probeNode()
        defer { probe.cancel() }
        let events = await rig.send()
        #expect(events.map(\.status) == [.dispatched, .initiated])
        #expect(rig.node.originates == 2)
        #expect(rig.node.channelLookups >= 1, "the channel was looked for before dialing again")
    }

    @Test("a call taken over before this worker dialed it is dropped without an originate")
    func takenOverBeforeDialing() async throws {
        let rig = try Rig(answers: [.success])
        rig.repository.markAllowed = false
        let actions = await rig.sendActions()
        #expect(rig.node.originates == 0)
        #expect(!rig.context.tracker.isTracked(rig.command.callID))
        #expect(actions.contains { if case .releaseSlot = $0 { true } else { false } })
    }

    @Test("the time to live passes while the node boots: failed, dialed never, with a detail that says so")
    func timeToLivePassesWhileBooting() async throws {
        let notBooted = ARIError.server(status: 503, message: "Asterisk not booted")
        let rig = try Rig(answers: [.failure(notBooted)], expiresIn: 0.3)
        let events = await rig.send()
        #expect(events.map(\.status) == [.dispatched, .failed])
        #expect(events.last?.detail?.contains("time to live passed") == true)
        #expect(rig.node.originates == 1)
    }

    @Test("a hangup asked while the node boots ends the call canceled, undialed")
    func hangupWhileBooting() async throws {
        let notBooted = ARIError.server(status: 503, message: "Asterisk not booted")
        let rig = try Rig(answers: [.failure(notBooted), .success])
        let context = rig.context
        let callID = rig.command.callID
        let hangup = Task {
            try await Task.sleep(for: .milliseconds(100))
            _ = context.tracker.requestHangup(callID)
            context.gate.setNodeBooted(true)
        }
        let events = await rig.send()
        try await hangup.value
        #expect(events.map(\.status) == [.dispatched, .canceled])
        #expect(rig.node.originates == 1)
    }
}

/// One call claimed by a worker whose node and store are fakes.
private struct Rig {
    let context: WorkerContext
    let node: FakeNode
    let repository: FakeRepository
    let command: OriginateCommand
    let originator: Originator

    init(
        answers: [FakeNode.Answer], maxAttempts: Int = 6, expiresIn: TimeInterval = 60,
        ownerTimeout: Duration = .seconds(60)
    ) throws {
        node = FakeNode(answers: answers)
        repository = FakeRepository()
        var configuration = WorkerConfiguration(
            nodeID: "node-a", workerID: "worker-1",
            ari: ARIConfiguration(baseURL: "http://127.0.0.1:1/ari", username: "u", password: "p", application: "app"),
            endpointTemplate: try EndpointTemplate("PJSIP/{to}@carrier"),
            defaultDialplan: try DialplanTarget(context: "agents", extension: "s", priority: 1),
            kafka: KafkaConfiguration(bootstrapServers: "127.0.0.1:1"), databaseURL: "postgres://u@127.0.0.1/db")
        configuration.originateMaxAttempts = maxAttempts
        configuration.ownerTimeout = ownerTimeout
        let gate = IntakeGate(maxConcurrentCalls: 10, maxOriginatesInFlight: 10, maxCallsPerSecond: 100)
        gate.setARIConnected(true)
        gate.setNodeBooted(true)
        let lease = OwnerLease(ownerTimeout: ownerTimeout)
        lease.renewed(sentAt: .now)
        context = WorkerContext(
            configuration: configuration, store: repository, ari: node, publisher: FakePublisher(),
            tracker: CallTracker(nodeID: "node-a", workerID: "worker-1", application: "app"), gate: gate,
            readiness: WorkerReadiness(), lease: lease, metrics: WorkerMetrics(),
            logger: Logger(label: "originator-tests"))
        originator = Originator(context: context, logger: context.logger, initialRetryDelay: .milliseconds(10))
        command = try Self.claim(to: "+15550100001", expiresIn: expiresIn, in: context)
    }

    /// A command this worker registered and claimed at owner epoch 1.
    static func claim(
        to number: String, expiresIn: TimeInterval = 60, in context: WorkerContext
    ) throws
        -> OriginateCommand
    {
        let now = Date()
        let command = OriginateCommand(
            callID: .generate(), requestedAt: now, expiresAt: now.addingTimeInterval(expiresIn),
            to: try DialTarget(number), requestedBy: "tests")
        _ = context.tracker.register(command, traceParent: nil, dialplan: context.configuration.defaultDialplan)
        _ = context.tracker.claimWon(
            CallStatusEvent(
                callID: command.callID, seq: 1, status: .dispatched, previousStatus: .queued, occurredAt: now,
                ownerEpoch: 1))
        return command
    }

    /// Sends the originate; returns what the tracker did.
    func sendActions() async -> [TrackerAction] {
        await originator.send(originator.request(for: command), command: command, logger: context.logger)
    }

    /// Sends the originate; returns the call's status events, in order.
    func send() async -> [CallStatusEvent] {
        _ = await sendActions()
        return CaptureReplayTests.drain(context.tracker, command.callID)
    }

    /// Plays the dialer's node probe: the node answers as booted a moment after a request found it booting.
    func probeNode() -> Task<Void, Never> {
        let gate = context.gate
        return Task {
            while !Task.isCancelled {
                if !gate.nodeBooted { gate.setNodeBooted(true) }
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
    }
}

/// The owner lease on fakes: lapsing, and the calls dropped on renewal when another worker took them meanwhile.
@Suite("Owner lease")
struct OwnerLeaseTests {
    @Test("valid for half the owner timeout after the heartbeat was sent; held continuously since the last lapse")
    func leaseWindow() {
        let lease = OwnerLease(ownerTimeout: .seconds(20))
        let start = ContinuousClock.now
        #expect(!lease.isValid(at: start), "no heartbeat yet")
        lease.renewed(sentAt: start, now: start)
        #expect(lease.isValid(at: start + .seconds(9)))
        #expect(!lease.isValid(at: start + .seconds(10)), "lapsed at half the owner timeout")
        #expect(!lease.heldContinuously(for: .seconds(5), at: start + .seconds(4)))
        lease.renewed(sentAt: start + .seconds(8), now: start + .seconds(8))
        #expect(lease.heldContinuously(for: .seconds(15), at: start + .seconds(16)), "renewed in time: no lapse")
        // A lapse restarts the count.
        lease.renewed(sentAt: start + .seconds(40), now: start + .seconds(40))
        #expect(!lease.heldContinuously(for: .seconds(20), at: start + .seconds(45)))
        lease.release()
        #expect(!lease.isValid(at: start + .seconds(41)))
    }

    @Test("after a lapse, the calls another worker took are dropped unpublished before the lease is held again")
    func revalidationDropsTakenCalls() async throws {
        let rig = try Rig(answers: [.success], ownerTimeout: .seconds(2))
        let context = rig.context
        let taken = rig.command.callID
        // A second call, still this worker's.
        let kept = try Rig.claim(to: "+15550100002", in: context)
        // Claimed as PostgreSQL was read: the row read still says queued (epoch 0). Not another worker's.
        let justClaimed = try Rig.claim(to: "+15550100003", in: context)
        context.lease.release()
        rig.repository.owners = [
            taken: .init(workerID: "worker-2", epoch: 2, status: .ringing),
            kept.callID: .init(workerID: "worker-1", epoch: 1, status: .dispatched),
            justClaimed.callID: .init(workerID: nil, epoch: 0, status: .queued),
        ]
        let keeper = Task { await LeaseKeeper(context: context, logger: context.logger).run() }
        defer { keeper.cancel() }
        for _ in 0..<200 where !context.lease.isValid() { try await Task.sleep(for: .milliseconds(10)) }
        #expect(context.lease.isValid())
        #expect(context.gate.leaseHeld)
        #expect(!context.tracker.isTracked(taken), "taken over meanwhile: dropped")
        #expect(context.tracker.nextPublication(taken) == nil, "its unpublished events are dropped too")
        #expect(context.tracker.isTracked(kept.callID))
        #expect(context.tracker.isTracked(justClaimed.callID), "a row read before its claim committed is no takeover")
        #expect(rig.repository.heartbeats >= 1)

        // PostgreSQL away: the lease lapses after half the owner timeout, and the gate closes.
        rig.repository.reachable = false
        for _ in 0..<300 where context.lease.isValid() { try await Task.sleep(for: .milliseconds(10)) }
        #expect(!context.lease.isValid())
        for _ in 0..<100 where context.gate.leaseHeld { try await Task.sleep(for: .milliseconds(10)) }
        #expect(!context.gate.leaseHeld)
    }
}
