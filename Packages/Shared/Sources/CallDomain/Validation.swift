/// One rejected field of a request, named as the client sent it (`to`, `caller_id.name`, `variables.FOO`).
public struct FieldError: Error, Hashable, Sendable, Codable {
    /// The field's path in the request body.
    public var field: String
    /// What is wrong, in words a client developer can act on.
    public var message: String

    /// Creates a field error.
    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }
}

/// Every field error of one request at once, so a client fixes them in one round trip.
public struct ValidationFailure: Error, Hashable, Sendable {
    /// The individual errors, in the order the fields were checked.
    public var errors: [FieldError]

    /// Creates a failure from its field errors.
    public init(_ errors: [FieldError]) {
        self.errors = errors
    }
}

/// Collects field errors while a request is checked field by field.
public struct ValidationCollector: Sendable {
    /// The errors collected so far.
    public private(set) var errors: [FieldError] = []

    /// Creates an empty collector.
    public init() {}

    /// Runs one field's validation, keeping its value or recording its error.
    public mutating func check<Value>(_ body: () throws(FieldError) -> Value) -> Value? {
        do {
            return try body()
        } catch {
            errors.append(error)
            return nil
        }
    }

    /// Records an error found outside a `check`.
    public mutating func add(_ error: FieldError) {
        errors.append(error)
    }

    /// Throws every collected error at once, if there is any.
    public func finish() throws(ValidationFailure) {
        if !errors.isEmpty { throw ValidationFailure(errors) }
    }
}

/// Allow-list checks on raw bytes. Working on UTF-8 bytes, not `Character`s, means no Unicode normalisation or
/// grapheme clustering can smuggle a forbidden byte past a check: a value is accepted only when every byte is one
/// the field allows.
enum CharacterRules {
    static func isASCIIDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }
    static func isASCIILetter(_ byte: UInt8) -> Bool { (byte | 0x20) >= 0x61 && (byte | 0x20) <= 0x7A }

    /// Checks length and that every byte passes `allowed`; errors name the field and the first offending position.
    static func require(
        _ value: String,
        field: String,
        maxLength: Int,
        description: String,
        allowed: (UInt8) -> Bool
    ) throws(FieldError) {
        if value.isEmpty {
            throw FieldError(field: field, message: "must not be empty")
        }
        let bytes = Array(value.utf8)
        if bytes.count > maxLength {
            throw FieldError(field: field, message: "must be at most \(maxLength) characters")
        }
        if let index = bytes.firstIndex(where: { !allowed($0) }) {
            throw FieldError(
                field: field,
                message: "contains a character that is not allowed at position \(index + 1); allowed: \(description)"
            )
        }
    }
}
