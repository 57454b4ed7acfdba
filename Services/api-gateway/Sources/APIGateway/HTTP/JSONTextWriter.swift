import CallDomain
import Foundation

/// JSON text written field by field, for the answers on the hot path of `POST /api/v1/calls`.
///
/// Foundation's `JSONEncoder` builds a tree of boxed values, sorts each object's keys and formats each date through
/// a closure: encoding the 202's call resource took a third of the CPU of the gateway's baseline route in a profile.
/// Writing the bytes directly keeps the wire conventions (snake_case keys in sorted order, RFC 3339 timestamps with
/// milliseconds, explicit nulls, unescaped slashes) at a fraction of that. Callers write keys in sorted order; the
/// tests hold the output to `JSONEncoder`'s for the same value.
struct JSONTextWriter {
    /// The text written so far.
    private(set) var bytes: [UInt8] = []
    /// Whether the innermost open object or array has had a member yet (a comma goes before every later one).
    private var hasMembers: [Bool] = []

    init(capacity: Int = 1024) {
        bytes.reserveCapacity(capacity)
    }

    mutating func beginObject() {
        separate()
        bytes.append(UInt8(ascii: "{"))
        hasMembers.append(false)
    }

    mutating func endObject() {
        hasMembers.removeLast()
        bytes.append(UInt8(ascii: "}"))
    }

    mutating func beginArray() {
        separate()
        bytes.append(UInt8(ascii: "["))
        hasMembers.append(false)
    }

    mutating func endArray() {
        hasMembers.removeLast()
        bytes.append(UInt8(ascii: "]"))
    }

    /// A member's key; its value comes next.
    mutating func key(_ key: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        key.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
        // The value that follows is not another member.
        hasMembers[hasMembers.count - 1] = false
    }

    mutating func string(_ value: String?) {
        guard let value else { return null() }
        separate()
        Self.appendQuoted(value, to: &bytes)
    }

    mutating func int(_ value: Int?) {
        guard let value else { return null() }
        separate()
        bytes.append(contentsOf: String(value).utf8)
    }

    mutating func bool(_ value: Bool?) {
        guard let value else { return null() }
        separate()
        bytes.append(contentsOf: (value ? "true" : "false").utf8)
    }

    /// A timestamp in the wire format (`2026-11-26T18:59:58.449Z`).
    mutating func date(_ value: Date?) {
        string(value.map(WireCoding.formatTimestamp))
    }

    mutating func null() {
        separate()
        bytes.append(contentsOf: "null".utf8)
    }

    /// JSON text made elsewhere (a rare nested value encoded by `JSONEncoder`).
    mutating func raw(_ json: [UInt8]) {
        separate()
        bytes.append(contentsOf: json)
    }

    /// A client's JSON value, object keys in code point order.
    mutating func value(_ value: JSONValue) {
        switch value {
        case .null: null()
        case .bool(let flag): bool(flag)
        case .string(let text): string(text)
        case .number(let number):
            separate()
            // Whole numbers as integers, as JSONEncoder writes them; others in Swift's shortest round-trip form.
            if number == number.rounded(), abs(number) < 9_007_199_254_740_992 {
                bytes.append(contentsOf: String(Int64(number)).utf8)
            } else {
                bytes.append(contentsOf: "\(number)".utf8)
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
            separate()
            Self.appendQuoted(key, to: &bytes)
            bytes.append(UInt8(ascii: ":"))
            hasMembers[hasMembers.count - 1] = false
            write(&self, member)
        }
        endObject()
    }

    /// A comma before every member but the first of its object or array.
    private mutating func separate() {
        guard let last = hasMembers.indices.last else { return }
        if hasMembers[last] { bytes.append(UInt8(ascii: ",")) }
        hasMembers[last] = true
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
