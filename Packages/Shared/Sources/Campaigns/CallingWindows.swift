import Foundation

/// Why a calling window was refused.
public struct CallingWindowError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What is wrong, in words the person configuring the campaign can act on.
    public let message: String

    /// Creates an error with its message.
    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// A day of the week. The raw values are the wire form (`"monday"`).
public enum Weekday: String, CaseIterable, Hashable, Sendable, Codable {
    /// Monday.
    case monday
    /// Tuesday.
    case tuesday
    /// Wednesday.
    case wednesday
    /// Thursday.
    case thursday
    /// Friday.
    case friday
    /// Saturday.
    case saturday
    /// Sunday.
    case sunday

    /// The weekday of Foundation's Gregorian `weekday` component (1 = Sunday ... 7 = Saturday); `nil` outside 1...7.
    public init?(gregorianWeekday: Int) {
        switch gregorianWeekday {
        case 1: self = .sunday
        case 2: self = .monday
        case 3: self = .tuesday
        case 4: self = .wednesday
        case 5: self = .thursday
        case 6: self = .friday
        case 7: self = .saturday
        default: return nil
        }
    }

    /// Foundation's Gregorian `weekday` component for this day (1 = Sunday ... 7 = Saturday).
    public var gregorianWeekday: Int {
        switch self {
        case .sunday: 1
        case .monday: 2
        case .tuesday: 3
        case .wednesday: 4
        case .thursday: 5
        case .friday: 6
        case .saturday: 7
        }
    }
}

/// A wall-clock time of day, minute precision, written `"HH:mm"` (24-hour, two digits each).
public struct LocalTime: Hashable, Sendable, Comparable, Codable, CustomStringConvertible {
    /// 0...23.
    public let hour: Int
    /// 0...59.
    public let minute: Int

    /// A time from its parts.
    public init(hour: Int, minute: Int) throws(CallingWindowError) {
        guard (0...23).contains(hour), (0...59).contains(minute) else {
            throw CallingWindowError("\(hour):\(minute) is not a time of day (hours 00-23, minutes 00-59)")
        }
        self.hour = hour
        self.minute = minute
    }

    /// Parses `"HH:mm"`, such as `"08:00"` or `"21:30"`.
    public init(_ text: String) throws(CallingWindowError) {
        let bytes = Array(text.utf8)
        let isDigit = { (byte: UInt8) in byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
        guard bytes.count == 5, bytes[2] == UInt8(ascii: ":"), isDigit(bytes[0]), isDigit(bytes[1]),
            isDigit(bytes[3]), isDigit(bytes[4])
        else {
            throw CallingWindowError("\"\(text.prefix(20))\" is not a time of day in HH:mm form, such as 08:00")
        }
        let value = { (index: Int) in Int(bytes[index] - UInt8(ascii: "0")) }
        let hour = value(0) * 10 + value(1)
        let minute = value(3) * 10 + value(4)
        guard hour <= 23, minute <= 59 else {
            throw CallingWindowError("\"\(text)\" is not a time of day (hours 00-23, minutes 00-59)")
        }
        self.hour = hour
        self.minute = minute
    }

    /// Minutes since midnight.
    public var minutesSinceMidnight: Int { hour * 60 + minute }

    public var description: String {
        (hour < 10 ? "0" : "") + String(hour) + ":" + (minute < 10 ? "0" : "") + String(minute)
    }

    public static func < (lhs: LocalTime, rhs: LocalTime) -> Bool {
        lhs.minutesSinceMidnight < rhs.minutesSinceMidnight
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        do {
            try self.init(try container.decode(String.self))
        } catch let error as CallingWindowError {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.message)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// A window of one day, `start` inclusive, `end` exclusive: `08:00-21:00` is open from 08:00:00 until 20:59:59.
///
/// There is no `24:00`: an `end` of `23:59` means the end of the day (midnight), so `00:00-23:59` is the whole day
/// and `23:59` cannot be an exclusive end minute. Windows never cross midnight; a night window is two windows, one
/// on each day.
public struct LocalTimeRange: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The first minute of the window.
    public let start: LocalTime
    /// The end of the window, exclusive; `23:59` is midnight at the end of the day.
    public let end: LocalTime

    /// A window; `start` must be before `end`.
    public init(start: LocalTime, end: LocalTime) throws(CallingWindowError) {
        guard start < end else {
            throw CallingWindowError(
                "window \(start)-\(end) must start before it ends (windows cannot cross midnight: split it in two)")
        }
        self.start = start
        self.end = end
    }

    /// A window from two `"HH:mm"` times.
    public init(_ start: String, _ end: String) throws(CallingWindowError) {
        try self.init(start: try LocalTime(start), end: try LocalTime(end))
    }

    /// Seconds since midnight at which the window opens.
    var startSecond: Int { start.minutesSinceMidnight * 60 }

    /// Seconds since midnight at which the window closes; `23:59` closes at midnight (86,400).
    var endSecond: Int { end.hour == 23 && end.minute == 59 ? 86_400 : end.minutesSinceMidnight * 60 }

    public var description: String { "\(start)-\(end)" }

    private enum CodingKeys: String, CodingKey {
        case start, end
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let start = try container.decode(LocalTime.self, forKey: .start)
        let end = try container.decode(LocalTime.self, forKey: .end)
        do {
            try self.init(start: start, end: end)
        } catch {
            throw DecodingError.dataCorruptedError(forKey: .end, in: container, debugDescription: error.message)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(start, forKey: .start)
        try container.encode(end, forKey: .end)
    }
}

/// When contacts may be called, per weekday, in the contact's local time: `{"monday": [{"start": "08:00",
/// "end": "21:00"}], ...}`. A missing or empty day is closed.
///
/// Local times are turned into instants day by day in the contact's zone, so daylight-saving changes are honoured:
/// a window starting in the hour skipped when clocks spring forward opens at the first instant after the gap, and a
/// local time that occurs twice when clocks fall back means its first occurrence (for starts and ends alike). Every
/// method answers from the same instants, so `nextOpening` never returns an instant at which `isOpen` is false.
public struct CallingWindows: Hashable, Sendable, Codable {
    /// The windows of each open day, sorted and non-overlapping; closed days are absent.
    public let windows: [Weekday: [LocalTimeRange]]

    /// 08:00 to 21:00 every day, the hours most telemarketing rules allow.
    public static let standard: CallingWindows = {
        let day = [LocalTimeRange(unchecked: 8 * 60, 21 * 60)]
        return CallingWindows(unchecked: Dictionary(uniqueKeysWithValues: Weekday.allCases.map { ($0, day) }))
    }()

    /// Validates that each day's windows are in order and do not overlap (one may start where another ends).
    public init(_ windows: [Weekday: [LocalTimeRange]]) throws(CallingWindowError) {
        for day in Weekday.allCases {
            guard let ranges = windows[day] else { continue }
            for (earlier, later) in zip(ranges, ranges.dropFirst()) {
                if later.start < earlier.start {
                    throw CallingWindowError(
                        "\(day.rawValue): windows must be in order, but \(later) follows \(earlier)")
                }
                if later.startSecond < earlier.endSecond {
                    throw CallingWindowError("\(day.rawValue): windows \(earlier) and \(later) overlap")
                }
            }
        }
        self.windows = windows.filter { !$0.value.isEmpty }
    }

    private init(unchecked windows: [Weekday: [LocalTimeRange]]) {
        self.windows = windows
    }

    /// The windows of `day`, empty when it is closed.
    public subscript(day: Weekday) -> [LocalTimeRange] { windows[day] ?? [] }

    /// Whether a contact in `timeZone` may be called at `instant`.
    public func isOpen(at instant: Date, in timeZone: TimeZone) -> Bool {
        containingWindow(of: instant, in: timeZone) != nil
    }

    /// `instant` itself when it is inside a window, otherwise the start of the next window; `nil` when no day has a
    /// window.
    public func nextOpening(atOrAfter instant: Date, in timeZone: TimeZone) -> Date? {
        let clock = WallClock(timeZone: timeZone)
        let today = clock.localDay(of: instant)
        // One day back: a window of yesterday may still be open (clocks that fall back across midnight); eight
        // days on: every weekday has come round again.
        for day in (today - 1)...(today + 8) {
            for range in self[clock.weekday(of: day)] {
                let (start, end) = clock.interval(of: range, on: day)
                if end > start && instant < end {
                    return max(instant, start)
                }
            }
        }
        return nil
    }

    /// The end of the window containing `instant` (exclusive: the first instant at which calling must stop); `nil`
    /// when `instant` is outside every window. Windows of consecutive days are not merged: at the end of a day's
    /// `00:00-23:59` this is midnight even if the next day's window opens then.
    public func closesAt(after instant: Date, in timeZone: TimeZone) -> Date? {
        containingWindow(of: instant, in: timeZone)?.end
    }

    private func containingWindow(of instant: Date, in timeZone: TimeZone) -> (start: Date, end: Date)? {
        let clock = WallClock(timeZone: timeZone)
        let today = clock.localDay(of: instant)
        for day in (today - 1)...(today + 1) {
            for range in self[clock.weekday(of: day)] {
                let (start, end) = clock.interval(of: range, on: day)
                if start <= instant && instant < end {
                    return (start, end)
                }
            }
        }
        return nil
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let raw = try container.decode([String: [LocalTimeRange]].self)
        var windows: [Weekday: [LocalTimeRange]] = [:]
        for (name, ranges) in raw {
            guard let day = Weekday(rawValue: name) else {
                throw DecodingError.dataCorruptedError(
                    in: container,
                    debugDescription:
                        "\"\(name.prefix(20))\" is not a weekday; use "
                        + Weekday.allCases.map(\.rawValue).joined(separator: ", "))
            }
            windows[day] = ranges
        }
        do {
            try self.init(windows)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.message)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(Dictionary(uniqueKeysWithValues: windows.map { ($0.key.rawValue, $0.value) }))
    }
}

extension LocalTimeRange {
    /// A window from minutes since midnight that are known to be valid.
    fileprivate init(unchecked start: Int, _ end: Int) {
        self.start = LocalTime(uncheckedMinutes: start)
        self.end = LocalTime(uncheckedMinutes: end)
    }
}

extension LocalTime {
    fileprivate init(uncheckedMinutes minutes: Int) {
        self.hour = minutes / 60
        self.minute = minutes % 60
    }
}

/// Converts between instants and wall-clock time in one zone, with local days numbered from 1970-01-01 in the
/// proleptic Gregorian calendar (the calendar's day of an instant comes from `Calendar(identifier: .gregorian)`).
///
/// Local times are resolved by hand rather than with `Calendar.date(from:)`, whose treatment of skipped and
/// repeated times is not specified: a local time is the first instant whose wall clock shows it, or, when the clocks
/// skip it, the first instant after the gap.
struct WallClock {
    let timeZone: TimeZone
    let calendar: Calendar

    init(timeZone: TimeZone) {
        self.timeZone = timeZone
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        self.calendar = calendar
    }

    /// The local day number (days since 1970-01-01) on which `instant` falls.
    func localDay(of instant: Date) -> Int {
        let parts = calendar.dateComponents([.year, .month, .day], from: instant)
        return Self.dayNumber(year: parts.year ?? 1970, month: parts.month ?? 1, day: parts.day ?? 1)
    }

    /// The weekday of a local day number (1970-01-01 was a Thursday).
    func weekday(of day: Int) -> Weekday {
        let sundayBased = ((day + 4) % 7 + 7) % 7
        return Weekday(gregorianWeekday: sundayBased + 1) ?? .sunday
    }

    /// The instants at which `range` opens and closes on local day `day`.
    func interval(of range: LocalTimeRange, on day: Int) -> (start: Date, end: Date) {
        (instant(day: day, second: range.startSecond), instant(day: day, second: range.endSecond))
    }

    /// The first instant whose wall clock shows `second` seconds after local midnight of `day`, or the end of the
    /// gap when clocks skip that time.
    func instant(day: Int, second: Int) -> Date {
        let wall = Int64(day) * 86_400 + Int64(second)
        // Any offset in force at that wall time is in force within 36 hours of it read as UTC (offsets stay within
        // ±14 hours), so the offsets before and after a transition near it are these two.
        let offsets = Set([offset(at: wall - 129_600), offset(at: wall + 129_600)])
        let valid = offsets.map { wall - $0 }.filter { offset(at: $0) == wall - $0 }
        if let first = valid.min() {
            return Date(timeIntervalSince1970: TimeInterval(first))
        }
        // Skipped: the transition lies between the wall time read with the later (larger) offset and with the
        // earlier one; find its first second.
        var low = wall - (offsets.max() ?? 0)
        var high = wall - (offsets.min() ?? 0)
        let before = offset(at: low)
        while high - low > 1 {
            let middle = low + (high - low) / 2
            if offset(at: middle) == before { low = middle } else { high = middle }
        }
        return Date(timeIntervalSince1970: TimeInterval(high))
    }

    private func offset(at second: Int64) -> Int64 {
        Int64(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(second))))
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
    static func dayNumber(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}
