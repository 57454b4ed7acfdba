import Foundation

/// A snoop channel (`POST /channels/{id}/snoop`): it hears the spied channel and sits in a Stasis application until
/// it is hung up or the spied channel goes away.
struct SnoopChannel: Sendable {
    var leg: ChannelLeg
    /// The call whose channel it spies on.
    var spiedCallID: String
    var application: String
}

/// A recording in progress (`POST /channels/{id}/record`) on a snoop channel or on a call's channel in Stasis.
struct LiveRecording: Sendable {
    var name: String
    var format: String
    /// The recorded channel's id.
    var channelID: String
    var startedAt: ContinuousClock.Instant
    var maxDurationSeconds: Int
    /// The applications that get the recording's events (the recorded channel's).
    var subscribers: Set<String>

    var targetURI: String { "channel:\(channelID)" }
}

/// A recording the node has stored: Asterisk keeps it under its name until `DELETE /recordings/stored/{name}`.
struct StoredRecording: Sendable {
    var format: String
    var bytes: [UInt8]
}

extension SimulatorState {
    /// The formats the simulated node records in (Asterisk's usual `format_*` modules).
    static let recordingFormats: Set<String> = ["wav", "wav16", "gsm", "ulaw", "alaw", "sln", "g722", "WAV"]

    // MARK: - Snoop channels

    enum SnoopDecision {
        case notFound
        case created(String)
    }

    /// `POST /channels/{id}/snoop[/{snoopId}]`: a snoop channel enters `application` with `arguments` (its
    /// `StasisStart` is sent by ``startSnoop(_:arguments:)`` once the response is out).
    mutating func createSnoop(spying channelID: String, snoopID: String?, application: String) -> SnoopDecision {
        guard let callID = self.callID(owning: channelID), let call = self.calls[callID] else { return .notFound }
        let id = snoopID ?? self.generatedUniqueID()
        let sequence = self.nextChannelSequence()
        let spied = callID == channelID ? call.primary : (call.peer ?? call.primary)
        let leg = ChannelLeg(
            id: id, name: "Snoop/\(spied.id)-\(sequence)", state: "Up", context: "default", exten: "s", priority: 1,
            appName: "Stasis", appData: application, creationTime: AsteriskClock.now())
        self.snoops[id] = SnoopChannel(leg: leg, spiedCallID: callID, application: application)
        return .created(leg.json())
    }

    /// The snoop channel's `StasisStart`.
    func startSnoop(_ snoopID: String, arguments: [String]) {
        guard let snoop = self.snoops[snoopID] else { return }
        self.emit(
            EventText.stasisStart(args: arguments, snoop.leg, asteriskID: self.asteriskID), to: [snoop.application])
    }

    /// Hangs a snoop channel up (its spied call ended, or `DELETE /channels/{snoopId}`): its recording finishes
    /// first, then it leaves the application and is destroyed.
    mutating func endSnoop(_ snoopID: String, cause: Int) {
        guard let snoop = self.snoops.removeValue(forKey: snoopID) else { return }
        let id = self.asteriskID
        self.emit(
            EventText.hangupRequest(cause: cause, soft: false, snoop.leg, asteriskID: id), to: [snoop.application])
        self.finishRecordings(of: snoopID)
        self.emit(EventText.channelEvent("StasisEnd", snoop.leg, asteriskID: id), to: [snoop.application])
        self.emit(EventText.destroyed(cause: cause, snoop.leg, asteriskID: id), to: [snoop.application])
    }

    /// A call ended: its recordings finish and its snoop channels go with it.
    mutating func endSnoops(of callID: String) {
        self.finishRecordings(of: callID)
        for (snoopID, snoop) in self.snoops where snoop.spiedCallID == callID {
            self.endSnoop(snoopID, cause: 16)
        }
    }

    // MARK: - Recording

    enum RecordDecision {
        case notFound
        case notInStasis
        case badRequest(String)
        case unknownFormat
        case conflict(String)
        case started(String)
    }

    /// `POST /channels/{id}/record`: checks as `ast_ari_channels_record` does, then starts the recording (its
    /// `RecordingStarted` or, with an injected failure, `RecordingFailed` is sent by ``announceRecording(_:)``).
    mutating func startRecording(
        channelID: String, name: String?, format: String?, maxDurationSeconds: Int, ifExists: String
    ) -> RecordDecision {
        var subscribers: Set<String>
        if let snoop = self.snoops[channelID] {
            subscribers = [snoop.application]
        } else if let callID = self.callID(owning: channelID), let call = self.calls[callID] {
            guard callID == channelID, call.phase == .stasis else { return .notInStasis }
            subscribers = call.subscribers
        } else {
            return .notFound
        }
        guard let name, !name.isEmpty else { return .badRequest("Recording name is required") }
        guard let format, !format.isEmpty else { return .badRequest("Recording format is required") }
        guard ["fail", "overwrite", "append"].contains(ifExists) else {
            return .badRequest("ifExists invalid: \(ifExists)")
        }
        guard Self.recordingFormats.contains(format) else { return .unknownFormat }
        if self.liveRecordings[name] != nil {
            return .conflict("Recording with the same name is in progress")
        }
        if ifExists == "fail", self.storedRecordings[name] != nil {
            return .conflict("Recording with the same name already exists on the system")
        }
        subscribers = subscribers.filter { !$0.isEmpty }
        let recording = LiveRecording(
            name: name, format: format, channelID: channelID, startedAt: .now,
            maxDurationSeconds: maxDurationSeconds, subscribers: subscribers)
        self.liveRecordings[name] = recording
        return .started(Self.liveRecordingJSON(recording, state: "queued"))
    }

    /// The started recording's first event: `RecordingStarted`, or `RecordingFailed` when a failure was injected
    /// (the recording then ends and nothing is stored).
    mutating func announceRecording(_ name: String) {
        guard let recording = self.liveRecordings[name] else { return }
        if self.faults.failRecordings > 0 {
            self.faults.failRecordings -= 1
            self.liveRecordings[name] = nil
            self.emit(
                self.recordingEvent("RecordingFailed", recording, state: "failed", cause: "Unable to open file"),
                to: recording.subscribers)
            return
        }
        self.emit(self.recordingEvent("RecordingStarted", recording, state: "recording"), to: recording.subscribers)
    }

    /// The recorded channel is gone: each of its recordings is stored (a WAV file of its length) and finishes.
    mutating func finishRecordings(of channelID: String) {
        for (name, recording) in self.liveRecordings where recording.channelID == channelID {
            self.liveRecordings[name] = nil
            var seconds = Int(recording.startedAt.duration(to: .now).components.seconds)
            if recording.maxDurationSeconds > 0 { seconds = min(seconds, recording.maxDurationSeconds) }
            self.storedRecordings[name] = StoredRecording(
                format: recording.format, bytes: Self.wave(seconds: seconds, seed: name))
            self.counters.recordingsStored += 1
            self.emit(
                self.recordingEvent("RecordingFinished", recording, state: "done", duration: seconds),
                to: recording.subscribers)
        }
    }

    // MARK: - Text

    static func liveRecordingJSON(
        _ recording: LiveRecording, state: String, duration: Int? = nil, cause: String? = nil
    ) -> String {
        var output = "{"
        JSONText.appendField("name", recording.name, to: &output)
        output.append(",")
        JSONText.appendField("format", recording.format, to: &output)
        output.append(",")
        JSONText.appendField("state", state, to: &output)
        output.append(",")
        JSONText.appendField("target_uri", recording.targetURI, to: &output)
        if let duration {
            output.append(",\"duration\":\(duration),\"talking_duration\":\(duration),\"silence_duration\":0")
        }
        if let cause {
            output.append(",")
            JSONText.appendField("cause", cause, to: &output)
        }
        output.append("}")
        return output
    }

    func recordingEvent(
        _ type: String, _ recording: LiveRecording, state: String, duration: Int? = nil, cause: String? = nil
    ) -> String {
        var output = "{\"type\":\"\(type)\",\"timestamp\":\"\(AsteriskClock.now())\",\"recording\":"
        output.append(Self.liveRecordingJSON(recording, state: state, duration: duration, cause: cause))
        output.append(",")
        JSONText.appendField("asterisk_id", self.asteriskID, to: &output)
        return output
    }

    static func storedRecordingJSON(name: String, format: String) -> String {
        var output = "{"
        JSONText.appendField("name", name, to: &output)
        output.append(",")
        JSONText.appendField("format", format, to: &output)
        output.append("}")
        return output
    }

    /// A RIFF/WAVE file, 8 kHz, 16-bit, mono, `seconds` long, of a tone whose pitch depends on `seed` (so that two
    /// recordings differ).
    static func wave(seconds: Int, seed: String) -> [UInt8] {
        let rate = 8000
        let samples = rate * max(seconds, 0)
        let dataSize = samples * 2
        var bytes: [UInt8] = []
        bytes.reserveCapacity(44 + dataSize)
        func append32(_ value: Int) { withUnsafeBytes(of: UInt32(value).littleEndian) { bytes.append(contentsOf: $0) } }
        func append16(_ value: Int) { withUnsafeBytes(of: UInt16(value).littleEndian) { bytes.append(contentsOf: $0) } }
        bytes.append(contentsOf: Array("RIFF".utf8))
        append32(36 + dataSize)
        bytes.append(contentsOf: Array("WAVEfmt ".utf8))
        append32(16)
        append16(1)
        append16(1)
        append32(rate)
        append32(rate * 2)
        append16(2)
        append16(16)
        bytes.append(contentsOf: Array("data".utf8))
        append32(dataSize)
        let period = 10 + Int(seed.utf8.reduce(UInt8(0), &+) % 30)
        for index in 0..<samples {
            let sample: Int16 = (index / (period / 2)) % 2 == 0 ? 6000 : -6000
            withUnsafeBytes(of: sample.littleEndian) { bytes.append(contentsOf: $0) }
        }
        return bytes
    }
}
