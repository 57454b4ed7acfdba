import Crypto
import Foundation

/// The CloudEvents attributes of a Kafka message in binary mode (`ce_*` headers), plus the W3C `traceparent`
/// that carries the gateway's request id to the worker's logs.
public struct CloudEventAttributes: Hashable, Sendable {
    /// `ce_id`: unique per message.
    public var id: String
    /// `ce_source`: which service instance produced it, e.g. `/api-gateway/host-1`.
    public var source: String
    /// `ce_type`: the message type, e.g. `com.outbound-dialer.call.originate.v1`.
    public var type: String
    /// `ce_time`.
    public var time: Date
    /// `ce_subject`: the call id.
    public var subject: String?
    /// `traceparent`, W3C Trace Context.
    public var traceParent: String?

    /// Creates attributes.
    public init(
        id: String, source: String, type: String, time: Date, subject: String? = nil, traceParent: String? = nil
    ) {
        self.id = id
        self.source = source
        self.type = type
        self.time = time
        self.subject = subject
        self.traceParent = traceParent
    }

    /// The Kafka headers, in a stable order.
    public var headers: [(key: String, value: String)] {
        var headers: [(key: String, value: String)] = [
            ("ce_specversion", "1.0"),
            ("ce_id", id),
            ("ce_source", source),
            ("ce_type", type),
            ("ce_time", WireCoding.formatTimestamp(time)),
            ("content-type", "application/json"),
        ]
        if let subject { headers.append(("ce_subject", subject)) }
        if let traceParent { headers.append(("traceparent", traceParent)) }
        return headers
    }

    /// Reads the attributes back from headers; `nil` unless the required ones are present and the spec version is 1.0.
    public init?(headers: [(key: String, value: String)]) {
        func value(_ key: String) -> String? { headers.last(where: { $0.key == key })?.value }
        guard value("ce_specversion") == "1.0", let id = value("ce_id"), let source = value("ce_source"),
            let type = value("ce_type"), let time = value("ce_time").flatMap(WireCoding.parseTimestamp)
        else { return nil }
        self.init(
            id: id, source: source, type: type, time: time, subject: value("ce_subject"),
            traceParent: value("traceparent"))
    }
}

/// W3C Trace Context helpers: the gateway's request id becomes the trace id, so one id follows a call request
/// from the HTTP access log through Kafka into the worker's logs.
public enum TraceContext {
    /// A `traceparent` whose trace id is derived from `requestID`: used as is when it is 32 hex digits, hashed
    /// otherwise (a client may send any `X-Request-ID`).
    public static func traceParent(requestID: String) -> String {
        let traceID = traceID(for: requestID)
        // One random word and a hand-written hex: a formatted string and a random draw per byte cost a few percent
        // of the gateway's CPU per request.
        var random = SystemRandomNumberGenerator()
        let spanID = WireCoding.hex(withUnsafeBytes(of: random.next() as UInt64) { Array($0) })
        return "00-\(traceID)-\(spanID)-01"
    }

    /// The 32-hex-digit trace id for a request id.
    public static func traceID(for requestID: String) -> String {
        let lower = requestID.lowercased()
        if lower.utf8.count == 32, lower.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }),
            lower != String(repeating: "0", count: 32)
        {
            return lower
        }
        let digest = SHA256.hash(data: Data(requestID.utf8))
        return WireCoding.hex(Array(digest.prefix(16)))
    }

    /// The trace id of a well-formed `traceparent`, or `nil`.
    public static func traceID(fromTraceParent traceParent: String) -> String? {
        let parts = traceParent.split(separator: "-")
        guard parts.count == 4, parts[0].count == 2, parts[1].count == 32, parts[2].count == 16, parts[3].count == 2
        else { return nil }
        return String(parts[1])
    }

    /// A new random request id (32 hex digits, usable as a trace id).
    public static func newRequestID() -> String {
        let uuid = UUID.systemRandom().uuid
        return WireCoding.hex(withUnsafeBytes(of: uuid) { Array($0) })
    }
}
