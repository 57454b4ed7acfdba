import NIOCore
import NIOFileSystem

/// Recordings as files under one directory (development, and a single host or a shared volume in production).
///
/// A file is written next to its final name and renamed into place when complete (NIOFileSystem's new-file
/// writes), so the gateway never serves half a recording.
public struct LocalDirectoryRecordingStore: RecordingStore {
    /// The directory the keys are relative to.
    public let root: FilePath

    /// A store under `root`, which is created when missing.
    public init(root: FilePath) {
        self.root = root
    }

    func path(for key: RecordingKey) -> FilePath {
        root.appending(key.value)
    }

    public func put(key: RecordingKey, file: FilePath, sha256: String) async throws {
        let destination = path(for: key)
        try await FileSystem.shared.createDirectory(
            at: destination.removingLastComponent(), withIntermediateDirectories: true)
        try await FileSystem.shared.withFileHandle(
            forWritingAt: destination, options: .newFile(replaceExisting: true)
        ) { output in
            var writer = output.bufferedWriter()
            try await FileSystem.shared.withFileHandle(forReadingAt: file) { input in
                for try await chunk in input.readChunks(in: ..., chunkLength: .kibibytes(256)) {
                    try await writer.write(contentsOf: chunk)
                }
            }
            try await writer.flush()
        }
    }

    public func read(key: RecordingKey, into receive: (ByteBuffer) async throws -> Void) async throws {
        do {
            try await FileSystem.shared.withFileHandle(forReadingAt: path(for: key)) { input in
                for try await chunk in input.readChunks(in: ..., chunkLength: .kibibytes(256)) {
                    try await receive(chunk)
                }
            }
        } catch let error as FileSystemError where error.code == .notFound {
            throw RecordingStoreError.notFound(key.value)
        }
    }

    public func delete(key: RecordingKey) async throws {
        _ = try await FileSystem.shared.removeItem(at: path(for: key), recursively: false)
    }
}
