import Kafka
import Testing

@Suite struct ConfigurationTests {
    @Test func environmentMapsToLibrdkafkaProperties() throws {
        let configuration = try KafkaConfiguration.fromEnvironment([
            "KAFKA_BOOTSTRAP_SERVERS": "kafka-1:9092,kafka-2:9092",
            "KAFKA_CLIENT_ID": "api-gateway-7",
            "KAFKA_PROP_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_PROP_SASL_MECHANISMS": "SCRAM-SHA-512",
            "KAFKA_PROP_SASL_USERNAME": "dialer",
            "KAFKA_PROP_SSL_CA_LOCATION": "/etc/ssl/ca.pem",
            "KAFKA_PROP_LINGER_MS": "10",
            "KAFKA_PROP_LOG__LEVEL": "7",
            "UNRELATED": "x",
        ])
        #expect(configuration.bootstrapServers == "kafka-1:9092,kafka-2:9092")
        #expect(configuration.clientID == "api-gateway-7")
        #expect(
            configuration.properties == [
                "security.protocol": "SASL_SSL",
                "sasl.mechanisms": "SCRAM-SHA-512",
                "sasl.username": "dialer",
                "ssl.ca.location": "/etc/ssl/ca.pem",
                "linger.ms": "10",
                "log_level": "7",
            ])
    }

    @Test func clientIDDefaultsWhenUnset() throws {
        let configuration = try KafkaConfiguration.fromEnvironment(["KAFKA_BOOTSTRAP_SERVERS": "localhost:9092"])
        #expect(configuration.clientID == KafkaConfiguration.defaultClientID)
        #expect(configuration.properties.isEmpty)
    }

    @Test func missingBootstrapServersNamesTheVariable() {
        let error = #expect(throws: KafkaError.self) {
            try KafkaConfiguration.fromEnvironment(["KAFKA_PROP_LINGER_MS": "5"])
        }
        #expect(error?.message.contains("KAFKA_BOOTSTRAP_SERVERS") == true)
        #expect(error?.code == .invalidArgument)
    }

    @Test func emptyPropertyNameIsRejected() {
        let error = #expect(throws: KafkaError.self) {
            try KafkaConfiguration.fromEnvironment(["KAFKA_BOOTSTRAP_SERVERS": "k:1", "KAFKA_PROP_": "x"])
        }
        #expect(error?.message.contains("KAFKA_PROP_") == true)
    }

    @Test func errorCodesCarryLibrdkafkaNames() {
        #expect(KafkaError.Code.messageTimedOut.name == "_MSG_TIMED_OUT")
        #expect(KafkaError.Code.messageTimedOut.rawValue == -192)
        let error = KafkaError(code: .messageTimedOut, message: "Local: Message timed out")
        #expect(error.isRetriable)
        #expect(error.description == "Local: Message timed out [_MSG_TIMED_OUT(-192)]")
    }
}
