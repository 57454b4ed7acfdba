import Foundation

/// What the simulated network does with a dialed number.
///
/// The event sequences of each case are those a real Asterisk 22.10.1 produced for the matching dialplan
/// (see docs/ari-simulator.md): `busy` is the dialplan's `Busy()` (the originated channel ends with cause 0
/// and only `Dial.dialstatus` says BUSY), `calleeHangup(cause: 17)` is `Hangup(17)`, and so on.
public enum SimulatedOutcome: Sendable, Equatable {
    /// Rings for `ringing` (zero: answers at once, without a Ringing state), answers, and stays up for
    /// `hold` before the callee hangs up (cause 16); `nil` holds until the channel is hung up or the
    /// simulator's `defaultHold` passes.
    case answer(ringing: Duration, hold: Duration?)
    /// The dialplan's `Busy()`: after `after` (ringing meanwhile), `Dial` BUSY and `ChannelDestroyed` cause 0.
    case busy(after: Duration)
    /// The dialplan's `Congestion()`: `Dial` CONGESTION and `ChannelDestroyed` cause 0.
    case congestion(after: Duration)
    /// The callee side hangs up with `cause` before answering (`Hangup(cause)`): 17 busy, 21 rejected,
    /// 1 unallocated, 20 unavailable (CHANUNAVAIL), 34 congestion, ...
    case calleeHangup(cause: Int, after: Duration)
    /// Rings until the originate's timeout: `ChannelDestroyed` cause 19 and no final `Dial`.
    case noAnswer
    /// The extension does not exist: both halves are destroyed with cause 0 and no `Dial` event at all.
    case nonexistent
    /// The originate itself is refused with this HTTP status (400, 500, 503, ...); no channel is created.
    case refuse(status: Int)
}

/// One row of the rule table: numbers whose digits match `pattern` (a regular expression matched against
/// the whole number) get `outcome`.
public struct OutcomeRule: Sendable, Equatable {
    /// How a matching number's outcome is chosen.
    public enum Decision: Sendable, Equatable {
        /// Always this outcome.
        case fixed(SimulatedOutcome)
        /// Decoded from the digits by the numbering plan (`1555 01 OC AA HH`, see ``NumberingPlan``);
        /// the pattern must capture OC, AA and HH as groups 1 to 3. Unknown codes fall through.
        case numberingPlan
        /// Decoded from the last two digits of a number in the North American fictional range (`NPA 555-01XY`,
        /// see ``FictionalNumbers``); the pattern must capture X and Y as groups 1 and 2.
        case fictionalRange
    }

    /// A short name for logs and documentation.
    public var name: String
    /// Regular expression matched against the whole number (see ``DialedNumber``).
    public var pattern: String
    /// What matching numbers get.
    public var decision: Decision

    /// Creates a rule.
    public init(name: String, pattern: String, decision: Decision) {
        self.name = name
        self.pattern = pattern
        self.decision = decision
    }

    /// Creates a rule with a fixed outcome.
    public init(name: String, pattern: String, outcome: SimulatedOutcome) {
        self.init(name: name, pattern: pattern, decision: .fixed(outcome))
    }

    /// The default table: the numbering plan, then the extension names of the captures' `dialer-test`
    /// dialplan (so `Local/busy@dialer-test` behaves as the capture A03 shows).
    public static let defaults: [OutcomeRule] = [
        OutcomeRule(name: "numbering-plan", pattern: NumberingPlan.pattern, decision: .numberingPlan),
        OutcomeRule(name: "fictional-range", pattern: FictionalNumbers.pattern, decision: .fictionalRange),
        OutcomeRule(name: "answer", pattern: "answer", outcome: .answer(ringing: .zero, hold: .milliseconds(2500))),
        OutcomeRule(
            name: "ring-answer",
            pattern: "ring-answer",
            outcome: .answer(ringing: .seconds(3), hold: .milliseconds(2500))
        ),
        OutcomeRule(
            name: "answer-long",
            pattern: "answer-long",
            outcome: .answer(ringing: .zero, hold: .milliseconds(30500))
        ),
        OutcomeRule(name: "busy", pattern: "busy", outcome: .busy(after: .zero)),
        OutcomeRule(name: "busy-hangup", pattern: "busy-hangup", outcome: .calleeHangup(cause: 17, after: .zero)),
        OutcomeRule(name: "congestion", pattern: "congestion", outcome: .congestion(after: .zero)),
        OutcomeRule(
            name: "congestion-hangup",
            pattern: "congestion-hangup",
            outcome: .calleeHangup(cause: 34, after: .zero)
        ),
        OutcomeRule(name: "noanswer", pattern: "noanswer", outcome: .noAnswer),
        OutcomeRule(name: "reject", pattern: "reject", outcome: .calleeHangup(cause: 21, after: .zero)),
        OutcomeRule(name: "unallocated", pattern: "unallocated", outcome: .calleeHangup(cause: 1, after: .zero)),
        OutcomeRule(name: "unavailable", pattern: "unavailable", outcome: .calleeHangup(cause: 20, after: .zero)),
        OutcomeRule(name: "nonexistent", pattern: "nosuch.*", outcome: .nonexistent),
    ]

    /// What a number without a matching rule gets: rings briefly, answers, stays up until hung up.
    public static let defaultFallback: SimulatedOutcome = .answer(ringing: .milliseconds(500), hold: nil)
}

/// The default numbering plan: `[+][1]555 01 OC AA HH` (12 digits with the leading 1).
///
/// | OC | outcome | AA | HH |
/// |----|---------|----|----|
/// | 00 | answer | ring time, 100 ms units (00: answer at once) | hold in seconds (00: until hung up) |
/// | 01 | busy, `Busy()` style (cause 0, BUSY) | delay before, 100 ms units, ringing meanwhile | - |
/// | 02 | busy, cause 17 | delay | - |
/// | 03 | congestion, `Congestion()` style (cause 0, CONGESTION) | delay | - |
/// | 04 | congestion, cause 34 | delay | - |
/// | 05 | no answer: rings until the originate timeout (cause 19) | - | - |
/// | 06 | rejected, cause 21 | delay | - |
/// | 07 | unallocated number, cause 1 | delay | - |
/// | 08 | unavailable, cause 20 (CHANUNAVAIL) | delay | - |
/// | 09 | nonexistent extension (cause 0, no Dial) | - | - |
/// | 10 | originate refused, HTTP 400 | - | - |
/// | 11 | originate refused, HTTP 503 | - | - |
/// | 12 | originate fails, HTTP 500 `{"error":"Allocation failed"}` | - | - |
/// | 13 | callee hangs up before answer with cause AAHH (e.g. `0038` → 38) | cause | cause |
/// | 14 | answer, then the callee hangs up after a random hold | ring time, 100 ms units | longest hold, 10 ms |
/// | 15 | answer as 00, by an answering machine: the `dialer-amd` context's `AMD()` says MACHINE | ring time | hold |
/// | 16 | answer as 00, and `AMD()` cannot decide: NOTSURE after its total analysis time | ring time | hold |
///
/// Every other answered number is a human to `AMD()`.
public enum NumberingPlan {
    /// The rule's pattern: OC, AA and HH captured as groups 1 to 3.
    public static let pattern = #"1?55501(\d{2})(\d{2})(\d{2})"#
    /// The code of numbers answered by a machine.
    public static let machineCode = 15
    /// The code of numbers `AMD()` cannot decide on.
    public static let notSureCode = 16

    /// What `AMD()` decides for a number of `code`.
    static func verdict(code: Int) -> SimulatedVerdict {
        switch code {
        case machineCode: .machine
        case notSureCode: .notSure
        default: .human
        }
    }

    /// Decodes the outcome for the three two-digit groups; `nil` for an unassigned code.
    ///
    /// Code 14 draws its hold time uniformly from 0 to HH × 10 ms on every call, so a stream of calls to one
    /// number (`+155501140010`: answers at once, up 0-100 ms) ends at a realistic spread of times.
    public static func outcome(code: Int, first: Int, second: Int) -> SimulatedOutcome? {
        let delay = Duration.milliseconds(first * 100)
        switch code {
        case 0, machineCode, notSureCode: return .answer(ringing: delay, hold: second == 0 ? nil : .seconds(second))
        case 1: return .busy(after: delay)
        case 2: return .calleeHangup(cause: 17, after: delay)
        case 3: return .congestion(after: delay)
        case 4: return .calleeHangup(cause: 34, after: delay)
        case 5: return .noAnswer
        case 6: return .calleeHangup(cause: 21, after: delay)
        case 7: return .calleeHangup(cause: 1, after: delay)
        case 8: return .calleeHangup(cause: 20, after: delay)
        case 9: return .nonexistent
        case 10: return .refuse(status: 400)
        case 11: return .refuse(status: 503)
        case 12: return .refuse(status: 500)
        case 13: return .calleeHangup(cause: first * 100 + second, after: .zero)
        case 14: return .answer(ringing: delay, hold: .milliseconds(Int.random(in: 0...(second * 10))))
        default: return nil
        }
    }
}

/// Valid North American numbers for development: `+1 NPA 555-01XY` is the range reserved for fiction, so these
/// numbers pass every check real numbers pass (a contact list's E.164 validation, a time zone from the area code)
/// and still reach nobody. X chooses the outcome, Y a parameter:
///
/// | X | outcome | Y |
/// |---|---------|---|
/// | 0 | answer after 1 s of ringing, then the callee hangs up | seconds up (0: 3 s) |
/// | 1 | busy (cause 17) | delay, 100 ms units |
/// | 2 | no answer: rings until the originate timeout (cause 19) | - |
/// | 3 | rejected, cause 21 | delay, 100 ms units |
/// | 4 | unallocated number, cause 1 | delay, 100 ms units |
/// | 5 | congestion, cause 34 | delay, 100 ms units |
/// | 6 | unavailable, cause 20 (CHANUNAVAIL) | delay, 100 ms units |
/// | 7 | answer at once, then the callee hangs up after a random hold | longest hold, seconds |
/// | 8 | answer after Y seconds of ringing, up 2 s | ring seconds |
/// | 9 | nonexistent extension (cause 0, no Dial) | - |
public enum FictionalNumbers {
    /// The rule's pattern (with or without the country code): X and Y captured as groups 1 and 2.
    public static let pattern = #"1?[2-9]\d{2}55501(\d)(\d)"#

    /// The outcome for the digits X and Y.
    public static func outcome(_ x: Int, _ y: Int) -> SimulatedOutcome {
        let delay = Duration.milliseconds(y * 100)
        switch x {
        case 0: return .answer(ringing: .seconds(1), hold: .seconds(y == 0 ? 3 : y))
        case 1: return .calleeHangup(cause: 17, after: delay)
        case 2: return .noAnswer
        case 3: return .calleeHangup(cause: 21, after: delay)
        case 4: return .calleeHangup(cause: 1, after: delay)
        case 5: return .calleeHangup(cause: 34, after: delay)
        case 6: return .calleeHangup(cause: 20, after: delay)
        case 7: return .answer(ringing: .zero, hold: .milliseconds(Int.random(in: 0...(max(1, y) * 1000))))
        case 8: return .answer(ringing: .seconds(y), hold: .seconds(2))
        default: return .nonexistent
        }
    }
}

/// The number a rule sees, taken from the originate's endpoint.
///
/// `Local/<exten>@<context>[/options]` gives `<exten>`; `PJSIP/<user>@<endpoint>` gives `<user>`;
/// `PJSIP/<endpoint>/sip:<user>@<host>` gives `<user>`; any other `Tech/<resource>` gives the resource up to
/// `@`. A leading `+` is removed.
public enum DialedNumber {
    /// Extracts the number from an endpoint (`Tech/resource`).
    public static func from(endpoint: String) -> String {
        guard let slash = endpoint.firstIndex(of: "/") else { return endpoint }
        var resource = String(endpoint[endpoint.index(after: slash)...])
        let technology = endpoint[..<slash].lowercased()
        if technology == "local" {
            if let optionSlash = resource.firstIndex(of: "/") { resource = String(resource[..<optionSlash]) }
        } else if let lastSlash = resource.lastIndex(of: "/") {
            resource = String(resource[resource.index(after: lastSlash)...])
        }
        for scheme in ["sips:", "sip:", "tel:"] where resource.lowercased().hasPrefix(scheme) {
            resource.removeFirst(scheme.count)
        }
        if let at = resource.firstIndex(of: "@") { resource = String(resource[..<at]) }
        if resource.hasPrefix("+") { resource.removeFirst() }
        return resource
    }
}

/// The rule table, compiled.
struct RuleTable: Sendable {
    private struct Compiled: @unchecked Sendable {
        // `Regex<AnyRegexOutput>` is not declared Sendable; a compiled regex is immutable and only used
        // for matching, which is safe from any thread.
        let rule: OutcomeRule
        let regex: Regex<AnyRegexOutput>
    }

    private let compiled: [Compiled]
    let fallback: SimulatedOutcome

    init(rules: [OutcomeRule], fallback: SimulatedOutcome) throws {
        self.compiled = try rules.map { rule in
            do {
                return Compiled(rule: rule, regex: try Regex(rule.pattern))
            } catch {
                throw ARISimulatorError.invalidRule("rule \(rule.name): bad pattern \(rule.pattern): \(error)")
            }
        }
        self.fallback = fallback
    }

    /// The outcome for `number`, the name of the rule that chose it (`fallback` when none matched), and what
    /// `AMD()` decides if the call is sent through answering machine detection (a numbering-plan code, else human).
    func outcome(for number: String) -> (SimulatedOutcome, String, SimulatedVerdict) {
        for entry in self.compiled {
            guard let match = try? entry.regex.wholeMatch(in: number) else { continue }
            switch entry.rule.decision {
            case .fixed(let outcome):
                return (outcome, entry.rule.name, .human)
            case .numberingPlan:
                let groups = (1...3).compactMap { index -> Int? in
                    guard index < match.output.count, let text = match.output[index].substring else { return nil }
                    return Int(text)
                }
                guard groups.count == 3,
                    let outcome = NumberingPlan.outcome(code: groups[0], first: groups[1], second: groups[2])
                else { continue }
                return (outcome, entry.rule.name, NumberingPlan.verdict(code: groups[0]))
            case .fictionalRange:
                let digits = (1...2).compactMap { index -> Int? in
                    guard index < match.output.count, let text = match.output[index].substring else { return nil }
                    return Int(text)
                }
                guard digits.count == 2 else { continue }
                return (FictionalNumbers.outcome(digits[0], digits[1]), entry.rule.name, .human)
            }
        }
        return (self.fallback, "fallback", .human)
    }
}

// MARK: - JSON rule files

/// The `--rules` file: `{"rules": [...], "includeDefaults": true, "fallback": {...}}`.
///
/// A rule is `{"name": "...", "match": "<regex>", "outcome": "<kind>", ...}` with kinds `answer`
/// (`ringMs`, `holdMs`; no `holdMs`: until hung up), `busy`, `busy-hangup`, `congestion`,
/// `congestion-hangup`, `reject`, `unallocated`, `unavailable` (each with an optional `afterMs`),
/// `hangup` (`cause`, `afterMs`), `noanswer`, `nonexistent`, `refuse` (`status`) and `plan` (the numbering
/// plan; the regex must capture OC, AA, HH). Rules from the file come first; the defaults follow unless
/// `includeDefaults` is false.
public struct RuleFile: Sendable {
    /// Rules in order (the file's, then the defaults if included).
    public var rules: [OutcomeRule]
    /// Outcome of numbers no rule matches.
    public var fallback: SimulatedOutcome

    /// Parses a rule file.
    public static func parse(_ data: Data) throws -> RuleFile {
        guard let root = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ARISimulatorError.invalidRule("a rules file is a JSON object with a \"rules\" array")
        }
        let entries = root["rules"] as? [[String: Any]] ?? []
        var rules = try entries.enumerated().map { index, entry in
            guard let pattern = entry["match"] as? String else {
                throw ARISimulatorError.invalidRule("rule \(index): \"match\" (a regular expression) is required")
            }
            let name = entry["name"] as? String ?? "rule-\(index)"
            if (entry["outcome"] as? String) == "plan" {
                return OutcomeRule(name: name, pattern: pattern, decision: .numberingPlan)
            }
            return OutcomeRule(name: name, pattern: pattern, outcome: try Self.outcome(entry, context: name))
        }
        if root["includeDefaults"] as? Bool ?? true {
            rules += OutcomeRule.defaults
        }
        var fallback = OutcomeRule.defaultFallback
        if let entry = root["fallback"] as? [String: Any] {
            fallback = try Self.outcome(entry, context: "fallback")
        }
        _ = try RuleTable(rules: rules, fallback: fallback)
        return RuleFile(rules: rules, fallback: fallback)
    }

    private static func outcome(_ entry: [String: Any], context: String) throws -> SimulatedOutcome {
        func milliseconds(_ key: String) -> Duration? {
            (entry[key] as? NSNumber).map { .milliseconds($0.int64Value) }
        }
        let after = milliseconds("afterMs") ?? .zero
        switch entry["outcome"] as? String {
        case "answer":
            return .answer(ringing: milliseconds("ringMs") ?? .zero, hold: milliseconds("holdMs"))
        case "busy": return .busy(after: after)
        case "busy-hangup": return .calleeHangup(cause: 17, after: after)
        case "congestion": return .congestion(after: after)
        case "congestion-hangup": return .calleeHangup(cause: 34, after: after)
        case "reject": return .calleeHangup(cause: 21, after: after)
        case "unallocated": return .calleeHangup(cause: 1, after: after)
        case "unavailable": return .calleeHangup(cause: 20, after: after)
        case "hangup":
            guard let cause = (entry["cause"] as? NSNumber)?.intValue else {
                throw ARISimulatorError.invalidRule("\(context): \"hangup\" needs a numeric \"cause\"")
            }
            return .calleeHangup(cause: cause, after: after)
        case "noanswer": return .noAnswer
        case "nonexistent": return .nonexistent
        case "refuse":
            guard let status = (entry["status"] as? NSNumber)?.intValue, (400...599).contains(status) else {
                throw ARISimulatorError.invalidRule("\(context): \"refuse\" needs a \"status\" between 400 and 599")
            }
            return .refuse(status: status)
        case let other:
            throw ARISimulatorError.invalidRule("\(context): unknown outcome \(other ?? "(none)")")
        }
    }
}

/// Errors of the simulator's configuration.
public enum ARISimulatorError: Error, Sendable, CustomStringConvertible {
    /// A rule (in code or in a rules file) is invalid.
    case invalidRule(String)
    /// The server could not start.
    case startupFailed(String)

    /// Human-readable text.
    public var description: String {
        switch self {
        case .invalidRule(let text): "invalid rule: \(text)"
        case .startupFailed(let text): "simulator start-up failed: \(text)"
        }
    }
}
