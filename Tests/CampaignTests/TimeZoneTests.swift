import Campaigns
import Foundation
import Testing

@Suite struct TimeZoneTests {
    private func zone(_ raw: String) throws -> String? {
        ContactTimeZone.derive(for: try PhoneNumber(parsing: raw, defaultRegion: nil))?.identifier
    }

    @Test("every identifier in the tables is known to this platform's Foundation")
    func identifiersExist() {
        let identifiers = ContactTimeZone.allIdentifiers
        #expect(identifiers.count > 150)
        for identifier in identifiers.sorted() {
            #expect(TimeZone(identifier: identifier) != nil, "unknown zone \(identifier)")
        }
    }

    static let northAmerica: [(String, String)] = [
        ("+1 212 555 0100", "America/New_York"), ("+1 312 555 0100", "America/Chicago"),
        ("+1 303 555 0100", "America/Denver"), ("+1 602 555 0100", "America/Phoenix"),
        ("+1 415 555 0100", "America/Los_Angeles"), ("+1 907 555 0100", "America/Anchorage"),
        ("+1 808 555 0100", "Pacific/Honolulu"), ("+1 416 555 0100", "America/Toronto"),
        ("+1 604 555 0100", "America/Vancouver"), ("+1 787 555 0100", "America/Puerto_Rico"),
        ("+1 514 555 0100", "America/Toronto"), ("+1 403 555 0100", "America/Edmonton"),
        ("+1 306 555 0100", "America/Regina"), ("+1 709 555 0100", "America/St_Johns"),
        ("+1 902 555 0100", "America/Halifax"), ("+1 313 555 0100", "America/Detroit"),
        ("+1 317 555 0100", "America/Indiana/Indianapolis"), ("+1 915 555 0100", "America/Denver"),
        ("+1 208 555 0100", "America/Boise"), ("+1 876 555 0100", "America/Jamaica"),
        ("+1 809 555 0100", "America/Santo_Domingo"), ("+1 671 555 0100", "Pacific/Guam"),
        ("+1 441 555 0100", "Atlantic/Bermuda"), ("+1 850 555 0100", "America/Chicago"),
    ]

    @Test("North American numbers by area code", arguments: northAmerica)
    func areaCodes(_ raw: String, _ expected: String) throws {
        #expect(try zone(raw) == expected)
    }

    @Test("unknown and non-geographic area codes give nil")
    func unknownAreaCodes() throws {
        for raw in ["+1 555 234 5678", "+1 800 234 5678", "+1 888 234 5678", "+1 900 234 5678", "+1 500 234 5678"] {
            #expect(try zone(raw) == nil, "\(raw)")
        }
    }

    @Test("the area code table covers every state and province")
    func areaCodeCoverage() {
        let codes = ContactTimeZone.knownAreaCodes
        #expect(codes.count >= 400)
        // One area code of each US state, DC and each Canadian province and territory.
        let sample = [
            205, 907, 602, 501, 213, 303, 203, 302, 202, 305, 404, 808, 208, 312, 317, 319, 316, 502, 504, 207, 301,
            617, 313, 612, 601, 314, 406, 402, 702, 603, 201, 505, 212, 704, 701, 216, 405, 503, 215, 401, 803, 605,
            615, 214, 801, 802, 703, 206, 304, 414, 307, 403, 604, 204, 506, 709, 902, 416, 418, 306, 867,
        ]
        #expect(sample.filter { !codes.contains($0) } == [])
    }

    static let countries: [(String, String)] = [
        ("+44 20 7946 0018", "Europe/London"), ("+49 30 1234567", "Europe/Berlin"),
        ("+33 1 23 45 67 89", "Europe/Paris"), ("+91 98765 43210", "Asia/Kolkata"),
        ("+81 3 1234 5678", "Asia/Tokyo"), ("+86 10 1234 5678", "Asia/Shanghai"),
        ("+27 21 123 4567", "Africa/Johannesburg"), ("+234 803 123 4567", "Africa/Lagos"),
        ("+353 1 234 5678", "Europe/Dublin"), ("+977 1 4123456", "Asia/Kathmandu"),
        ("+39 06 6988 0000", "Europe/Rome"), ("+65 6123 4567", "Asia/Singapore"),
    ]

    @Test("single-zone countries by calling code", arguments: countries)
    func countriesByCode(_ raw: String, _ expected: String) throws {
        #expect(try zone(raw) == expected)
    }

    @Test("codes spanning several zones or shared by several territories give nil")
    func ambiguousCodes() throws {
        let ambiguous = [
            "+7 495 123 45 67", "+55 11 91234 5678", "+61 2 9374 4000", "+52 55 1234 5678", "+62 21 1234 5678",
            "+34 912 345 678", "+351 212 345 678", "+64 9 123 4567", "+56 2 2123 4567", "+590 590 12 34 56",
            "+800 1234 5678",
        ]
        for raw in ambiguous {
            #expect(try zone(raw) == nil, "\(raw)")
        }
    }
}
