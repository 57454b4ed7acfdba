import ARISimulator
import CallDomain
import CallStore
import Crypto
import DialerWorker
import Foundation
import Recordings
import TestSupport
import Testing

/// Call recording through ARI, by an in-process worker against the embedded Kafka broker, the ARI simulator and
/// PostgreSQL, with a local recording store in a directory of its own.
@Suite("Call recording", .timeLimit(.minutes(4)))
struct RecordingTests {
    /// A fresh store directory, removed after `body`.
    static func withStoreDirectory<Result>(_ body: (String) async throws -> Result) async throws -> Result {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(unique("recordings")).path
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try await body(path)
    }

    static func configure(
        _ environment: WorkerTestEnvironment, store: String, workerID: String = unique("worker")
    ) throws -> WorkerConfiguration {
        try environment.workerConfiguration(workerID: workerID) {
            $0.recording = RecordingConfiguration(
                store: RecordingStoreConfiguration(path: store), sweepInterval: .milliseconds(500),
                settleTime: .zero)
        }
    }

    /// The call's recording once it is no longer on its way (stored or failed).
    static func settled(_ callID: CallID, in environment: WorkerTestEnvironment) async throws -> CallRecording {
        var settled: CallRecording?
        try await eventually(timeout: .seconds(30), "the recording of \(callID) settled") {
            settled = try? await environment.store.recording(of: callID, in: .default)
            return settled.map { !$0.status.isUnsettled } ?? false
        }
        return try #require(settled)
    }

    /// Checks a stored recording: its file in the store is the node's WAV file, whole, with the stored length and
    /// checksum; the node no longer has it (it is deleted there right after the row says stored).
    static func expectStored(
        _ recording: CallRecording, store: String, nodeFile: [UInt8]?, environment: WorkerTestEnvironment
    ) async throws {
        #expect(recording.status == .stored)
        let key = try #require(recording.storageKey)
        #expect(key.hasSuffix("/\(recording.callID).wav"))
        #expect(key.hasPrefix(OrganizationID.default.uuid.uuidString.lowercased() + "/"))
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: store).appendingPathComponent(key)))
        #expect(bytes.starts(with: Array("RIFF".utf8)))
        #expect(Int64(bytes.count) == recording.sizeBytes)
        #expect(SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined() == recording.sha256)
        if let nodeFile { #expect(bytes == nodeFile) }
        try await eventually("the node's copy deleted") {
            !environment.simulator.storedRecordingNames().contains(recording.callID.description)
        }
    }

    @Test(
        "an answered call asked to be recorded: a snoop channel is recorded, the file stored, then deleted from the node"
    )
    func recordedCall() async throws {
        try await WorkerTestEnvironment.run { environment in
            try await Self.withStoreDirectory { store in
                try await withWorker(try Self.configure(environment, store: store)) { _ in
                    var command = try environment.command(TestNumber.answer(holdSeconds: 2))
                    command.record = true
                    try await environment.publish(command)
                    let call = try await environment.waitForEnd(command.callID)
                    #expect(call.status == .completed)
                    #expect(call.record)
                    let recording = try await Self.settled(command.callID, in: environment)
                    try await Self.expectStored(recording, store: store, nodeFile: nil, environment: environment)
                    // The call lasted 2 s from its answer; the recording from the snoop channel's start.
                    #expect((1...3).contains(recording.durationSeconds ?? -1))
                    #expect(recording.startedAt != nil && recording.finishedAt != nil && recording.storedAt != nil)
                    #expect(recording.nodeID == environment.nodeID)
                    // The call went to its target as usual: recording it took nothing from it.
                    #expect(
                        environment.simulator.continuedContexts(channelID: command.callID.description) == ["agents"])
                }
            }
        }
    }

    @Test("calls not asked to be recorded, and machines hung up on, are not; a human after the detection is")
    func whatIsNotRecorded() async throws {
        try await WorkerTestEnvironment.run { environment in
            try await Self.withStoreDirectory { store in
                try await withWorker(try Self.configure(environment, store: store)) { _ in
                    let plain = try environment.command(TestNumber.answer(holdSeconds: 1))
                    var machine = try environment.command(TestNumber.machine(holdSeconds: 20))
                    machine.record = true
                    machine.machineDetection = try MachineDetection(
                        mode: .detect, onMachine: .hangup, timings: [.afterGreetingSilence: 300, .greeting: 600])
                    var human = try environment.command(TestNumber.answer(holdSeconds: 3))
                    human.record = true
                    human.machineDetection = try MachineDetection(
                        mode: .detect, timings: [.afterGreetingSilence: 300, .greeting: 600])
                    for command in [plain, machine, human] { try await environment.publish(command) }
                    for command in [plain, machine, human] { _ = try await environment.waitForEnd(command.callID) }

                    let recorded = try await Self.settled(human.callID, in: environment)
                    try await Self.expectStored(recorded, store: store, nodeFile: nil, environment: environment)
                    #expect(try await environment.store.recording(of: plain.callID, in: .default) == nil)
                    #expect(try await environment.store.recording(of: machine.callID, in: .default) == nil)
                    #expect(environment.simulator.recordingsStored() == 1)
                }
            }
        }
    }

    @Test("a recording the node fails says so on the call; the call itself goes on")
    func failedRecording() async throws {
        try await WorkerTestEnvironment.run { environment in
            try await Self.withStoreDirectory { store in
                try await withWorker(try Self.configure(environment, store: store)) { _ in
                    environment.simulator.failRecordings(count: 1)
                    var command = try environment.command(TestNumber.answer(holdSeconds: 2))
                    command.record = true
                    try await environment.publish(command)
                    let call = try await environment.waitForEnd(command.callID)
                    #expect(call.status == .completed)
                    let recording = try await Self.settled(command.callID, in: environment)
                    #expect(recording.status == .failed)
                    #expect(recording.detail?.contains("could not record the call") == true)
                    #expect(recording.storageKey == nil)
                    #expect(environment.simulator.storedRecordingNames().isEmpty)
                }
            }
        }
    }

    @Test(
        "a recording finished on the node but not stored (its worker stopped, or the store failed) is brought home by the next worker of the node"
    )
    func nextWorkerFinishes() async throws {
        try await WorkerTestEnvironment.run { environment in
            try await Self.withStoreDirectory { store in
                // The first worker's store cannot be written (a path under a regular file): the recording finishes on
                // the node and stays there, `finished`, exactly as when a worker dies before the upload.
                let blocker = FileManager.default.temporaryDirectory.appendingPathComponent(unique("not-a-directory"))
                try Data("x".utf8).write(to: blocker)
                defer { try? FileManager.default.removeItem(at: blocker) }
                var recorded = try environment.command(TestNumber.answer(holdSeconds: 1))
                recorded.record = true
                let command = recorded
                let nodeFile: [UInt8] = try await withWorker(
                    try Self.configure(environment, store: blocker.appendingPathComponent("store").path)
                ) { _ in
                    try await environment.publish(command)
                    _ = try await environment.waitForEnd(command.callID)
                    try await eventually(timeout: .seconds(20), "the recording is finished on the node") {
                        try await environment.store.recording(of: command.callID, in: .default)?.status == .finished
                    }
                    return try #require(environment.simulator.storedRecordingFile(name: command.callID.description))
                }
                #expect(try await environment.store.recording(of: command.callID, in: .default)?.status == .finished)

                // The next worker of the node finds it at its first sweep.
                try await withWorker(try Self.configure(environment, store: store)) { _ in
                    let recording = try await Self.settled(command.callID, in: environment)
                    try await Self.expectStored(recording, store: store, nodeFile: nodeFile, environment: environment)
                }
            }
        }
    }
}
