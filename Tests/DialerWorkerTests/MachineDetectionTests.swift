import ARISimulator
import CallDomain
import CallStore
import DialerWorker
import Foundation
import TestSupport
import Testing

/// One call per answering machine detection result, placed by an in-process worker against the embedded Kafka
/// broker, the ARI simulator (which runs the `dialer-amd` context and decides by number) and PostgreSQL.
struct DetectionCase: Sendable, CustomTestStringConvertible {
    let name: String
    let number: String
    let detection: MachineDetection
    let answeredBy: AnsweredBy
    /// The contexts the channel was continued to, in order (``target``: the worker's default target's).
    let contexts: [String]
    /// Ended by the worker's hangup (a machine, on_machine hangup) rather than the callee's.
    var hungUpByWorker = false
    /// The shortest time from the publication of the command to the `answered` event.
    var answeredNoSoonerThan: Duration = .zero

    var testDescription: String { name }

    /// Stands for the call's own target: the worker's default one (the command names none).
    static let target = "<target>"

    static func all() throws -> [DetectionCase] {
        // Short timings keep the cases quick: a human is heard after 500 ms of "hello" and 300 ms of silence.
        let quick: [MachineDetection.Timing: Int] = [.afterGreetingSilence: 300, .greeting: 600]
        return [
            DetectionCase(
                name: "human: answered_by human, then the call's own target",
                number: TestNumber.answer(holdSeconds: 2),
                detection: try MachineDetection(mode: .detect, timings: quick), answeredBy: .human,
                contexts: ["dialer-amd", target]),
            DetectionCase(
                name: "machine, on_machine hangup: the worker hangs up, the call is completed",
                number: TestNumber.machine(holdSeconds: 20),
                detection: try MachineDetection(mode: .detect, onMachine: .hangup, timings: quick),
                answeredBy: .machine, contexts: ["dialer-amd"], hungUpByWorker: true),
            DetectionCase(
                name: "machine, on_machine continue: the machine context",
                number: TestNumber.machine(holdSeconds: 2),
                detection: try MachineDetection(mode: .detect, onMachine: .continue, timings: quick),
                answeredBy: .machine, contexts: ["dialer-amd", "dialer-machine"]),
            DetectionCase(
                name: "machine, detect_message_end: answered once the greeting ended (3 s) and 1 s of silence",
                number: TestNumber.machine(holdSeconds: 8),
                detection: try MachineDetection(mode: .detectMessageEnd, onMachine: .continue, timings: quick),
                answeredBy: .machine, contexts: ["dialer-amd", "dialer-machine"],
                answeredNoSoonerThan: .seconds(4)),
            DetectionCase(
                name:
                    "machine whose call ends while detect_message_end waits for the beep: machine, from the variables",
                number: TestNumber.machine(holdSeconds: 2),
                detection: try MachineDetection(mode: .detectMessageEnd, onMachine: .continue, timings: quick),
                answeredBy: .machine, contexts: ["dialer-amd"]),
            DetectionCase(
                name: "not sure (TOOLONG): answered_by unknown, then the call's own target",
                number: TestNumber.undecided(holdSeconds: 3),
                detection: try MachineDetection(mode: .detect, timings: [.totalAnalysisTime: 1000]),
                answeredBy: .unknown, contexts: ["dialer-amd", target]),
            DetectionCase(
                name: "the callee hangs up during the detection: answered_by unknown, completed",
                number: TestNumber.answer(holdSeconds: 1),
                detection: try MachineDetection(mode: .detect), answeredBy: .unknown, contexts: ["dialer-amd"]),
        ]
    }
}

@Suite("Answering machine detection", .timeLimit(.minutes(4)))
struct MachineDetectionTests {
    @Test(
        "each detection result: answered_by on the events and the call, where the channel went", .serialized,
        arguments: try DetectionCase.all())
    func detection(_ expected: DetectionCase) async throws {
        try await WorkerTestEnvironment.run { environment in
            let configuration = try environment.workerConfiguration()
            try await withWorker(configuration) { _ in
                var command = try environment.command(expected.number)
                command.machineDetection = expected.detection
                let published = ContinuousClock.now
                try await environment.publish(command)
                let callID = command.callID
                try await environment.waitForStatus(callID, .answered)
                #expect(ContinuousClock.now - published >= expected.answeredNoSoonerThan)
                let record = try await environment.waitForEnd(callID)

                // The answered event waited for the verdict and says who answered; so does every event after it.
                let events = environment.statusLog.events(of: callID)
                #expect(events.map(\.status) == [.dispatched, .initiated, .answered, .completed])
                let answered = try #require(events.first { $0.status == .answered })
                #expect(answered.answeredBy == expected.answeredBy)
                #expect(answered.answeredAt != nil && answered.occurredAt == answered.answeredAt)
                #expect(answered.detail?.hasPrefix("answering machine detection") == true)
                #expect(events.last?.answeredBy == expected.answeredBy)
                #expect(events.prefix(2).allSatisfy { $0.answeredBy == nil }, "before the answer, nobody answered")
                let validation = try await SchemaValidator.validate(
                    environment.statusLog.entries(of: callID).map(\.payload), against: "call-status-event.v1.json")
                #expect(validation.allSatisfy { $0 == nil }, "schema violations: \(validation.compactMap { $0 })")

                // Where the channel went: the detection's context, then the target or the machine context.
                let channelID = callID.description
                let contexts = expected.contexts.map {
                    $0 == DetectionCase.target ? configuration.defaultDialplan.context : $0
                }
                #expect(environment.simulator.continuedContexts(channelID: channelID) == contexts)
                #expect(environment.simulator.originateCount(channelID: channelID) == 1)
                if expected.hungUpByWorker {
                    #expect((events.last?.durationSeconds ?? 99) < 5, "hung up on the verdict, not after the hold")
                }

                // PostgreSQL: who answered, and the request's detection (a new owner would dial with it).
                #expect(record.status == .completed)
                #expect(record.answeredBy == expected.answeredBy)
                #expect(record.machineDetection == expected.detection)
            }
        }
    }

    @Test("AMD()'s arguments in order, their ranges; a request cannot set the dialer's own channel variables")
    func originateVariables() throws {
        #expect(throws: ValidationFailure.self) { try ChannelVariables(["DIALER_AMD_APP": "other-app"]) }
        #expect(throws: ValidationFailure.self) { try ChannelVariables(["dialer_amd_args": "1"]) }
        #expect(throws: ValidationFailure.self) { try ChannelVariables(["AMDSTATUS": "HUMAN"]) }
        let detection = try MachineDetection(
            mode: .detectMessageEnd, timings: [.initialSilence: 2000, .totalAnalysisTime: 4000])
        #expect(detection.amdArguments == "2000,,,4000,,,,,")
        #expect(throws: FieldError.self) { try MachineDetection(mode: .detect, timings: [.greeting: 0]) }
        #expect(throws: FieldError.self) { try MachineDetection(mode: .detect, timings: [.silenceThreshold: 40_000]) }
    }
}
