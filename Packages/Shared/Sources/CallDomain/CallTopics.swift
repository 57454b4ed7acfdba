/// The Kafka topics of the platform. Names are configurable; these are the defaults.
public struct CallTopics: Hashable, Sendable {
    /// Originate commands (gateway → dialers and history writer). Key: call id.
    public var originate: String
    /// Hangup and cancel commands (gateway → every worker). Key: call id.
    public var control: String
    /// Call status events (dialers → history writer, gateway live streams, any subscriber). Key: call id.
    public var status: String

    /// Creates a set of topic names.
    public init(originate: String, control: String, status: String) {
        self.originate = originate
        self.control = control
        self.status = status
    }

    /// `calls.originate.v1`, `calls.control.v1`, `calls.status.v1`.
    public static let defaults = CallTopics(
        originate: "calls.originate.v1", control: "calls.control.v1", status: "calls.status.v1")

    /// The names from `KAFKA_TOPIC_ORIGINATE`, `KAFKA_TOPIC_CONTROL` and `KAFKA_TOPIC_STATUS`, or the defaults.
    public static func fromEnvironment(_ environment: [String: String]) -> CallTopics {
        func name(_ variable: String, _ fallback: String) -> String {
            guard let value = environment[variable], !value.isEmpty else { return fallback }
            return value
        }
        return CallTopics(
            originate: name("KAFKA_TOPIC_ORIGINATE", defaults.originate),
            control: name("KAFKA_TOPIC_CONTROL", defaults.control),
            status: name("KAFKA_TOPIC_STATUS", defaults.status))
    }

    /// All three, for topic creation.
    public var all: [String] { [originate, control, status] }
}
