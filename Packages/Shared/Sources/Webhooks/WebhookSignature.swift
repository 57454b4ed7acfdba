import Crypto
import Foundation

/// A signing secret of Standard Webhooks 1.0: `whsec_` and the base64 of random bytes (the HMAC key).
public struct WebhookSecret: Sendable, Hashable, CustomStringConvertible {
    /// The prefix every secret is written with.
    public static let prefix = "whsec_"

    /// The HMAC-SHA256 key.
    public let key: [UInt8]

    /// Parses `whsec_<base64>` (the prefix may be left out, as the reference libraries allow); `nil` unless the key
    /// is 24 to 64 bytes of valid base64.
    public init?(_ text: String) {
        let encoded = text.hasPrefix(Self.prefix) ? String(text.dropFirst(Self.prefix.count)) : text
        guard let data = Data(base64Encoded: encoded), (24...64).contains(data.count) else { return nil }
        key = Array(data)
    }

    /// A secret with this key (24 to 64 bytes).
    public init?(key: [UInt8]) {
        guard (24...64).contains(key.count) else { return nil }
        self.key = key
    }

    /// A new secret of 32 random bytes from the system's generator.
    public static func generate() -> WebhookSecret {
        var random = SystemRandomNumberGenerator()
        return WebhookSecret(key: (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &random) })!
    }

    /// `whsec_<base64>`.
    public var text: String { Self.prefix + Data(key).base64EncodedString() }

    /// Redacted: a secret never reaches a log by accident.
    public var description: String { "whsec_…" }
}

/// Signing and verifying webhook messages the Standard Webhooks 1.0 way: the signed content is
/// `<webhook-id>.<webhook-timestamp>.<body>`, each signature `v1,<base64 HMAC-SHA256>`, several space-separated
/// while a secret is being rotated.
public enum WebhookSignature {
    /// The header names.
    public enum Header {
        /// The message id, the same on every attempt (receivers deduplicate with it).
        public static let id = "webhook-id"
        /// Seconds since the epoch when this attempt was signed.
        public static let timestamp = "webhook-timestamp"
        /// `v1,<base64>` signatures, space-separated.
        public static let signature = "webhook-signature"
    }

    /// How far a timestamp may be from the verifier's clock (the specification's default).
    public static let tolerance: TimeInterval = 5 * 60

    /// The `webhook-signature` value for a message: one `v1,` signature per secret, in the order given.
    public static func sign(
        id: String, timestamp: Int64, body: some Collection<UInt8>, secrets: [WebhookSecret]
    )
        -> String
    {
        secrets.map { "v1," + signature(id: id, timestamp: timestamp, body: body, secret: $0) }.joined(separator: " ")
    }

    /// The base64 signature of one message with one secret.
    public static func signature(
        id: String, timestamp: Int64, body: some Collection<UInt8>, secret: WebhookSecret
    )
        -> String
    {
        var hmac = HMAC<SHA256>(key: SymmetricKey(data: secret.key))
        hmac.update(data: Array("\(id).\(timestamp).".utf8))
        hmac.update(data: Array(body))
        return Data(hmac.finalize()).base64EncodedString()
    }

    /// Why a message failed verification.
    public enum VerificationError: Error, Equatable, Sendable {
        /// A `webhook-*` header is absent or malformed.
        case missingHeaders
        /// The timestamp is more than ``tolerance`` from now (a replay, or a skewed clock).
        case timestampOutOfTolerance
        /// No `v1` signature matches any secret.
        case noMatchingSignature
    }

    /// Verifies a received message as a receiver does: the timestamp within ``tolerance`` of `now` and at least one
    /// `v1` signature matching one of `secrets` (compared in constant time).
    public static func verify(
        id: String?, timestamp: String?, signatures: String?, body: some Collection<UInt8>,
        secrets: [WebhookSecret], now: Date = Date()
    ) throws(VerificationError) {
        guard let id, !id.isEmpty, let timestamp, let seconds = Int64(timestamp), let signatures else {
            throw .missingHeaders
        }
        guard abs(now.timeIntervalSince1970 - TimeInterval(seconds)) <= tolerance else {
            throw .timestampOutOfTolerance
        }
        let offered = signatures.split(separator: " ").compactMap { entry -> [UInt8]? in
            let parts = entry.split(separator: ",", maxSplits: 1)
            guard parts.count == 2, parts[0] == "v1", let data = Data(base64Encoded: String(parts[1])) else {
                return nil
            }
            return Array(data)
        }
        for secret in secrets {
            let expected = Array(
                Data(base64Encoded: signature(id: id, timestamp: seconds, body: body, secret: secret)) ?? Data())
            if offered.contains(where: { constantTimeEqual($0, expected) }) { return }
        }
        throw .noMatchingSignature
    }

    private static func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        var difference: UInt8 = 0
        for index in lhs.indices { difference |= lhs[index] ^ rhs[index] }
        return difference == 0
    }
}
