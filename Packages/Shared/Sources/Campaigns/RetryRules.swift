import CallDomain

/// How one attempt of a campaign call ended, as far as retrying is concerned. The raw values are the wire and
/// database form.
public enum CampaignOutcome: String, CaseIterable, Hashable, Sendable, Codable {
    /// The callee answered (a person, or answering machine detection could not tell).
    case completed
    /// An answering machine answered (the campaign's answering machine detection said so): retried only when the
    /// campaign has a `machine` rule, to reach the person later.
    case machine
    /// The line was busy.
    case busy
    /// Nobody answered before the timeout.
    case noAnswer = "no_answer"
    /// The callee rejected the call.
    case rejected
    /// The call could not be placed for a reason that may pass (congestion, unavailable, refused originate...).
    case failed
    /// The network says the number does not exist; dialling it again cannot help.
    case invalidNumber = "invalid_number"
    /// We canceled the call.
    case canceled
    /// The call waited too long for a worker and was never dialled.
    case expired

    /// The outcome of a call that ended with `status`; `nil` for a status that is not an end (`queued` ...
    /// `answered`), since a call still in progress has no outcome yet.
    ///
    /// A `failed` call whose reason is `invalidNumber` is `invalidNumber`, every other failure `failed`; a completed
    /// call that a machine answered is `machine`.
    public init?(status: CallStatus, failureReason: FailureReason?, answeredBy: AnsweredBy? = nil) {
        switch status {
        case .completed: self = answeredBy == .machine ? .machine : .completed
        case .busy: self = .busy
        case .noAnswer: self = .noAnswer
        case .rejected: self = .rejected
        case .failed: self = failureReason == .invalidNumber ? .invalidNumber : .failed
        case .canceled: self = .canceled
        case .expired: self = .expired
        case .queued, .dispatched, .initiated, .ringing, .answered: return nil
        }
    }

    /// Whether the contact is done with: reached, known unreachable, or withdrawn. Such outcomes are never retried.
    public var isFinal: Bool {
        switch self {
        case .completed, .invalidNumber, .canceled: true
        case .machine, .busy, .noAnswer, .rejected, .failed, .expired: false
        }
    }
}

/// Why retry rules were refused.
public struct RetryRuleError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What is wrong, in words the person configuring the campaign can act on.
    public let message: String

    /// Creates an error with its message.
    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// How to retry after one outcome: wait `delaySeconds`, and retry at most `maxRetries` times for that outcome.
/// Encoded as `{"delay_seconds": 600, "max_retries": 3}`.
public struct RetryRule: Hashable, Sendable, Codable {
    /// The shortest delay: one second.
    public static let minimumDelaySeconds = 1
    /// The longest delay: 30 days, beyond which a contact list is stale.
    public static let maximumDelaySeconds = 30 * 24 * 3600
    /// The most retries for one outcome.
    public static let maximumRetries = 20

    /// Seconds to wait before the retry.
    public let delaySeconds: Int
    /// How many times this outcome may be retried for one contact.
    public let maxRetries: Int

    /// Validates the delay (1 second to 30 days) and the retry count (0 to 20).
    public init(delaySeconds: Int, maxRetries: Int) throws(RetryRuleError) {
        guard (Self.minimumDelaySeconds...Self.maximumDelaySeconds).contains(delaySeconds) else {
            throw RetryRuleError(
                "delay_seconds is \(delaySeconds); it must be between \(Self.minimumDelaySeconds) and "
                    + "\(Self.maximumDelaySeconds) (30 days)")
        }
        guard (0...Self.maximumRetries).contains(maxRetries) else {
            throw RetryRuleError("max_retries is \(maxRetries); it must be between 0 and \(Self.maximumRetries)")
        }
        self.delaySeconds = delaySeconds
        self.maxRetries = maxRetries
    }

    /// The delay as a `Duration`.
    public var delay: Duration { .seconds(delaySeconds) }

    private enum CodingKeys: String, CodingKey {
        case delaySeconds = "delay_seconds"
        case maxRetries = "max_retries"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let delay = try container.decode(Int.self, forKey: .delaySeconds)
        let retries = try container.decode(Int.self, forKey: .maxRetries)
        do {
            try self.init(delaySeconds: delay, maxRetries: retries)
        } catch {
            throw DecodingError.dataCorruptedError(
                forKey: .delaySeconds, in: container, debugDescription: error.message)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(delaySeconds, forKey: .delaySeconds)
        try container.encode(maxRetries, forKey: .maxRetries)
    }
}

/// What to do after an attempt.
public enum RetryDecision: Hashable, Sendable {
    /// Call the contact again after this delay.
    case retry(after: Duration)
    /// Stop calling the contact; `disposition` is the outcome it is left with.
    case finished(disposition: CampaignOutcome)
}

/// The retry rule of each outcome, encoded as an object keyed by outcome: `{"busy": {"delay_seconds": 600,
/// "max_retries": 3}, ...}`. An outcome without a rule is not retried.
public struct RetryRules: Hashable, Sendable, Codable {
    /// The rules; never one for a final outcome.
    public let rules: [CampaignOutcome: RetryRule]

    /// Busy: every 10 minutes, 3 times; no answer: every hour, twice; rejected: after an hour, once; failed: every
    /// 30 minutes, twice; expired: every 10 minutes, 3 times.
    public static let standard: RetryRules = {
        let rule = { (delay: Int, retries: Int) in RetryRule(uncheckedDelay: delay, retries: retries) }
        return RetryRules(
            unchecked: [
                .busy: rule(600, 3), .noAnswer: rule(3600, 2), .rejected: rule(3600, 1), .failed: rule(1800, 2),
                .expired: rule(600, 3),
            ])
    }()

    /// Validates that no final outcome (completed, invalid_number, canceled) has a rule: retrying them would call
    /// someone already reached, a number that does not exist, or a contact that was withdrawn.
    public init(_ rules: [CampaignOutcome: RetryRule]) throws(RetryRuleError) {
        if let final = CampaignOutcome.allCases.first(where: { $0.isFinal && rules[$0] != nil }) {
            throw RetryRuleError("\(final.rawValue) cannot have a retry rule: it is a final outcome and never retried")
        }
        self.rules = rules
    }

    private init(unchecked rules: [CampaignOutcome: RetryRule]) {
        self.rules = rules
    }

    /// The rule for `outcome`, if it is retried.
    public subscript(outcome: CampaignOutcome) -> RetryRule? { rules[outcome] }

    /// Whether to call the contact again after an attempt ended with `outcome`.
    /// - Parameters:
    ///   - outcome: how the attempt just made ended.
    ///   - attemptsMade: attempts made for the contact so far, this one included.
    ///   - retriesOf: retries already made because of this same outcome, not counting the one being decided.
    ///   - maxAttempts: the campaign's limit on attempts per contact, first attempt included.
    public func decide(
        after outcome: CampaignOutcome, attemptsMade: Int, retriesOf: Int, maxAttempts: Int
    ) -> RetryDecision {
        guard !outcome.isFinal, let rule = rules[outcome], attemptsMade < maxAttempts, retriesOf < rule.maxRetries
        else {
            return .finished(disposition: outcome)
        }
        return .retry(after: rule.delay)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let raw = try container.decode([String: RetryRule].self)
        var rules: [CampaignOutcome: RetryRule] = [:]
        for (name, rule) in raw {
            guard let outcome = CampaignOutcome(rawValue: name) else {
                throw DecodingError.dataCorruptedError(
                    in: container,
                    debugDescription:
                        "\"\(name.prefix(30))\" is not an outcome; use "
                        + CampaignOutcome.allCases.filter { !$0.isFinal }.map(\.rawValue).joined(separator: ", "))
            }
            rules[outcome] = rule
        }
        do {
            try self.init(rules)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.message)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(Dictionary(uniqueKeysWithValues: rules.map { ($0.key.rawValue, $0.value) }))
    }
}

extension RetryRule {
    /// A rule whose values are known to be in range.
    fileprivate init(uncheckedDelay delay: Int, retries: Int) {
        self.delaySeconds = delay
        self.maxRetries = retries
    }
}
