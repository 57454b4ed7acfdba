import CSV
import Foundation

/// Which columns of a contact list hold what. Encoded as `{"phone": "Phone", "time_zone": "TZ", "fields": [...]}`.
public struct ContactColumnMapping: Hashable, Sendable, Codable {
    /// The column holding the phone number.
    public var phone: String
    /// The column holding the contact's IANA time zone, if the list has one.
    public var timeZone: String?
    /// The columns passed on as custom fields; `nil` passes every column other than `phone` and `timeZone`.
    public var fields: [String]?

    /// Creates a mapping.
    public init(phone: String, timeZone: String? = nil, fields: [String]? = nil) {
        self.phone = phone
        self.timeZone = timeZone
        self.fields = fields
    }

    private enum CodingKeys: String, CodingKey {
        case phone
        case timeZone = "time_zone"
        case fields
    }
}

/// One contact read from a list.
public struct ContactRow: Hashable, Sendable {
    /// The 1-based line of the file on which the contact's row starts, the header being line 1.
    public let line: Int
    /// The contact's number.
    public let phone: PhoneNumber
    /// The IANA identifier of the contact's time zone.
    public let timeZone: String
    /// The custom fields, by column name.
    public let fields: [String: String]

    /// Creates a row.
    public init(line: Int, phone: PhoneNumber, timeZone: String, fields: [String: String]) {
        self.line = line
        self.phone = phone
        self.timeZone = timeZone
        self.fields = fields
    }
}

/// Why one row of a contact list was refused; the rest of the list is still read.
public struct ContactRowError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The longest `value` kept, in characters.
    public static let maximumValueLength = 100

    /// The 1-based line on which the row starts, the header being line 1.
    public let line: Int
    /// The column at fault, when one is.
    public let column: String?
    /// What is wrong.
    public let message: String
    /// The offending value, cut to 100 characters.
    public let value: String?

    /// Creates an error; `value` is cut to `maximumValueLength` characters.
    public init(line: Int, column: String?, message: String, value: String?) {
        self.line = line
        self.column = column
        self.message = message
        self.value = value.map { String($0.prefix(Self.maximumValueLength)) }
    }

    public var description: String {
        "line \(line)" + (column.map { ", column \"\($0)\"" } ?? "") + ": " + message
    }
}

/// The result of reading one row.
public enum ContactReadResult: Hashable, Sendable {
    /// A valid contact.
    case contact(ContactRow)
    /// A row that cannot be called, and why.
    case refused(ContactRowError)
}

/// Why a contact list cannot be read at all.
public struct ContactCSVError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What is wrong with the file.
    public let message: String

    /// Creates an error with its message.
    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// Reads a contact list (CSV, RFC 4180: `"` quoting, CRLF or LF line ends, UTF-8 with or without a BOM) one row at
/// a time, validating every row, so lists of millions of rows are read in constant memory apart from the set of
/// numbers already seen (for refusing duplicates).
///
/// Rows are refused, not fatal: a wrong number, a wrong field count, an unknown time zone, a value over 1,000
/// characters or a number already in the list refuses that row with its line number, and reading goes on. Only a
/// file that cannot be read (no header, a mapped column missing, duplicate column names, not UTF-8) throws.
///
/// Not `Sendable`: it owns an open file stream; read a list from one task.
public struct ContactCSVReader {
    /// The longest field value accepted, in characters.
    public static let maximumFieldLength = 1_000
    /// The most custom fields a contact may carry.
    public static let maximumCustomFields = 50

    /// The header row, as read (names trimmed of surrounding white space).
    public let header: [String]
    private let mapping: ContactColumnMapping
    private let defaultRegion: PhoneRegion?
    private let defaultTimeZone: TimeZone?
    private let parser: CSVReader
    private let phoneIndex: Int
    private let timeZoneIndex: Int?
    /// Column index and name of each custom field.
    private let fieldColumns: [(index: Int, name: String)]
    /// The line the next row starts on.
    private var nextLine: Int
    /// The numbers already accepted (E.164 digits as an integer: up to 15 digits fit) and their lines.
    private var seen: [UInt64: Int] = [:]
    /// Zones already looked up by identifier; bounded by the number of real zones, as only valid ones are kept.
    private var knownZones: [String: String] = [:]

    /// Opens the list at `url` and reads its header.
    /// - Parameters:
    ///   - url: a file URL.
    ///   - mapping: which columns hold the phone number, the time zone and the custom fields.
    ///   - defaultRegion: the country of numbers written without an international prefix.
    ///   - defaultTimeZone: the zone of contacts whose zone is neither given nor derivable from their number.
    public init(
        url: URL, mapping: ContactColumnMapping, defaultRegion: PhoneRegion?, defaultTimeZone: TimeZone?
    ) throws(ContactCSVError) {
        guard FileManager.default.isReadableFile(atPath: url.path) else {
            throw ContactCSVError("cannot open the contact list \(url.lastPathComponent): no readable file there")
        }
        guard let stream = InputStream(url: url) else {
            throw ContactCSVError("cannot open the contact list \(url.lastPathComponent)")
        }
        let parser: CSVReader
        do {
            parser = try CSVReader(
                stream: stream, hasHeaderRow: true, trimFields: false, delimiter: ",", whitespaces: .whitespaces)
        } catch CSVError.cannotReadHeaderRow {
            throw ContactCSVError("the file has no header row: it is empty")
        } catch {
            throw ContactCSVError("cannot read the contact list \(url.lastPathComponent): \(error)")
        }
        if let failure = Self.failure(of: parser, line: 1) {
            throw failure
        }
        var header = (parser.headerRow ?? []).map { $0.trimmingCharacters(in: .whitespaces) }
        if let first = header.first, first.hasPrefix("\u{FEFF}") {
            // The stream reader drops a UTF-8 BOM, but a BOM encoded twice (or after a UTF-16 round trip) survives.
            header[0] = String(first.dropFirst())
        }
        if header.allSatisfy(\.isEmpty) {
            throw ContactCSVError("the file has no header row: its first line is empty")
        }
        try Self.checkDuplicates(header)
        let listed = header.map { "\"\($0)\"" }.joined(separator: ", ")
        func index(of column: String) throws(ContactCSVError) -> Int {
            guard let index = header.firstIndex(of: column) else {
                throw ContactCSVError("the header has no column \"\(column)\"; its columns are \(listed)")
            }
            return index
        }
        let phoneIndex = try index(of: mapping.phone)
        let timeZoneIndex = try mapping.timeZone.map { (column) throws(ContactCSVError) in try index(of: column) }
        var fieldColumns: [(index: Int, name: String)] = []
        if let fields = mapping.fields {
            for name in fields { fieldColumns.append((try index(of: name), name)) }
        } else {
            for (column, name) in header.enumerated()
            where column != phoneIndex && column != timeZoneIndex && !name.isEmpty {
                fieldColumns.append((column, name))
            }
        }
        if fieldColumns.count > Self.maximumCustomFields {
            throw ContactCSVError(
                "\(fieldColumns.count) columns would become custom fields; at most \(Self.maximumCustomFields) are "
                    + "allowed: list the ones to keep in the mapping's fields")
        }
        self.header = header
        self.mapping = mapping
        self.defaultRegion = defaultRegion
        self.defaultTimeZone = defaultTimeZone
        self.parser = parser
        self.phoneIndex = phoneIndex
        self.timeZoneIndex = timeZoneIndex
        self.fieldColumns = fieldColumns
        self.nextLine = 2 + (parser.headerRow ?? []).reduce(0) { $0 + Self.lineBreaks(in: $1) }
    }

    private static func checkDuplicates(_ header: [String]) throws(ContactCSVError) {
        var seen: Set<String> = []
        for name in header where !name.isEmpty {
            if !seen.insert(name).inserted {
                throw ContactCSVError("the header names column \"\(name)\" more than once; column names must be unique")
            }
        }
    }

    /// The next row, valid or refused; `nil` at the end of the file. Empty lines are skipped.
    /// - Throws: `ContactCSVError` when the file stops being readable (bytes that are not UTF-8).
    public mutating func next() throws(ContactCSVError) -> ContactReadResult? {
        while let row = parser.next() {
            let line = nextLine
            nextLine += 1 + row.reduce(0) { $0 + Self.lineBreaks(in: $1) }
            if let failure = Self.failure(of: parser, line: line) {
                throw failure
            }
            if row.count == 1 && row[0].allSatisfy(\.isWhitespace) {
                continue
            }
            return validate(row, line: line)
        }
        if let failure = Self.failure(of: parser, line: nextLine) {
            throw failure
        }
        return nil
    }

    /// The error that stopped the parser, if one did. The parser records every failure in `error` and then reports
    /// the end of its input; on Linux it also records `cannotReadFile` when it reaches the end of the file, which is
    /// therefore not a failure.
    private static func failure(of parser: CSVReader, line: Int) -> ContactCSVError? {
        switch parser.error {
        case nil, CSVError.cannotReadFile?:
            return nil
        case CSVError.unicodeDecoding?:
            return ContactCSVError("line \(line) is not valid UTF-8 text; save the list as UTF-8")
        case let error?:
            return ContactCSVError("the contact list could not be read after line \(line - 1): \(error)")
        }
    }

    private mutating func validate(_ row: [String], line: Int) -> ContactReadResult {
        func refuse(_ column: String?, _ message: String, _ value: String?) -> ContactReadResult {
            .refused(ContactRowError(line: line, column: column, message: message, value: value))
        }
        guard row.count == header.count else {
            return refuse(nil, "the row has \(row.count) fields but the header has \(header.count)", nil)
        }
        for (column, value) in row.enumerated()
        where value.utf8.count > Self.maximumFieldLength && value.count > Self.maximumFieldLength {
            return refuse(
                header[column],
                "the value has \(value.count) characters; at most \(Self.maximumFieldLength) are allowed",
                value)
        }
        let rawPhone = row[phoneIndex]
        let phone: PhoneNumber
        do {
            phone = try PhoneNumber(parsing: rawPhone, defaultRegion: defaultRegion)
        } catch {
            return refuse(mapping.phone, "the phone number \(error.message)", rawPhone)
        }
        let timeZone: String
        let given = timeZoneIndex.map { row[$0].trimmingCharacters(in: .whitespaces) } ?? ""
        if !given.isEmpty {
            guard let zone = zoneIdentifier(given) else {
                return refuse(
                    mapping.timeZone, "\"\(given.prefix(40))\" is not an IANA time zone such as Europe/London", given)
            }
            timeZone = zone
        } else if let derived = ContactTimeZone.identifier(for: phone) {
            timeZone = derived
        } else if let defaultTimeZone {
            timeZone = defaultTimeZone.identifier
        } else {
            let fix = mapping.timeZone.map { "fill in the \"\($0)\" column" } ?? "add a time_zone column"
            return refuse(
                mapping.timeZone ?? mapping.phone,
                "the time zone cannot be derived from \(phone.e164): \(fix)", nil)
        }
        let key = UInt64(phone.e164.dropFirst()) ?? 0
        if let first = seen[key] {
            return refuse(mapping.phone, "\(phone.e164) is a duplicate of line \(first)", rawPhone)
        }
        seen[key] = line
        var fields: [String: String] = [:]
        fields.reserveCapacity(fieldColumns.count)
        for column in fieldColumns {
            fields[column.name] = row[column.index]
        }
        return .contact(ContactRow(line: line, phone: phone, timeZone: timeZone, fields: fields))
    }

    /// The canonical identifier of a zone the platform knows, cached.
    private mutating func zoneIdentifier(_ name: String) -> String? {
        if let known = knownZones[name] { return known }
        guard name.utf8.count <= 64, let zone = TimeZone(identifier: name) else { return nil }
        knownZones[name] = zone.identifier
        return zone.identifier
    }

    /// The number of line breaks (LF, CRLF or a lone CR) inside a field, which move the following rows down.
    private static func lineBreaks(in field: String) -> Int {
        var count = 0
        var previousWasCR = false
        for byte in field.utf8 {
            if byte == 0x0A {
                if !previousWasCR { count += 1 }
                previousWasCR = false
            } else if byte == 0x0D {
                count += 1
                previousWasCR = true
            } else {
                previousWasCR = false
            }
        }
        return count
    }
}
