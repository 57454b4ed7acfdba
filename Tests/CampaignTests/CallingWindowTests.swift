import Campaigns
import Foundation
import Testing

/// An instant from an ISO 8601 text with its offset, as written in the cases below.
func instant(_ text: String) throws -> Date {
    try Date(text, strategy: .iso8601)
}

func zone(_ identifier: String) throws -> TimeZone {
    try #require(TimeZone(identifier: identifier))
}

@Suite struct LocalTimeTests {
    @Test("HH:mm parsing and printing")
    func parsing() throws {
        let time = try LocalTime("08:05")
        #expect(time.hour == 8)
        #expect(time.minute == 5)
        #expect(time.description == "08:05")
        #expect(try LocalTime("23:59").minutesSinceMidnight == 1439)
        #expect(try LocalTime("00:00") < LocalTime("00:01"))
        #expect(try LocalTime(hour: 21, minute: 0) == LocalTime("21:00"))
    }

    static let refused: [(String, String)] = [
        ("8:00", "\"8:00\" is not a time of day in HH:mm form, such as 08:00"),
        ("08:00:00", "\"08:00:00\" is not a time of day in HH:mm form, such as 08:00"),
        ("0800", "\"0800\" is not a time of day in HH:mm form, such as 08:00"),
        ("", "\"\" is not a time of day in HH:mm form, such as 08:00"),
        ("24:00", "\"24:00\" is not a time of day (hours 00-23, minutes 00-59)"),
        ("12:60", "\"12:60\" is not a time of day (hours 00-23, minutes 00-59)"),
        ("1a:00", "\"1a:00\" is not a time of day in HH:mm form, such as 08:00"),
    ]

    @Test("refused times", arguments: refused)
    func refuses(_ text: String, _ message: String) {
        #expect(throws: CallingWindowError(message)) { try LocalTime(text) }
    }

    @Test("time ranges need start before end")
    func ranges() throws {
        #expect(try LocalTimeRange("08:00", "21:00").description == "08:00-21:00")
        #expect(
            throws: CallingWindowError(
                "window 21:00-08:00 must start before it ends (windows cannot cross midnight: split it in two)")
        ) { try LocalTimeRange("21:00", "08:00") }
        #expect(throws: CallingWindowError.self) { try LocalTimeRange("09:00", "09:00") }
    }

    @Test("Weekday maps Foundation's Gregorian weekday, 1 = Sunday")
    func weekdays() {
        #expect(Weekday(gregorianWeekday: 1) == .sunday)
        #expect(Weekday(gregorianWeekday: 2) == .monday)
        #expect(Weekday(gregorianWeekday: 7) == .saturday)
        #expect(Weekday(gregorianWeekday: 0) == nil)
        #expect(Weekday(gregorianWeekday: 8) == nil)
        for day in Weekday.allCases {
            #expect(Weekday(gregorianWeekday: day.gregorianWeekday) == day)
        }
    }
}

@Suite struct CallingWindowsTests {
    let newYork: TimeZone
    init() throws { newYork = try zone("America/New_York") }

    private func windows(_ days: [Weekday], _ start: String, _ end: String) throws -> CallingWindows {
        let range = try LocalTimeRange(start, end)
        return try CallingWindows(Dictionary(uniqueKeysWithValues: days.map { ($0, [range]) }))
    }

    @Test("standard is 08:00-21:00 every day")
    func standard() throws {
        for day in Weekday.allCases {
            #expect(CallingWindows.standard[day] == [try LocalTimeRange("08:00", "21:00")])
        }
        let s = CallingWindows.standard
        #expect(!s.isOpen(at: try instant("2026-06-10T07:59:59-04:00"), in: newYork))
        #expect(s.isOpen(at: try instant("2026-06-10T08:00:00-04:00"), in: newYork))
        #expect(s.isOpen(at: try instant("2026-06-10T20:59:59-04:00"), in: newYork))
        #expect(!s.isOpen(at: try instant("2026-06-10T21:00:00-04:00"), in: newYork))
        #expect(
            s.nextOpening(atOrAfter: try instant("2026-06-10T22:00:00-04:00"), in: newYork)
                == (try instant("2026-06-11T08:00:00-04:00")))
        let open = try instant("2026-06-10T12:34:56-04:00")
        #expect(s.nextOpening(atOrAfter: open, in: newYork) == open)
        #expect(s.closesAt(after: open, in: newYork) == (try instant("2026-06-10T21:00:00-04:00")))
        #expect(s.closesAt(after: try instant("2026-06-10T22:00:00-04:00"), in: newYork) == nil)
    }

    @Test("New York spring forward 2026-03-08: a window starting in the skipped hour opens at 03:00 EDT")
    func newYorkSpringForward() throws {
        let w = try windows([.sunday], "02:30", "05:00")
        let opening = try #require(w.nextOpening(atOrAfter: try instant("2026-03-08T01:00:00-05:00"), in: newYork))
        #expect(opening == (try instant("2026-03-08T03:00:00-04:00")))
        #expect(w.isOpen(at: opening, in: newYork))
        #expect(!w.isOpen(at: opening.addingTimeInterval(-1), in: newYork))
        #expect(w.closesAt(after: opening, in: newYork) == (try instant("2026-03-08T05:00:00-04:00")))
        // The standard window that day opens at 08:00 EDT, 12:00 UTC.
        #expect(
            CallingWindows.standard.nextOpening(atOrAfter: try instant("2026-03-08T00:00:00-05:00"), in: newYork)
                == (try instant("2026-03-08T12:00:00Z")))
    }

    @Test("a window lying wholly in the skipped hour is closed that day")
    func windowInsideGap() throws {
        let w = try windows([.sunday], "02:10", "02:50")
        let next = w.nextOpening(atOrAfter: try instant("2026-03-08T00:00:00-05:00"), in: newYork)
        #expect(next == (try instant("2026-03-15T02:10:00-04:00")))
        #expect(!w.isOpen(at: try instant("2026-03-08T03:00:00-04:00"), in: newYork))
    }

    @Test("New York fall back 2026-11-01: a repeated local time means its first occurrence")
    func newYorkFallBack() throws {
        let opensInRepeat = try windows([.sunday], "01:30", "03:00")
        let opening = opensInRepeat.nextOpening(atOrAfter: try instant("2026-11-01T00:00:00-04:00"), in: newYork)
        #expect(opening == (try instant("2026-11-01T01:30:00-04:00")))
        // 01:15 EST, the second pass through 01:15, is inside the window that opened at the first 01:30.
        #expect(opensInRepeat.isOpen(at: try instant("2026-11-01T01:15:00-05:00"), in: newYork))
        #expect(
            opensInRepeat.closesAt(after: try instant("2026-11-01T01:15:00-05:00"), in: newYork)
                == (try instant("2026-11-01T03:00:00-05:00")))

        let closesInRepeat = try windows(Weekday.allCases, "00:00", "01:30")
        #expect(closesInRepeat.isOpen(at: try instant("2026-11-01T01:29:59-04:00"), in: newYork))
        #expect(!closesInRepeat.isOpen(at: try instant("2026-11-01T01:30:00-04:00"), in: newYork))
        #expect(!closesInRepeat.isOpen(at: try instant("2026-11-01T01:15:00-05:00"), in: newYork))
        #expect(
            closesInRepeat.nextOpening(atOrAfter: try instant("2026-11-01T01:15:00-05:00"), in: newYork)
                == (try instant("2026-11-02T00:00:00-05:00")))
        // The day is 25 hours long; the standard window opens at 08:00 EST.
        #expect(
            CallingWindows.standard.nextOpening(atOrAfter: try instant("2026-11-01T00:30:00-04:00"), in: newYork)
                == (try instant("2026-11-01T13:00:00Z")))
    }

    @Test("Europe/London spring forward 2026-03-29")
    func londonSpringForward() throws {
        let london = try zone("Europe/London")
        let w = try windows([.sunday], "01:30", "03:00")
        #expect(
            w.nextOpening(atOrAfter: try instant("2026-03-29T00:30:00Z"), in: london)
                == (try instant("2026-03-29T01:00:00Z")))
        #expect(
            w.closesAt(after: try instant("2026-03-29T01:00:00Z"), in: london) == (try instant("2026-03-29T02:00:00Z")))
        #expect(
            CallingWindows.standard.nextOpening(atOrAfter: try instant("2026-03-29T00:00:00Z"), in: london)
                == (try instant("2026-03-29T07:00:00Z")))
        #expect(
            CallingWindows.standard.nextOpening(atOrAfter: try instant("2026-03-28T00:00:00Z"), in: london)
                == (try instant("2026-03-28T08:00:00Z")))
    }

    @Test("Australia/Sydney in summer time and across the April 2026 change")
    func sydney() throws {
        let sydney = try zone("Australia/Sydney")
        let s = CallingWindows.standard
        #expect(
            s.nextOpening(atOrAfter: try instant("2026-01-14T12:00:00Z"), in: sydney)
                == (try instant("2026-01-15T08:00:00+11:00")))
        // Daylight saving ends 2026-04-05 03:00 AEDT; 08:00 that day is AEST (+10).
        #expect(
            s.nextOpening(atOrAfter: try instant("2026-04-04T23:00:00+11:00"), in: sydney)
                == (try instant("2026-04-05T08:00:00+10:00")))
        #expect(s.isOpen(at: try instant("2026-04-05T20:59:00+10:00"), in: sydney))
        #expect(!s.isOpen(at: try instant("2026-04-05T21:00:00+10:00"), in: sydney))
    }

    @Test("Asia/Kolkata, a half-hour offset")
    func kolkata() throws {
        let kolkata = try zone("Asia/Kolkata")
        let s = CallingWindows.standard
        #expect(!s.isOpen(at: try instant("2026-06-10T02:29:59Z"), in: kolkata))
        #expect(s.isOpen(at: try instant("2026-06-10T02:30:00Z"), in: kolkata))
        #expect(
            s.nextOpening(atOrAfter: try instant("2026-06-10T02:00:00Z"), in: kolkata)
                == (try instant("2026-06-10T08:00:00+05:30")))
        #expect(
            s.closesAt(after: try instant("2026-06-10T10:00:00+05:30"), in: kolkata)
                == (try instant("2026-06-10T15:30:00Z")))
    }

    @Test("Pacific/Chatham, a 45-minute offset")
    func chatham() throws {
        let chatham = try zone("Pacific/Chatham")
        let s = CallingWindows.standard
        #expect(
            s.nextOpening(atOrAfter: try instant("2026-06-09T12:00:00Z"), in: chatham)
                == (try instant("2026-06-09T19:15:00Z")))
        #expect(
            s.closesAt(after: try instant("2026-06-09T19:15:00Z"), in: chatham)
                == (try instant("2026-06-10T08:15:00Z")))
        // In January the islands keep daylight time, +13:45.
        #expect(
            s.nextOpening(atOrAfter: try instant("2026-01-09T12:00:00Z"), in: chatham)
                == (try instant("2026-01-10T08:00:00+13:45")))
    }

    @Test("a window closed on Saturday moves to Sunday")
    func saturdayClosed() throws {
        let w = try windows([.monday, .tuesday, .wednesday, .thursday, .friday, .sunday], "09:00", "17:00")
        #expect(w[.saturday].isEmpty)
        let saturdayNoon = try instant("2026-06-13T12:00:00-04:00")
        #expect(!w.isOpen(at: saturdayNoon, in: newYork))
        #expect(w.nextOpening(atOrAfter: saturdayNoon, in: newYork) == (try instant("2026-06-14T09:00:00-04:00")))
        #expect(
            w.nextOpening(atOrAfter: try instant("2026-06-12T17:00:00-04:00"), in: newYork)
                == (try instant("2026-06-14T09:00:00-04:00")))
    }

    @Test("an end of 23:59 means midnight")
    func endOfDay() throws {
        let w = try windows(Weekday.allCases, "22:00", "23:59")
        #expect(w.isOpen(at: try instant("2026-06-10T23:59:30-04:00"), in: newYork))
        #expect(!w.isOpen(at: try instant("2026-06-11T00:00:00-04:00"), in: newYork))
        #expect(
            w.closesAt(after: try instant("2026-06-10T23:00:00-04:00"), in: newYork)
                == (try instant("2026-06-11T00:00:00-04:00")))
        let allDay = try windows(Weekday.allCases, "00:00", "23:59")
        #expect(allDay.isOpen(at: try instant("2026-06-10T23:59:59-04:00"), in: newYork))
        #expect(allDay.isOpen(at: try instant("2026-06-11T00:00:00-04:00"), in: newYork))
    }

    @Test("several windows a day and no windows at all")
    func severalAndNone() throws {
        let w = try CallingWindows([
            .monday: [try LocalTimeRange("09:00", "12:00"), try LocalTimeRange("14:00", "18:00")]
        ])
        // 2026-06-08 is a Monday.
        #expect(
            w.nextOpening(atOrAfter: try instant("2026-06-08T12:30:00-04:00"), in: newYork)
                == (try instant("2026-06-08T14:00:00-04:00")))
        #expect(
            w.nextOpening(atOrAfter: try instant("2026-06-08T18:00:00-04:00"), in: newYork)
                == (try instant("2026-06-15T09:00:00-04:00")))
        let never = try CallingWindows([:])
        #expect(never.nextOpening(atOrAfter: Date(), in: newYork) == nil)
        #expect(!never.isOpen(at: Date(), in: newYork))
        #expect(try CallingWindows([.friday: []]) == never)
    }

    @Test("refused: unsorted and overlapping windows")
    func validation() throws {
        #expect(throws: CallingWindowError("monday: windows must be in order, but 09:00-12:00 follows 14:00-18:00")) {
            try CallingWindows([.monday: [try LocalTimeRange("14:00", "18:00"), try LocalTimeRange("09:00", "12:00")]])
        }
        #expect(throws: CallingWindowError("friday: windows 09:00-12:00 and 11:00-13:00 overlap")) {
            try CallingWindows([.friday: [try LocalTimeRange("09:00", "12:00"), try LocalTimeRange("11:00", "13:00")]])
        }
        // Touching windows do not overlap.
        _ = try CallingWindows([.friday: [try LocalTimeRange("09:00", "12:00"), try LocalTimeRange("12:00", "13:00")]])
    }

    @Test("Codable as an object keyed by weekday")
    func codable() throws {
        let json = #"{"monday":[{"start":"08:00","end":"12:00"},{"start":"13:00","end":"21:00"}],"sunday":[]}"#
        let decoded = try JSONDecoder().decode(CallingWindows.self, from: Data(json.utf8))
        #expect(decoded[.monday].map(\.description) == ["08:00-12:00", "13:00-21:00"])
        #expect(decoded[.sunday].isEmpty)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let encoded = String(decoding: try encoder.encode(decoded), as: UTF8.self)
        #expect(encoded == #"{"monday":[{"end":"12:00","start":"08:00"},{"end":"21:00","start":"13:00"}]}"#)
        let standard = try encoder.encode(CallingWindows.standard)
        #expect(try JSONDecoder().decode(CallingWindows.self, from: standard) == .standard)
        for bad in [
            #"{"funday":[]}"#, #"{"monday":[{"start":"8:00","end":"12:00"}]}"#,
            #"{"monday":[{"start":"12:00","end":"08:00"}]}"#,
            #"{"monday":[{"start":"09:00","end":"12:00"},{"start":"10:00","end":"11:00"}]}"#,
        ] {
            #expect(throws: DecodingError.self, "\(bad)") {
                try JSONDecoder().decode(CallingWindows.self, from: Data(bad.utf8))
            }
        }
    }

    @Test("weekdays agree with Foundation's Gregorian calendar in every zone")
    func weekdaysMatchCalendar() throws {
        for identifier in ["America/New_York", "Pacific/Chatham", "Pacific/Kiritimati", "Pacific/Pago_Pago"] {
            let timeZone = try zone(identifier)
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = timeZone
            let mondays = try windows([.monday], "00:00", "23:59")
            var t = try instant("2026-01-01T00:00:00Z")
            for _ in 0..<400 {
                let isMonday = calendar.component(.weekday, from: t) == 2
                #expect(mondays.isOpen(at: t, in: timeZone) == isMonday, "\(identifier) \(t)")
                t.addTimeInterval(37 * 60 + 11)
            }
        }
    }

    @Test("nextOpening is always open, never earlier, and nothing opens before it, across DST changes")
    func nextOpeningIsConsistent() throws {
        let schedules = [
            CallingWindows.standard, try windows([.sunday], "01:30", "03:00"),
            try windows([.saturday, .sunday], "00:00", "02:30"),
        ]
        for identifier in ["America/New_York", "Europe/London", "Australia/Sydney", "Pacific/Chatham"] {
            let timeZone = try zone(identifier)
            for schedule in schedules {
                for start in [
                    "2026-03-07T00:00:00Z", "2026-03-28T00:00:00Z", "2026-04-04T00:00:00Z",
                    "2026-10-03T12:00:00Z", "2026-10-24T12:00:00Z", "2026-10-31T12:00:00Z",
                ] {
                    var t = try instant(start)
                    for _ in 0..<150 {
                        let opening = try #require(schedule.nextOpening(atOrAfter: t, in: timeZone))
                        #expect(opening >= t)
                        #expect(schedule.isOpen(at: opening, in: timeZone), "\(identifier) \(t) -> \(opening)")
                        if opening > t {
                            #expect(!schedule.isOpen(at: t, in: timeZone))
                            #expect(!schedule.isOpen(at: opening.addingTimeInterval(-1), in: timeZone))
                        }
                        t.addTimeInterval(23 * 60 + 7)
                    }
                }
            }
        }
    }
}
