/// Why a phone number was refused, in words the person who wrote the contact list can act on.
public struct PhoneNumberError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What is wrong with the number.
    public let message: String

    /// Creates an error with its message.
    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// A telephone number in E.164 form (`+15552345678`), parsed from the way people write numbers in contact lists.
///
/// Only numbers that can be dialled as written pass: the country calling code must be one the ITU has assigned, the
/// whole number has 8 to 15 digits, and North American numbers have the 10-digit `NXX-NXX-XXXX` shape. Letters
/// (vanity numbers, "ext. 12") are refused rather than guessed at, because a misread digit calls a stranger.
public struct PhoneNumber: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The number in E.164 form: `+`, the country calling code, the national number.
    public let e164: String
    /// The ITU country calling code (1 for the North American Numbering Plan, 44 for the United Kingdom).
    public let countryCallingCode: Int

    /// The national significant number: the digits after the country calling code, without any trunk prefix.
    public var nationalNumber: String {
        String(e164.dropFirst(1 + (countryCallingCode < 10 ? 1 : countryCallingCode < 100 ? 2 : 3)))
    }

    public var description: String { e164 }

    /// The fewest digits an E.164 number may have here, country calling code included. Shorter numbers exist (a few
    /// Pacific islands use 4-digit subscriber numbers) but in contact lists short digit strings are far more often
    /// truncated numbers, so they are refused.
    public static let minimumDigits = 8
    /// The most digits E.164 allows, country calling code included.
    public static let maximumDigits = 15

    /// Parses a number as written in a contact list.
    ///
    /// Spaces, `-`, `.`, `(` and `)` are ignored. A number is international when it starts with `+` or `00` (or `011`
    /// when `defaultRegion` is in the North American Numbering Plan); otherwise it is national to `defaultRegion`,
    /// whose trunk prefix (the `0` of `020 7946 0018`) is dropped. A North American number may also be written with
    /// its leading `1` and no `+`.
    /// - Parameters:
    ///   - raw: the number as written.
    ///   - defaultRegion: the country of numbers written without an international prefix; `nil` requires every number
    ///     to be international.
    public init(parsing raw: String, defaultRegion: PhoneRegion?) throws(PhoneNumberError) {
        let digits = try Self.digits(of: raw)
        var international: Substring
        if digits.hasPlus {
            international = digits.digits[...]
        } else if digits.digits.hasPrefix("00") {
            international = digits.digits.dropFirst(2)
        } else if defaultRegion?.callingCode == 1 && digits.digits.hasPrefix("011") {
            international = digits.digits.dropFirst(3)
        } else if let region = defaultRegion {
            international = Self.internationalDigits(national: digits.digits, region: region)[...]
        } else {
            throw PhoneNumberError(
                "has no country calling code: write it in international form, such as +44 20 7946 0018, "
                    + "or set a default region for national numbers")
        }
        if international.isEmpty {
            throw PhoneNumberError("has an international prefix but no number after it")
        }
        guard let code = CountryCallingCodes.match(international) else {
            throw PhoneNumberError(
                "does not start with an assigned country calling code (+\(international.prefix(3)) is not one)")
        }
        let codeLength = String(code).count
        if digits.hasTrunkZero && !PhoneRegion.trunkPrefixIsZero(callingCode: code) {
            throw PhoneNumberError("has a \"(0)\" trunk prefix, but numbers after +\(code) have none")
        }
        if international.dropFirst(codeLength).hasPrefix("0") && PhoneRegion.trunkPrefixIsZero(callingCode: code) {
            // "+44 020 ...": the national trunk prefix 0 is not dialled from abroad, and no national number of
            // these countries starts with it, so it can only be the national form written after the code.
            international = international.prefix(codeLength) + international.dropFirst(codeLength + 1)
        }
        try self.init(validating: international, callingCode: code)
    }

    /// Validates complete international digits whose calling code is already known to be assigned.
    private init(validating digits: Substring, callingCode: Int) throws(PhoneNumberError) {
        let national = digits.dropFirst(String(callingCode).count)
        if national.isEmpty {
            throw PhoneNumberError("has a country calling code (+\(callingCode)) but no number after it")
        }
        if digits.count < Self.minimumDigits || digits.count > Self.maximumDigits {
            throw PhoneNumberError(
                "has \(digits.count) digits; international numbers have \(Self.minimumDigits) to "
                    + "\(Self.maximumDigits) digits including the country calling code (E.164)")
        }
        if callingCode == 1 {
            try Self.validateNANP(national)
        }
        self.e164 = "+" + digits
        self.countryCallingCode = callingCode
    }

    /// North American numbers are `NXX NXX XXXX`: the area code and the exchange start with 2-9.
    private static func validateNANP(_ national: Substring) throws(PhoneNumberError) {
        guard national.count == 10 else {
            throw PhoneNumberError(
                "has \(national.count) digits after +1; North American numbers have 10 (area code, exchange, line)")
        }
        let bytes = Array(national.utf8)
        if bytes[0] < UInt8(ascii: "2") {
            throw PhoneNumberError("has area code \(national.prefix(3)); North American area codes start with 2-9")
        }
        if bytes[1] == UInt8(ascii: "1") && bytes[2] == UInt8(ascii: "1") {
            throw PhoneNumberError(
                "has area code \(national.prefix(3)), which is a service code (N11), not an area code")
        }
        if bytes[3] < UInt8(ascii: "2") {
            throw PhoneNumberError(
                "has exchange \(national.dropFirst(3).prefix(3)); North American exchanges start with 2-9")
        }
    }

    /// The digits of a national number with its region's calling code in front and its trunk prefix removed.
    private static func internationalDigits(national: String, region: PhoneRegion) -> String {
        if region.callingCode == 1 {
            // "1 555 234 5678": the NANP long-distance prefix 1 is also the country calling code.
            if national.utf8.count == 11 && national.hasPrefix("1") { return national }
            return "1" + national
        }
        var national = Substring(national)
        if let trunk = region.trunkPrefix, national.hasPrefix(trunk) {
            // Russia's and Kazakhstan's trunk prefix 8 is also the first digit of their 8xx numbers, so it is only a
            // trunk prefix in front of a complete 10-digit number.
            if trunk != "8" || national.count == 11 {
                national = national.dropFirst(trunk.count)
            }
        }
        return String(region.callingCode) + national
    }

    /// The ASCII digits of `raw`, whether it started with `+`, and whether it contained a `(0)` trunk marker.
    private static func digits(
        of raw: String
    ) throws(PhoneNumberError) -> (
        digits: String, hasPlus: Bool, hasTrunkZero: Bool
    ) {
        let scalars = Array(raw.unicodeScalars)
        if scalars.allSatisfy({ $0.properties.isWhitespace }) {
            throw PhoneNumberError("is empty")
        }
        if scalars.count > 64 {
            throw PhoneNumberError("is too long (\(scalars.count) characters) to be a phone number")
        }
        var digits = ""
        var hasPlus = false
        var hasTrunkZero = false
        var index = 0
        while index < scalars.count {
            let scalar = scalars[index]
            let position = index + 1
            switch scalar {
            case "0"..."9":
                digits.unicodeScalars.append(scalar)
            case " ", "\t", "-", ".", "(", ")", "\u{00A0}":
                if scalar == "(", digits.isEmpty == false, hasPlus, index + 2 < scalars.count,
                    scalars[index + 1] == "0", scalars[index + 2] == ")"
                {
                    hasTrunkZero = true
                    index += 3
                    continue
                }
            case "+":
                if hasPlus || !digits.isEmpty {
                    throw PhoneNumberError("has a '+' at position \(position); '+' may only start the number")
                }
                hasPlus = true
            default:
                if scalar.properties.isAlphabetic {
                    throw PhoneNumberError(
                        "contains the letter '\(Character(scalar))' at position \(position); write the number in "
                            + "digits only (no letters, vanity numbers or extensions)")
                }
                throw PhoneNumberError(
                    "contains a character that is not allowed at position \(position) "
                        + "(U+\(String(scalar.value, radix: 16, uppercase: true))); allowed: digits 0-9, spaces, "
                        + "'-', '.', '(', ')' and a leading '+'")
            }
            index += 1
        }
        if digits.isEmpty {
            throw PhoneNumberError("has no digits")
        }
        return (digits, hasPlus, hasTrunkZero)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard text.hasPrefix("+") else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "a phone number must be in E.164 form (+15552345678)")
        }
        do {
            try self.init(parsing: text, defaultRegion: nil)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "phone number \(error.message)")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(e164)
    }
}
