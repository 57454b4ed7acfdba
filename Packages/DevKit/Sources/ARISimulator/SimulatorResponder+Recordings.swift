import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

/// `POST /channels/{id}/snoop`, `POST /channels/{id}/record` and `/recordings/...`, as Asterisk 22's
/// `resource_channels.c` and `resource_recordings.c` answer them.
extension SimulatorResponder {
    func snoop(_ channelID: String, snoopID: String?, query: [String: String]) -> Response {
        guard let application = query["app"], !application.isEmpty else {
            return Self.json(.badRequest, JSONText.message("Missing parameter app"))
        }
        for direction in ["spy", "whisper"] {
            if let value = query[direction], !["none", "both", "out", "in"].contains(value) {
                return Self.json(.badRequest, JSONText.message("Invalid direction specified for \(direction)"))
            }
        }
        let arguments = query["appArgs"].map {
            $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        }
        let decision = self.simulator.state.withLock { state in
            state.createSnoop(spying: channelID, snoopID: snoopID ?? query["snoopId"], application: application)
        }
        switch decision {
        case .notFound:
            return Self.json(.notFound, JSONText.message("Channel not found"))
        case .created(let json):
            let simulator = self.simulator
            let id = snoopID ?? query["snoopId"] ?? Self.channelID(inSnapshot: json)
            let buffer = ByteBuffer(string: json)
            // The snoop channel's StasisStart follows the response.
            return Response(
                status: .ok, headers: Self.jsonHeaders,
                body: ResponseBody(contentLength: buffer.readableBytes) { writer in
                    defer { simulator.state.withLock { $0.startSnoop(id, arguments: arguments ?? []) } }
                    try await writer.write(buffer)
                    try await writer.finish(nil)
                })
        }
    }

    func record(_ channelID: String, query: [String: String]) -> Response {
        let maxDuration = query["maxDurationSeconds"].flatMap { Int($0) } ?? 0
        guard maxDuration >= 0 else {
            return Self.json(.badRequest, JSONText.message("maxDurationSeconds cannot be negative"))
        }
        let name = query["name"]
        let decision = self.simulator.state.withLock { state in
            state.startRecording(
                channelID: channelID, name: name, format: query["format"], maxDurationSeconds: maxDuration,
                ifExists: query["ifExists"] ?? "fail")
        }
        switch decision {
        case .notFound:
            return Self.json(.notFound, JSONText.message("Channel not found"))
        case .notInStasis:
            return Self.json(.conflict, JSONText.message("Channel not in Stasis application"))
        case .badRequest(let message):
            return Self.json(.badRequest, JSONText.message(message))
        case .unknownFormat:
            return Self.json(.unprocessableContent, JSONText.message("Format specified is unknown on this system"))
        case .conflict(let message):
            return Self.json(.conflict, JSONText.message(message))
        case .started(let json):
            let simulator = self.simulator
            let buffer = ByteBuffer(string: json)
            var headers = Self.jsonHeaders
            headers[.location] = "/recordings/live/\(name ?? "")"
            return Response(
                status: .created, headers: headers,
                body: ResponseBody(contentLength: buffer.readableBytes) { writer in
                    defer { simulator.state.withLock { $0.announceRecording(name ?? "") } }
                    try await writer.write(buffer)
                    try await writer.finish(nil)
                })
        }
    }

    /// `/recordings/stored`, `/recordings/stored/{name}`, `/recordings/stored/{name}/file`, `/recordings/live/{name}`.
    func recordings(_ segments: [String], method: HTTPRequest.Method) -> Response? {
        switch (segments.count, method) {
        case (2, .get) where segments[1] == "stored":
            let list = self.simulator.state.withLock { state in
                state.storedRecordings.sorted { $0.key < $1.key }.map {
                    SimulatorState.storedRecordingJSON(name: $0.key, format: $0.value.format)
                }
            }
            return Self.json(.ok, "[" + list.joined(separator: ",") + "]")
        case (3, .get) where segments[1] == "stored":
            guard let recording = self.simulator.state.withLock({ $0.storedRecordings[segments[2]] }) else {
                return Self.json(.notFound, JSONText.message("Recording not found"))
            }
            return Self.json(.ok, SimulatorState.storedRecordingJSON(name: segments[2], format: recording.format))
        case (3, .delete) where segments[1] == "stored":
            let removed = self.simulator.state.withLock { $0.storedRecordings.removeValue(forKey: segments[2]) }
            guard removed != nil else { return Self.json(.notFound, JSONText.message("Recording not found")) }
            return Response(status: .noContent)
        case (4, .get) where segments[1] == "stored" && segments[3] == "file":
            guard let recording = self.simulator.state.withLock({ $0.storedRecordings[segments[2]] }) else {
                return Self.json(.notFound, JSONText.message("Recording not found"))
            }
            return Response(
                status: .ok, headers: [.contentType: Self.mediaType(ofFormat: recording.format)],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: recording.bytes)))
        case (3, .get) where segments[1] == "live":
            guard let recording = self.simulator.state.withLock({ $0.liveRecordings[segments[2]] }) else {
                return Self.json(.notFound, JSONText.message("Recording not found"))
            }
            return Self.json(.ok, SimulatorState.liveRecordingJSON(recording, state: "recording"))
        default:
            return nil
        }
    }

    static func mediaType(ofFormat format: String) -> String {
        switch format.lowercased() {
        case "wav", "wav16": "audio/wav"
        case "gsm": "audio/x-gsm"
        case "ulaw", "alaw": "audio/basic"
        default: "application/octet-stream"
        }
    }

    private static func channelID(inSnapshot json: String) -> String {
        guard let start = json.range(of: "\"id\":\""), let end = json[start.upperBound...].firstIndex(of: "\"") else {
            return ""
        }
        return String(json[start.upperBound..<end])
    }
}
