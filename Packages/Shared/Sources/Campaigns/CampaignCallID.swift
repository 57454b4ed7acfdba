import CallDomain
import Crypto
import Foundation

extension CallID {
    /// The id of one attempt to call one contact of a campaign: a UUIDv8 (RFC 9562 §5.8) whose bits are the first 16
    /// bytes of SHA-256 over `"outbound-dialer/campaign-call/v1\0"`, the campaign id (lower case), a 0 byte, the
    /// contact id (lower case), a 0 byte and the attempt number in decimal.
    ///
    /// A scheduler that crashes after sending an attempt and schedules it again produces the same id, so the dialer's
    /// claim on the id stops the second dial. The prefix keeps these ids apart from every other derived id.
    public static func campaignAttempt(campaign: UUID, contact: UUID, attempt: Int) -> CallID {
        var hasher = SHA256()
        hasher.update(data: Data("outbound-dialer/campaign-call/v1\u{0}".utf8))
        hasher.update(data: Data(campaign.uuidString.lowercased().utf8))
        hasher.update(data: Data([0]))
        hasher.update(data: Data(contact.uuidString.lowercased().utf8))
        hasher.update(data: Data([0]))
        hasher.update(data: Data(String(attempt).utf8))
        var b = Array(hasher.finalize().prefix(16))
        b[6] = (b[6] & 0x0F) | 0x80  // version 8
        b[8] = (b[8] & 0x3F) | 0x80  // RFC 9562 variant (binary 10)
        return CallID(
            uuid: UUID(
                uuid: (
                    b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
                )
            ))
    }
}
