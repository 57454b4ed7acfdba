import CallDomain
import CallStore
import Crypto
import Foundation
import HTTPTypes
import HummingbirdTesting
import Kafka
import NIOCore
import TestSupport
import Testing

@testable import APIGateway

/// `record` on calls and campaigns, the recording on a call's answer, and `GET`/`DELETE /calls/{id}/recording`
/// against a local recording store the test fills as a worker would.
@Suite struct RecordingAPITests {
    /// A recorded call of `organization` whose recording reached `status`; a stored one has its file in `directory`.
    static func recordedCall(
        _ gateway: Gateway, directory: String, status: RecordingStatus, organization: OrganizationID = .default
    ) async throws -> (CallID, [UInt8]) {
        let callID = CallID.generate()
        let now = Date()
        let command = OriginateCommand(
            callID: callID, requestedAt: now, expiresAt: now.addingTimeInterval(300),
            to: try DialTarget("+15550100123"),
            requestedBy: "test", organizationID: organization, record: true)
        try await gateway.store.recordQueued([command])
        _ = try await gateway.store.beginRecording(
            callID: callID, organization: organization, nodeID: "node-a", name: callID.description, format: "wav")
        let bytes = Array("RIFF".utf8) + (0..<4096).map { UInt8($0 % 251) }
        switch status {
        case .starting:
            break
        case .recording:
            try await gateway.store.recordingStarted(callID: callID)
        case .finished:
            try await gateway.store.recordingFinished(callID: callID, durationSeconds: 3)
        case .failed:
            try await gateway.store.recordingFailed(callID: callID, detail: "the node could not record the call")
        case .stored, .deleted:
            try await gateway.store.recordingFinished(callID: callID, durationSeconds: 3)
            let key = "\(organization.uuid.uuidString.lowercased())/2026/12/07/\(callID).wav"
            let url = URL(fileURLWithPath: directory).appendingPathComponent(key)
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(bytes).write(to: url)
            try await gateway.store.recordingStored(
                callID: callID, key: key, sizeBytes: Int64(bytes.count), sha256: Self.hex(SHA256.hash(data: bytes)))
        }
        return (callID, bytes)
    }

    static func hex(_ digest: SHA256.Digest) -> String { digest.map { String(format: "%02x", $0) }.joined() }

    static func withGateway(_ body: @Sendable (Gateway, String) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("recordings-\(UInt32.random(in: 0...UInt32.max))").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await GatewayHarness.run(environment: ["RECORDING_DIR": directory]) { gateway in
            try await body(gateway, directory)
        }
    }

    @Test("a stored recording is on the call and streams whole, with its length, type and checksum")
    func storedRecording() async throws {
        try await Self.withGateway { gateway, directory in
            let (_, token) = try await gateway.user(.viewer)
            let (callID, bytes) = try await Self.recordedCall(gateway, directory: directory, status: .stored)
            let digest = Self.hex(SHA256.hash(data: bytes))

            let call = try await gateway.request(.get, "/api/v1/calls/\(callID)", token: token)
            #expect(call.status == .ok)
            #expect(call.json["record"] as? Bool == true)
            let recording = try #require(call.json["recording"] as? [String: Any])
            #expect(recording["status"] as? String == "stored")
            #expect(recording["sha256"] as? String == digest)
            #expect(recording["size_bytes"] as? Int == bytes.count)
            #expect(recording["href"] as? String == "/api/v1/calls/\(callID)/recording")

            let file = try await gateway.request(.get, "/api/v1/calls/\(callID)/recording", token: token)
            #expect(file.status == .ok)
            #expect(Array(file.body.readableBytesView) == bytes)
            #expect(file.headers[.contentType] == "audio/wav")
            #expect(file.headers[.contentLength] == String(bytes.count))
            #expect(file.headers[.eTag] == "\"\(digest)\"")
            #expect(file.headers[.contentDisposition] == "attachment; filename=\"\(callID).wav\"")
            let reprDigest = "sha-256=:\(Data(SHA256.hash(data: bytes)).base64EncodedString()):"
            #expect(file.headers[HTTPField.Name("Repr-Digest")!] == reprDigest)

            let again = try await gateway.request(
                .get, "/api/v1/calls/\(callID)/recording", token: token, headers: [.ifNoneMatch: "\"\(digest)\""])
            #expect(again.status == .notModified)
            #expect(again.body.readableBytes == 0)
        }
    }

    @Test("not stored yet: 409; failed, not recorded, unknown or another organization's: 404 saying which")
    func unavailableRecordings() async throws {
        try await Self.withGateway { gateway, directory in
            let (_, token) = try await gateway.user(.viewer)
            for status in [RecordingStatus.starting, .recording, .finished] {
                let (callID, _) = try await Self.recordedCall(gateway, directory: directory, status: status)
                let response = try await gateway.request(.get, "/api/v1/calls/\(callID)/recording", token: token)
                #expect(response.status == .conflict, "\(status)")
                #expect((response.json["detail"] as? String)?.contains(status.rawValue) == true)
            }
            let (failed, _) = try await Self.recordedCall(gateway, directory: directory, status: .failed)
            let failure = try await gateway.request(.get, "/api/v1/calls/\(failed)/recording", token: token)
            #expect(failure.status == .notFound)
            #expect((failure.json["detail"] as? String)?.contains("failed: the node could not record") == true)
            let call = try await gateway.request(.get, "/api/v1/calls/\(failed)", token: token)
            #expect((call.json["recording"] as? [String: Any])?["status"] as? String == "failed")

            let unknown = try await gateway.request(.get, "/api/v1/calls/\(CallID.generate())/recording", token: token)
            #expect(unknown.status == .notFound)

            let other = try await gateway.organization()
            let (foreign, _) = try await Self.recordedCall(
                gateway, directory: directory, status: .stored, organization: other.id)
            let refused = try await gateway.request(.get, "/api/v1/calls/\(foreign)/recording", token: token)
            #expect(refused.status == .notFound)
            let erase = try await gateway.request(.delete, "/api/v1/calls/\(foreign)/recording", token: token)
            #expect(erase.status == .forbidden, "a viewer cannot erase")
        }
    }

    @Test("erasure: the file leaves the store, the recording says deleted, the audit log says who; idempotent")
    func erasure() async throws {
        try await Self.withGateway { gateway, directory in
            let (_, token) = try await gateway.user(.operator)
            let (callID, _) = try await Self.recordedCall(gateway, directory: directory, status: .stored)
            let key = try #require(try await gateway.store.recording(of: callID, in: .default)?.storageKey)
            let path = URL(fileURLWithPath: directory).appendingPathComponent(key).path
            #expect(FileManager.default.fileExists(atPath: path))

            let erased = try await gateway.request(.delete, "/api/v1/calls/\(callID)/recording", token: token)
            #expect(erased.status == .noContent)
            #expect(!FileManager.default.fileExists(atPath: path))
            let recording = try #require(try await gateway.store.recording(of: callID, in: .default))
            #expect(recording.status == .deleted)
            #expect(recording.deletedAt != nil)
            #expect(recording.detail?.contains("erased on request") == true)
            // The audit log, as an admin reads it (the harness checks the answer against the contract).
            let (_, adminToken) = try await gateway.user(.admin)
            let audit = try await gateway.request(.get, "/api/v1/audit-events", token: adminToken)
            #expect(audit.status == .ok)
            let entries = audit.json["events"] as? [[String: Any]] ?? []
            #expect(
                entries.contains {
                    $0["action"] as? String == "call_recording.deleted" && $0["target_type"] as? String == "call"
                        && $0["target_id"] as? String == callID.description
                })

            let gone = try await gateway.request(.get, "/api/v1/calls/\(callID)/recording", token: token)
            #expect(gone.status == .notFound)
            #expect((gone.json["detail"] as? String)?.contains("erased") == true)
            let twice = try await gateway.request(.delete, "/api/v1/calls/\(callID)/recording", token: token)
            #expect(twice.status == .noContent)

            let (live, _) = try await Self.recordedCall(gateway, directory: directory, status: .recording)
            let early = try await gateway.request(.delete, "/api/v1/calls/\(live)/recording", token: token)
            #expect(early.status == .conflict)
        }
    }

    @Test("record on a call request: true, false or null; anything else is a 422")
    func recordField() async throws {
        try await Self.withGateway { gateway, _ in
            let (_, token) = try await gateway.user(.operator)
            let recorded = try await gateway.postCall(#"{"to": "+15550100777", "record": true}"#, token: token)
            #expect(recorded.status == .accepted)
            #expect(recorded.json["record"] as? Bool == true)
            #expect(recorded.json["recording"] is NSNull)
            let plain = try await gateway.postCall(#"{"to": "+15550100778", "record": null}"#, token: token)
            #expect(plain.status == .accepted)
            #expect(plain.json["record"] as? Bool == false)
            let wrong = try await gateway.postCall(#"{"to": "+15550100779", "record": "yes"}"#, token: token)
            #expect(wrong.status == .unprocessableContent)
            #expect(wrong.errorFields == ["record"])

            // The command on the topic says so, and only when true.
            let messages = try await gateway.messages(on: gateway.topics.originate)
            let texts = messages.map { String(decoding: $0.value, as: UTF8.self) }
            #expect(texts.filter { $0.contains("\"record\":true") }.count == 1)
            #expect(!texts.contains { $0.contains("\"record\":false") })
        }
    }
}
