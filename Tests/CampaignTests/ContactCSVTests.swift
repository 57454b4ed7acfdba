import Campaigns
import Foundation
import Testing

/// Writes `contents` to a new file in the temporary directory and returns its URL.
func temporaryCSV(_ contents: String) throws -> URL {
    try temporaryCSV(bytes: Data(contents.utf8))
}

func temporaryCSV(bytes: Data) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("contacts-\(UUID().uuidString).csv")
    try bytes.write(to: url)
    return url
}

/// Reads every row of a list.
func readAll(
    _ url: URL, mapping: ContactColumnMapping = ContactColumnMapping(phone: "phone"),
    region: PhoneRegion? = nil, timeZone: TimeZone? = nil
) throws -> [ContactReadResult] {
    defer { try? FileManager.default.removeItem(at: url) }
    var reader = try ContactCSVReader(url: url, mapping: mapping, defaultRegion: region, defaultTimeZone: timeZone)
    var results: [ContactReadResult] = []
    while let result = try reader.next() {
        results.append(result)
    }
    return results
}

extension ContactReadResult {
    var contact: ContactRow? {
        if case .contact(let row) = self { return row }
        return nil
    }

    var refusal: ContactRowError? {
        if case .refused(let error) = self { return error }
        return nil
    }
}

@Suite struct ContactCSVTests {
    @Test("valid rows with derived, given and default time zones")
    func validRows() throws {
        let csv = """
            phone,name,tz
            +1 212 555 0100,Alice,
            (415) 555-0101,Bob,America/Denver
            +7 495 123 45 67,Ivan,
            020 7946 0018,Jane,  

            """
        let results = try readAll(
            try temporaryCSV(csv), mapping: ContactColumnMapping(phone: "phone", timeZone: "tz"), region: .us,
            timeZone: TimeZone(identifier: "Europe/Moscow"))
        let rows = results.compactMap(\.contact)
        #expect(rows.count == 3)
        #expect(rows.map(\.line) == [2, 3, 4])
        #expect(rows[0].phone.e164 == "+12125550100")
        #expect(rows[0].timeZone == "America/New_York")
        #expect(rows[0].fields == ["name": "Alice"])
        #expect(rows[1].timeZone == "America/Denver")
        #expect(rows[1].phone.e164 == "+14155550101")
        #expect(rows[2].timeZone == "Europe/Moscow")
        // With region US, "020 7946 0018" is not a North American number.
        let refusal = try #require(results.last?.refusal)
        #expect(refusal.line == 5)
        #expect(refusal.column == "phone")
        #expect(
            refusal.message
                == "the phone number has 11 digits after +1; North American numbers have 10 (area code, exchange, line)"
        )
        #expect(refusal.value == "020 7946 0018")
    }

    @Test("quoted fields with commas, quotes and line breaks keep line numbers right")
    func quoting() throws {
        let csv =
            "phone,name,notes\n"
            + "\"+44 20 7946 0018\",\"Smith, John\",\"line one\nline two\"\n"
            + "+49 30 1234567,\"Müller \"\"the boss\"\"\",\"a\r\nb\"\n"
            + "+33 1 23 45 67 89,Dupont,x\n"
        let rows = try readAll(try temporaryCSV(csv)).compactMap(\.contact)
        #expect(rows.map(\.line) == [2, 4, 6])
        #expect(rows[0].fields == ["name": "Smith, John", "notes": "line one\nline two"])
        #expect(rows[1].fields["name"] == "Müller \"the boss\"")
        #expect(rows[1].timeZone == "Europe/Berlin")
        #expect(rows[2].phone.e164 == "+33123456789")
        #expect(rows[2].timeZone == "Europe/Paris")
    }

    @Test("a UTF-8 BOM, CRLF line ends and empty lines")
    func bomCRLFAndEmptyLines() throws {
        let csv = "\u{FEFF}phone,name\r\n+44 20 7946 0018,A\r\n\r\n+33 1 23 45 67 89,B\r\n\r\n"
        let url = try temporaryCSV(csv)
        let reader = try ContactCSVReader(
            url: url, mapping: ContactColumnMapping(phone: "phone"), defaultRegion: nil, defaultTimeZone: nil)
        #expect(reader.header == ["phone", "name"])
        let results = try readAll(url)
        #expect(results.compactMap(\.contact).map(\.line) == [2, 4])
        #expect(results.compactMap(\.contact).map { $0.fields["name"] } == ["A", "B"])
        #expect(results.allSatisfy { $0.refusal == nil })
    }

    @Test("a BOM written twice does not break the first header name")
    func doubleBOM() throws {
        let results = try readAll(try temporaryCSV("\u{FEFF}\u{FEFF}phone\n+44 20 7946 0018\n"))
        #expect(results.compactMap(\.contact).count == 1)
    }

    @Test("duplicates within the file are refused with the first line")
    func duplicates() throws {
        let csv = """
            phone,name
            +44 20 7946 0018,A
            +33 1 23 45 67 89,B
            020 7946 0018,C
            0044 (0)20 7946-0018,D
            """
        let results = try readAll(try temporaryCSV(csv), region: PhoneRegion(isoCode: "GB"))
        #expect(results.compactMap(\.contact).map(\.line) == [2, 3])
        let refusals = results.compactMap(\.refusal)
        #expect(refusals.map(\.line) == [4, 5])
        #expect(refusals.map(\.message) == Array(repeating: "+442079460018 is a duplicate of line 2", count: 2))
        #expect(refusals[0].column == "phone")
        #expect(refusals[0].value == "020 7946 0018")
    }

    @Test("a refused row does not make its number a duplicate")
    func refusedRowIsNotSeen() throws {
        let csv = "phone,tz\n+44 20 7946 0018,Mars/Olympus\n+44 20 7946 0018,Europe/London\n"
        let results = try readAll(try temporaryCSV(csv), mapping: ContactColumnMapping(phone: "phone", timeZone: "tz"))
        #expect(results[0].refusal?.message == "\"Mars/Olympus\" is not an IANA time zone such as Europe/London")
        #expect(results[0].refusal?.column == "tz")
        #expect(results[0].refusal?.value == "Mars/Olympus")
        #expect(results[1].contact?.line == 3)
        #expect(results[1].contact?.timeZone == "Europe/London")
    }

    @Test("bad rows are refused with their line numbers and reading goes on")
    func badRows() throws {
        let long = String(repeating: "x", count: 1_001)
        let csv = """
            phone,name
            not a phone,A
            +44 20 7946 0018
            +44 20 7946 0019,B,extra
            +44 20 7946 0020,\(long)
            +44 20 7946 0021,"\(String(repeating: "y", count: 1_000))"
            +999 1234 5678,E
            ,F
            """
        let results = try readAll(try temporaryCSV(csv))
        #expect(results.count == 7)
        let refusals = results.compactMap(\.refusal)
        #expect(refusals.map(\.line) == [2, 3, 4, 5, 7, 8])
        #expect(
            refusals[0].message
                == "the phone number contains the letter 'n' at position 1; write the number in digits only (no "
                + "letters, vanity numbers or extensions)")
        #expect(refusals[0].column == "phone")
        #expect(refusals[1].message == "the row has 1 fields but the header has 2")
        #expect(refusals[1].column == nil)
        #expect(refusals[2].message == "the row has 3 fields but the header has 2")
        #expect(refusals[3].message == "the value has 1001 characters; at most 1000 are allowed")
        #expect(refusals[3].column == "name")
        #expect(refusals[3].value == String(repeating: "x", count: 100))
        #expect(
            refusals[4].message
                == "the phone number does not start with an assigned country calling code (+999 is not one)")
        #expect(refusals[5].message == "the phone number is empty")
        #expect(refusals[5].description == "line 8, column \"phone\": the phone number is empty")
        #expect(results[4].contact?.line == 6)
    }

    @Test("a number whose zone cannot be derived needs a time zone")
    func underivableZone() throws {
        let withoutColumn = try readAll(try temporaryCSV("phone\n+7 495 123 45 67\n"))
        #expect(
            withoutColumn.first?.refusal?.message
                == "the time zone cannot be derived from +74951234567: add a time_zone column")
        let withColumn = try readAll(
            try temporaryCSV("phone,zone\n+61 2 9374 4000,\n+61 8 9123 4567,Australia/Perth\n"),
            mapping: ContactColumnMapping(phone: "phone", timeZone: "zone"))
        #expect(
            withColumn.first?.refusal?.message
                == "the time zone cannot be derived from +61293744000: fill in the \"zone\" column")
        #expect(withColumn.last?.contact?.timeZone == "Australia/Perth")
    }

    @Test("the mapping chooses the custom fields")
    func fieldSelection() throws {
        let csv = "id,Phone Number,first,last,tz\n1,+44 20 7946 0018,Ada,Lovelace,Europe/London\n"
        let all = try readAll(
            try temporaryCSV(csv), mapping: ContactColumnMapping(phone: "Phone Number", timeZone: "tz"))
        #expect(all.first?.contact?.fields == ["id": "1", "first": "Ada", "last": "Lovelace"])
        let chosen = try readAll(
            try temporaryCSV(csv), mapping: ContactColumnMapping(phone: "Phone Number", fields: ["last", "id"]))
        #expect(chosen.first?.contact?.fields == ["id": "1", "last": "Lovelace"])
    }

    @Test("file-level errors name what is wrong")
    func fileErrors() throws {
        func failure(
            _ csv: String, _ mapping: ContactColumnMapping = ContactColumnMapping(phone: "phone")
        ) throws
            -> String?
        {
            let url = try temporaryCSV(csv)
            defer { try? FileManager.default.removeItem(at: url) }
            do {
                _ = try ContactCSVReader(url: url, mapping: mapping, defaultRegion: nil, defaultTimeZone: nil)
                return nil
            } catch {
                return error.message
            }
        }
        #expect(
            try failure("tel,name\n+44 20 7946 0018,A\n", ContactColumnMapping(phone: "Phone number"))
                == "the header has no column \"Phone number\"; its columns are \"tel\", \"name\"")
        #expect(
            try failure("phone,name\n", ContactColumnMapping(phone: "phone", timeZone: "time_zone"))
                == "the header has no column \"time_zone\"; its columns are \"phone\", \"name\"")
        #expect(
            try failure("phone,name\n", ContactColumnMapping(phone: "phone", fields: ["name", "email"]))
                == "the header has no column \"email\"; its columns are \"phone\", \"name\"")
        #expect(
            try failure("phone,name,name\n")
                == "the header names column \"name\" more than once; column names must be unique")
        #expect(try failure("") == "the file has no header row: it is empty")
        #expect(try failure("\u{FEFF}") == "the file has no header row: it is empty")
        #expect(try failure("\n+44 20 7946 0018\n") == "the file has no header row: its first line is empty")
        let wide = "phone," + (1...51).map { "c\($0)" }.joined(separator: ",") + "\n"
        #expect(
            try failure(wide)
                == "51 columns would become custom fields; at most 50 are allowed: list the ones to keep in the "
                + "mapping's fields")
        #expect(try failure("phone," + (1...50).map { "c\($0)" }.joined(separator: ",") + "\n") == nil)
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("no-such-list.csv")
        #expect(throws: ContactCSVError("cannot open the contact list no-such-list.csv: no readable file there")) {
            try ContactCSVReader(
                url: missing, mapping: ContactColumnMapping(phone: "phone"), defaultRegion: nil, defaultTimeZone: nil)
        }
    }

    @Test("bytes that are not UTF-8 stop the read with an error")
    func invalidUTF8() throws {
        var bytes = Data("phone,name\n+44 20 7946 0018,A\n+44 20 7946 0019,".utf8)
        bytes.append(contentsOf: [0xFF, 0xFE, 0x41, 0x0A])
        let url = try temporaryCSV(bytes: bytes)
        #expect(throws: ContactCSVError.self) { try readAll(url) }
    }

    @Test("mapping Codable keys")
    func mappingCodable() throws {
        let json = #"{"phone": "Phone", "time_zone": "TZ", "fields": ["a", "b"]}"#
        let mapping = try JSONDecoder().decode(ContactColumnMapping.self, from: Data(json.utf8))
        #expect(mapping == ContactColumnMapping(phone: "Phone", timeZone: "TZ", fields: ["a", "b"]))
        let minimal = try JSONDecoder().decode(ContactColumnMapping.self, from: Data(#"{"phone": "p"}"#.utf8))
        #expect(minimal == ContactColumnMapping(phone: "p"))
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(ContactColumnMapping.self, from: Data(#"{"time_zone": "TZ"}"#.utf8))
        }
    }

    @Test("a refused value is cut to 100 characters")
    func valueTruncation() {
        let error = ContactRowError(line: 3, column: nil, message: "m", value: String(repeating: "é", count: 250))
        #expect(error.value?.count == 100)
        #expect(error.description == "line 3: m")
    }

    @Test("100,000 rows stream in a few seconds")
    func largeFile() throws {
        var csv = "phone,first_name,city,tz\n"
        csv.reserveCapacity(5_000_000)
        for index in 0..<100_000 {
            let areaCode = [212, 312, 415, 303][index % 4]
            csv += "+1 (\(areaCode)) \(2_000_000 + index / 4),Name \(index),\"City, \(index % 97)\",\n"
        }
        let url = try temporaryCSV(csv)
        let clock = ContinuousClock()
        var contacts = 0
        var refused = 0
        let elapsed = try clock.measure {
            let results = try readAll(url, mapping: ContactColumnMapping(phone: "phone", timeZone: "tz"))
            for result in results {
                if result.contact != nil { contacts += 1 } else { refused += 1 }
            }
        }
        print("ContactCSVReader: 100,000 rows in \(elapsed)")
        #expect(contacts == 100_000)
        #expect(refused == 0)
        #expect(elapsed < .seconds(60))
    }
}
