import ARI
import CallDomain
import Foundation
import Kafka
import Testing

@testable import DialerWorker

/// The pure parts of the dialer: in-order commits and the intake gate.
@Suite("Dialer logic")
struct LogicTests {
    let partition = KafkaTopicPartition(topic: "calls.originate.v1", partition: 0)

    @Test("commits never pass a message still in flight")
    func inOrderCommits() {
        var offsets = OffsetTracker()
        for offset in Int64(10)...14 { offsets.delivered(partition, offset: offset) }
        #expect(offsets.completed(partition, offset: 12) == nil, "10 and 11 are still in flight")
        #expect(offsets.completed(partition, offset: 11) == nil)
        #expect(offsets.completed(partition, offset: 10)?.offset == 13, "10, 11, 12 done: commit 13")
        #expect(offsets.completed(partition, offset: 14) == nil, "13 still in flight")
        #expect(offsets.completed(partition, offset: 13)?.offset == 15)
        #expect(offsets.inFlightCount == 0)
    }

    @Test("a partition that comes back from its committed offset commits again from there")
    func rewind() {
        var offsets = OffsetTracker()
        offsets.delivered(partition, offset: 5)
        offsets.delivered(partition, offset: 6)
        #expect(offsets.completed(partition, offset: 6) == nil)
        // Revoked and assigned again: delivery restarts at the committed offset 5.
        offsets.delivered(partition, offset: 5)
        #expect(offsets.completed(partition, offset: 5)?.offset == 6)
        offsets.delivered(partition, offset: 6)
        #expect(offsets.completed(partition, offset: 6)?.offset == 7)
    }

    @Test("each delivery says how it follows the partition's previous one: start, next, rewind, or a jump")
    func continuity() {
        var offsets = OffsetTracker()
        #expect(offsets.delivered(partition, offset: 40) == .starts)
        #expect(offsets.delivered(partition, offset: 41) == .follows)
        #expect(offsets.delivered(partition, offset: 42) == .follows)
        #expect(offsets.delivered(partition, offset: 40) == .rewinds(from: 42))
        #expect(offsets.delivered(partition, offset: 41) == .follows)
        #expect(offsets.delivered(partition, offset: 45) == .jumps(from: 41))
        let other = KafkaTopicPartition(topic: partition.topic, partition: 1)
        #expect(offsets.delivered(other, offset: 0) == .starts)
    }

    @Test("a stopping worker waits on the calls it ended within the window, each at its highest terminal seq")
    func recentlyEndedWindow() {
        var ended = RecentlyEnded(window: .seconds(10))
        let start = ContinuousClock.now
        let old = CallID.generate()
        let recent = CallID.generate()
        ended.ended(old, seq: 4, at: start)
        ended.ended(recent, seq: 5, at: start + .seconds(8))
        ended.ended(recent, seq: 10, at: start + .seconds(9))
        #expect(ended.within(now: start + .seconds(9)) == [old: 4, recent: 10])
        #expect(ended.within(now: start + .seconds(12)) == [recent: 10], "the first end left the window")
        #expect(ended.count == 2)
        for index in 0..<5000 {
            ended.ended(CallID.generate(), seq: 4, at: start + .seconds(20) + .milliseconds(index))
        }
        #expect(ended.within(now: start + .seconds(40)).isEmpty, "everything is older than the window")
        #expect(ended.count == 0)
    }

    @Test("the gate admits up to the concurrency limit and reopens when a call ends")
    func capacityGate() async {
        let gate = IntakeGate(maxConcurrentCalls: 2, maxOriginatesInFlight: 10, maxCallsPerSecond: 1000)
        gate.setARIConnected(true)
        gate.setNodeBooted(true)
        gate.setLeaseHeld(true)
        #expect(await gate.admit(onBlocked: { _ in }, onAdmitted: {}))
        #expect(await gate.admit(onBlocked: { _ in }, onAdmitted: {}))
        gate.finishPlacing(keepSlot: true, refundToken: false)
        gate.finishPlacing(keepSlot: true, refundToken: false)
        #expect(gate.slotsUsed == 2)
        let third = Task {
            await gate.admit(onBlocked: { #expect($0 == .capacity) }, onAdmitted: {})
        }
        while gate.blockedBy == nil { await Task.yield() }
        #expect(gate.blockedBy == .capacity)
        gate.releaseSlot()
        #expect(await third.value)
        #expect(gate.slotsUsed == 2)
        gate.stop()
        #expect(await gate.admit(onBlocked: { _ in }, onAdmitted: {}) == false)
    }

    @Test("the gate stays closed while ARI is away, the node is booting, PostgreSQL is away or the lease lapsed")
    func dependencies() async {
        let gate = IntakeGate(maxConcurrentCalls: 10, maxOriginatesInFlight: 10, maxCallsPerSecond: 1000)
        let first = Task { await gate.admit(onBlocked: { _ in }, onAdmitted: {}) }
        while gate.blockedBy == nil { await Task.yield() }
        #expect(gate.blockedBy == .ari)
        gate.setDatabaseAvailable(false)
        gate.setARIConnected(true)
        // Connected, but the node has not answered as booted: a starting Asterisk accepts the WebSocket first.
        while gate.blockedBy != .nodeBooting { await Task.yield() }
        #expect(!gate.nodeUsable)
        gate.setNodeBooted(true)
        while gate.blockedBy != .database { await Task.yield() }
        #expect(gate.nodeUsable)
        gate.setDatabaseAvailable(true)
        // A worker whose heartbeat lapsed may have lost its calls to another: it takes nothing until renewed.
        while gate.blockedBy != .ownerLease { await Task.yield() }
        #expect(!gate.leaseHeld)
        gate.setLeaseHeld(true)
        #expect(gate.leaseHeld && gate.nodeUsable)
        #expect(await first.value)
    }

    @Test("a refused originate is an event, and a hangup before the claim cancels the call undialed")
    func refusedAndEarlyHangup() throws {
        let tracker = CallTracker(nodeID: "n", workerID: "w", application: "app")
        let command = OriginateCommand(
            callID: .generate(), requestedAt: .now, expiresAt: .now.addingTimeInterval(60),
            to: try DialTarget("5551000"),
            requestedBy: "tests")
        let dialplan = try DialplanTarget(context: "agents", extension: "s", priority: 1)
        #expect(tracker.register(command, traceParent: nil, dialplan: dialplan))
        #expect(!tracker.register(command, traceParent: nil, dialplan: dialplan), "a redelivery is not tracked twice")
        _ = tracker.claimWon(
            CallStatusEvent(
                callID: command.callID, seq: 1, status: .dispatched, previousStatus: .queued, occurredAt: .now))
        _ = tracker.originateRefused(command.callID, detail: "ARI 503: unavailable")
        let refused = CaptureReplayTests.drain(tracker, command.callID)
        #expect(refused.map(\.status) == [.dispatched, .failed])
        #expect(refused.last?.failureReason == .originateRefused)
        #expect(refused.last?.detail == "ARI 503: unavailable")

        let other = OriginateCommand(
            callID: .generate(), requestedAt: .now, expiresAt: .now.addingTimeInterval(60),
            to: try DialTarget("5551000"),
            requestedBy: "tests")
        #expect(tracker.register(other, traceParent: nil, dialplan: dialplan))
        #expect(tracker.requestHangup(other.callID).0 == .deferred)
        let (originate, _) = tracker.claimWon(
            CallStatusEvent(
                callID: other.callID, seq: 1, status: .dispatched, previousStatus: .queued, occurredAt: .now))
        #expect(!originate)
        #expect(CaptureReplayTests.drain(tracker, other.callID).map(\.status) == [.dispatched, .canceled])
        #expect(tracker.count == 0)
    }

    @Test(
        "a call back in Stasis from the detection whose ChannelVarset events were not seen (a reconnect) reads the verdict from the channel; a machine is hung up"
    )
    func detectionVerdictReadWhenItsEventsWereMissed() throws {
        let tracker = CallTracker(nodeID: "n", workerID: "w", application: "app")
        var command = OriginateCommand(
            callID: .generate(), requestedAt: .now, expiresAt: .now.addingTimeInterval(60),
            to: try DialTarget("5551000"), requestedBy: "tests")
        command.machineDetection = try MachineDetection(mode: .detect)
        let target = try DialplanTarget(context: "agents", extension: "s", priority: 1)
        #expect(tracker.register(command, traceParent: nil, dialplan: target))
        _ = tracker.claimWon(
            CallStatusEvent(
                callID: command.callID, seq: 1, status: .dispatched, previousStatus: .queued, occurredAt: .now))
        _ = tracker.originateAccepted(command.callID)
        let channelID = command.callID.description
        func channel(_ location: ARIDialplanLocation) -> ARIChannel {
            ARIChannel(id: channelID, name: "PJSIP/carrier-1", state: "Up", dialplan: location, creationtime: .now)
        }
        // Answered, still running AMD(): the answered status waits, nothing is asked of the channel.
        let detecting = tracker.synchronize(
            with: channel(.init(context: "dialer-amd", exten: "s", priority: 1, appName: "AMD", appData: "")))
        #expect(detecting.isEmpty)
        #expect(CaptureReplayTests.drain(tracker, command.callID).map(\.status) == [.dispatched, .initiated])
        // Back in Stasis with `amd`: the verdict is read from the channel.
        let back = tracker.synchronize(
            with: channel(.init(context: "dialer-amd", exten: "s", priority: 3, appName: "Stasis", appData: "app,amd")))
        #expect(
            back.contains {
                if case .readMachineDetection(let id, _) = $0 { id == command.callID } else { false }
            })
        let decided = tracker.machineDetected(command.callID, status: "MACHINE", cause: "LONGGREETING-1500-1500")
        #expect(decided.contains { if case .hangup(let id, _) = $0 { id == command.callID } else { false } })
        let answered = try #require(CaptureReplayTests.drain(tracker, command.callID).first)
        #expect(answered.status == .answered && answered.answeredBy == .machine)
        #expect(answered.detail == "answering machine detection: MACHINE (LONGGREETING-1500-1500)")
        #expect(tracker.machineDetected(command.callID, status: "HUMAN", cause: nil).isEmpty, "decided once")
    }
}
