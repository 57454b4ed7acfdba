import CallDomain
import Foundation
import Logging

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
    /// Where lines go instead of standard error (tests capture lines this way).
    private let output: (@Sendable (String) -> Void)?

    /// Creates a handler writing to standard error (``LogOutput``), or to `output`.
    public init(label: String, service: String, output: (@Sendable (String) -> Void)? = nil) {
        self.label = label
        self.service = service
        self.output = output
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var object: Logger.Metadata = [
            "ts": .string(Self.timestamp()), "level": .string(event.level.rawValue), "service": .string(service),
            "logger": .string(label), "msg": .string("\(event.message)"),
        ]
        object.merge(metadata) { _, new in new }
        if let extra = event.metadata { object.merge(extra) { _, new in new } }
        if event.level >= .warning { object["source"] = .string("\(event.file):\(event.line)") }
        var line = ""
        line.reserveCapacity(512)
        Self.appendObject(object, to: &line)
        if let output {
            output(line)
        } else {
            LogOutput.standardError.write(line, urgent: event.level >= .warning)
        }
    }

    // MARK: - JSON text

    // Written by hand: JSONSerialization with sorted keys compares keys through ICU collation, which made logging
    // the largest cost of a request (a profile of the gateway under load: 42% of its CPU). Keys are sorted by code
    // point instead.

    private static func appendObject(_ object: Logger.Metadata, to output: inout String) {
        output.append("{")
        for (index, key) in object.keys.sorted().enumerated() {
            if index > 0 { output.append(",") }
            appendString(key, to: &output)
            output.append(":")
            appendValue(object[key]!, to: &output)
        }
        output.append("}")
    }

    private static func appendValue(_ value: Logger.Metadata.Value, to output: inout String) {
        switch value {
        case .string(let string): appendString(string, to: &output)
        case .stringConvertible(let convertible): appendString(convertible.description, to: &output)
        case .dictionary(let values): appendObject(values, to: &output)
        case .array(let values):
            output.append("[")
            for (index, element) in values.enumerated() {
                if index > 0 { output.append(",") }
                appendValue(element, to: &output)
            }
            output.append("]")
        }
    }

    private static func appendString(_ string: String, to output: inout String) {
        JSONStringLiteral.append(string, to: &output)
    }

    /// `2026-12-04T16:00:00.348Z`: UTC, marked as such, so a log pipeline in another zone reads the right instant;
    /// the wire's own format (a format style took microseconds per line).
    private static func timestamp() -> String {
        WireCoding.formatTimestamp(Date())
    }
}
