import NIOFileSystem
import ServiceSupport

/// Where the recording store is, read from the environment by every process that stores or serves recordings (the
/// workers and the gateway must name the same store).
public struct RecordingStoreConfiguration: Sendable, Hashable {
    /// The directory of the local store (`RECORDING_DIR`, default `/var/lib/outbound-dialer/recordings`): a
    /// directory the workers and the gateway share (one host, or a shared volume).
    public var directory: FilePath

    /// A configuration naming `directory`.
    public init(directory: FilePath) {
        self.directory = directory
    }

    /// A configuration naming the directory at `path`.
    public init(path: String) {
        self.directory = FilePath(path)
    }

    /// Reads `RECORDING_DIR`; it must be an absolute path.
    public static func fromEnvironment(_ environment: EnvironmentReader) throws -> RecordingStoreConfiguration {
        let directory = FilePath(
            environment.string("RECORDING_DIR", default: "/var/lib/outbound-dialer/recordings"))
        guard directory.isAbsolute, !directory.components.contains(where: { $0.kind != .regular }) else {
            throw ConfigurationError(
                variable: "RECORDING_DIR", message: "must be an absolute path without '.' or '..' components")
        }
        return RecordingStoreConfiguration(directory: directory)
    }

    /// The store this configuration names.
    public func makeStore() -> any RecordingStore {
        LocalDirectoryRecordingStore(root: directory)
    }
}
