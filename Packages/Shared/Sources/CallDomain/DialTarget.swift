/// The number a call dials (`to`): an optional `+` then 3 to 20 ASCII digits.
///
/// This value is substituted into the dial endpoint (`ENDPOINT_TEMPLATE`, e.g. `PJSIP/{to}@carrier`), so anything
/// beyond digits is an injection risk: `&` adds a second leg, `/` or `@` changes the technology or the peer,
/// `,` adds Dial options. Only ASCII digits pass; other scripts' digits (which some parsers would accept) do not.
public struct DialTarget: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The validated number.
    public let value: String

    /// Validates `value` as the request field `field`.
    public init(_ value: String, field: String = "to") throws(FieldError) {
        let digits = value.hasPrefix("+") ? String(value.dropFirst()) : value
        if value.isEmpty {
            throw FieldError(field: field, message: "must not be empty")
        }
        try CharacterRules.require(
            digits,
            field: field,
            maxLength: 20,
            description: "an optional leading + followed by ASCII digits 0-9",
            allowed: CharacterRules.isASCIIDigit
        )
        if digits.utf8.count < 3 {
            throw FieldError(field: field, message: "must have at least 3 digits")
        }
        self.value = value
    }

    public var description: String { value }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        do {
            try self.init(try container.decode(String.self))
        } catch let error as FieldError {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.message)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }
}

/// The caller id presented to the callee: an optional display name and a number.
///
/// The name travels in a SIP `From` display name, so quotes, angle brackets, CR/LF and other control characters
/// (header forgery) are refused. Letters of any script are allowed, as people's names need them.
public struct CallerID: Hashable, Sendable, Codable {
    /// The display name, if any.
    public let name: String?
    /// The presented number: an optional `+` then 1 to 20 ASCII digits.
    public let number: String

    /// Validates both parts; `fieldPrefix` names them in errors (`caller_id.name`, `caller_id.number`).
    public init(name: String?, number: String, fieldPrefix: String = "caller_id") throws(ValidationFailure) {
        var collector = ValidationCollector()
        let name = collector.check { () throws(FieldError) -> String? in
            guard let name else { return nil }
            try CallerID.validateName(name, field: "\(fieldPrefix).name")
            return name
        }
        let number = collector.check { () throws(FieldError) -> String in
            let digits = number.hasPrefix("+") ? String(number.dropFirst()) : number
            if number.isEmpty { throw FieldError(field: "\(fieldPrefix).number", message: "must not be empty") }
            try CharacterRules.require(
                digits,
                field: "\(fieldPrefix).number",
                maxLength: 20,
                description: "an optional leading + followed by ASCII digits 0-9",
                allowed: CharacterRules.isASCIIDigit
            )
            return number
        }
        try collector.finish()
        self.name = name ?? nil
        self.number = number ?? ""
    }

    static func validateName(_ name: String, field: String) throws(FieldError) {
        if name.isEmpty { throw FieldError(field: field, message: "must not be empty") }
        if name.utf8.count > 80 { throw FieldError(field: field, message: "must be at most 80 bytes") }
        for scalar in name.unicodeScalars {
            let allowed: Bool
            switch scalar.value {
            case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: allowed = true
            case 0x20, 0x2D, 0x2E, 0x5F: allowed = true  // space - . _
            case 0x00...0x7F: allowed = false  // every other ASCII: quotes, <>, controls, separators
            default:
                // Beyond ASCII only letters and combining marks: no digits of other scripts, no format or
                // control characters (bidi overrides, zero-width joiners) that could disguise a header.
                let properties = scalar.properties
                allowed =
                    properties.isAlphabetic
                    || properties.generalCategory == .nonspacingMark
                    || properties.generalCategory == .spacingMark
            }
            if !allowed {
                throw FieldError(
                    field: field,
                    message:
                        "contains a character that is not allowed (U+\(String(scalar.value, radix: 16, uppercase: true))); "
                        + "allowed: letters, ASCII digits, space, '.', '-', '_'"
                )
            }
        }
    }

    /// The ARI `callerId` form: `"Name" <number>` or just the number.
    public var ariValue: String {
        if let name { return "\"\(name)\" <\(number)>" }
        return number
    }
}

/// Where an answered call is sent in the dialplan: context, extension and priority.
///
/// A client may only choose contexts the operator listed in `ALLOWED_CONTEXTS`; that check needs configuration and
/// is done by `validateContext(_:allowed:)` where the configuration is known.
public struct DialplanTarget: Hashable, Sendable, Codable {
    /// The dialplan context.
    public let context: String
    /// The extension within the context.
    public let `extension`: String
    /// The priority, 1 or more.
    public let priority: Int

    /// Validates all three parts, reporting every wrong one.
    public init(context: String, extension: String, priority: Int) throws(ValidationFailure) {
        var collector = ValidationCollector()
        _ = collector.check { () throws(FieldError) in try DialplanTarget.validateContextSyntax(context) }
        _ = collector.check { () throws(FieldError) in try DialplanTarget.validateExtension(`extension`) }
        _ = collector.check { () throws(FieldError) in try DialplanTarget.validatePriority(priority) }
        try collector.finish()
        self.context = context
        self.extension = `extension`
        self.priority = priority
    }

    /// Context names: ASCII letters, digits, `_` and `-`, 1 to 64 bytes.
    public static func validateContextSyntax(_ context: String, field: String = "context") throws(FieldError) {
        try CharacterRules.require(
            context,
            field: field,
            maxLength: 64,
            description: "ASCII letters, digits, '_' and '-'",
            allowed: { CharacterRules.isASCIILetter($0) || CharacterRules.isASCIIDigit($0) || $0 == 0x5F || $0 == 0x2D }
        )
    }

    /// A context must be well formed and one of the operator's allowed contexts.
    public static func validateContext(
        _ context: String, allowed: Set<String>, field: String = "context"
    )
        throws(FieldError)
    {
        try validateContextSyntax(context, field: field)
        guard allowed.contains(context) else {
            throw FieldError(field: field, message: "is not one of the contexts this service may send calls to")
        }
    }

    /// Extensions: ASCII letters, digits, `_`, `-`, `+`, `*`, `#`, 1 to 64 bytes.
    public static func validateExtension(_ value: String, field: String = "extension") throws(FieldError) {
        try CharacterRules.require(
            value,
            field: field,
            maxLength: 64,
            description: "ASCII letters, digits, '_', '-', '+', '*' and '#'",
            allowed: {
                CharacterRules.isASCIILetter($0) || CharacterRules.isASCIIDigit($0)
                    || [0x5F, 0x2D, 0x2B, 0x2A, 0x23].contains($0)
            }
        )
    }

    /// Priorities run from 1 to 99,999.
    public static func validatePriority(_ value: Int, field: String = "priority") throws(FieldError) {
        guard (1...99_999).contains(value) else {
            throw FieldError(field: field, message: "must be between 1 and 99999")
        }
    }
}

/// Channel variables set on the originated channel.
///
/// At most 32; names are `[A-Za-z_][A-Za-z0-9_]*` up to 64 bytes; values are printable ASCII without the
/// characters that change a dial string or a header (`&`, `,`, `/`, `@`, quotes, angle brackets, `|`, `;`,
/// backslash, `$`, braces, brackets, controls), up to 256 bytes. Dialplans often pass variables on to `Dial()`, so
/// they are held to the same standard as the number.
public struct ChannelVariables: Hashable, Sendable, Codable {
    /// The most variables one call may carry.
    public static let maximumCount = 32
    /// The validated variables.
    public let values: [String: String]

    /// Validates every name and value, reporting each wrong one as `variables.NAME`.
    public init(_ values: [String: String], field: String = "variables") throws(ValidationFailure) {
        var collector = ValidationCollector()
        if values.count > Self.maximumCount {
            collector.add(FieldError(field: field, message: "must have at most \(Self.maximumCount) entries"))
        }
        for (name, value) in values.sorted(by: { $0.key < $1.key }) {
            let path = "\(field).\(Self.printable(name))"
            _ = collector.check { () throws(FieldError) in try Self.validateName(name, field: path) }
            _ = collector.check { () throws(FieldError) in try Self.validateValue(value, field: path) }
        }
        try collector.finish()
        self.values = values
    }

    /// No variables.
    public static let empty = ChannelVariables(unchecked: [:])

    private init(unchecked values: [String: String]) {
        self.values = values
    }

    static func validateName(_ name: String, field: String) throws(FieldError) {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, CharacterRules.isASCIILetter(first) || first == 0x5F else {
            throw FieldError(field: field, message: "variable names must match [A-Za-z_][A-Za-z0-9_]*")
        }
        try CharacterRules.require(
            name,
            field: field,
            maxLength: 64,
            description: "variable names must match [A-Za-z_][A-Za-z0-9_]*",
            allowed: { CharacterRules.isASCIILetter($0) || CharacterRules.isASCIIDigit($0) || $0 == 0x5F }
        )
        let upper = name.uppercased()
        if upper.hasPrefix(Self.reservedPrefix) || Self.reservedNames.contains(upper) {
            let names = Self.reservedNames.sorted().joined(separator: ", ")
            throw FieldError(
                field: field, message: "names starting with \(Self.reservedPrefix) and \(names) are the dialer's own")
        }
    }

    /// The prefix of the variables the worker sets itself (answering machine detection's settings): a request may not
    /// set them, nor the variables `AMD()` answers in.
    public static let reservedPrefix = "DIALER_"
    static let reservedNames: Set<String> = ["AMDSTATUS", "AMDCAUSE"]

    static func validateValue(_ value: String, field: String) throws(FieldError) {
        if value.isEmpty { return }
        try CharacterRules.require(
            value,
            field: field,
            maxLength: 256,
            description: "ASCII letters, digits, space and . _ - + = : * # %",
            allowed: {
                CharacterRules.isASCIILetter($0) || CharacterRules.isASCIIDigit($0)
                    || [0x20, 0x2E, 0x5F, 0x2D, 0x2B, 0x3D, 0x3A, 0x2A, 0x23, 0x25].contains($0)
            }
        )
    }

    /// A field path must not echo control characters back into logs or responses.
    private static func printable(_ name: String) -> String {
        let cleaned = String(
            name.unicodeScalars.prefix(64).map {
                $0.isASCII && $0.value >= 0x20 && $0.value < 0x7F ? Character($0) : "?"
            })
        return cleaned
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let raw = try container.decode([String: String].self)
        do {
            try self.init(raw)
        } catch {
            throw DecodingError.dataCorruptedError(
                in: container,
                debugDescription: error.errors.map { "\($0.field) \($0.message)" }.joined(separator: "; ")
            )
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(values)
    }
}
