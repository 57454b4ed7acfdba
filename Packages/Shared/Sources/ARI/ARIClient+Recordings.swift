import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// Recording a call that runs in the dial plan: a snoop channel in the application hears both directions, and it is
/// the snoop channel that is recorded (a channel must be in Stasis to be recorded, and the call itself has left it).
extension ARIClient {
    /// Which directions a snoop channel hears (`spy`).
    public enum SnoopDirection: String, Sendable {
        case none, both, out, `in`
    }

    /// Starts a snoop channel on `channelID` with the id `snoopID` (`POST /channels/{channelId}/snoop/{snoopId}`);
    /// it enters `application` with `arguments` (`StasisStart`). Throws ``ARIError/notFound(_:)`` when the channel is
    /// gone.
    public func snoop(
        channelID: String, snoopID: String, spy: SnoopDirection, application: String, arguments: String
    ) async throws -> ARIChannel {
        let path = "/channels/" + URLEncoding.pathSegment(channelID) + "/snoop/" + URLEncoding.pathSegment(snoopID)
        let (_, bytes) = try await self.send(
            .POST, path: path, query: [("spy", spy.rawValue), ("app", application), ("appArgs", arguments)])
        return try self.decode(ARIChannel.self, from: bytes)
    }

    /// Starts recording a channel in Stasis into the stored recording `name` (`POST /channels/{channelId}/record`).
    ///
    /// Throws ``ARIError/conflict(_:)`` when the channel is not in Stasis or a recording of that name is in progress,
    /// ``ARIError/notFound(_:)`` when the channel is gone, ``ARIError/unexpectedResponse(status:body:)`` with 422 for a
    /// format the node does not know.
    public func record(
        channelID: String, name: String, format: String, maxDurationSeconds: Int = 0,
        ifExists: String = "overwrite", beep: Bool = false
    ) async throws -> ARILiveRecording {
        let path = "/channels/" + URLEncoding.pathSegment(channelID) + "/record"
        let (_, bytes) = try await self.send(
            .POST, path: path,
            query: [
                ("name", name), ("format", format), ("maxDurationSeconds", String(maxDurationSeconds)),
                ("ifExists", ifExists), ("beep", beep ? "true" : "false"), ("terminateOn", "none"),
            ])
        return try self.decode(ARILiveRecording.self, from: bytes)
    }

    /// A live recording (`GET /recordings/live/{recordingName}`); throws ``ARIError/notFound(_:)`` when none runs.
    public func liveRecording(name: String) async throws -> ARILiveRecording {
        let (_, bytes) = try await self.send(.GET, path: "/recordings/live/" + URLEncoding.pathSegment(name))
        return try self.decode(ARILiveRecording.self, from: bytes)
    }

    /// A stored recording (`GET /recordings/stored/{recordingName}`); throws ``ARIError/notFound(_:)`` when the node
    /// has none of that name.
    public func storedRecording(name: String) async throws -> ARIStoredRecording {
        let (_, bytes) = try await self.send(.GET, path: "/recordings/stored/" + URLEncoding.pathSegment(name))
        return try self.decode(ARIStoredRecording.self, from: bytes)
    }

    /// Streams a stored recording's file (`GET /recordings/stored/{recordingName}/file`) to `receive`, chunk by
    /// chunk, within `timeout`. Throws ``ARIError/notFound(_:)`` when the node has no such recording, and
    /// ``ARIError/unexpectedResponse(status:body:)`` with 403 when it cannot open the file.
    public func storedRecordingFile(
        name: String, timeout: Duration = .seconds(300), receive: (ByteBuffer) async throws -> Void
    ) async throws {
        try await self.exchange(
            .GET, path: "/recordings/stored/" + URLEncoding.pathSegment(name) + "/file", timeout: timeout
        ) { _, body in
            for try await chunk in body { try await receive(chunk) }
        }
    }

    /// Deletes a stored recording from the node (`DELETE /recordings/stored/{recordingName}`); throws
    /// ``ARIError/notFound(_:)`` when it is not there.
    public func deleteStoredRecording(name: String) async throws {
        _ = try await self.send(.DELETE, path: "/recordings/stored/" + URLEncoding.pathSegment(name))
    }
}
