import CallDomain
import CallStore
import Campaigns
import Foundation
import Hummingbird
import NIOCore

/// A `multipart/form-data` contact list upload, read as it arrives: the `file` part goes to a temporary file (never
/// whole in memory), the small text parts (`name`, `mapping`, `default_region`, `default_time_zone`) are kept.
final class ContactListUpload {
    /// The text parts, by name.
    private(set) var texts: [String: String] = [:]
    /// Where the `file` part was written, once it was.
    private(set) var fileURL: URL?
    private(set) var fileBytes = 0

    private var partName: String?
    private var partIsFile = false
    private var partText = ByteBuffer()
    private var file: FileHandle?
    private var failure: Problem?

    static let textLimit = 64 * 1024

    /// Reads the request's body (at most `limit` bytes) into the parts.
    static func read(_ request: Request, limit: Int, into directory: URL) async throws -> ContactListUpload {
        guard let contentType = request.headers[.contentType],
            contentType.lowercased().hasPrefix("multipart/form-data"),
            let boundary = Self.boundary(of: contentType)
        else {
            throw Problem(
                .unsupportedMediaType,
                detail:
                    "a contact list is uploaded as multipart/form-data (with a boundary) with a file part named \"file\""
            )
        }
        let upload = ContactListUpload()
        var total = 0
        do {
            var parser = try MultipartFormParser(boundary: boundary)
            for try await chunk in request.body {
                total += chunk.readableBytes
                guard total <= limit else {
                    throw Problem(.payloadTooLarge, detail: "a contact list upload may be at most \(limit) bytes")
                }
                try parser.parse(chunk) { event in
                    switch event {
                    case .partBegan(let fields): upload.begin(fields, directory: directory)
                    case .body(var piece): upload.body(&piece)
                    case .partEnded: upload.partComplete()
                    }
                    if let failure = upload.failure { throw failure }
                }
            }
            guard parser.isComplete else {
                throw MultipartFormError("the body ends before its closing boundary")
            }
        } catch let problem as Problem {
            upload.discard()
            throw problem
        } catch {
            upload.discard()
            throw Problem(.malformedRequest, detail: "the multipart body is malformed: \(error)")
        }
        try? upload.file?.close()
        upload.file = nil
        return upload
    }

    /// Deletes the temporary file.
    func discard() {
        try? file?.close()
        file = nil
        if let fileURL { try? FileManager.default.removeItem(at: fileURL) }
    }

    private func begin(_ fields: [(name: String, value: String)], directory: URL) {
        let disposition = fields.first { $0.name.lowercased() == "content-disposition" }
        partName = disposition.flatMap { Self.parameter("name", of: $0.value) }
        partIsFile = partName == "file"
        partText.clear()
        guard partIsFile else { return }
        guard fileURL == nil else {
            failure = Problem.validation(field: "file", message: "must be given once")
            return
        }
        let url = directory.appendingPathComponent("contact-list-\(UUID().uuidString.lowercased()).csv")
        guard FileManager.default.createFile(atPath: url.path, contents: nil),
            let handle = try? FileHandle(forWritingTo: url)
        else {
            failure = Problem(.internalError, detail: "the upload could not be stored for reading")
            return
        }
        fileURL = url
        file = handle
    }

    private func body(_ buffer: inout ByteBuffer) {
        if partIsFile {
            fileBytes += buffer.readableBytes
            do {
                try file?.write(contentsOf: buffer.readableBytesView)
            } catch {
                failure = Problem(.internalError, detail: "the upload could not be stored for reading")
            }
        } else if partName != nil {
            guard partText.readableBytes + buffer.readableBytes <= Self.textLimit else {
                failure = Problem.validation(
                    field: partName ?? "part", message: "must be at most \(Self.textLimit) bytes")
                return
            }
            partText.writeBuffer(&buffer)
        }
    }

    private func partComplete() {
        if let partName, !partIsFile {
            texts[partName] = String(buffer: partText)
        }
        partName = nil
        partIsFile = false
    }

    /// The `boundary` parameter of a `multipart/form-data` content type.
    static func boundary(of contentType: String) -> String? {
        parameter("boundary", of: contentType)
    }

    /// A parameter of a header value (`form-data; name="file"; filename="x.csv"`), quotes removed; nil when absent or
    /// empty.
    static func parameter(_ name: String, of value: String) -> String? {
        for piece in value.split(separator: ";").dropFirst() {
            let pair = piece.split(separator: "=", maxSplits: 1)
            guard pair.count == 2, pair[0].trimmingHTTPWhitespace.lowercased() == name else { continue }
            var text = pair[1].trimmingHTTPWhitespace
            if text.hasPrefix("\""), text.hasSuffix("\""), text.count >= 2 {
                text = text.dropFirst().dropLast()
            }
            return text.isEmpty ? nil : String(text)
        }
        return nil
    }
}

/// Reads an uploaded file into a list: every accepted row is stored in batches, every refused one is recorded with
/// its line and reason, and the list ends `ready` with its counts (or `failed` when the file itself is unreadable:
/// no header, a mapped column missing).
struct ContactListImport {
    let repository: any CampaignRepository
    let batchSize = 5000

    /// The JSON of a contact's custom fields must leave room in the call's metadata (4 KiB) for the campaign's keys.
    static let maximumFieldsJSON = ClientMetadata.maximumEncodedSize - 256

    func run(
        list: ContactList, file: URL, mapping: ContactColumnMapping, defaultRegion: PhoneRegion?,
        defaultTimeZone: TimeZone?
    ) async throws -> ContactList {
        var reader: ContactCSVReader
        do {
            reader = try ContactCSVReader(
                url: file, mapping: mapping, defaultRegion: defaultRegion, defaultTimeZone: defaultTimeZone)
        } catch {
            return try await repository.finishContactImport(list: list.id, rowsRead: 0, error: error.message)
        }
        var rowsRead = 0
        var accepted: [NewContact] = []
        // One encoder for the whole list (making one per row costs more than the encoding).
        let encoder = WireCoding.encoder
        var refused: [ContactListError] = []
        accepted.reserveCapacity(batchSize)
        var failure: String?
        while true {
            let next: ContactReadResult?
            do {
                next = try reader.next()
            } catch {
                // The file stopped being readable: what was read is kept in the report, the list fails.
                failure = error.message
                break
            }
            guard let result = next else { break }
            rowsRead += 1
            switch result {
            case .contact(let row):
                let json = (try? encoder.encode(row.fields)).map { String(decoding: $0, as: UTF8.self) }
                let size = json?.utf8.count ?? Int.max
                if let json, size <= Self.maximumFieldsJSON {
                    accepted.append(
                        NewContact(line: row.line, phone: row.phone.e164, timeZone: row.timeZone, fieldsJSON: json))
                } else {
                    refused.append(
                        ContactListError(
                            line: row.line, column: nil,
                            message: "the custom fields take \(size) bytes of JSON; at most "
                                + "\(Self.maximumFieldsJSON) fit in a call's metadata",
                            value: nil))
                }
            case .refused(let error):
                refused.append(
                    ContactListError(line: error.line, column: error.column, message: error.message, value: error.value)
                )
            }
            if accepted.count >= batchSize || refused.count >= batchSize {
                try await flush(&accepted, &refused, list: list.id)
            }
        }
        try await flush(&accepted, &refused, list: list.id)
        return try await repository.finishContactImport(list: list.id, rowsRead: rowsRead, error: failure)
    }

    private func flush(_ accepted: inout [NewContact], _ refused: inout [ContactListError], list: UUID) async throws {
        if !accepted.isEmpty {
            try await repository.appendContacts(accepted, to: list)
            accepted.removeAll(keepingCapacity: true)
        }
        if !refused.isEmpty {
            try await repository.recordContactErrors(refused, list: list)
            refused.removeAll(keepingCapacity: true)
        }
    }
}
