import CRdKafka
import Foundation

extension RdKafkaClient {
    /// Copies a consumed librdkafka message into a ``KafkaMessage`` (the C message is freed with its event).
    static func message(from raw: UnsafePointer<rd_kafka_message_t>) -> KafkaMessage {
        let record = raw.pointee
        let topic = record.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? ""
        let key: [UInt8]? = record.key.map { pointer in
            Array(UnsafeRawBufferPointer(start: pointer, count: record.key_len))
        }
        let value: [UInt8] =
            record.payload.map { pointer in
                Array(UnsafeRawBufferPointer(start: pointer, count: record.len))
            } ?? []
        var timestampType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let milliseconds = rd_kafka_message_timestamp(raw, &timestampType)
        let timestamp = milliseconds >= 0 ? Date(timeIntervalSince1970: Double(milliseconds) / 1000) : nil
        return KafkaMessage(
            topic: topic,
            partition: record.partition,
            offset: record.offset,
            key: key,
            value: value,
            headers: headers(of: raw),
            timestamp: timestamp
        )
    }

    private static func headers(of raw: UnsafePointer<rd_kafka_message_t>) -> [KafkaHeader] {
        var list: OpaquePointer?
        guard rd_kafka_message_headers(raw, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return [] }
        var headers: [KafkaHeader] = []
        headers.reserveCapacity(rd_kafka_header_cnt(list))
        var index = 0
        while true {
            var name: UnsafePointer<CChar>?
            var value: UnsafeRawPointer?
            var size = 0
            guard rd_kafka_header_get_all(list, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR else {
                break
            }
            let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }
            headers.append(KafkaHeader(key: name.map { String(cString: $0) } ?? "", value: bytes))
            index += 1
        }
        return headers
    }
}
