import Logging
import ServiceLifecycle

/// Prepares a producer as soon as it runs (``KafkaProducer/prepare(topics:timeout:)``: topic metadata and the
/// idempotent producer id), trying again with back-off until it succeeds, then waits for shutdown. Run it in the
/// producer's service group; readiness asks ``KafkaProducer/isPrepared``.
public struct KafkaProducerPreparation: Service {
    let producer: KafkaProducer
    let topics: [String]
    let logger: Logger

    /// Creates the service.
    public init(producer: KafkaProducer, topics: [String], logger: Logger) {
        self.producer = producer
        self.topics = topics
        self.logger = logger
    }

    public func run() async throws {
        var delay = Duration.milliseconds(200)
        while !producer.isPrepared {
            do {
                try await producer.prepare(topics: topics, timeout: .seconds(10))
            } catch is CancellationError {
                return
            } catch {
                logger.warning(
                    "Kafka producer not prepared yet; sends would pay for its start",
                    metadata: ["error": "\(error)", "retry.in": "\(delay)"])
                guard (try? await Task.sleep(for: delay)) != nil else { return }
                delay = min(delay * 2, .seconds(5))
            }
        }
        try? await gracefulShutdown()
    }
}
