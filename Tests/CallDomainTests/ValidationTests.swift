import CallDomain
import Testing

/// The validation of every value that reaches a dial string or a SIP header is a security boundary: each hostile
/// input below must be refused, with an error naming the field.
@Suite struct ValidationTests {
    static let hostileNumbers: [String] = [
        "123&PJSIP/900@evil", "1,2", "a/b", "1@x", "", String(repeating: "1", count: 10_000),
        "\u{0661}\u{0662}\u{0663}\u{0664}",  // Arabic-Indic digits
        "12\u{0}34", "123\r\n", "+", "++123", "12 34", "１２３４",  // full-width digits
        "123;foo", "123|456", "\"123\"", "<123>", "12-34", "(123)",
    ]

    @Test(arguments: hostileNumbers)
    func dialTargetRejectsHostileInput(_ input: String) {
        #expect(throws: FieldError.self) { try DialTarget(input) }
        do {
            _ = try DialTarget(input)
        } catch {
            #expect(error.field == "to")
            #expect(!error.message.isEmpty)
        }
    }

    @Test(arguments: ["+15550100001", "15550100001", "911", "+4930123456789"])
    func dialTargetAcceptsNumbers(_ input: String) throws {
        #expect(try DialTarget(input).value == input)
    }

    static let hostileNames: [String] = [
        "\"x\" <1>\r\nVia: y", "a\"b", "a<b", "a>b", "line\rbreak", "line\nbreak", "nul\u{0}", "bell\u{7}",
        "", String(repeating: "a", count: 10_000), "a,b", "a;b", "a@b", "a/b", "a&b", "bidi\u{202E}x",
        "zero\u{200B}width", "digits\u{0663}",
    ]

    @Test(arguments: hostileNames)
    func callerIDNameRejectsHostileInput(_ input: String) {
        do {
            _ = try CallerID(name: input, number: "15550100")
            Issue.record("accepted \(input.debugDescription)")
        } catch {
            #expect(error.errors.map(\.field) == ["caller_id.name"])
        }
    }

    @Test(arguments: ["Acme Support", "José Müller", "Zoë_O-Brien.", "山田 太郎"])
    func callerIDNameAcceptsPeoplesNames(_ name: String) throws {
        let callerID = try CallerID(name: name, number: "+15550100")
        #expect(callerID.ariValue == "\"\(name)\" <+15550100>")
    }

    @Test func callerIDReportsBothFieldsAtOnce() {
        do {
            _ = try CallerID(name: "a\"b", number: "1@x")
            Issue.record("accepted")
        } catch {
            #expect(error.errors.map(\.field) == ["caller_id.name", "caller_id.number"])
        }
    }

    @Test(arguments: [
        ("ctx&evil", "s", 1), ("a/b", "s", 1), ("", "s", 1), ("ok", "1,2", 1), ("ok", "1@x", 1), ("ok", "", 1),
        ("ok", "s", 0), ("ok", "s", 100_000), (String(repeating: "c", count: 10_000), "s", 1), ("ok\n", "s", 1),
    ])
    func dialplanTargetRejects(_ context: String, _ exten: String, _ priority: Int) {
        #expect(throws: ValidationFailure.self) {
            try DialplanTarget(context: context, extension: exten, priority: priority)
        }
    }

    @Test func contextMustBeAllowed() throws {
        #expect(throws: FieldError.self) { try DialplanTarget.validateContext("internal", allowed: ["outbound"]) }
        try DialplanTarget.validateContext("outbound", allowed: ["outbound"])
        do {
            try DialplanTarget.validateContext("internal", allowed: ["outbound"])
        } catch {
            #expect(error.field == "context")
        }
    }

    @Test func variablesAreLimitedInCount() {
        let many = Dictionary(uniqueKeysWithValues: (0...32).map { ("V\($0)", "x") })
        do {
            _ = try ChannelVariables(many)
            Issue.record("accepted 33 variables")
        } catch {
            #expect(error.errors.contains { $0.field == "variables" })
        }
        #expect(throws: Never.self) {
            try ChannelVariables(Dictionary(uniqueKeysWithValues: (0..<32).map { ("V\($0)", "x") }))
        }
    }

    @Test(arguments: ["1ABC", "A-B", "A B", "", "A.B", "Ä", "A\nB", String(repeating: "A", count: 65)])
    func variableNamesFollowThePattern(_ name: String) {
        do {
            _ = try ChannelVariables([name: "value"])
            Issue.record("accepted \(name.debugDescription)")
        } catch {
            #expect(error.errors.first?.field.hasPrefix("variables.") == true)
        }
    }

    @Test(arguments: [
        "a&b", "PJSIP/900@evil", "x,y", "\"q\"", "<a>", "a\r\nb", "nul\u{0}", "$(SHELL)", "{a}",
        String(repeating: "v", count: 10_000),
    ])
    func variableValuesRejectInjection(_ value: String) {
        do {
            _ = try ChannelVariables(["CAMPAIGN": value])
            Issue.record("accepted \(value.debugDescription)")
        } catch {
            #expect(error.errors.map(\.field) == ["variables.CAMPAIGN"])
        }
    }

    @Test func metadataIsLimitedTo4KiB() throws {
        let big = ["blob": JSONValue.string(String(repeating: "x", count: 4096))]
        #expect(throws: FieldError.self) { try ClientMetadata(big) }
        let fine = ["campaign": JSONValue.string("c-42"), "attempt": .number(2)]
        #expect(try ClientMetadata(fine).values == fine)
    }

    @Test func metadataNestingIsLimited() {
        var deep = JSONValue.string("leaf")
        for _ in 0..<10 { deep = .object(["k": deep]) }
        guard case .object(let object) = deep else { return #expect(Bool(false)) }
        #expect(throws: FieldError.self) { try ClientMetadata(object) }
    }
}
