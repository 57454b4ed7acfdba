import CRdKafka
import Foundation
import Logging

/// Owns one librdkafka client handle (`rd_kafka_t`) and makes every C call on it.
///
/// The public producer and consumer types sit on top and never see a C pointer. librdkafka never calls into Swift
/// from its own threads: logs, errors, delivery reports, rebalances and commit results are all events on one queue
/// (`log.queue=true` plus the event API), served by the owner's poll thread through ``poll(timeoutMilliseconds:)``.
///
/// `@unchecked Sendable`: librdkafka documents `rd_kafka_t` and `rd_kafka_queue_t` as thread-safe; both pointers
/// are immutable after `init` and released only in `deinit`, when no other reference to this object exists.
final class RdKafkaClient: @unchecked Sendable {
    /// Which kind of librdkafka client the handle is.
    enum Role: Sendable {
        case producer
        case consumer
    }

    let handle: OpaquePointer
    /// The queue all events of this client arrive on: the main queue of a producer, the consumer queue (with the
    /// main queue forwarded into it) of a consumer.
    let eventQueue: OpaquePointer
    /// A consumer's queue for offset-commit results, apart from `eventQueue` so that a result never waits behind
    /// fetched messages (a reader may wait for a commit before it reads on, while the poll thread holds back).
    let commitQueue: OpaquePointer?
    let role: Role
    let logger: Logger

    /// Creates the handle from librdkafka properties; the role decides which events arrive on the queue.
    init(role: Role, properties: [String: String], logger: Logger) throws(KafkaError) {
        guard let conf = rd_kafka_conf_new() else {
            throw KafkaError(code: .invalidArgument, message: "rd_kafka_conf_new failed")
        }
        var errorText = [CChar](repeating: 0, count: 512)
        var properties = properties
        // Logs as queue events: librdkafka must not call a Swift log callback from its internal threads.
        properties["log.queue"] = "true"
        for (name, value) in properties.sorted(by: { $0.key < $1.key }) {
            let result = rd_kafka_conf_set(conf, name, value, &errorText, errorText.count)
            guard result == RD_KAFKA_CONF_OK else {
                rd_kafka_conf_destroy(conf)
                throw KafkaError(
                    code: .invalidArgument,
                    message: "invalid librdkafka property \(name): \(Self.string(errorText))"
                )
            }
        }
        let roleEvents: Int32
        switch role {
        case .producer:
            // Statistics only arrive when `statistics.interval.ms` is set.
            roleEvents = Int32(RD_KAFKA_EVENT_DR) | Int32(RD_KAFKA_EVENT_STATS)
        case .consumer:
            // Rebalances as events too: librdkafka then expects the poll thread to (un)assign, no C callback.
            roleEvents = Int32(RD_KAFKA_EVENT_FETCH | RD_KAFKA_EVENT_REBALANCE | RD_KAFKA_EVENT_OFFSET_COMMIT)
        }
        rd_kafka_conf_set_events(conf, roleEvents | Int32(RD_KAFKA_EVENT_LOG) | Int32(RD_KAFKA_EVENT_ERROR))
        let type = role == .producer ? RD_KAFKA_PRODUCER : RD_KAFKA_CONSUMER
        // On success rd_kafka_new owns `conf`; on failure it is still ours.
        guard let handle = rd_kafka_new(type, conf, &errorText, errorText.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(code: .invalidArgument, message: "cannot create Kafka client: \(Self.string(errorText))")
        }
        rd_kafka_set_log_queue(handle, nil)
        let queue: OpaquePointer?
        switch role {
        case .producer:
            queue = rd_kafka_queue_get_main(handle)
        case .consumer:
            let forwarded = rd_kafka_poll_set_consumer(handle)
            guard forwarded == RD_KAFKA_RESP_ERR_NO_ERROR else {
                rd_kafka_destroy(handle)
                throw KafkaError(forwarded, message: "cannot route events to the consumer queue")
            }
            queue = rd_kafka_queue_get_consumer(handle)
        }
        guard let queue else {
            rd_kafka_destroy(handle)
            throw KafkaError(code: .invalidState, message: "librdkafka returned no event queue")
        }
        self.handle = handle
        self.eventQueue = queue
        self.commitQueue = role == .consumer ? rd_kafka_queue_new(handle) : nil
        self.role = role
        self.logger = logger
    }

    deinit {
        if let commitQueue {
            rd_kafka_queue_destroy(commitQueue)
        }
        rd_kafka_queue_destroy(eventQueue)
        rd_kafka_destroy(handle)
    }

    static func string(_ buffer: [CChar]) -> String {
        let bytes = buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    // MARK: - Events

    /// Waits up to `timeoutMilliseconds` for the next event. The caller must `destroy` it.
    func poll(timeoutMilliseconds: Int32) -> OpaquePointer? {
        rd_kafka_queue_poll(eventQueue, timeoutMilliseconds)
    }

    /// Waits up to `timeoutMilliseconds` for the next offset-commit result.
    func pollCommitResults(timeoutMilliseconds: Int32) -> OpaquePointer? {
        guard let commitQueue else { return nil }
        return rd_kafka_queue_poll(commitQueue, timeoutMilliseconds)
    }

    /// Wakes a thread blocked in ``poll(timeoutMilliseconds:)`` or ``pollCommitResults(timeoutMilliseconds:)``.
    func wakeUp() {
        rd_kafka_queue_yield(eventQueue)
        if let commitQueue {
            rd_kafka_queue_yield(commitQueue)
        }
    }

    func destroy(event: OpaquePointer) {
        rd_kafka_event_destroy(event)
    }

    func type(of event: OpaquePointer) -> Int32 {
        rd_kafka_event_type(event)
    }

    /// Forwards a log event to the logger, mapping syslog levels.
    func log(event: OpaquePointer) {
        var facility: UnsafePointer<CChar>?
        var text: UnsafePointer<CChar>?
        var level: Int32 = 0
        guard rd_kafka_event_log(event, &facility, &text, &level) == 0 else { return }
        let swiftLevel: Logger.Level
        switch level {
        case ...2: swiftLevel = .critical
        case 3: swiftLevel = .error
        case 4: swiftLevel = .warning
        case 5: swiftLevel = .notice
        case 6: swiftLevel = .info
        default: swiftLevel = .debug
        }
        logger.log(
            level: swiftLevel,
            "\(text.map { String(cString: $0) } ?? "")",
            metadata: ["kafka.facility": "\(facility.map { String(cString: $0) } ?? "")"]
        )
    }

    /// Reads an error event. Fatal errors are returned with the underlying fatal code; others are only logged.
    func handleErrorEvent(_ event: OpaquePointer) -> KafkaError? {
        let code = rd_kafka_event_error(event)
        let text = String(cString: rd_kafka_event_error_string(event))
        guard rd_kafka_event_error_is_fatal(event) != 0 else {
            logger.warning(
                "Kafka client error",
                metadata: ["kafka.error": "\(text)", "kafka.error.code": "\(KafkaError.Code(code))"]
            )
            return nil
        }
        var fatalText = [CChar](repeating: 0, count: 512)
        let fatalCode = rd_kafka_fatal_error(handle, &fatalText, fatalText.count)
        let error = KafkaError(
            code: KafkaError.Code(fatalCode == RD_KAFKA_RESP_ERR_NO_ERROR ? code : fatalCode),
            message: fatalCode == RD_KAFKA_RESP_ERR_NO_ERROR ? text : Self.string(fatalText),
            isRetriable: false,
            isFatal: true
        )
        logger.critical("Kafka client fatal error", metadata: ["kafka.error": "\(error)"])
        return error
    }

    // MARK: - Producer

    /// The outcome of handing one message to librdkafka.
    enum ProduceOutcome {
        case enqueued
        case queueFull
        case failed(KafkaError)
    }

    /// Enqueues one message (copied) whose delivery report will carry `opaque`.
    ///
    /// - Parameter headers: built with ``makeHeaders(_:)``; consumed when the outcome is `.enqueued`, still owned by
    ///   the caller otherwise.
    func produce(
        topic: String,
        key: [UInt8]?,
        value: [UInt8],
        headers: OpaquePointer?,
        opaque: UInt64
    ) -> ProduceOutcome {
        // librdkafka distinguishes a NULL payload (a null value) from an empty one: point at a real byte for empty.
        var emptyByte: UInt8 = 0
        return withUnsafeMutablePointer(to: &emptyByte) { empty in
            topic.withCString { topicName in
                value.withUnsafeBytes { valueBytes in
                    Self.withOptionalBytes(key) { keyBytes in
                        // On the stack: this runs once per message.
                        withUnsafeTemporaryAllocation(of: rd_kafka_vu_t.self, capacity: 6) { fields in
                            var count = 0
                            func append(_ type: rd_kafka_vtype_t, _ fill: (inout rd_kafka_vu_t) -> Void) {
                                var field = rd_kafka_vu_t()
                                field.vtype = type
                                fill(&field)
                                fields.initializeElement(at: count, to: field)
                                count += 1
                            }
                            append(RD_KAFKA_VTYPE_TOPIC) { $0.u.cstr = topicName }
                            append(RD_KAFKA_VTYPE_VALUE) {
                                $0.u.mem.ptr = UnsafeMutableRawPointer(
                                    mutating: valueBytes.count > 0 ? valueBytes.baseAddress : UnsafeRawPointer(empty)
                                )
                                $0.u.mem.size = valueBytes.count
                            }
                            if let keyBytes {
                                append(RD_KAFKA_VTYPE_KEY) {
                                    $0.u.mem.ptr = UnsafeMutableRawPointer(
                                        mutating: keyBytes.count > 0 ? keyBytes.baseAddress : UnsafeRawPointer(empty)
                                    )
                                    $0.u.mem.size = keyBytes.count
                                }
                            }
                            append(RD_KAFKA_VTYPE_OPAQUE) {
                                $0.u.ptr = UnsafeMutableRawPointer(bitPattern: UInt(opaque))
                            }
                            append(RD_KAFKA_VTYPE_MSGFLAGS) { $0.u.i = RD_KAFKA_MSG_F_COPY }
                            if let headers {
                                append(RD_KAFKA_VTYPE_HEADERS) { $0.u.headers = headers }
                            }
                            let error = rd_kafka_produceva(handle, fields.baseAddress, count)
                            fields.baseAddress?.deinitialize(count: count)
                            guard let error else { return ProduceOutcome.enqueued }
                            if rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                                rd_kafka_error_destroy(error)
                                return .queueFull
                            }
                            return .failed(KafkaError(consuming: error))
                        }
                    }
                }
            }
        }
    }

    private static func withOptionalBytes<Result>(
        _ bytes: [UInt8]?,
        _ body: (UnsafeRawBufferPointer?) -> Result
    ) -> Result {
        guard let bytes else { return body(nil) }
        return bytes.withUnsafeBytes { body($0) }
    }

    /// A librdkafka header list for `headers`, or `nil` when there are none.
    func makeHeaders(_ headers: [KafkaHeader]) -> OpaquePointer? {
        guard !headers.isEmpty, let list = rd_kafka_headers_new(headers.count) else { return nil }
        for header in headers {
            if let value = header.value {
                value.withUnsafeBytes { bytes in
                    _ = rd_kafka_header_add(list, header.key, -1, bytes.baseAddress, bytes.count)
                }
            } else {
                _ = rd_kafka_header_add(list, header.key, -1, nil, 0)
            }
        }
        return list
    }

    func destroy(headers: OpaquePointer) {
        rd_kafka_headers_destroy(headers)
    }

    /// Messages librdkafka still holds (queued, in flight, or with an unserved delivery report).
    var outstandingMessageCount: Int32 {
        rd_kafka_outq_len(handle)
    }

    /// Drops queued and in-flight messages; their delivery reports fail with a purge error.
    func purgeOutstandingMessages() {
        _ = rd_kafka_purge(handle, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
    }

    // MARK: - Consumer

    func subscribe(topics: [String]) throws(KafkaError) {
        let list = Self.makeList(topics.map { ($0, RD_KAFKA_PARTITION_UA, Self.noOffset) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let error = rd_kafka_subscribe(handle, list)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError(error, message: "cannot subscribe to \(topics): \(KafkaError.Code(error).text)")
        }
    }

    /// Whether the group uses the cooperative (incremental) rebalance protocol.
    var usesCooperativeRebalancing: Bool {
        guard let protocolName = rd_kafka_rebalance_protocol(handle) else { return false }
        return String(cString: protocolName) == "COOPERATIVE"
    }

    /// Whether the current assignment was lost (session timeout) rather than revoked in an orderly way.
    var assignmentLost: Bool {
        rd_kafka_assignment_lost(handle) != 0
    }

    /// "No explicit offset": librdkafka uses the committed offset, else `auto.offset.reset`.
    static let noOffset = Int64(RD_KAFKA_OFFSET_INVALID)

    /// Replaces the assignment (eager protocol); `offsets` gives explicit start offsets for some partitions.
    func assign(_ partitions: [KafkaTopicPartition], offsets: [KafkaTopicPartition: Int64] = [:]) throws(KafkaError) {
        let list = Self.makeList(partitions.map { ($0.topic, $0.partition, offsets[$0] ?? Self.noOffset) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let error = rd_kafka_assign(handle, list)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(error) }
    }

    /// Clears the assignment (eager protocol).
    func unassignAll() throws(KafkaError) {
        let error = rd_kafka_assign(handle, nil)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(error) }
    }

    /// Adds to or removes from the assignment (cooperative protocol).
    func incrementalAssign(_ partitions: [KafkaTopicPartition], add: Bool) throws(KafkaError) {
        let list = Self.makeList(partitions.map { ($0.topic, $0.partition, Self.noOffset) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        guard let error = add ? rd_kafka_incremental_assign(handle, list) : rd_kafka_incremental_unassign(handle, list)
        else { return }
        throw KafkaError(consuming: error)
    }

    /// Pauses or resumes fetching from `partitions`.
    func setPaused(_ paused: Bool, partitions: [KafkaTopicPartition]) {
        guard !partitions.isEmpty else { return }
        let list = Self.makeList(partitions.map { ($0.topic, $0.partition, Self.noOffset) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let error = paused ? rd_kafka_pause_partitions(handle, list) : rd_kafka_resume_partitions(handle, list)
        if error != RD_KAFKA_RESP_ERR_NO_ERROR {
            logger.warning(
                "Kafka \(paused ? "pause" : "resume") failed",
                metadata: ["kafka.error": "\(KafkaError(error))"]
            )
        }
    }

    /// Stores `offsets` as the ones to commit on revoke or close, then commits them asynchronously; the result
    /// arrives as an `RD_KAFKA_EVENT_OFFSET_COMMIT` event carrying `opaque`.
    func commitAsync(_ offsets: [KafkaTopicPartitionOffset], opaque: UInt64) throws(KafkaError) {
        let list = Self.makeList(offsets.map { ($0.topic, $0.partition, $0.offset) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let stored = rd_kafka_offsets_store(handle, list)
        if stored != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(stored, message: "cannot store offsets: \(Self.describe(list))")
        }
        let error = rd_kafka_commit_queue(
            handle,
            list,
            commitQueue ?? eventQueue,
            nil,
            UnsafeMutableRawPointer(bitPattern: UInt(opaque))
        )
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(error) }
    }

    /// Synchronously commits every stored offset not committed yet (used on revoke and before close).
    /// Returns `nil` when there was nothing to commit.
    func commitStoredOffsets() -> KafkaError? {
        let error = rd_kafka_commit(handle, nil, 0)
        if error == RD_KAFKA_RESP_ERR_NO_ERROR || error == RD_KAFKA_RESP_ERR__NO_OFFSET { return nil }
        return KafkaError(error)
    }

    /// Starts leaving the group; rebalance events keep arriving on the event queue until ``isConsumerClosed``.
    func beginClose() -> KafkaError? {
        guard let error = rd_kafka_consumer_close_queue(handle, eventQueue) else { return nil }
        return KafkaError(consuming: error)
    }

    var isConsumerClosed: Bool {
        rd_kafka_consumer_closed(handle) != 0
    }

    /// The partition count of `topic` from broker metadata (blocking up to `timeoutMilliseconds`).
    func partitionCount(topic: String, timeoutMilliseconds: Int32) throws(KafkaError) -> Int32 {
        guard let topicHandle = rd_kafka_topic_new(handle, topic, nil) else {
            throw KafkaError(rd_kafka_last_error(), message: "cannot create a handle for topic \(topic)")
        }
        defer { rd_kafka_topic_destroy(topicHandle) }
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let error = rd_kafka_metadata(handle, 0, topicHandle, &metadata, timeoutMilliseconds)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else { throw KafkaError(error) }
        defer { rd_kafka_metadata_destroy(metadata) }
        guard metadata.pointee.topic_cnt > 0, let topics = metadata.pointee.topics else {
            throw KafkaError(code: .unknownTopicOrPartition, message: "no metadata for topic \(topic)")
        }
        let topicError = topics[0].err
        guard topicError == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError(topicError, message: "topic \(topic): \(KafkaError.Code(topicError).text)")
        }
        return topics[0].partition_cnt
    }

    /// Low and high watermark of a partition, asked of its leader (blocking up to `timeoutMilliseconds`).
    func queryWatermarks(
        topic: String,
        partition: Int32,
        timeoutMilliseconds: Int32
    ) throws(KafkaError) -> (low: Int64, high: Int64) {
        var low: Int64 = 0
        var high: Int64 = 0
        let error = rd_kafka_query_watermark_offsets(handle, topic, partition, &low, &high, timeoutMilliseconds)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(error) }
        return (low, high)
    }

    /// The consumer group's committed offsets of `partitions`, asked of the group coordinator (blocking up to
    /// `timeoutMilliseconds`); `nil` for a partition the group never committed.
    func committedOffsets(
        _ partitions: [KafkaTopicPartition],
        timeoutMilliseconds: Int32
    ) throws(KafkaError) -> [KafkaTopicPartition: Int64?] {
        let list = Self.makeList(partitions.map { ($0.topic, $0.partition, Int64(RD_KAFKA_OFFSET_INVALID)) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let error = rd_kafka_committed(handle, list, timeoutMilliseconds)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(error) }
        var offsets: [KafkaTopicPartition: Int64?] = [:]
        for entry in Self.read(list) {
            guard entry.error == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(entry.error) }
            offsets[entry.partition] = entry.offset >= 0 ? entry.offset : nil
        }
        return offsets
    }

    /// The high watermark last seen in a fetch response for the partition (no network call), if known.
    func cachedHighWatermark(topic: String, partition: Int32) -> Int64? {
        var low: Int64 = 0
        var high: Int64 = 0
        let error = rd_kafka_get_watermark_offsets(handle, topic, partition, &low, &high)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR, high >= 0 else { return nil }
        return high
    }

    // MARK: - Partition lists

    static func makeList(_ entries: [(String, Int32, Int64)]) -> UnsafeMutablePointer<rd_kafka_topic_partition_list_t> {
        let list = rd_kafka_topic_partition_list_new(Int32(max(entries.count, 1)))!
        for (topic, partition, offset) in entries {
            let element = rd_kafka_topic_partition_list_add(list, topic, partition)!
            element.pointee.offset = offset
        }
        return list
    }

    /// Reads a partition list: topic, partition, offset and per-partition error.
    static func read(
        _ list: UnsafePointer<rd_kafka_topic_partition_list_t>?
    ) -> [(partition: KafkaTopicPartition, offset: Int64, error: rd_kafka_resp_err_t)] {
        guard let list, list.pointee.cnt > 0, let elements = list.pointee.elems else { return [] }
        return (0..<Int(list.pointee.cnt)).map { index in
            let element = elements[index]
            return (
                KafkaTopicPartition(topic: String(cString: element.topic), partition: element.partition),
                element.offset,
                element.err
            )
        }
    }

    static func describe(_ list: UnsafePointer<rd_kafka_topic_partition_list_t>) -> String {
        read(list).map { "\($0.partition)@\($0.offset)" }.joined(separator: ", ")
    }
}
