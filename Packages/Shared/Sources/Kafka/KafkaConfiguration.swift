import Foundation

/// Connection settings shared by every Kafka client of this module (producer, group consumer, fan-out reader).
///
/// The typed fields cover what every deployment sets; `properties` passes any other librdkafka property
/// through unchanged (SASL, TLS, `linger.ms`, `debug`, ...), so an operator never waits for a code change
/// to tune or secure the connection.
public struct KafkaConfiguration: Sendable {
    /// The client id used when none is configured: it names this system in broker logs and quotas.
    public static let defaultClientID = "outbound-dialer"

    /// Comma-separated `host:port` list of brokers to bootstrap from (librdkafka `bootstrap.servers`).
    public var bootstrapServers: String
    /// The client id sent to the brokers (librdkafka `client.id`), visible in broker logs and metrics.
    public var clientID: String
    /// librdkafka properties passed through verbatim. They win over the typed fields and over the defaults a
    /// client type sets (for example a producer's `acks`), so an operator has the last word.
    public var properties: [String: String]

    /// Creates a configuration from explicit values.
    public init(
        bootstrapServers: String,
        clientID: String = KafkaConfiguration.defaultClientID,
        properties: [String: String] = [:]
    ) {
        self.bootstrapServers = bootstrapServers
        self.clientID = clientID
        self.properties = properties
    }

    /// The prefix of environment variables that carry librdkafka properties.
    public static let propertyVariablePrefix = "KAFKA_PROP_"

    /// Consumer settings for services that follow their topic closely and whose partitions must move within seconds
    /// when a member dies: a 100 ms fetch wait (librdkafka's default is 500 ms), a 10 s session (default 45 s) and
    /// 1 s heartbeats.
    public static let promptConsumerDefaults: [String: String] = [
        "fetch.wait.max.ms": "100", "session.timeout.ms": "10000", "heartbeat.interval.ms": "1000",
    ]

    /// Producer settings for services that wait for each message's acknowledgement: a 1 ms linger, where
    /// librdkafka's 5 ms default would be most of the wait (the gateway's 202 went from p99 18 ms to 8.5 ms at half
    /// load).
    public static let promptProducerDefaults: [String: String] = ["linger.ms": "1"]

    /// This configuration with `defaults` for the properties it does not set (an operator's `KAFKA_PROP_*` wins).
    public func withDefaults(_ defaults: [String: String]) -> KafkaConfiguration {
        var configuration = self
        configuration.properties.merge(defaults) { set, _ in set }
        return configuration
    }

    /// Reads the configuration from environment variables.
    ///
    /// - `KAFKA_BOOTSTRAP_SERVERS` (required): `bootstrapServers`.
    /// - `KAFKA_CLIENT_ID` (optional, default ``defaultClientID``): `clientID`.
    /// - `KAFKA_PROP_<NAME>` (any number): one librdkafka property each, with the variable's value verbatim.
    ///   `<NAME>` is turned into the property name by lowercasing it, then replacing every `__` (two underscores)
    ///   with `_` and every remaining single `_` with `.`. Examples:
    ///   `KAFKA_PROP_SECURITY_PROTOCOL=SASL_SSL` sets `security.protocol`,
    ///   `KAFKA_PROP_SASL_MECHANISMS=PLAIN` sets `sasl.mechanisms`,
    ///   `KAFKA_PROP_SSL_CA_LOCATION=/etc/ssl/ca.pem` sets `ssl.ca.location`,
    ///   `KAFKA_PROP_LINGER_MS=10` sets `linger.ms`,
    ///   `KAFKA_PROP_LOG__LEVEL=7` sets `log_level` (a property whose name contains an underscore).
    ///
    /// Unknown property names are not rejected here: librdkafka rejects them, with its own message, when a client
    /// is created.
    ///
    /// - Throws: ``KafkaError`` with code ``KafkaError/Code/invalidArgument`` naming the variable when
    ///   `KAFKA_BOOTSTRAP_SERVERS` is missing or empty, or a `KAFKA_PROP_` variable has no property name.
    public static func fromEnvironment(
        _ environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> KafkaConfiguration {
        guard let servers = environment["KAFKA_BOOTSTRAP_SERVERS"]?.trimmingCharacters(in: .whitespaces),
            !servers.isEmpty
        else {
            throw KafkaError(
                code: .invalidArgument,
                message: "KAFKA_BOOTSTRAP_SERVERS is not set: give a comma-separated list of host:port brokers"
            )
        }
        var clientID = defaultClientID
        if let configured = environment["KAFKA_CLIENT_ID"], !configured.isEmpty {
            clientID = configured
        }
        var properties: [String: String] = [:]
        for (variable, value) in environment where variable.hasPrefix(propertyVariablePrefix) {
            let name = try propertyName(forVariable: variable)
            properties[name] = value
        }
        return KafkaConfiguration(bootstrapServers: servers, clientID: clientID, properties: properties)
    }

    /// The librdkafka property a `KAFKA_PROP_` variable sets (see ``fromEnvironment(_:)`` for the rule).
    public static func propertyName(forVariable variable: String) throws -> String {
        let suffix = variable.dropFirst(propertyVariablePrefix.count)
        guard variable.hasPrefix(propertyVariablePrefix), !suffix.isEmpty else {
            throw KafkaError(
                code: .invalidArgument,
                message: "\(variable) does not name a librdkafka property (expected KAFKA_PROP_<NAME>)"
            )
        }
        // A placeholder that cannot occur in an environment variable name keeps `__` apart from `_`.
        let placeholder = "\u{0}"
        let name = suffix.lowercased()
            .replacingOccurrences(of: "__", with: placeholder)
            .replacingOccurrences(of: "_", with: ".")
            .replacingOccurrences(of: placeholder, with: "_")
        return name
    }

    /// The librdkafka properties of a client: the typed fields, then the client type's `defaults`, then the
    /// passthrough `properties`, each layer overriding the previous one.
    func librdkafkaProperties(defaults: [String: String]) -> [String: String] {
        var merged = ["bootstrap.servers": bootstrapServers, "client.id": clientID]
        merged.merge(defaults) { _, new in new }
        merged.merge(properties) { _, new in new }
        return merged
    }
}
