import Foundation

/// A configuration variable with a bad or missing value; start-up stops with this message.
public struct ConfigurationError: Error, CustomStringConvertible, Equatable {
    /// The environment variable at fault.
    public var variable: String
    /// What is wrong with it (never its value when it is a secret).
    public var message: String

    /// Creates an error.
    public init(variable: String, message: String) {
        self.variable = variable
        self.message = message
    }

    public var description: String { "configuration error: \(variable) \(message)" }
}

/// Typed reads of environment variables, each failing with an error that names the variable.
public struct EnvironmentReader: Sendable {
    /// The raw variables.
    public let values: [String: String]

    /// Reads from `values` (the process environment by default).
    public init(_ values: [String: String] = ProcessInfo.processInfo.environment) {
        self.values = values
    }

    /// The trimmed value, or `nil` when unset or blank.
    public func raw(_ name: String) -> String? {
        guard let value = values[name]?.trimmingCharacters(in: .whitespacesAndNewlines), !value.isEmpty else {
            return nil
        }
        return value
    }

    /// A string, or `defaultValue`.
    public func string(_ name: String, default defaultValue: String) -> String {
        raw(name) ?? defaultValue
    }

    /// A process's identity from `name` (default `<hostname>-<pid>`, unique per process and stable across restarts
    /// in a container whose process is pid 1), recorded on leases, attempts and logs: 1 to 128 printable ASCII
    /// characters without spaces.
    public func processID(_ name: String, fallbackPrefix: String) throws -> String {
        let id = raw(name) ?? Self.defaultProcessID(prefix: fallbackPrefix)
        guard (1...128).contains(id.utf8.count),
            id.unicodeScalars.allSatisfy({ $0.isASCII && $0.value > 0x20 && $0.value < 0x7F })
        else {
            throw ConfigurationError(
                variable: name, message: "must be 1 to 128 printable ASCII characters without spaces")
        }
        return id
    }

    /// `<hostname>-<pid>`, or `<prefix>-<pid>` when the host has no name.
    public static func defaultProcessID(prefix: String) -> String {
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? ""
        return "\(host.isEmpty ? prefix : host)-\(ProcessInfo.processInfo.processIdentifier)"
    }

    /// A string that must be set.
    public func required(_ name: String) throws -> String {
        guard let value = raw(name) else { throw ConfigurationError(variable: name, message: "must be set") }
        return value
    }

    /// An integer within `range`, or `defaultValue` when unset.
    public func int(_ name: String, default defaultValue: Int, range: ClosedRange<Int>) throws -> Int {
        guard let text = raw(name) else { return defaultValue }
        guard let value = Int(text) else { throw ConfigurationError(variable: name, message: "must be an integer") }
        guard range.contains(value) else {
            throw ConfigurationError(
                variable: name, message: "must be between \(range.lowerBound) and \(range.upperBound)")
        }
        return value
    }

    /// A number within `range`, or `defaultValue` when unset.
    public func double(_ name: String, default defaultValue: Double, range: ClosedRange<Double>) throws -> Double {
        guard let text = raw(name) else { return defaultValue }
        guard let value = Double(text), value.isFinite else {
            throw ConfigurationError(variable: name, message: "must be a number")
        }
        guard range.contains(value) else {
            throw ConfigurationError(
                variable: name, message: "must be between \(range.lowerBound) and \(range.upperBound)")
        }
        return value
    }

    /// `true`/`false` (also `1`/`0`, `yes`/`no`), or `defaultValue`.
    public func bool(_ name: String, default defaultValue: Bool) throws -> Bool {
        guard let text = raw(name)?.lowercased() else { return defaultValue }
        switch text {
        case "true", "1", "yes", "on": return true
        case "false", "0", "no", "off": return false
        default: throw ConfigurationError(variable: name, message: "must be true or false")
        }
    }

    /// A comma-separated list (blank entries dropped), or `defaultValue`.
    public func list(_ name: String, default defaultValue: [String]) -> [String] {
        guard let text = raw(name) else { return defaultValue }
        return text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// One of `allowed`, or `defaultValue`.
    public func choice(_ name: String, default defaultValue: String, allowed: [String]) throws -> String {
        guard let text = raw(name)?.lowercased() else { return defaultValue }
        guard allowed.contains(text) else {
            throw ConfigurationError(variable: name, message: "must be one of \(allowed.joined(separator: ", "))")
        }
        return text
    }
}
