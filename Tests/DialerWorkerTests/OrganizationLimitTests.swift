import ARISimulator
import CallDomain
import CallStore
import Foundation
import Synchronization
import TestSupport
import Testing

@testable import DialerWorker

/// Per-organization limits across workers: live calls and calls per second hold with two workers sharing the
/// calls, and calls beyond them wait queued rather than fail.
@Suite("Organization limits", .timeLimit(.minutes(5)))
struct OrganizationLimitTests {
    /// What the simulator showed over a run, sampled every 10 ms.
    final class Observation: Sendable {
        private let state = Mutex(
            (maxLive: 0, firstAt: ContinuousClock.Instant?.none, lastAt: ContinuousClock.Instant?.none, lastCount: 0))

        func sample(live: Int, accepted: Int, at now: ContinuousClock.Instant) {
            state.withLock { state in
                state.maxLive = max(state.maxLive, live)
                if accepted > 0, state.firstAt == nil { state.firstAt = now }
                if accepted > state.lastCount {
                    state.lastCount = accepted
                    state.lastAt = now
                }
            }
        }

        var maxLive: Int { state.withLock { $0.maxLive } }
        /// Originates per second from the first to the last one seen (`(n - 1) / elapsed`).
        var rate: Double {
            state.withLock { state in
                guard let first = state.firstAt, let last = state.lastAt, state.lastCount > 1 else { return 0 }
                let elapsed = last - first
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                return Double(state.lastCount - 1) / seconds
            }
        }
    }

    @Test("two workers: an organization's live calls and calls per second stay within its limits; every call completes")
    func limitsHoldAcrossTwoWorkers() async throws {
        try await WorkerTestEnvironment.run { environment in
            let limited = try await environment.store.createOrganization(
                name: unique("limited"), limits: OrganizationLimits(maxLiveCalls: 3, maxCallsPerSecond: 4),
                by: AuditActor(name: "test"))
            let observation = Observation()
            let sampler = Task {
                while !Task.isCancelled {
                    observation.sample(
                        live: environment.simulator.liveChannelCount,
                        accepted: environment.simulator.acceptedOriginates, at: .now)
                    try? await Task.sleep(for: .milliseconds(10))
                }
            }
            defer { sampler.cancel() }
            try await withWorker(try environment.workerConfiguration()) { _ in
                try await withWorker(try environment.workerConfiguration()) { _ in
                    let commands = try (0..<16).map { _ in
                        var command = try environment.command(TestNumber.answer(holdSeconds: 1))
                        command.organizationID = limited.id
                        return command
                    }
                    for command in commands { try await environment.publish(command) }
                    for command in commands {
                        let record = try await environment.waitForEnd(command.callID, timeout: .seconds(90))
                        #expect(record.status == .completed, "\(record.status) \(record.detail ?? "")")
                        #expect(record.organizationID == limited.id)
                        #expect(
                            environment.simulator.acceptedOriginateCount(channelID: command.callID.description) == 1)
                    }
                }
            }
            sampler.cancel()
            #expect(observation.maxLive <= 3, "at most 3 live calls at once, saw \(observation.maxLive)")
            #expect(observation.maxLive >= 2, "the limit, not something else, paced the calls")
            // 4 per second, within 10% (one call of burst).
            #expect(observation.rate <= 4 * 1.1, "originates per second: \(observation.rate)")
        }
    }

    @Test("an organization at its limits does not hold up another organization's calls")
    func anotherOrganizationIsNotHeldUp() async throws {
        try await WorkerTestEnvironment.run { environment in
            let slow = try await environment.store.createOrganization(
                name: unique("slow"), limits: OrganizationLimits(maxCallsPerSecond: 0.5), by: AuditActor(name: "test"))
            try await withWorker(try environment.workerConfiguration()) { worker in
                // A backlog the slow organization needs 20 s to dial.
                let backlog = try (0..<10).map { _ in
                    var command = try environment.command(TestNumber.answer(holdSeconds: 1))
                    command.organizationID = slow.id
                    return command
                }
                for command in backlog { try await environment.publish(command) }
                try await eventually("the backlog waits") { worker.status.deferredCalls >= 5 }
                let other = try environment.command(TestNumber.answer(holdSeconds: 1))
                try await environment.publish(other)
                let started = ContinuousClock.now
                let record = try await environment.waitForEnd(other.callID, timeout: .seconds(15))
                #expect(record.status == .completed)
                #expect(ContinuousClock.now - started < .seconds(10))
                // The backlog is still queued, not failed: nothing of it ended yet but the first one or two.
                var ended = 0
                for command in backlog
                where try await environment.store.call(id: command.callID)?.status.isTerminal == true {
                    ended += 1
                }
                #expect(ended <= 3)
            }
        }
    }
}
