import ARI
import ARISimulator
import CallDomain
import CallStore
import DialerWorker
import Foundation
import TestSupport
import Testing

/// A worker that stops sending heartbeats (crashed, stalled, cut off) loses its live calls to a live worker of the
/// same node, which tracks each to its real end: a channel still up is followed, a call never dialed is dialed, a
/// vanished one ends with an outcome that says what is known. The stopped worker is simulated here: its claims and
/// status are written to PostgreSQL as it would have, and its channel is originated under its own ARI application.
@Suite("Takeover of a stopped worker's calls", .serialized, .timeLimit(.minutes(5)))
struct TakeoverTests {
    @Test("answered and still up: followed to its real end; never dialed: dialed once; vanished: completed or lost")
    func stoppedWorkersCallsAreTakenOver() async throws {
        try await WorkerTestEnvironment.run { environment in
            let store = environment.store
            let node = environment.nodeID
            let ghostApp = unique("ghost")
            let ghostARI = ARIConfiguration(
                baseURL: environment.ariBaseURL, username: "dialer", password: "dialer-secret",
                application: ghostApp)
            let ghostEvents = ARIEventStream(configuration: ghostARI, logger: testLogger)
            let ghostRunner = Task { try await ghostEvents.run() }
            defer { ghostRunner.cancel() }
            var states = ghostEvents.connectionStates.makeAsyncIterator()
            while let state = await states.next(), state != .connected {}

            // A: the stopped worker dialed it, it was answered, and it is still up (hangs up by itself after 8 s).
            let upCall = try environment.command(TestNumber.answer(holdSeconds: 8))
            try await claimAsGhost(upCall, store: store, node: node, statuses: [.initiated, .answered], marked: true)
            _ = try await ARIClient(configuration: ghostARI, logger: testLogger).originate(
                OriginateRequest(
                    channelID: upCall.callID.description, endpoint: "PJSIP/\(upCall.to.value)@carrier", app: ghostApp))
            try await eventually("the channel is up") {
                environment.simulator.liveChannelIDs.contains(upCall.callID.description)
            }
            // B: claimed, never dialed (no originate mark).
            let undialed = try environment.command(TestNumber.answer(holdSeconds: 1))
            try await claimAsGhost(undialed, store: store, node: node, statuses: [], marked: false)
            // C: answered according to the history, channel gone.
            let answeredGone = try environment.command(TestNumber.answer(holdSeconds: 1))
            try await claimAsGhost(
                answeredGone, store: store, node: node, statuses: [.initiated, .answered], marked: true)
            // D: ringing according to the history, channel gone: nothing says how it ended.
            let ringingGone = try environment.command(TestNumber.noAnswer)
            try await claimAsGhost(
                ringingGone, store: store, node: node, statuses: [.initiated, .ringing], marked: true)
            // The stopped worker's WebSocket goes; its calls stay up, as on a real Asterisk.
            ghostRunner.cancel()

            let configuration = try environment.workerConfiguration { $0.ownerTimeout = .seconds(2) }
            try await withWorker(configuration) { worker in
                let up = try await environment.waitForEnd(upCall.callID, timeout: .seconds(40))
                #expect(up.status == .completed)
                #expect(up.hangupCause?.code == 16, "the real end, from the channel's own events")
                #expect(up.workerID == worker.configuration.workerID)
                #expect(up.ownerEpoch == 2)

                let dialed = try await environment.waitForEnd(undialed.callID, timeout: .seconds(40))
                #expect(dialed.status == .completed)
                #expect(environment.simulator.acceptedOriginateCount(channelID: undialed.callID.description) == 1)

                let gone = try await environment.waitForEnd(answeredGone.callID, timeout: .seconds(40))
                #expect(gone.status == .completed)
                #expect(gone.detail?.contains("inferred") == true)

                let lost = try await environment.waitForEnd(ringingGone.callID, timeout: .seconds(40))
                #expect(lost.status == .failed)
                #expect(lost.failureReason == .lost)
                #expect(environment.simulator.originateCount(channelID: ringingGone.callID.description) == 0)

                for call in [upCall, undialed, answeredGone, ringingGone] {
                    let terminal = environment.statusLog.terminalEvents(of: call.callID)
                    #expect(terminal.count == 1)
                    #expect(terminal.first?.ownerEpoch == 2)
                    #expect((terminal.first?.seq ?? 0) > 3, "the new owner's numbers skip past the old owner's")
                }
                // The stopped worker's late event is refused: it lost the call.
                var late = CallStatusEvent(
                    callID: upCall.callID, seq: 4, status: .completed, previousStatus: .answered, occurredAt: Date(),
                    nodeID: node, workerID: "ghost", ownerEpoch: 1)
                late.channelID = upCall.callID.description
                #expect(try await store.apply(late) == .staleOwner(epoch: 1))
            }
        }
    }

    /// Writes what a worker named `ghost` would have: its claim, the originate mark, and status events it published.
    private func claimAsGhost(
        _ command: OriginateCommand, store: CallStore, node: String, statuses: [CallStatus], marked: Bool
    ) async throws {
        guard case .won(let dispatched) = try await store.claim(command, nodeID: node, workerID: "ghost") else {
            throw TestEnvironmentError("the ghost's claim was lost")
        }
        if marked { #expect(try await store.markOriginating(command.callID, epoch: 1)) }
        var previous = CallStatus.dispatched
        for (index, status) in statuses.enumerated() {
            let event = CallStatusEvent(
                callID: command.callID, seq: dispatched.seq + index + 1, status: status, previousStatus: previous,
                occurredAt: Date(), nodeID: node, workerID: "ghost", channelID: command.callID.description,
                to: command.to.value, answeredAt: status == .answered ? Date() : nil, ownerEpoch: 1)
            #expect(try await store.apply(event) == .applied)
            previous = status
        }
    }
}
