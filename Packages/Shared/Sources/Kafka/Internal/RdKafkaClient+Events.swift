import CRdKafka

extension RdKafkaClient {
    /// The kinds of queue events this module handles.
    enum EventKind {
        case deliveryReport
        case message
        case rebalance
        case offsetCommit
        case log
        case error
        /// Statistics (`statistics.interval.ms`), JSON; the producer reads its idempotence state from them.
        case statistics
        case other
    }

    func kind(of event: OpaquePointer) -> EventKind {
        switch rd_kafka_event_type(event) {
        case Int32(RD_KAFKA_EVENT_DR): return .deliveryReport
        case Int32(RD_KAFKA_EVENT_FETCH): return .message
        case Int32(RD_KAFKA_EVENT_REBALANCE): return .rebalance
        case Int32(RD_KAFKA_EVENT_OFFSET_COMMIT): return .offsetCommit
        case Int32(RD_KAFKA_EVENT_LOG): return .log
        case Int32(RD_KAFKA_EVENT_ERROR): return .error
        case Int32(RD_KAFKA_EVENT_STATS): return .statistics
        default: return .other
        }
    }

    /// The JSON text of a statistics event.
    func statistics(of event: OpaquePointer) -> String? {
        rd_kafka_event_stats(event).map { String(cString: $0) }
    }

    /// A reusable array for reading the messages of delivery-report events in batches.
    final class ReportBuffer {
        let capacity = 1024
        let slots: UnsafeMutablePointer<UnsafePointer<rd_kafka_message_t>?>

        init() {
            slots = .allocate(capacity: capacity)
        }

        deinit {
            slots.deallocate()
        }
    }

    /// Appends the outcome of every message in a delivery-report event, keyed by the id given at produce time.
    func readDeliveryReports(
        _ event: OpaquePointer,
        buffer: ReportBuffer,
        into reports: inout [(id: UInt64, outcome: DeliveryOutcome)]
    ) {
        while true {
            let count = rd_kafka_event_message_array(event, buffer.slots, buffer.capacity)
            guard count > 0 else { return }
            for index in 0..<count {
                guard let message = buffer.slots[index] else { continue }
                let id = UInt64(UInt(bitPattern: message.pointee._private))
                let error = message.pointee.err
                if error == RD_KAFKA_RESP_ERR_NO_ERROR {
                    reports.append(
                        (id, .delivered(partition: message.pointee.partition, offset: message.pointee.offset)))
                } else {
                    let text = String(cString: rd_kafka_message_errstr(message))
                    reports.append((id, .failed(KafkaError(error, message: text))))
                }
            }
            if count < buffer.capacity { return }
        }
    }

    /// The consumed message of a fetch event, or the error it carries instead (e.g. a partition error).
    func readMessage(_ event: OpaquePointer) -> Result<KafkaMessage, KafkaError>? {
        guard let raw = rd_kafka_event_message_next(event) else { return nil }
        let error = raw.pointee.err
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
            let text = String(cString: rd_kafka_message_errstr(raw))
            return .failure(KafkaError(error, message: text))
        }
        return .success(Self.message(from: raw))
    }

    /// A rebalance event: whether partitions are assigned (else revoked) and which, or an unexpected error.
    func readRebalance(
        _ event: OpaquePointer
    ) -> Result<(assigned: Bool, partitions: [KafkaTopicPartition]), KafkaError> {
        let error = rd_kafka_event_error(event)
        let partitions = Self.read(rd_kafka_event_topic_partition_list(event)).map(\.partition)
        switch error {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            return .success((true, partitions))
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
            return .success((false, partitions))
        default:
            return .failure(KafkaError(error, message: String(cString: rd_kafka_event_error_string(event))))
        }
    }

    /// An offset-commit result: the opaque id given to ``commitAsync(_:opaque:)`` and the outcome, which fails if
    /// the request or any partition failed.
    func readCommitResult(_ event: OpaquePointer) -> (id: UInt64, result: Result<Int, KafkaError>) {
        let id = UInt64(UInt(bitPattern: rd_kafka_event_opaque(event)))
        let error = rd_kafka_event_error(event)
        let partitions = Self.read(rd_kafka_event_topic_partition_list(event))
        if error != RD_KAFKA_RESP_ERR_NO_ERROR {
            return (id, .failure(KafkaError(error, message: String(cString: rd_kafka_event_error_string(event)))))
        }
        if let failed = partitions.first(where: { $0.error != RD_KAFKA_RESP_ERR_NO_ERROR }) {
            let code = KafkaError.Code(failed.error)
            return (
                id, .failure(KafkaError(failed.error, message: "commit of \(failed.partition) failed: \(code.text)"))
            )
        }
        return (id, .success(partitions.count))
    }
}
