import ServiceSupport

extension EnvironmentReader {
    /// The Kafka settings of a service (`KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_CLIENT_ID`, `KAFKA_PROP_*`; see
    /// ``KafkaConfiguration/fromEnvironment(_:)``), refused with a `ConfigurationError` naming the variable at fault.
    public func kafkaConfiguration() throws -> KafkaConfiguration {
        guard raw("KAFKA_BOOTSTRAP_SERVERS") != nil else {
            throw ConfigurationError(
                variable: "KAFKA_BOOTSTRAP_SERVERS", message: "must be set (a comma-separated list of host:port)")
        }
        do {
            return try KafkaConfiguration.fromEnvironment(values)
        } catch let error as KafkaError {
            let variable = values.keys.sorted().first { error.message.contains($0) } ?? "KAFKA_BOOTSTRAP_SERVERS"
            throw ConfigurationError(variable: variable, message: error.message)
        }
    }
}
