import Foundation
import NIOFileSystem
import ServiceSupport

/// Which recording store to use, read from the environment by every process that stores or serves recordings (the
/// workers and the gateway must name the same store).
public struct RecordingStoreConfiguration: Sendable, Hashable, CustomStringConvertible {
    /// The kinds of store.
    public enum Backend: Sendable, Hashable {
        /// A directory the workers and the gateway share (one host, or a shared volume).
        case localDirectory(FilePath)
        /// S3-compatible object storage.
        case s3(S3Location)
    }

    /// The store.
    public var backend: Backend

    /// A local store in `directory`.
    public init(directory: FilePath) {
        self.backend = .localDirectory(directory)
    }

    /// A local store in the directory at `path`.
    public init(path: String) {
        self.backend = .localDirectory(FilePath(path))
    }

    /// An S3-compatible store.
    public init(s3: S3Location) {
        self.backend = .s3(s3)
    }

    public var description: String {
        switch backend {
        case .localDirectory(let directory): "local \(directory)"
        case .s3(let location): location.description
        }
    }

    /// Reads `RECORDING_STORE` (`local`, the default, or `s3`) and its settings: `RECORDING_DIR` (default
    /// `/var/lib/outbound-dialer/recordings`, an absolute path) for `local`; `RECORDING_S3_ENDPOINT`,
    /// `RECORDING_S3_BUCKET`, `RECORDING_S3_ACCESS_KEY_ID`, `RECORDING_S3_SECRET_ACCESS_KEY` (required),
    /// `RECORDING_S3_REGION` (default `us-east-1`) and `RECORDING_S3_PREFIX` (default none) for `s3`.
    public static func fromEnvironment(_ environment: EnvironmentReader) throws -> RecordingStoreConfiguration {
        switch try environment.choice("RECORDING_STORE", default: "local", allowed: ["local", "s3"]) {
        case "s3":
            let endpoint = try environment.required("RECORDING_S3_ENDPOINT")
            guard let components = URLComponents(string: endpoint),
                ["http", "https"].contains(components.scheme ?? ""),
                components.host?.isEmpty == false, components.path.isEmpty || components.path == "/",
                components.query == nil
            else {
                throw ConfigurationError(
                    variable: "RECORDING_S3_ENDPOINT",
                    message: "must be an http(s) URL without a path, e.g. https://s3.eu-west-1.amazonaws.com")
            }
            let bucket = try environment.required("RECORDING_S3_BUCKET")
            guard (3...63).contains(bucket.utf8.count),
                bucket.utf8.allSatisfy({
                    ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2E || $0 == 0x2D
                })
            else {
                throw ConfigurationError(
                    variable: "RECORDING_S3_BUCKET",
                    message: "must be an S3 bucket name (3 to 63 of a-z, 0-9, '.', '-')")
            }
            let prefix = environment.string("RECORDING_S3_PREFIX", default: "")
            if !prefix.isEmpty, (try? RecordingKey(prefix.hasSuffix("/") ? String(prefix.dropLast()) : prefix)) == nil {
                throw ConfigurationError(
                    variable: "RECORDING_S3_PREFIX", message: "must be path segments of A-Z, a-z, 0-9, '.', '_', '-'")
            }
            return RecordingStoreConfiguration(
                s3: S3Location(
                    endpoint: endpoint, bucket: bucket,
                    region: environment.string("RECORDING_S3_REGION", default: "us-east-1"),
                    accessKeyID: try environment.required("RECORDING_S3_ACCESS_KEY_ID"),
                    secretAccessKey: try environment.required("RECORDING_S3_SECRET_ACCESS_KEY"),
                    prefix: prefix.isEmpty || prefix.hasSuffix("/") ? prefix : prefix + "/"))
        default:
            let directory = FilePath(
                environment.string("RECORDING_DIR", default: "/var/lib/outbound-dialer/recordings"))
            guard directory.isAbsolute, !directory.components.contains(where: { $0.kind != .regular }) else {
                throw ConfigurationError(
                    variable: "RECORDING_DIR", message: "must be an absolute path without '.' or '..' components")
            }
            return RecordingStoreConfiguration(directory: directory)
        }
    }

    /// The store this configuration names.
    public func makeStore() -> any RecordingStore {
        switch backend {
        case .localDirectory(let directory): LocalDirectoryRecordingStore(root: directory)
        case .s3(let location): S3RecordingStore(location: location)
        }
    }
}
