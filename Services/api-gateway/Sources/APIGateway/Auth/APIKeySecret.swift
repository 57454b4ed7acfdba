import CallDomain
import Crypto
import Foundation

/// The text of an API key: `dk_<lookup id>_<secret>`.
///
/// The prefix makes a leaked key recognisable (secret scanners, logs); the lookup id (16 hex digits) finds its row
/// with an index instead of hashing against every key; the secret is 32 random bytes in base64url. Only SHA-256 of
/// the whole text is stored: with 256 random bits a slow hash would add nothing but latency on every request.
enum APIKeySecret {
    static let prefix = "dk_"

    /// A new key: its text (shown once), its lookup id and the hash to store.
    static func generate() -> (key: String, lookupID: String, hash: Data) {
        var generator = SystemRandomNumberGenerator()
        let lookupID = WireCoding.hex((0..<8).map { _ in UInt8.random(in: 0...255, using: &generator) })
        let secret = Data((0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) })
            .base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        let key = "\(prefix)\(lookupID)_\(secret)"
        return (key, lookupID, hash(key))
    }

    /// Whether a bearer credential is meant as an API key (a JWT never starts with the prefix).
    static func looksLikeKey(_ text: String) -> Bool { text.hasPrefix(prefix) }

    /// The lookup id of a well-formed key; `nil` otherwise.
    static func lookupID(of text: String) -> String? {
        let parts = text.dropFirst(prefix.count).split(separator: "_", maxSplits: 1)
        guard text.utf8.count <= 128, parts.count == 2, parts[0].utf8.count == 16,
            parts[0].utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }),
            parts[1].utf8.count == 43
        else { return nil }
        return String(parts[0])
    }

    static func hash(_ key: String) -> Data { Data(SHA256.hash(data: Data(key.utf8))) }

    /// Compares in constant time, so the answer's timing says nothing about how much of a guess was right.
    static func matches(_ key: String, hash stored: Data) -> Bool {
        let computed = hash(key)
        guard computed.count == stored.count else { return false }
        return zip(computed, stored).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}
