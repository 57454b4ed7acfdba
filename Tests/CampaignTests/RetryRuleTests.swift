import CallDomain
import Campaigns
import Foundation
import Testing

@Suite struct CampaignOutcomeTests {
    @Test("outcomes from terminal statuses and failure reasons")
    func fromStatus() {
        #expect(CampaignOutcome(status: .completed, failureReason: nil) == .completed)
        #expect(CampaignOutcome(status: .busy, failureReason: nil) == .busy)
        #expect(CampaignOutcome(status: .noAnswer, failureReason: nil) == .noAnswer)
        #expect(CampaignOutcome(status: .rejected, failureReason: nil) == .rejected)
        #expect(CampaignOutcome(status: .failed, failureReason: .invalidNumber) == .invalidNumber)
        #expect(CampaignOutcome(status: .failed, failureReason: .congestion) == .failed)
        #expect(CampaignOutcome(status: .failed, failureReason: .unknown) == .failed)
        #expect(CampaignOutcome(status: .failed, failureReason: nil) == .failed)
        #expect(CampaignOutcome(status: .canceled, failureReason: nil) == .canceled)
        #expect(CampaignOutcome(status: .expired, failureReason: nil) == .expired)
        // Answering machine detection: a machine is its own outcome, anyone else a completed call.
        #expect(CampaignOutcome(status: .completed, failureReason: nil, answeredBy: .machine) == .machine)
        #expect(CampaignOutcome(status: .completed, failureReason: nil, answeredBy: .human) == .completed)
        #expect(CampaignOutcome(status: .completed, failureReason: nil, answeredBy: .unknown) == .completed)
        #expect(CampaignOutcome(status: .busy, failureReason: nil, answeredBy: .machine) == .busy)
        for status in CallStatus.allCases where !status.isTerminal {
            #expect(CampaignOutcome(status: status, failureReason: nil) == nil, "\(status)")
        }
    }

    @Test("raw values and finality")
    func rawValues() {
        #expect(
            CampaignOutcome.allCases.map(\.rawValue) == [
                "completed", "machine", "busy", "no_answer", "rejected", "failed", "invalid_number", "canceled",
                "expired",
            ])
        #expect(Set(CampaignOutcome.allCases.filter(\.isFinal)) == [.completed, .invalidNumber, .canceled])
    }
}

@Suite struct RetryRuleTests {
    let rules = RetryRules.standard

    @Test("a machine is retried only with a machine rule")
    func machine() throws {
        #expect(
            rules.decide(after: .machine, attemptsMade: 1, retriesOf: 0, maxAttempts: 3)
                == .finished(disposition: .machine))
        let withMachine = try WireCoding.decode(
            RetryRules.self, from: Array(#"{"machine":{"delay_seconds":7200,"max_retries":1}}"#.utf8))
        #expect(
            withMachine.decide(after: .machine, attemptsMade: 1, retriesOf: 0, maxAttempts: 3)
                == .retry(after: .seconds(7200)))
        #expect(
            withMachine.decide(after: .machine, attemptsMade: 2, retriesOf: 1, maxAttempts: 3)
                == .finished(disposition: .machine))
    }

    @Test("the standard rules")
    func standard() throws {
        #expect(rules[.busy] == (try RetryRule(delaySeconds: 600, maxRetries: 3)))
        #expect(rules[.noAnswer] == (try RetryRule(delaySeconds: 3600, maxRetries: 2)))
        #expect(rules[.rejected] == (try RetryRule(delaySeconds: 3600, maxRetries: 1)))
        #expect(rules[.failed] == (try RetryRule(delaySeconds: 1800, maxRetries: 2)))
        #expect(rules[.expired] == (try RetryRule(delaySeconds: 600, maxRetries: 3)))
        #expect(rules[.completed] == nil)
        #expect(rules[.canceled] == nil)
        #expect(rules[.invalidNumber] == nil)
        #expect(rules[.busy]?.delay == .seconds(600))
    }

    @Test("retries while both limits allow")
    func retries() {
        #expect(
            rules.decide(after: .busy, attemptsMade: 1, retriesOf: 0, maxAttempts: 5) == .retry(after: .seconds(600)))
        #expect(
            rules.decide(after: .busy, attemptsMade: 3, retriesOf: 2, maxAttempts: 5) == .retry(after: .seconds(600)))
        #expect(
            rules.decide(after: .noAnswer, attemptsMade: 2, retriesOf: 1, maxAttempts: 5)
                == .retry(after: .seconds(3600)))
        #expect(
            rules.decide(after: .rejected, attemptsMade: 1, retriesOf: 0, maxAttempts: 5)
                == .retry(after: .seconds(3600)))
        #expect(
            rules.decide(after: .failed, attemptsMade: 1, retriesOf: 0, maxAttempts: 3) == .retry(after: .seconds(1800))
        )
        #expect(
            rules.decide(after: .expired, attemptsMade: 1, retriesOf: 0, maxAttempts: 2) == .retry(after: .seconds(600))
        )
    }

    @Test("stops at the outcome's retry limit")
    func retryLimit() {
        #expect(
            rules.decide(after: .busy, attemptsMade: 4, retriesOf: 3, maxAttempts: 10) == .finished(disposition: .busy))
        #expect(
            rules.decide(after: .rejected, attemptsMade: 2, retriesOf: 1, maxAttempts: 10)
                == .finished(disposition: .rejected))
        #expect(
            rules.decide(after: .noAnswer, attemptsMade: 3, retriesOf: 2, maxAttempts: 10)
                == .finished(disposition: .noAnswer))
    }

    @Test("never exceeds the campaign's attempts")
    func attemptLimit() {
        #expect(
            rules.decide(after: .busy, attemptsMade: 3, retriesOf: 0, maxAttempts: 3) == .finished(disposition: .busy))
        #expect(
            rules.decide(after: .noAnswer, attemptsMade: 1, retriesOf: 0, maxAttempts: 1)
                == .finished(disposition: .noAnswer))
        #expect(
            rules.decide(after: .busy, attemptsMade: 9, retriesOf: 0, maxAttempts: 3) == .finished(disposition: .busy))
    }

    @Test("final outcomes are never retried")
    func finalOutcomes() {
        for outcome in [CampaignOutcome.completed, .invalidNumber, .canceled] {
            #expect(
                rules.decide(after: outcome, attemptsMade: 1, retriesOf: 0, maxAttempts: 10)
                    == .finished(disposition: outcome))
        }
        let none = try? RetryRules([:])
        #expect(
            none?.decide(after: .busy, attemptsMade: 1, retriesOf: 0, maxAttempts: 5) == .finished(disposition: .busy))
    }

    @Test("a rule allowing no retries finishes at once")
    func zeroRetries() throws {
        let rules = try RetryRules([.busy: try RetryRule(delaySeconds: 60, maxRetries: 0)])
        #expect(
            rules.decide(after: .busy, attemptsMade: 1, retriesOf: 0, maxAttempts: 5) == .finished(disposition: .busy))
    }

    static let refusedRules: [(Int, Int, String)] = [
        (0, 1, "delay_seconds is 0; it must be between 1 and 2592000 (30 days)"),
        (-5, 1, "delay_seconds is -5; it must be between 1 and 2592000 (30 days)"),
        (2_592_001, 1, "delay_seconds is 2592001; it must be between 1 and 2592000 (30 days)"),
        (60, -1, "max_retries is -1; it must be between 0 and 20"),
        (60, 21, "max_retries is 21; it must be between 0 and 20"),
    ]

    @Test("refused rules", arguments: refusedRules)
    func refusedRule(_ delay: Int, _ retries: Int, _ message: String) {
        #expect(throws: RetryRuleError(message)) { try RetryRule(delaySeconds: delay, maxRetries: retries) }
    }

    @Test("limits are inclusive")
    func limits() throws {
        _ = try RetryRule(delaySeconds: 1, maxRetries: 0)
        _ = try RetryRule(delaySeconds: 2_592_000, maxRetries: 20)
    }

    @Test("final outcomes cannot have rules")
    func refusedFinal() throws {
        let rule = try RetryRule(delaySeconds: 60, maxRetries: 1)
        for outcome in [CampaignOutcome.completed, .invalidNumber, .canceled] {
            #expect(
                throws: RetryRuleError(
                    "\(outcome.rawValue) cannot have a retry rule: it is a final outcome and never retried")
            ) { try RetryRules([outcome: rule]) }
        }
    }

    @Test("Codable keyed by outcome, with validation on decoding")
    func codable() throws {
        let json =
            #"{"busy": {"delay_seconds": 600, "max_retries": 3}, "no_answer": {"delay_seconds": 3600, "max_retries": 2}}"#
        let decoded = try JSONDecoder().decode(RetryRules.self, from: Data(json.utf8))
        #expect(decoded.rules.count == 2)
        #expect(decoded[.noAnswer] == (try RetryRule(delaySeconds: 3600, maxRetries: 2)))
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        #expect(
            String(decoding: try encoder.encode(decoded), as: UTF8.self)
                == #"{"busy":{"delay_seconds":600,"max_retries":3},"no_answer":{"delay_seconds":3600,"max_retries":2}}"#
        )
        #expect(try JSONDecoder().decode(RetryRules.self, from: try encoder.encode(RetryRules.standard)) == .standard)
        for bad in [
            #"{"completed": {"delay_seconds": 600, "max_retries": 3}}"#,
            #"{"busy": {"delay_seconds": 0, "max_retries": 3}}"#,
            #"{"busy": {"delay_seconds": 60, "max_retries": 99}}"#,
            #"{"sometimes": {"delay_seconds": 60, "max_retries": 1}}"#,
            #"{"busy": {"delay_seconds": 60}}"#,
        ] {
            #expect(throws: DecodingError.self, "\(bad)") {
                try JSONDecoder().decode(RetryRules.self, from: Data(bad.utf8))
            }
        }
    }
}

@Suite struct CampaignCallIDTests {
    let campaign = UUID(uuidString: "6f1e0c2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b") ?? UUID()
    let contact = UUID(uuidString: "123e4567-e89b-42d3-a456-426614174000") ?? UUID()

    @Test("matches a reference computed independently (Python hashlib)")
    func reference() {
        let id = CallID.campaignAttempt(campaign: campaign, contact: contact, attempt: 1)
        #expect(id.description == "4a0ff41b-4442-86f4-acfa-95a90c645186")
    }

    @Test("deterministic, version 8, RFC 9562 variant, distinct per input")
    func properties() {
        let first = CallID.campaignAttempt(campaign: campaign, contact: contact, attempt: 1)
        #expect(CallID.campaignAttempt(campaign: campaign, contact: contact, attempt: 1) == first)
        var ids: Set<CallID> = []
        for attempt in 1...50 {
            let id = CallID.campaignAttempt(campaign: campaign, contact: contact, attempt: attempt)
            let bytes = withUnsafeBytes(of: id.uuid.uuid) { Array($0) }
            #expect(bytes[6] >> 4 == 8)
            #expect(bytes[8] >> 6 == 0b10)
            #expect(id.timestamp == nil)
            ids.insert(id)
        }
        #expect(ids.count == 50)
        #expect(CallID.campaignAttempt(campaign: contact, contact: campaign, attempt: 1) != first)
        #expect(CallID.derived(userID: campaign, idempotencyKey: contact.uuidString.lowercased()) != first)
    }
}
