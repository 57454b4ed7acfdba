import Foundation
import ServiceSupport

/// Small, allocation-light JSON text building: events are written thousands of times per second.
enum JSONText {
    /// Appends `value` as a JSON string literal.
    static func appendString(_ value: String, to output: inout String) {
        JSONStringLiteral.append(value, to: &output)
    }

    /// `"key":` followed by a string value.
    static func appendField(_ key: String, _ value: String, to output: inout String) {
        output.append("\"")
        output.append(key)
        output.append("\":")
        appendString(value, to: &output)
    }

    /// `{"message": text}`: Asterisk's error body.
    static func message(_ text: String) -> String {
        var output = "{"
        appendField("message", text, to: &output)
        output.append("}")
        return output
    }
}

/// Query strings as Asterisk reads them: `+` is a space, `%XX` escapes are decoded.
enum QueryString {
    /// Decodes `a=1&b=x+y` into pairs (later duplicates win when turned into a dictionary).
    static func parse(_ query: String?) -> [String: String] {
        guard let query, !query.isEmpty else { return [:] }
        var result: [String: String] = [:]
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = decode(parts[0])
            let value = parts.count > 1 ? decode(parts[1]) : ""
            result[key] = value
        }
        return result
    }

    /// Decodes one component.
    static func decode(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = Array(text.utf8)[...]
        while let byte = iterator.popFirst() {
            if byte == UInt8(ascii: "+") {
                bytes.append(UInt8(ascii: " "))
            } else if byte == UInt8(ascii: "%"), iterator.count >= 2,
                let high = hexValue(iterator[iterator.startIndex]),
                let low = hexValue(iterator[iterator.startIndex + 1])
            {
                bytes.append(high << 4 | low)
                iterator.removeFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Decodes a path segment (`%XX` only; `+` is literal in paths).
    static func decodePath(_ text: Substring) -> String {
        guard text.contains("%") else { return String(text) }
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8)[...]
        while let byte = iterator.popFirst() {
            if byte == UInt8(ascii: "%"), iterator.count >= 2,
                let high = hexValue(iterator[iterator.startIndex]),
                let low = hexValue(iterator[iterator.startIndex + 1])
            {
                bytes.append(high << 4 | low)
                iterator.removeFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// Wall-clock timestamps in Asterisk's format: `2026-11-26T18:59:58.449+0000`.
enum AsteriskClock {
    /// Now, formatted.
    static func now() -> String {
        format(millisecondsSinceEpoch: Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)))
    }

    /// Formats milliseconds since 1970 in UTC.
    static func format(millisecondsSinceEpoch milliseconds: Int64) -> String {
        let days = milliseconds / 86_400_000
        let millisecondOfDay = milliseconds % 86_400_000
        let shifted = days + 719_468
        let era = shifted / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthPrime = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthPrime + 2) / 5 + 1
        let month = monthPrime < 10 ? monthPrime + 3 : monthPrime - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        var output = ""
        output.reserveCapacity(28)
        pad(&output, year, 4)
        output.append("-")
        pad(&output, month, 2)
        output.append("-")
        pad(&output, day, 2)
        output.append("T")
        pad(&output, millisecondOfDay / 3_600_000, 2)
        output.append(":")
        pad(&output, millisecondOfDay / 60_000 % 60, 2)
        output.append(":")
        pad(&output, millisecondOfDay / 1000 % 60, 2)
        output.append(".")
        pad(&output, millisecondOfDay % 1000, 3)
        output.append("+0000")
        return output
    }

    private static func pad(_ output: inout String, _ value: Int64, _ width: Int) {
        let digits = String(value)
        if digits.count < width { output.append(String(repeating: "0", count: width - digits.count)) }
        output.append(digits)
    }
}
