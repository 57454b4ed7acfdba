import ARISimulator
import CallDomain
import CallStore
import DialerWorker
import Foundation
import TestSupport
import Testing

/// Hangups and cancels from `calls.control.v1`.
@Suite("Control topic", .timeLimit(.minutes(4)))
struct ControlTests {
    @Test("hangup of a ringing call ends it canceled")
    func hangupWhileRinging() async throws {
        try await WorkerTestEnvironment.run { environment in
            try await withWorker(try environment.workerConfiguration()) { _ in
                let command = try environment.command(TestNumber.answer(ringTenths: 99, holdSeconds: 5))
                try await environment.publish(command)
                try await environment.waitForStatus(command.callID, .ringing)
                try await environment.publishHangup(command.callID)
                let record = try await environment.waitForEnd(command.callID)
                #expect(record.status == .canceled)
                #expect(
                    environment.statusLog.statuses(of: command.callID) == [
                        .dispatched, .initiated, .ringing, .canceled,
                    ])
                #expect(environment.statusLog.terminalEvents(of: command.callID).first?.hangupCause?.code == 16)
                #expect(environment.simulator.liveChannelCount == 0)
            }
        }
    }

    @Test("hangup of an answered call ends it completed")
    func hangupWhileAnswered() async throws {
        try await WorkerTestEnvironment.run { environment in
            try await withWorker(try environment.workerConfiguration()) { _ in
                let command = try environment.command(TestNumber.answer(holdSeconds: 0))
                try await environment.publish(command)
                try await environment.waitForStatus(command.callID, .answered)
                try await environment.publishHangup(command.callID)
                let record = try await environment.waitForEnd(command.callID)
                #expect(record.status == .completed)
                #expect(record.answeredAt != nil)
                #expect(
                    environment.statusLog.statuses(of: command.callID) == [
                        .dispatched, .initiated, .answered, .completed,
                    ])
                let terminal = try #require(environment.statusLog.terminalEvents(of: command.callID).first)
                #expect(terminal.hangupCause?.code == 16)
                #expect((terminal.durationSeconds ?? -1) >= 0)
            }
        }
    }

    @Test("a cancel that overtakes its command: the call is canceled and never dialed")
    func cancelBeforeCommand() async throws {
        try await WorkerTestEnvironment.run(partitions: 1) { environment in
            try await withWorker(try environment.workerConfiguration()) { _ in
                let command = try environment.command(TestNumber.answer(holdSeconds: 1))
                try await environment.publishCancel(command.callID)
                try await eventually("the cancel recorded") {
                    (try await environment.store.call(id: command.callID))?.status == .canceled
                }
                try await environment.publish(command)
                let sentinel = try environment.command(TestNumber.busyCause)
                try await environment.publish(sentinel)
                try await environment.waitForEnd(sentinel.callID)
                let record = try await environment.waitForEnd(command.callID)
                #expect(record.status == .canceled)
                #expect(record.to == command.to.value)
                #expect(environment.statusLog.statuses(of: command.callID) == [.canceled])
                #expect(environment.simulator.originateCount(channelID: command.callID.description) == 0)
            }
        }
    }

    @Test("a hangup for a call another worker owns is ignored")
    func hangupOfUnknownCall() async throws {
        try await WorkerTestEnvironment.run { environment in
            try await withWorker(try environment.workerConfiguration()) { worker in
                let live = try environment.command(TestNumber.answer(holdSeconds: 0))
                try await environment.publish(live)
                try await environment.waitForStatus(live.callID, .answered)
                try await environment.publishHangup(CallID.generate())
                try await environment.publishHangup(live.callID)
                let record = try await environment.waitForEnd(live.callID)
                #expect(record.status == .completed)
                #expect(worker.status.liveCalls == 0)
            }
        }
    }
}
