import NIOCore
import NIOFileSystem

/// Where call recordings live once they have left the Asterisk node: one protocol, so that the worker that stores
/// them and the gateway that serves them do not know which store it is.
///
/// Keys are relative paths made of `[A-Za-z0-9._-]` segments (``RecordingKey``); a store never sees another shape.
public protocol RecordingStore: Sendable {
    /// Stores the file at `file` under `key`, replacing what is there. A reader sees the whole file or nothing.
    /// `sha256` is the file's SHA-256 (lowercase hex), which its writer computed as it wrote it.
    func put(key: RecordingKey, file: FilePath, sha256: String) async throws
    /// Reads the file under `key`, chunk by chunk, into `receive`. Throws ``RecordingStoreError/notFound(_:)``
    /// when there is none.
    func read(key: RecordingKey, into receive: (ByteBuffer) async throws -> Void) async throws
    /// Deletes the file under `key`; deleting a file that is not there is not an error (erasure is idempotent).
    func delete(key: RecordingKey) async throws
}

/// What a recording store could not do.
public enum RecordingStoreError: Error, Equatable, CustomStringConvertible {
    /// No file under the key.
    case notFound(String)
    /// A key that is not a relative path of safe segments.
    case invalidKey(String)

    public var description: String {
        switch self {
        case .notFound(let key): "no recording stored under \(key)"
        case .invalidKey(let key): "not a recording key: \(key)"
        }
    }
}

/// The key of a recording in a store: `<organization>/<yyyy>/<mm>/<dd>/<call id>.<format>` for the recordings the
/// worker stores; any relative path of `[A-Za-z0-9._-]` segments (none of them `.` or `..`) is valid.
public struct RecordingKey: Sendable, Hashable, CustomStringConvertible {
    /// The key's text.
    public let value: String

    /// Validates a key read back from storage.
    public init(_ value: String) throws {
        let segments = value.split(separator: "/", omittingEmptySubsequences: false)
        let valid =
            !value.isEmpty && value.utf8.count <= 512
            && segments.allSatisfy { segment in
                !segment.isEmpty && segment != "." && segment != ".."
                    && segment.utf8.allSatisfy { byte in
                        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A)
                            || (byte >= 0x61 && byte <= 0x7A)
                            || byte == 0x2E || byte == 0x5F || byte == 0x2D
                    }
            }
        guard valid else { throw RecordingStoreError.invalidKey(value) }
        self.value = value
    }

    public var description: String { value }
}
