import Campaigns
import Foundation
import Testing

@Suite struct PhoneNumberTests {
    static let gb = PhoneRegion(isoCode: "GB")
    static let de = PhoneRegion(isoCode: "DE")
    static let fr = PhoneRegion(isoCode: "FR")
    static let au = PhoneRegion(isoCode: "AU")
    static let it = PhoneRegion(isoCode: "IT")
    static let ru = PhoneRegion(isoCode: "RU")
    static let hu = PhoneRegion(isoCode: "HU")

    static let accepted: [(String, PhoneRegion?, String)] = [
        ("+15552345678", nil, "+15552345678"),
        ("+1 (555) 234-5678", nil, "+15552345678"),
        ("(555) 234-5678", .us, "+15552345678"),
        ("1 555 234 5678", .us, "+15552345678"),
        ("555.234.5678", .us, "+15552345678"),
        ("  555 234 5678  ", .us, "+15552345678"),
        ("011 44 20 7946 0018", .us, "+442079460018"),
        ("0044 20 7946 0018", .us, "+442079460018"),
        ("00 44 20 7946 0018", gb, "+442079460018"),
        ("020 7946 0018", gb, "+442079460018"),
        ("+44 (0)20 7946 0018", nil, "+442079460018"),
        ("+44 020 7946 0018", nil, "+442079460018"),
        ("+44 20 7946 0018", de, "+442079460018"),
        ("030 123456", de, "+4930123456"),
        ("01 23 45 67 89", fr, "+33123456789"),
        ("06.12.34.56.78", fr, "+33612345678"),
        ("(02) 9374 4000", au, "+61293744000"),
        ("06 6988 0000", it, "+390669880000"),
        ("+39 06 6988 0000", nil, "+390669880000"),
        ("8 495 123-45-67", ru, "+74951234567"),
        ("800 123 45 67", ru, "+78001234567"),
        ("06 1 234 5678", hu, "+3612345678"),
        ("+91 98765 43210", nil, "+919876543210"),
        ("+353 1 234 5678", nil, "+35312345678"),
        ("+880 1712-345678", nil, "+8801712345678"),
        ("+290 22 222", nil, "+29022222"),
    ]

    @Test("accepted numbers and their E.164 form", arguments: accepted)
    func accepts(_ raw: String, _ region: PhoneRegion?, _ expected: String) throws {
        let number = try PhoneNumber(parsing: raw, defaultRegion: region)
        #expect(number.e164 == expected)
        #expect(number.description == expected)
    }

    @Test("calling code and national number are split by the ITU table")
    func parts() throws {
        let us = try PhoneNumber(parsing: "(555) 234-5678", defaultRegion: .us)
        #expect(us.countryCallingCode == 1)
        #expect(us.nationalNumber == "5552345678")
        let ireland = try PhoneNumber(parsing: "+353 1 234 5678", defaultRegion: nil)
        #expect(ireland.countryCallingCode == 353)
        #expect(ireland.nationalNumber == "12345678")
        let uk = try PhoneNumber(parsing: "020 7946 0018", defaultRegion: Self.gb)
        #expect(uk.countryCallingCode == 44)
        #expect(uk.nationalNumber == "2079460018")
        let russia = try PhoneNumber(parsing: "+7 495 123 45 67", defaultRegion: nil)
        #expect(russia.countryCallingCode == 7)
    }

    static let refused: [(String, PhoneRegion?, String)] = [
        ("", .us, "is empty"),
        ("   ", .us, "is empty"),
        (
            "1-800-FLOWERS", .us,
            "contains the letter 'F' at position 7; write the number in digits only (no letters, vanity numbers or "
                + "extensions)"
        ),
        (
            "+1 555 234 5678 ext 12", nil,
            "contains the letter 'e' at position 17; write the number in digits only (no letters, vanity numbers or "
                + "extensions)"
        ),
        (
            "555-234-5678#", .us,
            "contains a character that is not allowed at position 13 (U+23); allowed: digits 0-9, spaces, '-', '.', "
                + "'(', ')' and a leading '+'"
        ),
        (
            "+٤٤ ٢٠", nil,
            "contains a character that is not allowed at position 2 (U+664); allowed: digits 0-9, spaces, '-', '.', "
                + "'(', ')' and a leading '+'"
        ),
        ("+44+20 7946 0018", nil, "has a '+' at position 4; '+' may only start the number"),
        ("44 20 +7946", nil, "has a '+' at position 7; '+' may only start the number"),
        ("+", nil, "has no digits"),
        ("00", nil, "has an international prefix but no number after it"),
        (
            "5552345678", nil,
            "has no country calling code: write it in international form, such as +44 20 7946 0018, or set a default "
                + "region for national numbers"
        ),
        ("+999 123 4567", nil, "does not start with an assigned country calling code (+999 is not one)"),
        ("+28 123 4567 890", nil, "does not start with an assigned country calling code (+281 is not one)"),
        ("+44", nil, "has a country calling code (+44) but no number after it"),
        (
            "+44 20 79", nil,
            "has 6 digits; international numbers have 8 to 15 digits including the country calling code (E.164)"
        ),
        (
            "+44 1234 5678 9012 34", nil,
            "has 16 digits; international numbers have 8 to 15 digits including the country calling code (E.164)"
        ),
        (
            "+1 555 234 567", nil,
            "has 9 digits after +1; North American numbers have 10 (area code, exchange, line)"
        ),
        ("555 234 56789", .us, "has 11 digits after +1; North American numbers have 10 (area code, exchange, line)"),
        ("+1 155 234 5678", nil, "has area code 155; North American area codes start with 2-9"),
        ("+1 555 134 5678", nil, "has exchange 134; North American exchanges start with 2-9"),
        ("+1 911 234 5678", nil, "has area code 911, which is a service code (N11), not an area code"),
        ("+1 (0) 555 234 5678", nil, "has a \"(0)\" trunk prefix, but numbers after +1 have none"),
    ]

    @Test("refused numbers and their messages", arguments: refused)
    func refuses(_ raw: String, _ region: PhoneRegion?, _ message: String) {
        #expect(throws: PhoneNumberError(message)) {
            try PhoneNumber(parsing: raw, defaultRegion: region)
        }
    }

    @Test("an overlong input is refused before it is scanned")
    func overlong() {
        let raw = String(repeating: "1", count: 65)
        #expect(throws: PhoneNumberError("is too long (65 characters) to be a phone number")) {
            try PhoneNumber(parsing: raw, defaultRegion: .us)
        }
    }

    @Test("every form of one number is the same value")
    func equality() throws {
        let forms = ["+1 555 234 5678", "(555) 234-5678", "1.555.234.5678", "011 1 555 234 5678"]
        let numbers = try forms.map { try PhoneNumber(parsing: $0, defaultRegion: .us) }
        #expect(Set(numbers).count == 1)
    }

    @Test("Codable as the E.164 string; decoding requires a +")
    func codable() throws {
        let number = try PhoneNumber(parsing: "020 7946 0018", defaultRegion: Self.gb)
        let data = try JSONEncoder().encode([number])
        #expect(String(decoding: data, as: UTF8.self) == #"["+442079460018"]"#)
        #expect(try JSONDecoder().decode([PhoneNumber].self, from: data) == [number])
        #expect(try JSONDecoder().decode(PhoneNumber.self, from: Data(#""+44 20 7946 0018""#.utf8)) == number)
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(PhoneNumber.self, from: Data(#""02079460018""#.utf8))
        }
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(PhoneNumber.self, from: Data(#""+1 555 CALL NOW""#.utf8))
        }
    }

    @Test("error description is its message")
    func errorDescription() {
        #expect(PhoneNumberError("is empty").description == "is empty")
    }
}

@Suite struct PhoneRegionTests {
    @Test("regions by ISO code, any case")
    func lookup() throws {
        let gb = try #require(PhoneRegion(isoCode: "gb"))
        #expect(gb.isoCode == "GB")
        #expect(gb.callingCode == 44)
        #expect(gb.trunkPrefix == "0")
        #expect(PhoneRegion(isoCode: "IT")?.trunkPrefix == nil)
        #expect(PhoneRegion(isoCode: "US") == .us)
        #expect(PhoneRegion.us.callingCode == 1)
        #expect(PhoneRegion.us.trunkPrefix == nil)
        #expect(PhoneRegion(isoCode: "XX") == nil)
        #expect(PhoneRegion(isoCode: "") == nil)
        #expect(PhoneRegion(isoCode: "GBR") == nil)
    }

    @Test("every NANP member maps to calling code 1")
    func nanpMembers() {
        let members = [
            "US", "CA", "PR", "VI", "GU", "MP", "AS", "AG", "AI", "BB", "BM", "BS", "DM", "DO", "GD", "JM", "KN", "KY",
            "LC", "MS", "SX", "TC", "TT", "VC", "VG",
        ]
        for iso in members {
            #expect(PhoneRegion(isoCode: iso)?.callingCode == 1, "\(iso)")
        }
    }

    @Test("at least 60 countries are known")
    func coverage() {
        #expect(PhoneRegion.all.count >= 60)
        for iso in ["DE", "FR", "ES", "IN", "JP", "BR", "MX", "AU", "ZA", "NG", "CN", "RU", "KZ", "NZ", "SG", "AE"] {
            #expect(PhoneRegion(isoCode: iso) != nil, "\(iso)")
        }
    }

    @Test("Codable as the ISO code")
    func codable() throws {
        let data = try JSONEncoder().encode([PhoneRegion.us])
        #expect(String(decoding: data, as: UTF8.self) == #"["US"]"#)
        #expect(
            try JSONDecoder().decode([PhoneRegion].self, from: Data(#"["de"]"#.utf8)) == [PhoneRegion(isoCode: "DE")])
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(PhoneRegion.self, from: Data(#""ZZ""#.utf8))
        }
    }
}
