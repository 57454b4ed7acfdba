import Crypto
import Foundation

/// The identity of one call, from the API request to the Asterisk channel.
///
/// A call id is a UUIDv7: its first 48 bits are the creation time in milliseconds, so ids sort by time, which keeps
/// the history's primary-key index append-mostly and makes keyset pagination by id meaningful. The same value is
/// used as the ARI `channelId`, which is what makes a second originate of one call impossible on one node.
public struct CallID: UUIDIdentifier, Comparable {
    /// The underlying UUID.
    public let uuid: UUID

    /// Wraps an existing UUID (for ids read back from storage or the wire).
    public init(uuid: UUID) {
        self.uuid = uuid
    }

    /// A new time-ordered id (UUIDv7, RFC 9562 §5.7) for `now`.
    public static func generate(now: Date = Date()) -> CallID {
        let millis = UInt64(max(0, now.timeIntervalSince1970 * 1000))
        var bytes = [UInt8](repeating: 0, count: 16)
        for index in 0..<6 {
            bytes[index] = UInt8(truncatingIfNeeded: millis >> (8 * (5 - UInt64(index))))
        }
        // The random bits of one random UUID (a draw per byte would be a `getrandom` system call each).
        withUnsafeBytes(of: UUID.systemRandom().uuid) { random in
            for index in 6..<16 { bytes[index] = random[index] }
        }
        bytes[6] = (bytes[6] & 0x0F) | 0x70  // version 7
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 9562 variant
        return CallID(uuid: UUID(bytes: bytes))
    }

    /// The id of a call requested with an `Idempotency-Key`: a UUIDv8 (RFC 9562 §5.8) made from
    /// SHA-256(user id, key). A retry with the same key can only ever name the same call, even if the key's record
    /// in PostgreSQL was lost, so the dialer's claim on that id stops a second dial.
    public static func derived(userID: UUID, idempotencyKey: String) -> CallID {
        var hasher = SHA256()
        hasher.update(data: Data("outbound-dialer/call-id/v1\u{0}".utf8))
        hasher.update(data: Data(userID.uuidString.lowercased().utf8))
        hasher.update(data: Data([0]))
        hasher.update(data: Data(idempotencyKey.utf8))
        var bytes = Array(hasher.finalize().prefix(16))
        bytes[6] = (bytes[6] & 0x0F) | 0x80  // version 8
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        return CallID(uuid: UUID(bytes: bytes))
    }

    /// The creation time carried by a UUIDv7 id; `nil` for other versions.
    public var timestamp: Date? {
        let bytes = uuid.bytes
        guard bytes[6] >> 4 == 7 else { return nil }
        let millis = bytes[0..<6].reduce(UInt64(0)) { ($0 << 8) | UInt64($1) }
        return Date(timeIntervalSince1970: Double(millis) / 1000)
    }

    public static func < (lhs: CallID, rhs: CallID) -> Bool {
        lhs.uuid.bytes.lexicographicallyPrecedes(rhs.uuid.bytes)
    }

}

extension UUID {
    fileprivate init(bytes b: [UInt8]) {
        self.init(
            uuid: (b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15])
        )
    }

    fileprivate var bytes: [UInt8] {
        withUnsafeBytes(of: uuid) { Array($0) }
    }
}
