import Foundation

/// A value that writes its own JSON text, with the wire conventions (``WireCoding``), without `JSONEncoder`.
///
/// ``WireCoding/encode(_:)`` and ``WireCoding/encodeText(_:)`` use it when a value has it. Its output must be the
/// bytes `WireCoding.encoder` writes for the same value: the tests hold every conformance to that, on generated values.
public protocol JSONTextWritable {
    /// Writes the value at the writer's position.
    func write(to json: inout JSONTextWriter) throws
}

extension JSONTextWritable {
    /// The value as JSON text.
    public func jsonBytes() throws -> [UInt8] {
        var json = JSONTextWriter()
        try write(to: &json)
        return json.bytes
    }
}

/// JSON text written field by field, for the messages and answers every call goes through.
///
/// Foundation's `JSONEncoder` builds a tree of boxed values, sorts each object's keys and formats each date through
/// a closure: encoding the 202's call resource took a third of the CPU of the gateway's baseline route in a profile,
/// and an originate command or a status event 18 µs each. Writing the bytes directly keeps the wire conventions
/// (snake_case keys in sorted order, RFC 3339 timestamps with milliseconds, unescaped slashes) at a fraction of that.
/// Callers write keys in sorted order; the tests hold the output to what `JSONEncoder` writes.
public struct JSONTextWriter {
    /// The text written so far.
    public private(set) var bytes: [UInt8] = []
    /// Whether the last thing written was a value (or a closed object or array), so that a comma comes next.
    private var afterValue = false

    /// An empty text with room for `capacity` bytes.
    public init(capacity: Int = 1024) {
        bytes.reserveCapacity(capacity)
    }

    /// `{`: members (``key(_:)`` then a value) follow until ``endObject()``.
    public mutating func beginObject() { open(UInt8(ascii: "{")) }
    /// `}`.
    public mutating func endObject() { close(UInt8(ascii: "}")) }
    /// `[`: values follow until ``endArray()``.
    public mutating func beginArray() { open(UInt8(ascii: "[")) }
    /// `]`.
    public mutating func endArray() { close(UInt8(ascii: "]")) }

    /// A member's key; its value comes next.
    public mutating func key(_ key: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        key.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
        afterValue = false
    }

    /// A string (`null` when nil).
    public mutating func string(_ value: String?) {
        guard let value else { return null() }
        separate()
        Self.appendQuoted(value, to: &bytes)
        afterValue = true
    }

    /// An integer (`null` when nil).
    public mutating func int(_ value: Int?) {
        guard let value else { return null() }
        literal(String(value))
    }

    /// `true` or `false` (`null` when nil).
    public mutating func bool(_ value: Bool?) {
        guard let value else { return null() }
        literal(value ? "true" : "false")
    }

    /// A timestamp in the wire format (`2026-11-26T18:59:58.449Z`).
    public mutating func date(_ value: Date?) {
        string(value.map(WireCoding.formatTimestamp))
    }

    /// `null`.
    public mutating func null() {
        literal("null")
    }

    /// A member: its key, then its value (`null` when nil).
    public mutating func field(_ name: StaticString, _ value: String?) {
        key(name)
        string(value)
    }

    /// A member: its key, then its value (`null` when nil).
    public mutating func field(_ name: StaticString, _ value: Int?) {
        key(name)
        int(value)
    }

    /// A member: its key, then its value (`null` when nil).
    public mutating func field(_ name: StaticString, _ value: Bool?) {
        key(name)
        bool(value)
    }

    /// A member: its key, then its value (`null` when nil).
    public mutating func field(_ name: StaticString, _ value: Date?) {
        key(name)
        date(value)
    }

    /// A member: its key, then its value (`null` when nil).
    public mutating func field(_ name: StaticString, _ value: Double?) {
        key(name)
        number(value)
    }

    /// A member: its key, then its value (`null` when nil).
    public mutating func field(_ name: StaticString, _ value: (some JSONTextWritable)?) throws {
        key(name)
        guard let value else { return null() }
        try value.write(to: &self)
    }

    /// A number as `JSONEncoder` writes a `Double`: Swift's shortest round-trip form without a trailing `.0`
    /// (`3`, `0.25`, `1e-07`, `-0`; `null` when nil).
    public mutating func number(_ value: Double?) {
        guard let value else { return null() }
        let text = value.description
        literal(text.hasSuffix(".0") ? String(text.dropLast(2)) : text)
    }

    /// A client's JSON value, object keys in code point order.
    public mutating func value(_ value: JSONValue) {
        switch value {
        case .null: null()
        case .bool(let flag): bool(flag)
        case .string(let text): string(text)
        case .number(let number): self.number(number)
        case .array(let elements):
            beginArray()
            for element in elements { self.value(element) }
            endArray()
        case .object(let members):
            object(members) { writer, member in writer.value(member) }
        }
    }

    /// An object of client-chosen keys (variables, metadata), keys in code point order.
    public mutating func object<Value>(_ members: [String: Value], _ write: (inout JSONTextWriter, Value) -> Void) {
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
            case 0x00..<0x20: bytes.append(contentsOf: "\\u00\(WireCoding.hex([byte]))".utf8)
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
