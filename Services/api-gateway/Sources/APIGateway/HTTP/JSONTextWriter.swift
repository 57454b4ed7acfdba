import CallDomain
import Foundation

/// A value that writes its own JSON text (the call answers, on the hot path of `POST /api/v1/calls`).
protocol JSONTextWritable {
    func write(to json: inout JSONTextWriter) throws
}

extension JSONTextWritable {
    /// The value as JSON text.
    func jsonBytes() throws -> [UInt8] {
        var json = JSONTextWriter()
        try write(to: &json)
        return json.bytes
    }
}

/// JSON text written field by field, for the answers on the hot path of `POST /api/v1/calls`.
///
/// Foundation's `JSONEncoder` builds a tree of boxed values, sorts each object's keys and formats each date through
/// a closure: encoding the 202's call resource took a third of the CPU of the gateway's baseline route in a profile.
/// Writing the bytes directly keeps the wire conventions (snake_case keys in sorted order, RFC 3339 timestamps with
/// milliseconds, explicit nulls, unescaped slashes) at a fraction of that. Callers write keys in sorted order; the
/// tests hold the output to fixtures `JSONEncoder` wrote with the wire conventions.
struct JSONTextWriter {
    /// The text written so far.
    private(set) var bytes: [UInt8] = []
    /// Whether the last thing written was a value (or a closed object or array), so that a comma comes next.
    private var afterValue = false

    init(capacity: Int = 1024) {
        bytes.reserveCapacity(capacity)
    }

    mutating func beginObject() { open(UInt8(ascii: "{")) }
    mutating func endObject() { close(UInt8(ascii: "}")) }
    mutating func beginArray() { open(UInt8(ascii: "[")) }
    mutating func endArray() { close(UInt8(ascii: "]")) }

    /// A member's key; its value comes next.
    mutating func key(_ key: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        key.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
        afterValue = false
    }

    mutating func string(_ value: String?) {
        guard let value else { return null() }
        separate()
        Self.appendQuoted(value, to: &bytes)
        afterValue = true
    }

    mutating func int(_ value: Int?) {
        guard let value else { return null() }
        literal(String(value))
    }

    mutating func bool(_ value: Bool?) {
        guard let value else { return null() }
        literal(value ? "true" : "false")
    }

    /// A timestamp in the wire format (`2026-11-26T18:59:58.449Z`).
    mutating func date(_ value: Date?) {
        string(value.map(WireCoding.formatTimestamp))
    }

    mutating func null() {
        literal("null")
    }

    /// JSON text made elsewhere (a rare nested value encoded by `JSONEncoder`).
    mutating func raw(_ json: [UInt8]) {
        separate()
        bytes.append(contentsOf: json)
        afterValue = true
    }

    /// A member: its key, then its value (`null` when nil).
    mutating func field(_ name: StaticString, _ value: String?) {
        key(name)
        string(value)
    }

    mutating func field(_ name: StaticString, _ value: Int?) {
        key(name)
        int(value)
    }

    mutating func field(_ name: StaticString, _ value: Bool?) {
        key(name)
        bool(value)
    }

    mutating func field(_ name: StaticString, _ value: Date?) {
        key(name)
        date(value)
    }

    mutating func field(_ name: StaticString, _ value: (some JSONTextWritable)?) throws {
        key(name)
        guard let value else { return null() }
        try value.write(to: &self)
    }

    /// A client's JSON value, object keys in code point order.
    mutating func value(_ value: JSONValue) {
        switch value {
        case .null: null()
        case .bool(let flag): bool(flag)
        case .string(let text): string(text)
        case .number(let number):
            // Whole numbers as integers, as JSONEncoder writes them; others in Swift's shortest round-trip form.
            if number == number.rounded(), abs(number) < 9_007_199_254_740_992 {
                literal(String(Int64(number)))
            } else {
                literal("\(number)")
            }
        case .array(let elements):
            beginArray()
            for element in elements { self.value(element) }
            endArray()
        case .object(let members):
            object(members) { writer, member in writer.value(member) }
        }
    }

    /// An object of client-chosen keys (variables, metadata), keys in code point order.
    mutating func object<Value>(_ members: [String: Value], _ write: (inout JSONTextWriter, Value) -> Void) {
        beginObject()
        for (key, member) in members.sorted(by: { $0.key < $1.key }) {
            string(key)
            bytes.append(UInt8(ascii: ":"))
            afterValue = false
            write(&self, member)
        }
        endObject()
    }

    private mutating func open(_ bracket: UInt8) {
        separate()
        bytes.append(bracket)
        afterValue = false
    }

    private mutating func close(_ bracket: UInt8) {
        bytes.append(bracket)
        afterValue = true
    }

    /// A number, `true`, `false` or `null`.
    private mutating func literal(_ text: String) {
        separate()
        bytes.append(contentsOf: text.utf8)
        afterValue = true
    }

    /// A comma between two members of an object or two elements of an array.
    private mutating func separate() {
        if afterValue { bytes.append(UInt8(ascii: ",")) }
    }

    /// `value` as a JSON string: quotes, backslashes and control characters escaped as JSONEncoder escapes them,
    /// everything else (slashes and non-ASCII included) as is.
    private static func appendQuoted(_ value: String, to bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x08: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x0C: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case 0x00..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
