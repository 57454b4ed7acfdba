import Foundation

/// Any JSON value, for the client's opaque call metadata.
public enum JSONValue: Hashable, Sendable, Codable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// How deep the value nests; metadata is limited so that no consumer has to recurse without bound.
    public var depth: Int {
        switch self {
        case .array(let values): 1 + (values.map(\.depth).max() ?? 0)
        case .object(let values): 1 + (values.values.map(\.depth).max() ?? 0)
        default: 0
        }
    }
}

/// The client's own data about a call (campaign, contact id, ...), returned with the call and its events.
///
/// It never reaches Asterisk. It is bounded (4 KiB of JSON, nesting depth 8) so it cannot bloat every event.
public struct ClientMetadata: Hashable, Sendable, Codable {
    /// The largest encoded size accepted, in bytes.
    public static let maximumEncodedSize = 4096
    /// The deepest nesting accepted.
    public static let maximumDepth = 8
    /// The metadata object.
    public let values: [String: JSONValue]

    /// No metadata.
    public static let empty = ClientMetadata(unchecked: [:])

    /// Validates size and depth.
    public init(_ values: [String: JSONValue], field: String = "metadata") throws(FieldError) {
        let value = JSONValue.object(values)
        if value.depth > Self.maximumDepth {
            throw FieldError(field: field, message: "must not nest deeper than \(Self.maximumDepth) levels")
        }
        let size = (try? value.jsonBytes().count) ?? Int.max
        if size > Self.maximumEncodedSize {
            throw FieldError(field: field, message: "must be at most \(Self.maximumEncodedSize) bytes of JSON")
        }
        if Self.containsNUL(value) {
            throw FieldError(field: field, message: "must not contain the NUL character (U+0000) in a key or a string")
        }
        self.values = values
    }

    /// PostgreSQL's text and jsonb cannot hold U+0000: metadata with it would be accepted, then never recorded, and
    /// the history writer and the claim would retry it forever, holding up every call behind it.
    private static func containsNUL(_ value: JSONValue) -> Bool {
        switch value {
        case .string(let text): text.utf8.contains(0)
        case .array(let items): items.contains(where: containsNUL)
        case .object(let members): members.contains { $0.key.utf8.contains(0) || containsNUL($0.value) }
        case .null, .bool, .number: false
        }
    }

    private init(unchecked values: [String: JSONValue]) {
        self.values = values
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        do {
            try self.init(try container.decode([String: JSONValue].self))
        } catch let error as FieldError {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.message)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(values)
    }
}
