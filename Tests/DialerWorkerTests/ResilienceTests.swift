import ARI
import ARISimulator
import CallDomain
import CallStore
import DialerWorker
import Foundation
import TestSupport
import Testing

/// Faults of the worker's dependencies, with the worker in process. Serialized: each one loads the machine.
@Suite("Resilience", .serialized, .timeLimit(.minutes(5)))
struct ResilienceTests {
    @Test("WebSocket dropped while calls ring and end: every call gets its correct terminal status after reconnect")
    func webSocketDrop() async throws {
        try await WorkerTestEnvironment.run { environment in
            // A long reconnect back-off makes the gap deterministic: 4 to 8 seconds without events.
            let configuration = try environment.workerConfiguration {
                $0.ari.reconnectBackoff = .init(initial: .seconds(8), max: .seconds(8))
            }
            try await withWorker(configuration) { worker in
                // Answered, ends during the gap: only reconciliation can end it.
                let endsInGap = try environment.command(TestNumber.answer(holdSeconds: 3))
                // Rings until its 5 s timeout, around the end of the gap.
                let noAnswer = try environment.command(TestNumber.noAnswer, timeoutSeconds: 5)
                // Answered, still up after the gap, ends with events.
                let spansGap = try environment.command(TestNumber.answer(holdSeconds: 14))
                // Rings through the gap, answered after it.
                let answeredAfter = try environment.command(TestNumber.answer(ringTenths: 99, holdSeconds: 2))
                let all = [endsInGap, noAnswer, spansGap, answeredAfter]
                for command in all { try await environment.publish(command) }
                try await environment.waitForStatus(endsInGap.callID, .answered)
                try await environment.waitForStatus(spansGap.callID, .answered)
                try await environment.waitForStatus(noAnswer.callID, .ringing)
                try await environment.waitForStatus(answeredAfter.callID, .ringing)

                environment.simulator.dropWebSockets(application: configuration.ari.application)
                let dropped = ContinuousClock.now
                try await eventually(timeout: .seconds(5), "the worker saw the drop") { !worker.status.ariConnected }
                try await eventually(timeout: .seconds(60), "every call ended") {
                    all.allSatisfy { environment.statusLog.terminalEvents(of: $0.callID).count == 1 }
                }
                // Gap (at most 8 s) + grace + the longest call: bounded.
                #expect(ContinuousClock.now - dropped < .seconds(40))
                #expect(worker.status.ariConnected)

                let first = try #require(environment.statusLog.terminalEvents(of: endsInGap.callID).first)
                #expect(first.status == .completed)
                #expect(first.detail?.contains("vanished") == true, "ended by reconciliation")
                #expect(environment.statusLog.terminalEvents(of: noAnswer.callID).first?.status == .noAnswer)
                let second = try #require(environment.statusLog.terminalEvents(of: spansGap.callID).first)
                #expect(second.status == .completed)
                #expect(second.hangupCause?.code == 16)
                let third = try #require(environment.statusLog.terminalEvents(of: answeredAfter.callID).first)
                #expect(third.status == .completed)
                #expect(
                    environment.statusLog.statuses(of: answeredAfter.callID) == [
                        .dispatched, .initiated, .ringing, .answered, .completed,
                    ])
                for command in all {
                    #expect(environment.statusLog.terminalEvents(of: command.callID).count == 1)
                    let record = try await environment.waitForEnd(command.callID)
                    #expect(record.status == environment.statusLog.terminalEvents(of: command.callID).first?.status)
                    #expect(environment.simulator.originateCount(channelID: command.callID.description) == 1)
                }
            }
        }
    }

    @Test("Asterisk restart with calls queued and in flight: every call is dialed once, after the boot, and completes")
    func asteriskRestart() async throws {
        try await WorkerTestEnvironment.run { environment in
            let configuration = try environment.workerConfiguration {
                $0.ari.reconnectBackoff = .init(initial: .milliseconds(100), max: .milliseconds(200))
            }
            try await withWorker(configuration) { worker in
                let before = try environment.command(TestNumber.answer(holdSeconds: 1))
                try await environment.publish(before)
                _ = try await environment.waitForEnd(before.callID)

                // The node restarts: the WebSocket comes back at once, REST answers 503 "not booted" for 8 s (long
                // enough for the pause to be seen on a loaded machine).
                environment.simulator.restart(bootWindow: .seconds(8))
                let restarted = ContinuousClock.now
                let commands = try (0..<12).map { _ in
                    try environment.command(TestNumber.answer(ringTenths: 3, holdSeconds: 1))
                }
                for command in commands { try await environment.publish(command) }
                try await eventually(timeout: .seconds(7), "intake paused for the booting node") {
                    worker.status.pauseReason == "ari_node_not_booted"
                }
                #expect(!(await worker.status.isReady()), "a booting node is not ready")
                for command in commands {
                    let record = try await environment.waitForEnd(command.callID, timeout: .seconds(60))
                    #expect(record.status == .completed, "\(record.status) \(record.detail ?? "")")
                    #expect(environment.statusLog.terminalEvents(of: command.callID).count == 1)
                    #expect(environment.simulator.acceptedOriginateCount(channelID: command.callID.description) == 1)
                }
                #expect(ContinuousClock.now - restarted >= .seconds(8))
                #expect(environment.simulator.acceptedOriginates == commands.count + 1)
                try await eventually("ready again") { await worker.status.isReady() }
            }
        }
    }

    @Test("originates answered 503 by a booted node are sent again with back-off; the call completes, dialed once")
    func originateRetriedAfter503() async throws {
        try await WorkerTestEnvironment.run { environment in
            try await withWorker(try environment.workerConfiguration()) { _ in
                environment.simulator.refuseOriginates(count: 3, status: 503)
                let command = try environment.command(TestNumber.answer(holdSeconds: 1))
                try await environment.publish(command)
                let record = try await environment.waitForEnd(command.callID)
                #expect(record.status == .completed)
                #expect(environment.simulator.originateCount(channelID: command.callID.description) == 4)
                #expect(environment.simulator.acceptedOriginateCount(channelID: command.callID.description) == 1)
                #expect(
                    environment.statusLog.statuses(of: command.callID) == [
                        .dispatched, .initiated, .answered, .completed,
                    ])
            }
        }
    }

    @Test("PostgreSQL stopped for 10 s under load: intake pauses and resumes, nothing lost or duplicated")
    func postgresOutage() async throws {
        let postgres = try ThrowawayPostgres()
        defer { postgres.destroy() }
        try await WorkerTestEnvironment.run(postgres: postgres) { environment in
            let configuration = try environment.workerConfiguration { $0.maxCallsPerSecond = 10 }
            try await withWorker(configuration) { worker in
                let commands = try (0..<40).map { _ in
                    try environment.command(TestNumber.answer(ringTenths: 5, holdSeconds: 1))
                }
                for command in commands { try await environment.publish(command) }
                try await eventually("some calls dialed") { environment.simulator.totalOriginates >= 5 }

                try await postgres.stop()
                try await eventually(timeout: .seconds(30), "intake paused for PostgreSQL") {
                    worker.status.pauseReason == "database_unreachable"
                }
                let originatesWhilePaused = environment.simulator.totalOriginates
                try await Task.sleep(for: .seconds(10))  // the outage itself
                #expect(worker.status.pauseReason == "database_unreachable")
                #expect(!(await worker.status.isReady()))
                // A claim needs PostgreSQL: nothing was dialed during the outage.
                #expect(environment.simulator.totalOriginates == originatesWhilePaused)
                try await postgres.start()

                for command in commands {
                    let record = try await environment.waitForEnd(command.callID, timeout: .seconds(120))
                    #expect(record.status == .completed)
                    #expect(environment.statusLog.terminalEvents(of: command.callID).count == 1)
                    #expect(environment.simulator.originateCount(channelID: command.callID.description) == 1)
                }
                #expect(environment.simulator.totalOriginates == commands.count)
                try await eventually("intake resumed") { worker.status.pauseReason == nil }
            }
        }
    }

    @Test("graceful shutdown: intake stops, live calls are tracked to their end and never hung up")
    func gracefulShutdownDrains() async throws {
        try await WorkerTestEnvironment.run(partitions: 1) { environment in
            let configuration = try environment.workerConfiguration { $0.drainTimeout = .seconds(30) }
            let services = try buildServiceGroup(configuration: configuration, logger: testLogger)
            let running = Task { try await services.run() }
            try await eventually("worker ready") { await services.status.isReady() }

            let live = try environment.command(TestNumber.answer(holdSeconds: 3))
            try await environment.publish(live)
            try await environment.waitForStatus(live.callID, .answered)
            await services.triggerGracefulShutdown()
            let late = try environment.command(TestNumber.answer(holdSeconds: 1))
            try await environment.publish(late)
            try await value(of: running, within: configuration.stopBound, "worker")

            // The worker returned only after the live call ended by itself (the callee's hangup after 3 s).
            try await eventually(timeout: .seconds(10), "the terminal event read back") {
                environment.statusLog.terminalEvents(of: live.callID).count == 1
            }
            let terminal = try #require(environment.statusLog.terminalEvents(of: live.callID).first)
            #expect(terminal.status == .completed)
            #expect((terminal.durationSeconds ?? 0) >= 2.5)
            // Nothing was taken after the shutdown started.
            #expect(environment.simulator.originateCount(channelID: late.callID.description) == 0)
            #expect(environment.simulator.liveChannelCount == 0)
        }
    }

    @Test("a drain timeout leaves live calls up, and a restarted worker with the same id adopts and ends them")
    func adoptionAfterRestart() async throws {
        // The call outlives the successor's wait for the history (a few seconds), so it is adopted live.
        try await restartWithLiveCall(holdSeconds: 25, expectAdoptedLive: true)
    }

    @Test("a call that hangs up while the restarted worker waits for the history ends with its real cause, once")
    func hangupDuringTheAdoptionWait() async throws {
        // The call ends a few seconds into the successor's wait: its events are held and handed over on adoption.
        try await restartWithLiveCall(holdSeconds: 12, expectAdoptedLive: false)
    }

    /// A worker stops with a call up (drain timeout zero); a new process with the same worker id adopts it and
    /// ends it from its real `ChannelDestroyed`, with a single terminal event and a single originate.
    private func restartWithLiveCall(holdSeconds: Int, expectAdoptedLive: Bool) async throws {
        try await WorkerTestEnvironment.run { environment in
            let workerID = unique("worker")
            let first = try environment.workerConfiguration(workerID: workerID) { $0.drainTimeout = .zero }
            let command = try environment.command(TestNumber.answer(holdSeconds: holdSeconds))
            try await withWorker(first) { _ in
                try await environment.publish(command)
                try await environment.waitForStatus(command.callID, .answered)
                try await eventually("the answer stored") {
                    (try await environment.store.call(id: command.callID))?.status == .answered
                }
            }
            // The first process is gone; the call is still up in Asterisk, and in PostgreSQL not ended.
            #expect(environment.simulator.liveChannelIDs.contains(command.callID.description))
            let lastSeq = try #require(environment.statusLog.events(of: command.callID).last?.seq)

            // Same worker id, another ARI application: it subscribes to the adopted channel.
            let second = try environment.workerConfiguration(workerID: workerID)
            try await withWorker(second) { worker in
                if expectAdoptedLive {
                    try await eventually("the call adopted") { worker.status.liveCalls == 1 }
                }
                let record = try await environment.waitForEnd(command.callID)
                #expect(record.status == .completed)
                let terminal = try #require(environment.statusLog.terminalEvents(of: command.callID).first)
                #expect(terminal.hangupCause?.code == 16, "ended by its real ChannelDestroyed")
                #expect(terminal.seq > lastSeq + 4)
                #expect(environment.statusLog.terminalEvents(of: command.callID).count == 1)
                #expect(environment.simulator.originateCount(channelID: command.callID.description) == 1)
            }
        }
    }
}
