/// JSON string literals written by hand, for the places that build JSON text directly because they write it
/// thousands of times per second (log lines, the ARI simulator's events).
public enum JSONStringLiteral {
    /// Appends `value` as a quoted JSON string, escaping quotes, backslashes and control characters.
    public static func append(_ value: String, to output: inout String) {
        output.append("\"")
        let plain = !value.utf8.contains { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }
        if plain {
            output.append(value)
        } else {
            for scalar in value.unicodeScalars {
                switch scalar {
                case "\"": output.append("\\\"")
                case "\\": output.append("\\\\")
                case "\n": output.append("\\n")
                case "\r": output.append("\\r")
                case "\t": output.append("\\t")
                case _ where scalar.value < 0x20:
                    let hex = String(scalar.value, radix: 16)
                    output.append("\\u" + String(repeating: "0", count: 4 - hex.count) + hex)
                default: output.unicodeScalars.append(scalar)
                }
            }
        }
        output.append("\"")
    }
}
