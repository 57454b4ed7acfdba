import ARISimulator
import CallDomain
import CallStore
import DialerWorker
import Foundation
import TestSupport
import Testing

/// The `dialer-worker` executable as a separate process: start-up, operations endpoints, and process death.
@Suite("Worker process", .serialized, .timeLimit(.minutes(6)))
struct ProcessTests {
    @Test("two workers share the calls; one is SIGKILLed mid-load: every call ends exactly once, none dialed twice")
    func sigkillMidLoad() async throws {
        try await WorkerTestEnvironment.run(partitions: 4) { environment in
            // The stuck margin exceeds the Kafka session timeout (6 s here): a dead worker's last events reach the
            // history before the survivor decides its calls are orphans.
            let extra = ["STUCK_MARGIN_SECONDS": "10", "MAX_CALLS_PER_SECOND": "20", "DRAIN_TIMEOUT_SECONDS": "5"]
            let victimID = unique("victim")
            let survivorID = unique("survivor")
            let victimPort = try FreePort.pick()
            let victim = try await WorkerProcessHandle(
                workerID: victimID, port: victimPort,
                environment: environment.workerEnvironment(workerID: victimID, port: victimPort, extra: extra))
            defer { if victim.isRunning { victim.kill() } }
            let survivorPort = try FreePort.pick()
            let survivor = try await WorkerProcessHandle(
                workerID: survivorID, port: survivorPort,
                environment: environment.workerEnvironment(workerID: survivorID, port: survivorPort, extra: extra))
            defer { if survivor.isRunning { survivor.kill() } }
            try await victim.waitUntilReady()
            try await survivor.waitUntilReady()

            // A mix of outcomes, each call short enough to end within the test.
            let numbers = [
                TestNumber.answer(ringTenths: 5, holdSeconds: 3), TestNumber.answer(holdSeconds: 4),
                TestNumber.busyCause, TestNumber.noAnswer, TestNumber.answer(ringTenths: 20, holdSeconds: 2),
            ]
            let commands = try (0..<60).map { index in
                try environment.command(numbers[index % numbers.count], timeoutSeconds: 5)
            }
            for command in commands { try await environment.publish(command) }

            // Kill the victim once it holds live calls.
            try await eventually("both workers dialing") {
                let owners = Set(
                    environment.statusLog.all.filter { $0.event.status == .dispatched }.compactMap(\.event.workerID))
                return owners.contains(victimID) && owners.contains(survivorID)
            }
            victim.kill()
            let killedAt = ContinuousClock.now

            for command in commands {
                let record = try await environment.waitForEnd(command.callID, timeout: .seconds(180))
                let terminal = environment.statusLog.terminalEvents(of: command.callID)
                #expect(terminal.count == 1, "call \(command.callID): \(terminal.map(\.status))")
                #expect(record.status == terminal.first?.status)
                #expect(environment.simulator.originateCount(channelID: command.callID.description) <= 1)
            }
            #expect(ContinuousClock.now - killedAt < .seconds(180))
            // Every call was claimed exactly once (its `dispatched` in the PostgreSQL timeline names the claimant):
            // the survivor took over the victim's partitions and claimed what the victim had not.
            var claimants: [String: Int] = [:]
            for command in commands {
                let record = try #require(try await environment.store.call(id: command.callID))
                let claims = record.timeline.filter { $0.status == .dispatched }
                #expect(claims.count == 1)
                claimants[claims.first?.workerID ?? "none", default: 0] += 1
            }
            #expect(Set(claimants.keys) == [victimID, survivorID], "claims: \(claimants)")
            #expect(environment.simulator.totalOriginates == environment.simulator.acceptedOriginates)

            let metrics = try #require(await survivor.get("/metrics"))
            #expect(metrics.status == 200)
            #expect(metrics.body.contains("dialer_originates_total"))
            #expect(metrics.body.contains("dialer_call_outcomes_total"))
            #expect(metrics.body.contains("dialer_live_calls"))
            #expect(await survivor.terminate() == 0)
        }
    }

    @Test(
        "a worker SIGKILLed while its call is recorded: the recording ends on the node unheard, and the restarted worker stores it"
    )
    func sigkillDuringRecording() async throws {
        try await WorkerTestEnvironment.run { environment in
            let store = FileManager.default.temporaryDirectory.appendingPathComponent(unique("recordings")).path
            defer { try? FileManager.default.removeItem(atPath: store) }
            let extra = [
                "STUCK_MARGIN_SECONDS": "8", "RECORDING_DIR": store, "RECORDING_SWEEP_SECONDS": "1",
                "RECORDING_SETTLE_SECONDS": "0",
            ]
            let workerID = unique("recorder")
            let firstPort = try FreePort.pick()
            let first = try await WorkerProcessHandle(
                workerID: workerID, port: firstPort,
                environment: environment.workerEnvironment(workerID: workerID, port: firstPort, extra: extra))
            defer { if first.isRunning { first.kill() } }
            try await first.waitUntilReady()

            var command = try environment.command(TestNumber.answer(holdSeconds: 5))
            command.record = true
            try await environment.publish(command)
            try await eventually("the recording started") {
                try await environment.store.recording(of: command.callID, in: .default)?.status == .recording
            }
            first.kill()
            // The call ends while no worker listens: the node finishes and keeps the recording.
            try await eventually("the node stored the recording") {
                environment.simulator.storedRecordingNames().contains(command.callID.description)
            }
            #expect(try await environment.store.recording(of: command.callID, in: .default)?.status == .recording)

            // The same worker, restarted: it adopts and ends the call, then its sweep finds the recording on the node.
            let secondPort = try FreePort.pick()
            let second = try await WorkerProcessHandle(
                workerID: workerID, port: secondPort,
                environment: environment.workerEnvironment(workerID: workerID, port: secondPort, extra: extra))
            defer { if second.isRunning { second.kill() } }
            try await second.waitUntilReady()
            let call = try await environment.waitForEnd(command.callID, timeout: .seconds(90))
            #expect(call.status == .completed)
            var recording: CallRecording?
            try await eventually("the recording stored by the restarted worker") {
                recording = try await environment.store.recording(of: command.callID, in: .default)
                return recording?.status == .stored
            }
            let stored = try #require(recording)
            let key = try #require(stored.storageKey)
            let bytes = try Data(contentsOf: URL(fileURLWithPath: store).appendingPathComponent(key))
            #expect(Int64(bytes.count) == stored.sizeBytes)
            #expect(bytes.starts(with: Array("RIFF".utf8)))
            // The node's copy is deleted once the store has it, so shortly after the row says stored.
            try await eventually("the node's copy deleted") {
                !environment.simulator.storedRecordingNames().contains(command.callID.description)
            }
            #expect(environment.simulator.originateCount(channelID: command.callID.description) == 1)
            #expect(await second.terminate() == 0)
        }
    }

    @Test("operations endpoints and JSON logs with call.id, node.id and the request id")
    func operationsEndpoints() async throws {
        try await WorkerTestEnvironment.run { environment in
            let workerID = unique("worker")
            let port = try FreePort.pick()
            let worker = try await WorkerProcessHandle(
                workerID: workerID, port: port,
                environment: environment.workerEnvironment(workerID: workerID, port: port))
            defer { if worker.isRunning { worker.kill() } }
            try await worker.waitUntilReady()

            let health = try #require(await worker.get("/health"))
            #expect(health.status == 200)
            let ready = try #require(await worker.get("/ready"))
            #expect(ready.status == 200)
            #expect(ready.body.contains(#""ari":true"#))
            #expect(ready.body.contains(#""database":true"#))
            #expect(ready.body.contains(#""kafka":true"#))

            let command = try environment.command(TestNumber.busyCause)
            try await environment.publish(command)
            try await environment.waitForEnd(command.callID)
            let metrics = try #require(await worker.get("/metrics"))
            #expect(metrics.body.contains(#"dialer_call_outcomes_total{status="busy"} 1"#))
            #expect(metrics.body.contains("dialer_originate_latency_seconds"))

            #expect(await worker.terminate() == 0)
            let requestID = try #require(command.requestID)
            let lines = worker.log.split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
            let callLines = lines.filter { $0["call.id"] as? String == command.callID.description }
            #expect(!callLines.isEmpty)
            #expect(callLines.allSatisfy { $0["node.id"] as? String == environment.nodeID })
            #expect(callLines.contains { $0["request.id"] as? String == requestID })
        }
    }

    @Test("a bad configuration value stops start-up with a message naming the variable")
    func badConfiguration() async throws {
        try await WorkerTestEnvironment.run { environment in
            let cases: [(variable: String, value: String)] = [
                ("ENDPOINT_TEMPLATE", "PJSIP/{to}&PJSIP/{to}@carrier"),
                ("MAX_CONCURRENT_CALLS", "many"),
                ("DEFAULT_CONTEXT", "agents;evil"),
                ("DATABASE_URL", "mysql://nope"),
                ("NODE_ID", ""),
            ]
            for (variable, value) in cases {
                let workerID = unique("bad")
                let worker = try await WorkerProcessHandle(
                    workerID: workerID, port: 0,
                    environment: environment.workerEnvironment(workerID: workerID, port: 0, extra: [variable: value]))
                let status = await worker.waitForExit()
                #expect(status != 0, "\(variable)=\(value) was accepted")
                #expect(worker.log.contains(variable), "the message names \(variable): \(worker.log.suffix(500))")
            }
        }
    }
}
