import Foundation
import Logging
import Synchronization

/// How log lines are written.
public enum LogFormat: String, Sendable, CaseIterable {
    /// One JSON object per line: what a log pipeline ingests.
    case json
    /// Human-readable text, for a terminal.
    case text
}

/// Process-wide logging set-up, done once in `main`.
public enum LoggingSetup {
    /// Bootstraps swift-log from `LOG_LEVEL` (trace…critical, default info) and `LOG_FORMAT` (json|text, default
    /// json). Logs go to standard error so that standard output stays free for a command's own output.
    public static func bootstrap(service: String, environment: EnvironmentReader = EnvironmentReader()) throws {
        let levelText = try environment.choice(
            "LOG_LEVEL", default: "info", allowed: Logger.Level.allCases.map(\.rawValue))
        let level = Logger.Level(rawValue: levelText) ?? .info
        let format =
            LogFormat(
                rawValue: try environment.choice(
                    "LOG_FORMAT", default: "json", allowed: LogFormat.allCases.map(\.rawValue))
            ) ?? .json
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler
            switch format {
            case .json: handler = JSONLogHandler(label: label, service: service)
            case .text: handler = StreamLogHandler.standardError(label: label)
            }
            handler.logLevel = level
            return handler
        }
    }
}

/// Writes each record as one JSON line on standard error: `ts`, `level`, `service`, `logger`, `msg`, `source`, and
/// the metadata keys flattened at the top level.
public struct JSONLogHandler: LogHandler {
    /// The logger's label.
    public let label: String
    /// The process's service name.
    public let service: String
    /// Metadata attached to this logger.
    public var metadata: Logger.Metadata = [:]
    /// The minimum level written.
    public var logLevel: Logger.Level = .info
    private let output: @Sendable (String) -> Void

    /// Creates a handler writing to standard error, or to `output` (tests capture lines this way).
    public init(label: String, service: String, output: (@Sendable (String) -> Void)? = nil) {
        self.label = label
        self.service = service
        self.output = output ?? JSONLogHandler.writeToStandardError
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var object: [String: Any] = [
            "ts": Self.timestamp(), "level": event.level.rawValue, "service": service, "logger": label,
            "msg": "\(event.message)",
        ]
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        for (key, value) in merged { object[key] = Self.jsonValue(value) }
        if event.level >= .warning { object["source"] = "\(event.file):\(event.line)" }
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]),
            let line = String(data: data, encoding: .utf8)
        else { return }
        output(line)
    }

    private static func jsonValue(_ value: Logger.Metadata.Value) -> Any {
        switch value {
        case .string(let string): string
        case .stringConvertible(let convertible): convertible.description
        case .array(let values): values.map(jsonValue)
        case .dictionary(let values): values.mapValues(jsonValue)
        }
    }

    private static func timestamp() -> String {
        Date().formatted(
            Date.ISO8601FormatStyle(timeZone: .gmt).year().month().day().time(includingFractionalSeconds: true))
    }

    private static let standardErrorLock = Mutex(())

    @Sendable private static func writeToStandardError(_ line: String) {
        standardErrorLock.withLock { _ in
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
    }
}
