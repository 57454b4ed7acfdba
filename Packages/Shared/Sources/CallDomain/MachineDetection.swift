/// Answering machine detection for one call: Asterisk's `AMD()` run on the answered channel, and what to do when
/// it hears a machine.
///
/// The worker sends the answered channel through the node's AMD dial plan (`deploy/asterisk/extensions.conf`,
/// context `dialer-amd`), which runs `AMD()` with these timings and returns the channel to the Stasis application;
/// the worker then reads `AMDSTATUS` and `AMDCAUSE` from the channel. Timings left `nil` take the node's
/// `amd.conf` values.
public struct MachineDetection: Hashable, Sendable, Codable {
    /// When the detection ends.
    public enum Mode: String, Hashable, Sendable, Codable, CaseIterable {
        /// As soon as `AMD()` decides (Twilio's `Enable`).
        case detect
        /// For a machine, after its greeting ends too (`WaitForSilence()`), so a message left starts after the beep
        /// (Twilio's `DetectMessageEnd`).
        case detectMessageEnd = "detect_message_end"
    }

    /// What happens to a call answered by a machine.
    public enum MachinePolicy: String, Hashable, Sendable, Codable, CaseIterable {
        /// The worker hangs up: the call ends `completed`, answered by a machine.
        case hangup
        /// The call goes on to the node's machine context (the operator's dial plan, for example a recorded message).
        case `continue`
    }

    /// One of `AMD()`'s parameters, in its argument order, with the range this API accepts.
    public enum Timing: String, Hashable, Sendable, CaseIterable, CodingKey {
        case initialSilence = "initial_silence_ms"
        case greeting = "greeting_ms"
        case afterGreetingSilence = "after_greeting_silence_ms"
        case totalAnalysisTime = "total_analysis_time_ms"
        case minimumWordLength = "minimum_word_length_ms"
        case betweenWordsSilence = "between_words_silence_ms"
        case maximumNumberOfWords = "maximum_number_of_words"
        case silenceThreshold = "silence_threshold"
        case maximumWordLength = "maximum_word_length_ms"

        /// Values accepted: milliseconds up to a minute, a word count, or an energy level (`AMD()`'s 0 to 32767).
        public var range: ClosedRange<Int> {
            switch self {
            case .maximumNumberOfWords: 1...100
            case .silenceThreshold: 1...32_767
            default: 1...60_000
            }
        }
    }

    /// When the detection ends.
    public var mode: Mode
    /// What happens to a call answered by a machine.
    public var onMachine: MachinePolicy
    /// The timings given; the others are the node's `amd.conf` values.
    public private(set) var timings: [Timing: Int]

    /// Validates the timings (each within ``Timing/range``).
    public init(mode: Mode, onMachine: MachinePolicy = .hangup, timings: [Timing: Int] = [:]) throws(FieldError) {
        for (timing, value) in timings where !timing.range.contains(value) {
            throw FieldError(
                field: "machine_detection.\(timing.rawValue)",
                message: "must be an integer from \(timing.range.lowerBound) to \(timing.range.upperBound)")
        }
        self.mode = mode
        self.onMachine = onMachine
        self.timings = timings
    }

    /// `AMD()`'s arguments in order, empty where the node's default applies.
    public var amdArguments: String {
        Timing.allCases.map { timings[$0].map(String.init) ?? "" }.joined(separator: ",")
    }

    enum CodingKeys: String, CodingKey {
        case mode
        case onMachine = "on_machine"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let values = try decoder.container(keyedBy: Timing.self)
        var timings: [Timing: Int] = [:]
        for timing in Timing.allCases {
            timings[timing] = try values.decodeIfPresent(Int.self, forKey: timing)
        }
        do {
            try self.init(
                mode: try container.decode(Mode.self, forKey: .mode),
                onMachine: try container.decodeIfPresent(MachinePolicy.self, forKey: .onMachine) ?? .hangup,
                timings: timings)
        } catch let error as FieldError {
            throw DecodingError.dataCorruptedError(
                forKey: .mode, in: container, debugDescription: "\(error.field) \(error.message)")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(mode, forKey: .mode)
        try container.encode(onMachine, forKey: .onMachine)
        var values = encoder.container(keyedBy: Timing.self)
        for timing in Timing.allCases {
            try values.encodeIfPresent(timings[timing], forKey: timing)
        }
    }
}

/// Who answered a call, as answering machine detection decided (Twilio's `AnsweredBy`).
public enum AnsweredBy: String, Hashable, Sendable, Codable, CaseIterable {
    case human
    case machine
    /// Detection could not decide (`NOTSURE`), or the call ended before it did.
    case unknown

    /// `AMDSTATUS` as `AMD()` sets it: `HUMAN`, `MACHINE`, `NOTSURE` or `HANGUP`; anything else is `unknown`.
    public init(amdStatus: String) {
        switch amdStatus.uppercased() {
        case "HUMAN": self = .human
        case "MACHINE": self = .machine
        default: self = .unknown
        }
    }
}
