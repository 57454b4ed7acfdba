/// The Kafka topics of the platform. Names are configurable; these are the defaults.
public struct CallTopics: Hashable, Sendable {
    /// Originate commands (gateway → dialers and history writer). Key: call id.
    public var originate: String
    /// Hangup and cancel commands (gateway → every worker). Key: call id.
    public var control: String
    /// Call status events (dialers → history writer, gateway live streams, any subscriber). Key: call id.
    public var status: String
    /// Messages a consumer could never process (undecodable, values out of range), copied with the reason in their
    /// headers so that they never stall a partition and are not lost either. Key: the original key.
    public var deadLetter: String

    /// Creates a set of topic names.
    public init(originate: String, control: String, status: String, deadLetter: String = "calls.deadletter.v1") {
        self.originate = originate
        self.control = control
        self.status = status
        self.deadLetter = deadLetter
    }

    /// `calls.originate.v1`, `calls.control.v1`, `calls.status.v1`, `calls.deadletter.v1`.
    public static let defaults = CallTopics(
        originate: "calls.originate.v1", control: "calls.control.v1", status: "calls.status.v1",
        deadLetter: "calls.deadletter.v1")

    /// The names from `KAFKA_TOPIC_ORIGINATE`, `KAFKA_TOPIC_CONTROL`, `KAFKA_TOPIC_STATUS` and
    /// `KAFKA_TOPIC_DEADLETTER`, or the defaults.
    public static func fromEnvironment(_ environment: [String: String]) -> CallTopics {
        func name(_ variable: String, _ fallback: String) -> String {
            guard let value = environment[variable], !value.isEmpty else { return fallback }
            return value
        }
        return CallTopics(
            originate: name("KAFKA_TOPIC_ORIGINATE", defaults.originate),
            control: name("KAFKA_TOPIC_CONTROL", defaults.control),
            status: name("KAFKA_TOPIC_STATUS", defaults.status),
            deadLetter: name("KAFKA_TOPIC_DEADLETTER", defaults.deadLetter))
    }

    /// All four, for topic creation.
    public var all: [String] { [originate, control, status, deadLetter] }
}
