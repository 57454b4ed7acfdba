import ARISimulator
import CallDomain
import CallStore
import DialerWorker
import Foundation
import TestSupport
import Testing

/// Redelivery, capacity and back-pressure, with a worker in process.
@Suite("Delivery and capacity", .timeLimit(.minutes(4)))
struct DeliveryTests {
    @Test("the same command delivered three times is originated once")
    func duplicateCommands() async throws {
        // One partition: the sentinel is taken only after every copy before it.
        try await WorkerTestEnvironment.run(partitions: 1) { environment in
            try await withWorker(try environment.workerConfiguration()) { _ in
                let command = try environment.command(TestNumber.answer(holdSeconds: 1))
                try await environment.publish(command)
                try await environment.publish(command)  // while the call is live
                try await environment.waitForEnd(command.callID)
                try await environment.publish(command)  // after it ended
                let sentinel = try environment.command(TestNumber.busyCause)
                try await environment.publish(sentinel)
                try await environment.waitForEnd(sentinel.callID)

                let channelID = command.callID.description
                #expect(environment.simulator.originateCount(channelID: channelID) == 1)
                #expect(
                    environment.statusLog.statuses(of: command.callID) == [
                        .dispatched, .initiated, .answered, .completed,
                    ])
                #expect(environment.statusLog.terminalEvents(of: command.callID).count == 1)
                let record = try #require(try await environment.store.call(id: command.callID))
                #expect(record.status == .completed)
                #expect(record.timeline.map(\.status) == [.queued, .dispatched, .initiated, .answered, .completed])
            }
        }
    }

    @Test(
        "at MAX_CONCURRENT_CALLS intake pauses: no originate until a call ends, new calls still recorded queued"
    )
    func capacityLimit() async throws {
        try await WorkerTestEnvironment.run(partitions: 1) { environment in
            let configuration = try environment.workerConfiguration { $0.maxConcurrentCalls = 2 }
            try await withWorker(configuration) { worker in
                // Two calls that stay up until hung up fill the worker.
                let first = try environment.command(TestNumber.answer(holdSeconds: 0))
                let second = try environment.command(TestNumber.answer(holdSeconds: 0))
                try await environment.publish(first)
                try await environment.publish(second)
                try await environment.waitForStatus(first.callID, .answered)
                try await environment.waitForStatus(second.callID, .answered)
                try await eventually("intake paused at capacity") {
                    worker.status.pauseReason == "max_concurrent_calls"
                }

                // Newly accepted calls are in the history within a second, queued, and not dialed. The delay is
                // measured by PostgreSQL's clock (row written) against the command's creation, not by polling.
                var waiting: [OriginateCommand] = []
                for _ in 0..<3 {
                    let command = try environment.command(TestNumber.answer(holdSeconds: 1))
                    waiting.append(command)
                    try await environment.publish(command)
                    var record: CallRecord?
                    try await eventually("\(command.callID) recorded queued") {
                        record = try await environment.store.call(id: command.callID)
                        return record?.status == .queued
                    }
                    let recorded = try #require(record)
                    let delay = recorded.updatedAt.timeIntervalSince(command.requestedAt)
                    #expect(delay < 1, "recorded \(delay) s after the command was created")
                }
                #expect(environment.simulator.totalOriginates == 2)
                #expect(worker.status.pauseReason == "max_concurrent_calls")
                #expect(worker.status.liveCalls == 2)

                // A queued call canceled now is never dialed, even when capacity frees up.
                try await environment.publishCancel(waiting[0].callID)
                let canceled = try await environment.waitForEnd(waiting[0].callID)
                #expect(canceled.status == .canceled)
                #expect(environment.statusLog.statuses(of: waiting[0].callID) == [.canceled])
                #expect(environment.simulator.totalOriginates == 2)

                // A call ends: the next commands are dialed, one slot at a time.
                try await environment.publishHangup(first.callID)
                let ended = try await environment.waitForEnd(first.callID)
                #expect(ended.status == .completed)
                for command in waiting.dropFirst() {
                    let record = try await environment.waitForEnd(command.callID)
                    #expect(record.status == .completed)
                    #expect(environment.simulator.originateCount(channelID: command.callID.description) == 1)
                }
                #expect(environment.simulator.originateCount(channelID: waiting[0].callID.description) == 0)
                #expect(try #require(try await environment.store.call(id: waiting[0].callID)).status == .canceled)
                try await environment.publishHangup(second.callID)
                try await environment.waitForEnd(second.callID)
            }
        }
    }

    @Test("a command past its time to live is expired, never dialed")
    func expiredCommand() async throws {
        try await WorkerTestEnvironment.run { environment in
            try await withWorker(try environment.workerConfiguration()) { _ in
                let command = try environment.command(TestNumber.answer(holdSeconds: 1), expiresIn: -1)
                try await environment.publish(command)
                let record = try await environment.waitForEnd(command.callID)
                #expect(record.status == .expired)
                #expect(environment.statusLog.statuses(of: command.callID) == [.expired])
                #expect(environment.simulator.originateCount(channelID: command.callID.description) == 0)
            }
        }
    }

    @Test("MAX_CALLS_PER_SECOND spaces originates")
    func rateLimit() async throws {
        try await WorkerTestEnvironment.run { environment in
            let configuration = try environment.workerConfiguration { $0.maxCallsPerSecond = 4 }
            try await withWorker(configuration) { _ in
                let commands = try (0..<12).map { _ in try environment.command(TestNumber.busyCause) }
                let started = ContinuousClock.now
                for command in commands { try await environment.publish(command) }
                for command in commands { try await environment.waitForEnd(command.callID) }
                // A burst of 4, then 4 per second: 12 originates take at least 2 seconds.
                #expect(ContinuousClock.now - started >= .seconds(2))
                #expect(environment.simulator.totalOriginates == 12)
            }
        }
    }
}
