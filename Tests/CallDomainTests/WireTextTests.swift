import CallDomain
import Foundation
import Testing

/// The messages written without `JSONEncoder` (``JSONTextWritable``) are, byte for byte, what `JSONEncoder` writes
/// with the wire conventions, on generated values: consumers of an older release, the idempotency fingerprints and
/// the stored history see no difference.
@Suite struct WireTextTests {
    /// Deterministic, so that a failure names a value that can be made again (SplitMix64).
    struct SeededGenerator: RandomNumberGenerator {
        var state: UInt64

        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var mixed = state
            mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
            mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
            return mixed ^ (mixed >> 31)
        }
    }

    /// Makes values that reach every branch of the writers: absent and present optionals, strings that need
    /// escaping, keys that sort differently by case, digits, underscores and non-ASCII letters, every kind of number.
    struct Values {
        var random: SeededGenerator
        static let now = Date(timeIntervalSince1970: 1_796_000_000.123)

        static let textPieces: [String] = [
            "a", "Z", "0", "9", "_", "-", " ", "/", "\"", "\\", "\n", "\r", "\t", "\u{1}", "\u{1F}", "\u{7F}", "é", "ß",
            "日本", "😀", "\u{2028}", "e\u{301}", "<", "&", "'",
        ]
        static let keyPieces: [String] = ["a", "b", "A", "B", "z", "_", "0", "1", "9", "é", "É", "ñ", "日", "-", "."]
        static let numbers: [Double] = [
            0, 1, -1, 3, 42, 1_000_000, -2_147_483_648, 9_007_199_254_740_991, 0.25, -0.5, 1.0 / 3.0, 0.1 + 0.2,
            1e-7, 123_456_789.123, 1e21, 2.5e-300, 9_007_199_254_740_992, 18_014_398_509_481_984, -1e16,
        ]

        mutating func chance(_ percent: Int) -> Bool { Int.random(in: 0..<100, using: &random) < percent }

        mutating func text(_ pieces: [String] = textPieces, maximumPieces: Int = 6) -> String {
            (0..<Int.random(in: 0...maximumPieces, using: &random)).map { _ in pieces.randomElement(using: &random)! }
                .joined()
        }

        mutating func key() -> String {
            let key = text(Self.keyPieces, maximumPieces: 4)
            return key.isEmpty ? "k" : key
        }

        mutating func date() -> Date {
            Self.now.addingTimeInterval(Double(Int.random(in: -100_000_000...100_000_000, using: &random)) / 1000)
        }

        mutating func json(depth: Int) -> JSONValue {
            switch Int.random(in: 0..<(depth >= 3 ? 4 : 6), using: &random) {
            case 0: return .null
            case 1: return .bool(chance(50))
            case 2: return .number(Self.numbers.randomElement(using: &random)!)
            case 3: return .string(text())
            case 4: return .array((0..<Int.random(in: 0...3, using: &random)).map { _ in json(depth: depth + 1) })
            default: return .object(object(depth: depth + 1))
            }
        }

        mutating func object(depth: Int) -> [String: JSONValue] {
            var members: [String: JSONValue] = [:]
            for _ in 0..<Int.random(in: 0...5, using: &random) { members[key()] = json(depth: depth) }
            return members
        }

        mutating func metadata() throws -> ClientMetadata { try ClientMetadata(object(depth: 1)) }

        mutating func digits(_ count: ClosedRange<Int>) -> String {
            (0..<Int.random(in: count, using: &random)).map { _ in String(Int.random(in: 0...9, using: &random)) }
                .joined()
        }

        mutating func variables() throws -> ChannelVariables {
            var values: [String: String] = [:]
            for _ in 0..<Int.random(in: 0...4, using: &random) {
                values["VAR_\(Int.random(in: 0...99, using: &random))"] = text(["a", "Z", "0", " ", "-", ":", "%", "#"])
            }
            return try ChannelVariables(values)
        }

        mutating func machineDetection() throws -> MachineDetection {
            var timings: [MachineDetection.Timing: Int] = [:]
            for timing in MachineDetection.Timing.allCases where chance(40) {
                timings[timing] = Int.random(in: timing.range, using: &random)
            }
            return try MachineDetection(
                mode: MachineDetection.Mode.allCases.randomElement(using: &random)!,
                onMachine: MachineDetection.MachinePolicy.allCases.randomElement(using: &random)!, timings: timings)
        }

        mutating func originate() throws -> OriginateCommand {
            let requestedAt = date()
            return OriginateCommand(
                callID: CallID.generate(now: requestedAt), requestedAt: requestedAt,
                expiresAt: requestedAt.addingTimeInterval(300),
                to: try DialTarget((chance(50) ? "+" : "") + digits(3...20)),
                callerID: chance(50)
                    ? try CallerID(name: chance(50) ? "Sales é 日本 x_y" : nil, number: "+" + digits(1...20)) : nil,
                dialplan: chance(50)
                    ? try DialplanTarget(
                        context: "outbound", extension: digits(1...6), priority: Int.random(in: 1...9, using: &random))
                    : nil,
                timeoutSeconds: Int.random(in: OriginateCommand.timeoutRange, using: &random),
                variables: try variables(), metadata: try metadata(), requestedBy: text(),
                requestID: chance(50) ? text() : nil,
                organizationID: chance(50) ? .default : OrganizationID(uuid: UUID()),
                statusCallback: chance(40)
                    ? try StatusCallback(
                        url: "https://crm.example.com/hooks/" + text(),
                        events: Set(CallStatus.allCases.filter { $0 != .queued && chance(30) }))
                    : nil,
                machineDetection: chance(30) ? try machineDetection() : nil, record: chance(30))
        }

        mutating func statusEvent() throws -> CallStatusEvent {
            func maybe<Value>(_ value: Value, _ percent: Int = 50) -> Value? { chance(percent) ? value : nil }
            let status = CallStatus.allCases.randomElement(using: &random)!
            return CallStatusEvent(
                eventID: UUID(), callID: CallID.generate(now: date()), seq: Int.random(in: 1...1_000, using: &random),
                status: status, previousStatus: CallStatus.allCases.randomElement(using: &random)!, occurredAt: date(),
                nodeID: maybe(text()), workerID: maybe(text()), channelID: maybe(text()),
                to: maybe("+" + digits(3...20)),
                hangupCause: maybe(HangupCause(code: Int.random(in: 0...127, using: &random), text: text())),
                failureReason: maybe(FailureReason.allCases.randomElement(using: &random)!),
                detail: maybe(text()), answeredAt: maybe(date()),
                answeredBy: maybe(AnsweredBy.allCases.randomElement(using: &random)!), endedAt: maybe(date()),
                durationSeconds: maybe(Self.numbers.randomElement(using: &random)!.magnitude),
                metadata: try metadata(),
                ownerEpoch: maybe(Int.random(in: 0...CallStatusEvent.maximumCounter, using: &random)),
                organizationID: maybe(OrganizationID(uuid: UUID())))
        }
    }

    /// The writer's bytes and `JSONEncoder`'s, for one value.
    static func bothWays<Value: JSONTextWritable & Encodable>(
        _ value: Value
    ) throws -> (written: String, encoded: String) {
        (
            String(decoding: try value.jsonBytes(), as: UTF8.self),
            String(decoding: try WireCoding.encoder.encode(value), as: UTF8.self)
        )
    }

    @Test("an originate command is JSONEncoder's bytes, on 2,000 generated commands")
    func originateCommands() throws {
        var values = Values(random: SeededGenerator(state: 20_261_208))
        for _ in 0..<2_000 {
            let (written, encoded) = try Self.bothWays(try values.originate())
            try #require(written == encoded)
        }
    }

    @Test("a status event is JSONEncoder's bytes, on 2,000 generated events")
    func statusEvents() throws {
        var values = Values(random: SeededGenerator(state: 8_122_026))
        for _ in 0..<2_000 {
            let (written, encoded) = try Self.bothWays(try values.statusEvent())
            try #require(written == encoded)
        }
    }

    @Test("metadata, variables and every number a client may send are JSONEncoder's bytes")
    func metadataAndNumbers() throws {
        var values = Values(random: SeededGenerator(state: 42))
        for _ in 0..<2_000 {
            let (written, encoded) = try Self.bothWays(try values.metadata())
            try #require(written == encoded)
            let (writtenVariables, encodedVariables) = try Self.bothWays(try values.variables())
            try #require(writtenVariables == encodedVariables)
        }
        for number in Values.numbers + [-0.0, .leastNonzeroMagnitude, .greatestFiniteMagnitude, 0.1, 100.5] {
            let (written, encoded) = try Self.bothWays(JSONValue.number(number))
            #expect(written == encoded, "\(number)")
        }
    }

    @Test("WireCoding writes a writable value itself, and what it wrote decodes to a value that writes the same")
    func wireCodingUsesTheWriter() throws {
        var values = Values(random: SeededGenerator(state: 7))
        for _ in 0..<100 {
            let command = try values.originate()
            let bytes = try WireCoding.encode(command)
            #expect(bytes == (try command.jsonBytes()))
            #expect(try WireCoding.encode(try WireCoding.decode(OriginateCommand.self, from: bytes)) == bytes)
            let event = try values.statusEvent()
            let text = try WireCoding.encodeText(event)
            #expect(text == String(decoding: try event.jsonBytes(), as: UTF8.self))
            #expect(
                try WireCoding.encodeText(try WireCoding.decode(CallStatusEvent.self, from: Array(text.utf8))) == text)
        }
    }
}
