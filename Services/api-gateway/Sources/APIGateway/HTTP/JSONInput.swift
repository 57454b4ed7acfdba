import CallDomain
import Foundation
import Hummingbird

/// Request bodies are read as untyped JSON first, then field by field, so that every wrong field (missing, wrong
/// type, unknown, invalid value) is reported at once with its name, instead of stopping at the first
/// `DecodingError` as `Codable` would.
enum JSONInput {
    /// Parses a JSON object body; 400 when it is not JSON or not an object.
    static func object(from buffer: ByteBuffer) throws -> [String: JSONValue] {
        guard buffer.readableBytes > 0 else {
            throw Problem(.malformedRequest, detail: "the request body is empty; send a JSON object")
        }
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(buffer.readableBytesView))
        } catch {
            throw Problem(.malformedRequest, detail: "the request body is not valid JSON")
        }
        guard case .object(let object) = value else {
            throw Problem(.malformedRequest, detail: "the request body must be a JSON object")
        }
        return object
    }

    /// Reads a JSON request body (415 for another content type, 413 beyond `limit`).
    static func object(from request: Request, limit: Int) async throws -> [String: JSONValue] {
        try request.requireJSONContentType()
        return try object(from: try await request.collectBody(limit: limit))
    }
}

/// Query strings, read the same way: every bad parameter is reported at once.
enum QueryInput {
    /// The values of `parameters` by name; a name not in `known`, or given twice, is recorded in `errors`.
    static func values(
        _ parameters: Parameters, known: Set<String>, errors: inout [FieldError]
    ) -> [String: String] {
        var values: [String: String] = [:]
        for (key, value) in parameters {
            let name = String(key)
            guard known.contains(name) else {
                errors.append(
                    FieldError(field: JSONObjectReader.printable(name), message: "is not a known query parameter"))
                continue
            }
            if values[name] != nil {
                errors.append(FieldError(field: name, message: "must be given at most once"))
            }
            values[name] = String(value)
        }
        return values
    }
}

/// Reads the fields of one JSON object, recording an error per bad field.
struct JSONObjectReader {
    let object: [String: JSONValue]
    /// The object's path (`""` for the body, `caller_id` for a nested object), prefixed to field names.
    let path: String
    private(set) var errors: [FieldError] = []

    init(_ object: [String: JSONValue], path: String = "") {
        self.object = object
        self.path = path
    }

    func name(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// Records an error.
    mutating func fail(_ key: String, _ message: String) {
        errors.append(FieldError(field: name(key), message: message))
    }

    /// Records errors found elsewhere (by a domain type's validation).
    mutating func add(_ more: [FieldError]) {
        errors.append(contentsOf: more)
    }

    /// Whether the key is present with a non-null value.
    func has(_ key: String) -> Bool {
        if let value = object[key], value != .null { return true }
        return false
    }

    /// A string field; `nil` (with an error when `required`) if absent, null or another type.
    mutating func string(_ key: String, required: Bool = false) -> String? {
        switch object[key] {
        case nil, .null?:
            if required { fail(key, "is required") }
            return nil
        case .string(let value)?:
            return value
        default:
            fail(key, "must be a string")
            return nil
        }
    }

    /// An integer field within `range`.
    mutating func int(_ key: String, range: ClosedRange<Int>, required: Bool = false) -> Int? {
        switch object[key] {
        case nil, .null?:
            if required { fail(key, "is required") }
            return nil
        case .number(let value)?:
            guard value.rounded() == value, value.magnitude < 1e15 else {
                fail(key, "must be an integer")
                return nil
            }
            let integer = Int(value)
            guard range.contains(integer) else {
                fail(key, "must be between \(range.lowerBound) and \(range.upperBound)")
                return nil
            }
            return integer
        default:
            fail(key, "must be an integer")
            return nil
        }
    }

    /// A boolean field.
    mutating func bool(_ key: String, required: Bool = false) -> Bool? {
        switch object[key] {
        case nil, .null?:
            if required { fail(key, "is required") }
            return nil
        case .bool(let value)?:
            return value
        default:
            fail(key, "must be true or false")
            return nil
        }
    }

    /// An array of strings.
    mutating func strings(_ key: String, required: Bool = false) -> [String]? {
        switch object[key] {
        case nil, .null?:
            if required { fail(key, "is required") }
            return nil
        case .array(let values)?:
            var strings: [String] = []
            for value in values {
                guard case .string(let text) = value else {
                    fail(key, "must be an array of strings")
                    return nil
                }
                strings.append(text)
            }
            return strings
        default:
            fail(key, "must be an array of strings")
            return nil
        }
    }

    /// An object field.
    mutating func object(_ key: String) -> [String: JSONValue]? {
        switch object[key] {
        case nil, .null?:
            return nil
        case .object(let value)?:
            return value
        default:
            fail(key, "must be an object")
            return nil
        }
    }

    /// Records every key not in `known`.
    mutating func refuseUnknown(_ known: Set<String>) {
        for key in object.keys.sorted() where !known.contains(key) {
            errors.append(FieldError(field: name(Self.printable(key)), message: "is not a known field"))
        }
    }

    /// A key as it may appear in an error (control characters replaced, length bounded).
    static func printable(_ key: String) -> String {
        String(key.unicodeScalars.prefix(64).map { $0.value >= 0x20 && $0.value < 0x7F ? Character($0) : "?" })
    }
}
