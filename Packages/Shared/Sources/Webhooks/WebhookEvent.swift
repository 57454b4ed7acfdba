import CallDomain
import Foundation

/// The type of a webhook message: `call.<status>` for a call's status change, `webhook.test` for a test message.
public struct WebhookEventType: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    /// The wire form.
    public let rawValue: String

    /// Accepts the known types only.
    public init?(rawValue: String) {
        guard Self.all.contains(where: { $0.rawValue == rawValue }) else { return nil }
        self.rawValue = rawValue
    }

    private init(unchecked rawValue: String) {
        self.rawValue = rawValue
    }

    /// The type of a call's move to `status`.
    public init(status: CallStatus) {
        self.init(unchecked: "call.\(status.rawValue)")
    }

    /// A test message sent on request (`POST /webhook-endpoints/{id}/test`); delivered whatever the endpoint's filter.
    public static let test = WebhookEventType(unchecked: "webhook.test")

    /// Every type an endpoint may subscribe to (a call never moves to `queued`: it starts there).
    public static let subscribable: [WebhookEventType] = CallStatus.allCases.filter { $0 != .queued }.map {
        WebhookEventType(status: $0)
    }

    /// Every type a message may have.
    public static let all: [WebhookEventType] = subscribable + [.test]

    /// The call status of a `call.*` type.
    public var status: CallStatus? {
        rawValue.hasPrefix("call.") ? CallStatus(rawValue: String(rawValue.dropFirst(5))) : nil
    }

    public var description: String { rawValue }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let type = WebhookEventType(rawValue: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "unknown type"))
        }
        self = type
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

/// The body of a webhook message, in the Standard Webhooks shape: `type`, `timestamp` and `data`. For a call's
/// status change `data` is the status event as on `calls.status.v1`, with its `seq` (order and deduplicate by
/// call id and `seq`; the `webhook-id` header identifies the message across retries).
public enum WebhookPayload {
    /// The body for a call status event (stored once, sent byte for byte on every attempt).
    public static func body(for event: CallStatusEvent) throws -> String {
        try encode(type: WebhookEventType(status: event.status), timestamp: event.occurredAt, data: event)
    }

    /// The body of a test message for an endpoint.
    public static func testBody(endpointID: UUID, at now: Date) throws -> String {
        try encode(
            type: .test, timestamp: now,
            data: TestData(
                endpointID: endpointID.uuidString.lowercased(),
                message: "a test message from the outbound dialer; it needs no action"))
    }

    private struct TestData: Encodable {
        var endpointID: String
        var message: String

        enum CodingKeys: String, CodingKey {
            case endpointID = "endpoint_id"
            case message
        }
    }

    private struct Envelope<Data: Encodable>: Encodable {
        var type: WebhookEventType
        var timestamp: Date
        var data: Data
    }

    private static func encode(type: WebhookEventType, timestamp: Date, data: some Encodable) throws -> String {
        try WireCoding.encodeText(Envelope(type: type, timestamp: timestamp, data: data))
    }
}

/// When a failed delivery is tried again: Standard Webhooks' schedule. The first attempt is at once, then after
/// 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h; after the eighth attempt fails the delivery has failed.
public enum WebhookRetrySchedule {
    /// The wait before each attempt, from the previous one (the first is immediate).
    public static let delays: [Duration] = [
        .zero, .seconds(5), .seconds(5 * 60), .seconds(30 * 60), .seconds(2 * 3600), .seconds(5 * 3600),
        .seconds(10 * 3600), .seconds(10 * 3600),
    ]

    /// The number of attempts a delivery gets.
    public static var attempts: Int { delays.count }

    /// The wait before the attempt after step `step` (0-based) failed; `nil` when that was the last one.
    public static func delay(after step: Int) -> Duration? {
        step + 1 < delays.count ? delays[step + 1] : nil
    }

    /// The longest a receiver may ask to wait with `Retry-After` (a longer one is cut to it).
    public static let maximumRetryAfter = Duration.seconds(24 * 3600)
}
