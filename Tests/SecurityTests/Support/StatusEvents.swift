import CallDomain
import CallMessaging
import EmbeddedKafka
import Foundation
import Kafka
import Logging

/// Status events written straight to a gateway's status topic, as a worker would, to feed its live streams.
enum StatusEvents {
    /// Publishes `count` `ringing` events of distinct calls, each carrying `metadataBytes` of client metadata.
    static func publish(count: Int, metadataBytes: Int, round: Int, gateway: GatewayProcess) async throws {
        var configuration = KafkaConfiguration(bootstrapServers: gateway.cluster.bootstrapServers)
        configuration.clientID = "security-tests-status"
        let producer = try KafkaProducer(
            configuration: configuration, deliveryTimeout: .seconds(30), logger: Logger(label: "security-tests"))
        let publisher = CallMessagePublisher(producer: producer, topics: .defaults, source: "/security-tests")
        let metadata = try ClientMetadata(["padding": .string(String(repeating: "m", count: metadataBytes))])
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await producer.run() }
            try await withThrowingTaskGroup(of: Void.self) { sends in
                for index in 0..<count {
                    if index >= 200 { try await sends.next() }
                    sends.addTask {
                        let event = CallStatusEvent(
                            callID: .generate(), seq: 1, status: .dispatched, previousStatus: .queued,
                            occurredAt: Date(), nodeID: "node-a", workerID: "round-\(round)", metadata: metadata)
                        _ = try await publisher.publish(event, traceParent: nil)
                    }
                }
                try await sends.waitForAll()
            }
            group.cancelAll()
        }
    }
}
