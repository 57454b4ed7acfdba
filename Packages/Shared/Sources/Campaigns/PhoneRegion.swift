/// The country a contact list's national numbers belong to: its ISO 3166-1 alpha-2 code, its country calling code
/// and its trunk prefix (the digits dialled before a national number inside the country, such as the `0` of
/// `020 7946 0018`).
///
/// Encoded as its ISO code (`"GB"`).
public struct PhoneRegion: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The ISO 3166-1 alpha-2 code, upper case.
    public let isoCode: String
    /// The ITU country calling code.
    public let callingCode: Int
    /// The national trunk prefix, or `nil` where numbers are dialled the same inside the country as after the code
    /// (Italy, Spain, the North American Numbering Plan).
    public let trunkPrefix: String?

    /// The United States.
    public static let us = PhoneRegion(unchecked: "US", 1, nil)

    /// The region with this ISO 3166-1 alpha-2 code (any case); `nil` for a code this table does not know.
    public init?(isoCode: String) {
        guard let region = Self.table[isoCode.uppercased()] else { return nil }
        self = region
    }

    private init(unchecked isoCode: String, _ callingCode: Int, _ trunkPrefix: String?) {
        self.isoCode = isoCode
        self.callingCode = callingCode
        self.trunkPrefix = trunkPrefix
    }

    public var description: String { isoCode }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let code = try container.decode(String.self)
        guard let region = PhoneRegion(isoCode: code) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "\"\(code.prefix(10))\" is not a region this service knows")
        }
        self = region
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(isoCode)
    }

    /// Every region this type knows.
    public static var all: [PhoneRegion] { table.values.sorted { $0.isoCode < $1.isoCode } }

    /// Whether the countries using `callingCode` write national numbers with a trunk prefix `0`, which means no
    /// number after that code can start with 0.
    static func trunkPrefixIsZero(callingCode: Int) -> Bool {
        zeroTrunkCodes.contains(callingCode)
    }

    private static let zeroTrunkCodes: Set<Int> = {
        let byCode = Dictionary(grouping: table.values, by: \.callingCode)
        return Set(byCode.filter { $0.value.allSatisfy { $0.trunkPrefix == "0" } }.keys)
    }()

    private static let table: [String: PhoneRegion] = {
        var table: [String: PhoneRegion] = [:]
        for (iso, code, trunk) in entries {
            table[iso] = PhoneRegion(unchecked: iso, code, trunk)
        }
        return table
    }()

    /// ISO code, calling code, trunk prefix.
    private static let entries: [(String, Int, String?)] = [
        // North American Numbering Plan members: one calling code, national numbers without a trunk prefix.
        ("US", 1, nil), ("CA", 1, nil), ("PR", 1, nil), ("VI", 1, nil), ("GU", 1, nil), ("MP", 1, nil),
        ("AS", 1, nil), ("AG", 1, nil), ("AI", 1, nil), ("BB", 1, nil), ("BM", 1, nil), ("BS", 1, nil),
        ("DM", 1, nil), ("DO", 1, nil), ("GD", 1, nil), ("JM", 1, nil), ("KN", 1, nil), ("KY", 1, nil),
        ("LC", 1, nil), ("MS", 1, nil), ("SX", 1, nil), ("TC", 1, nil), ("TT", 1, nil), ("VC", 1, nil),
        ("VG", 1, nil),
        // Europe.
        ("GB", 44, "0"), ("IE", 353, "0"), ("DE", 49, "0"), ("FR", 33, "0"), ("ES", 34, nil), ("IT", 39, nil),
        ("PT", 351, nil), ("NL", 31, "0"), ("BE", 32, "0"), ("LU", 352, nil), ("CH", 41, "0"), ("AT", 43, "0"),
        ("DK", 45, nil), ("SE", 46, "0"), ("NO", 47, nil), ("FI", 358, "0"), ("IS", 354, nil), ("PL", 48, nil),
        ("CZ", 420, nil), ("SK", 421, "0"), ("HU", 36, "06"), ("RO", 40, "0"), ("BG", 359, "0"), ("GR", 30, nil),
        ("HR", 385, "0"), ("SI", 386, "0"), ("RS", 381, "0"), ("UA", 380, "0"), ("EE", 372, nil), ("LV", 371, nil),
        ("MT", 356, nil), ("CY", 357, nil), ("RU", 7, "8"), ("TR", 90, "0"),
        // Middle East and Africa.
        ("IL", 972, "0"), ("AE", 971, "0"), ("SA", 966, "0"), ("QA", 974, nil), ("KW", 965, nil), ("EG", 20, "0"),
        ("ZA", 27, "0"), ("NG", 234, "0"), ("KE", 254, "0"), ("GH", 233, "0"), ("MA", 212, "0"),
        // Asia and the Pacific.
        ("KZ", 7, "8"), ("IN", 91, "0"), ("PK", 92, "0"), ("BD", 880, "0"), ("LK", 94, "0"), ("CN", 86, "0"),
        ("HK", 852, nil), ("TW", 886, "0"), ("JP", 81, "0"), ("KR", 82, "0"), ("SG", 65, nil), ("MY", 60, "0"),
        ("TH", 66, "0"), ("VN", 84, "0"), ("PH", 63, "0"), ("ID", 62, "0"), ("AU", 61, "0"), ("NZ", 64, "0"),
        // Latin America.
        ("MX", 52, nil), ("BR", 55, "0"), ("AR", 54, "0"), ("CL", 56, nil), ("CO", 57, nil), ("PE", 51, "0"),
        ("VE", 58, "0"), ("EC", 593, "0"), ("UY", 598, nil), ("CR", 506, nil), ("PA", 507, nil), ("GT", 502, nil),
    ]
}
