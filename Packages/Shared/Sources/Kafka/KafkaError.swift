import CRdKafka

/// A failure of a Kafka operation, carrying librdkafka's error code and text.
///
/// Every error this module throws is a `KafkaError`, so a caller can log one shape and decide on retries from
/// ``isRetriable`` without knowing librdkafka's code table.
public struct KafkaError: Error, CustomStringConvertible, Sendable, Hashable {
    /// A librdkafka error code (`rd_kafka_resp_err_t`): negative values are local (client-side) errors,
    /// positive values are errors returned by a broker.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        /// The raw `rd_kafka_resp_err_t` value.
        public var rawValue: Int32

        /// Wraps a raw `rd_kafka_resp_err_t` value.
        public init(rawValue: Int32) {
            self.rawValue = rawValue
        }

        init(_ error: rd_kafka_resp_err_t) {
            self.rawValue = error.rawValue
        }

        /// librdkafka's symbolic name of the code, for example `_MSG_TIMED_OUT` or `NOT_COORDINATOR`.
        public var name: String {
            String(cString: rd_kafka_err2name(rd_kafka_resp_err_t(rawValue: rawValue)))
        }

        /// librdkafka's generic human-readable text for the code.
        public var text: String {
            String(cString: rd_kafka_err2str(rd_kafka_resp_err_t(rawValue: rawValue)))
        }

        /// `name(rawValue)`, e.g. `_MSG_TIMED_OUT(-192)`.
        public var description: String { "\(name)(\(rawValue))" }

        /// The message was not acknowledged within the delivery timeout (`message.timeout.ms`).
        public static let messageTimedOut = Code(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT)
        /// An operation timed out.
        public static let timedOut = Code(RD_KAFKA_RESP_ERR__TIMED_OUT)
        /// The local producer queue stayed full for longer than the caller could wait.
        public static let queueFull = Code(RD_KAFKA_RESP_ERR__QUEUE_FULL)
        /// The client is shutting down or shut down; the operation's outcome is unknown or it never started.
        public static let shutdown = Code(RD_KAFKA_RESP_ERR__DESTROY)
        /// An argument or configuration value was invalid.
        public static let invalidArgument = Code(RD_KAFKA_RESP_ERR__INVALID_ARG)
        /// The operation is not allowed in the client's current state (e.g. a commit for a revoked partition).
        public static let invalidState = Code(RD_KAFKA_RESP_ERR__STATE)
        /// Every broker is down or unreachable.
        public static let allBrokersDown = Code(RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        /// A broker connection failed.
        public static let transport = Code(RD_KAFKA_RESP_ERR__TRANSPORT)
        /// A fatal error: the client instance cannot be used any more.
        public static let fatal = Code(RD_KAFKA_RESP_ERR__FATAL)
        /// The message was purged from the local queue (at shutdown) before it was delivered.
        public static let purgedFromQueue = Code(RD_KAFKA_RESP_ERR__PURGE_QUEUE)
        /// The message was purged while in flight (at shutdown); it may or may not have been written.
        public static let purgedInFlight = Code(RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
        /// The topic or partition does not exist.
        public static let unknownTopicOrPartition = Code(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        /// The topic is not known to the client (local check).
        public static let unknownTopic = Code(RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC)
    }

    /// librdkafka's error code.
    public var code: Code
    /// What went wrong, in librdkafka's words where it gave any, else in this module's.
    public var message: String
    /// Whether the same operation may succeed if tried again later (for example after the brokers come back).
    public var isRetriable: Bool
    /// Whether the client that raised the error is unusable from now on.
    public var isFatal: Bool

    /// Creates an error; retriability defaults to librdkafka's classification of `code`.
    public init(code: Code, message: String, isRetriable: Bool? = nil, isFatal: Bool = false) {
        self.code = code
        self.message = message
        self.isRetriable = isRetriable ?? (!isFatal && Self.retriableCodes.contains(code.rawValue))
        self.isFatal = isFatal
    }

    /// `message [code]`, e.g. `Local: Message timed out [_MSG_TIMED_OUT(-192)]`.
    public var description: String { "\(message) [\(code)]" }

    init(_ error: rd_kafka_resp_err_t, message: String? = nil) {
        let code = Code(error)
        self.init(code: code, message: message ?? code.text)
    }

    /// Consumes (destroys) a librdkafka error object.
    init(consuming error: OpaquePointer) {
        defer { rd_kafka_error_destroy(error) }
        self.init(
            code: Code(rd_kafka_error_code(error)),
            message: String(cString: rd_kafka_error_string(error)),
            isRetriable: rd_kafka_error_is_retriable(error) != 0,
            isFatal: rd_kafka_error_is_fatal(error) != 0
        )
    }

    /// Codes after which a retry can succeed: transient connectivity, leadership and coordinator changes, timeouts
    /// and local back-pressure.
    private static let retriableCodes: Set<Int32> = Set(retriableErrors.map(\.rawValue))

    private static let retriableErrors: [rd_kafka_resp_err_t] = [
        RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE,
        RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR__RESOLVE,
        RD_KAFKA_RESP_ERR__QUEUE_FULL, RD_KAFKA_RESP_ERR__WAIT_COORD, RD_KAFKA_RESP_ERR__DESTROY,
        RD_KAFKA_RESP_ERR__PURGE_QUEUE, RD_KAFKA_RESP_ERR__PURGE_INFLIGHT, RD_KAFKA_RESP_ERR__NODE_UPDATE,
        RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION, RD_KAFKA_RESP_ERR__STATE,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION,
        RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
        RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS, RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
        RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR,
    ]

    static func shutdown(_ message: String) -> KafkaError {
        KafkaError(code: .shutdown, message: message)
    }
}
