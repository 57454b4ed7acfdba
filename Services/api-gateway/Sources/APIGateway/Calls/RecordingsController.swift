import CallDomain
import CallStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Recordings

/// `GET /calls/{id}/recording` (the file, streamed from the recording store) and `DELETE /calls/{id}/recording`
/// (erasure), under `/api/v1`.
struct RecordingsController: Sendable {
    typealias Context = AuthenticatedRequestContext

    let repository: any CallRecordingRepository
    let store: any RecordingStore

    func addRoutes(to group: RouterGroup<Context>) {
        group.get("calls/:id/recording", use: download)
        group.delete("calls/:id/recording", use: erase)
    }

    // MARK: - GET

    /// Streams a stored recording with its length, type and checksum (`ETag` and `Digest`-like `Repr-Digest`).
    /// A recording not yet in the store is a 409 (retry later); a call without one, a failed or an erased one is a
    /// 404 whose detail says which.
    @Sendable func download(_ request: Request, context: Context) async throws -> Response {
        try context.require(.callsRead)
        let id = try CallsController.callID(context)
        let recording = try await find(id, context: context)
        guard recording.status == .stored, let text = recording.storageKey, let size = recording.sizeBytes,
            let digest = recording.sha256
        else {
            throw Self.unavailable(recording)
        }
        let key = try RecordingKey(text)
        var headers: HTTPFields = [
            .contentType: Self.mediaType(ofFormat: recording.format),
            .contentLength: String(size),
            .eTag: "\"\(digest)\"",
            .contentDisposition: "attachment; filename=\"\(id).\(recording.format)\"",
            .cacheControl: "private, no-store",
        ]
        if let hex = Self.bytes(ofHex: digest) {
            headers[HTTPField.Name("Repr-Digest")!] = "sha-256=:\(Data(hex).base64EncodedString()):"
        }
        if request.headers[.ifNoneMatch] == "\"\(digest)\"" {
            headers[.contentLength] = nil
            return Response(status: .notModified, headers: headers)
        }
        let store = self.store
        let logger = context.logger
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody(contentLength: Int(size)) { writer in
                do {
                    try await store.read(key: key) { chunk in try await writer.write(chunk) }
                } catch {
                    // The head is out: all that is left is to cut the response short, which the client sees as an
                    // incomplete body (its length was announced).
                    logger.error(
                        "recording could not be read from the store",
                        metadata: ["recording.key": "\(key)", "error": "\(error)"])
                    throw error
                }
                try await writer.finish(nil)
            })
    }

    // MARK: - DELETE

    /// Erases a stored recording: the file leaves the store first, then the recording is marked erased (and
    /// audited), so a failure half-way leaves a recording that a repeated request erases. Erasing an erased one is
    /// a 204 again; one still on its way to the store is a 409.
    @Sendable func erase(_ request: Request, context: Context) async throws -> Response {
        try context.require(.callsWrite)
        let id = try CallsController.callID(context)
        let recording = try await find(id, context: context)
        switch recording.status {
        case .deleted:
            return Response(status: .noContent)
        case .starting, .recording, .finished, .failed:
            throw Self.unavailable(recording)
        case .stored:
            break
        }
        if let text = recording.storageKey {
            let key = try RecordingKey(text)
            do {
                try await store.delete(key: key)
            } catch {
                context.logger.error(
                    "recording could not be deleted from the store",
                    metadata: ["recording.key": "\(key)", "error": "\(error)"])
                throw Problem.retryLater(
                    .notReady, detail: "the recording store did not delete the recording; retry later", after: 5)
            }
        }
        _ = try await context.store(unavailable: "the call history is unavailable") {
            try await repository.eraseRecording(
                of: id, in: context.caller.organizationID, by: context.auditActor, at: Date())
        }
        context.logger.info("call recording erased", metadata: ["call.id": .stringConvertible(id)])
        return Response(status: .noContent)
    }

    // MARK: - Helpers

    private func find(_ id: CallID, context: Context) async throws -> CallRecording {
        guard
            let recording = try await context.store(
                unavailable: "the call history is unavailable",
                { try await repository.recording(of: id, in: context.caller.organizationID) })
        else {
            throw Problem(.notFound, detail: "call \(id) has no recording (unknown call, or not recorded)")
        }
        return recording
    }

    /// Why a recording cannot be had.
    static func unavailable(_ recording: CallRecording) -> Problem {
        switch recording.status {
        case .starting, .recording, .finished:
            Problem(
                .conflict,
                detail: "the recording of call \(recording.callID) is \(recording.status.rawValue), not stored yet; "
                    + "retry once the call has ended and its recording is stored")
        case .failed:
            Problem(
                .notFound,
                detail: "the recording of call \(recording.callID) failed: \(recording.detail ?? "no detail")")
        case .deleted, .stored:
            Problem(
                .notFound,
                detail: "the recording of call \(recording.callID) was erased (\(recording.detail ?? "no detail"))")
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

    static func bytes(ofHex hex: String) -> [UInt8]? {
        guard hex.utf8.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            guard let byte = UInt8(hex[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        return bytes
    }
}
