import Foundation
import NIOFileSystem
import Recordings
import ServiceSupport

/// How the worker records calls (`RECORDING_*`).
public struct RecordingConfiguration: Sendable {
    /// The recording store (`RECORDING_DIR`).
    public var store: RecordingStoreConfiguration
    /// The format Asterisk records in (`RECORDING_FORMAT`, default `wav`): one the node's formats know.
    public var format: String
    /// The longest recording, in seconds (`RECORDING_MAX_SECONDS`, default 14,400; 0 for no limit).
    public var maxDurationSeconds: Int
    /// How long stored recordings are kept (`RECORDING_RETENTION_DAYS`, default 0: for ever); older ones are
    /// deleted from the store by the workers' sweep.
    public var retention: Duration?
    /// How often each worker looks for its node's unsettled and expired recordings (`RECORDING_SWEEP_SECONDS`,
    /// default 30).
    public var sweepInterval: Duration
    /// How long an unsettled recording must have been quiet before the sweep takes it over from the events
    /// (`RECORDING_SETTLE_SECONDS`, default 30).
    public var settleTime: Duration
    /// Where files are downloaded from the node before they go to the store (`RECORDING_SPOOL_DIR`, default a
    /// directory under the system's temporary directory).
    public var spoolDirectory: FilePath
    /// How long one download from the node may take (`RECORDING_DOWNLOAD_TIMEOUT_SECONDS`, default 300).
    public var downloadTimeout: Duration

    /// A configuration from explicit values (tests); ``fromEnvironment(_:workerID:)`` is the usual way.
    public init(
        store: RecordingStoreConfiguration, format: String = "wav", maxDurationSeconds: Int = 14_400,
        retention: Duration? = nil, sweepInterval: Duration = .seconds(30), settleTime: Duration = .seconds(30),
        spoolDirectory: FilePath? = nil, downloadTimeout: Duration = .seconds(300)
    ) {
        self.store = store
        self.format = format
        self.maxDurationSeconds = maxDurationSeconds
        self.retention = retention
        self.sweepInterval = sweepInterval
        self.settleTime = settleTime
        self.spoolDirectory = spoolDirectory ?? Self.defaultSpoolDirectory()
        self.downloadTimeout = downloadTimeout
    }

    static func defaultSpoolDirectory() -> FilePath {
        FilePath(FileManager.default.temporaryDirectory.path).appending("outbound-dialer-recordings")
    }

    /// Reads and validates the `RECORDING_*` variables.
    public static func fromEnvironment(_ environment: EnvironmentReader) throws -> RecordingConfiguration {
        let format = environment.string("RECORDING_FORMAT", default: "wav")
        guard (1...10).contains(format.utf8.count),
            format.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) })
        else {
            throw ConfigurationError(
                variable: "RECORDING_FORMAT", message: "must be a format name such as wav, gsm or ulaw")
        }
        let retentionDays = try environment.int("RECORDING_RETENTION_DAYS", default: 0, range: 0...36_500)
        var spool: FilePath?
        if let text = environment.raw("RECORDING_SPOOL_DIR") {
            let path = FilePath(text)
            guard path.isAbsolute else {
                throw ConfigurationError(variable: "RECORDING_SPOOL_DIR", message: "must be an absolute path")
            }
            spool = path
        }
        return RecordingConfiguration(
            store: try RecordingStoreConfiguration.fromEnvironment(environment),
            format: format,
            maxDurationSeconds: try environment.int("RECORDING_MAX_SECONDS", default: 14_400, range: 0...86_400),
            retention: retentionDays == 0 ? nil : .seconds(retentionDays * 86_400),
            sweepInterval: .seconds(try environment.int("RECORDING_SWEEP_SECONDS", default: 30, range: 1...3600)),
            settleTime: .seconds(try environment.int("RECORDING_SETTLE_SECONDS", default: 30, range: 0...3600)),
            spoolDirectory: spool,
            downloadTimeout: .seconds(
                try environment.int("RECORDING_DOWNLOAD_TIMEOUT_SECONDS", default: 300, range: 1...3600)))
    }
}
