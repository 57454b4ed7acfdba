import ARI
import ARISimulator
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// Recording a call through a snoop channel: the ARI client's recording operations against the simulator over HTTP
/// and WebSocket, and the simulator's bodies and events against the official models.
@Suite struct RecordingOperationTests {
    /// The `Recording*` event of `name` of `kind`, once it arrived.
    static func recordingEvent(
        _ kind: ARIEvent.RecordingEvent.Kind, _ name: String, in events: EventRecorder
    ) async throws -> ARIEvent.RecordingEvent {
        try await events.waitForEvents("\(kind.rawValue) of \(name)") { events in
            events.contains {
                if case .recording(let e) = $0 { e.kind == kind && e.recording.name == name } else { false }
            }
        }
        for case .recording(let event) in events.events where event.kind == kind && event.recording.name == name {
            return event
        }
        throw TimeoutError(description: "no \(kind.rawValue) of \(name)")
    }

    static func answeredCall(_ client: ARIClient, _ application: String, _ events: EventRecorder) async throws -> String
    {
        let id = uniqueName("call")
        _ = try await client.originate(.init(channelID: id, endpoint: "PJSIP/155501000000@carrier", app: application))
        try await events.waitForEvents("StasisStart of \(id)") { events in
            events.contains { if case .stasisStart(let e) = $0 { e.channel.id == id } else { false } }
        }
        return id
    }

    @Test("snoop, record, the recording's events, the stored file and its deletion, as the client reads them")
    func snoopAndRecord() async throws {
        try await withSimulatorApplication { harness, application, events, client in
            let id = try await Self.answeredCall(client, application, events)
            let snoopID = id + "-recording"
            let snoop = try await client.snoop(
                channelID: id, snoopID: snoopID, spy: .both, application: application, arguments: "dialer-recording")
            #expect(snoop.id == snoopID)
            #expect(snoop.state == "Up")
            try await events.waitForEvents("StasisStart of the snoop channel") { events in
                events.contains {
                    if case .stasisStart(let e) = $0 {
                        e.channel.id == snoopID && e.args == ["dialer-recording"]
                    } else {
                        false
                    }
                }
            }

            let live = try await client.record(channelID: snoopID, name: id, format: "wav")
            #expect(live.name == id && live.format == "wav" && live.state == "queued")
            #expect(live.targetURI == "channel:\(snoopID)")
            let started = try await Self.recordingEvent(.started, id, in: events)
            #expect(started.recording.state == "recording")
            #expect(try await client.liveRecording(name: id).state == "recording")
            await #expect(throws: ARIError.conflict("Recording with the same name is in progress")) {
                try await client.record(channelID: snoopID, name: id, format: "wav")
            }
            await #expect(throws: ARIError.notFound("Recording not found")) {
                try await client.storedRecording(name: id)
            }

            // The call ends: the snoop channel goes with it and the recording finishes, stored on the node.
            try await Task.sleep(for: .milliseconds(1100))
            try await client.hangup(channelID: id)
            let finished = try await Self.recordingEvent(.finished, id, in: events)
            #expect(finished.recording.state == "done")
            let duration = try #require(finished.recording.duration)
            #expect(duration >= 1)
            try await events.waitForDestroyed(snoopID)
            await #expect(throws: ARIError.notFound("Recording not found")) { try await client.liveRecording(name: id) }

            #expect(try await client.storedRecording(name: id) == ARIStoredRecording(name: id, format: "wav"))
            var bytes: [UInt8] = []
            try await client.storedRecordingFile(name: id) { chunk in bytes += chunk.readableBytesView }
            #expect(bytes == harness.simulator.storedRecordingFile(name: id))
            #expect(bytes.starts(with: Array("RIFF".utf8)))
            #expect(bytes.count == 44 + 16_000 * duration, "8 kHz, 16-bit, mono, as long as the recording")

            try await client.deleteStoredRecording(name: id)
            await #expect(throws: ARIError.notFound("Recording not found")) {
                try await client.deleteStoredRecording(name: id)
            }
            await #expect(throws: ARIError.notFound("Recording not found")) {
                try await client.storedRecordingFile(name: id) { _ in }
            }
        }
    }

    @Test(
        "what Asterisk refuses: a snoop on a missing channel, a recording of a channel out of Stasis, an unknown format"
    )
    func refusals() async throws {
        try await withSimulatorApplication { harness, application, events, client in
            await #expect(throws: ARIError.notFound("Channel not found")) {
                try await client.snoop(
                    channelID: uniqueName("gone"), snoopID: uniqueName("snoop"), spy: .both, application: application,
                    arguments: "x")
            }
            let id = try await Self.answeredCall(client, application, events)
            try await client.continueInDialplan(channelID: id, context: "agents", extension: "s", priority: 1)
            try await events.waitForEvents("StasisEnd of \(id)") { events in
                events.contains { if case .stasisEnd(let e) = $0 { e.channel.id == id } else { false } }
            }
            await #expect(throws: ARIError.conflict("Channel not in Stasis application")) {
                try await client.record(channelID: id, name: id, format: "wav")
            }
            let snoopID = id + "-recording"
            _ = try await client.snoop(
                channelID: id, snoopID: snoopID, spy: .both, application: application, arguments: "dialer-recording")
            await #expect(throws: ARIError.self) {
                try await client.record(channelID: snoopID, name: id, format: "mp9")
            }
            let unknown = try await httpRequest(
                .POST, harness.baseURL + "/channels/\(snoopID)/record?name=\(id)&format=mp9")
            #expect(unknown.status == 422)
            // Hanging the snoop channel up ends it alone; the call goes on.
            try await client.hangup(channelID: snoopID)
            try await events.waitForDestroyed(snoopID)
            #expect(try await client.channel(id: id).state == "Up")
            try await client.hangup(channelID: id)
        }
    }

    @Test("the snoop channel and the recording events match the official models")
    func eventsMatchTheModels() async throws {
        let schema = try SpecSchema.load()
        try await withSimulator { harness in
            let application = uniqueName()
            let raw = try await RawEventRecorder.connected(url: harness.eventsURL(application: application))
            defer { raw.stop() }
            let client = harness.client(application: application)
            let id = uniqueName("call")
            _ = try await client.originate(
                .init(channelID: id, endpoint: "PJSIP/155501000000@carrier", app: application))
            try await raw.waitUntil("StasisStart") { $0.contains { $0["type"]?.stringValue == "StasisStart" } }
            let snoop = try await httpRequest(
                .POST,
                harness.baseURL + "/channels/\(id)/snoop?spy=both&app=\(application)&appArgs=dialer-recording")
            #expect(snoop.status == 200)
            let errors = schema.validate(try JSONValue.parse(snoop.body), as: "Channel", path: "snoop")
            #expect(errors.isEmpty, "\(errors)")
            let snoopID = try #require(try JSONValue.parse(snoop.body)["id"]?.stringValue)
            try await raw.waitUntil("StasisStart of the snoop") { values in
                values.contains {
                    $0["type"]?.stringValue == "StasisStart" && $0["channel"]?["id"]?.stringValue == snoopID
                }
            }
            _ = try await client.record(channelID: snoopID, name: id, format: "wav")
            try await client.hangup(channelID: id)
            try await raw.waitForDestroyed(snoopID)
            let types = Set(raw.values.compactMap { $0["type"]?.stringValue })
            #expect(types.isSuperset(of: ["RecordingStarted", "RecordingFinished"]))
            for text in raw.texts {
                let errors = schema.validateEvent(text)
                #expect(errors.isEmpty, "\(errors)")
            }
        }
    }
}
