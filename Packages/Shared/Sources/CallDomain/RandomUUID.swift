import Foundation

extension UUID {
    /// A random (version 4) UUID drawn from the system's secure generator in two 64-bit words.
    ///
    /// Foundation's `UUID()` on Linux opens, reads and closes `/dev/urandom` for every id: three system calls and a
    /// path lookup, which a profile of the gateway showed on every request (an event id, a request id) and the
    /// worker on every status event. Two `getrandom` words give the same quality at a fraction of the cost.
    public static func random() -> UUID {
        var generator = SystemRandomNumberGenerator()
        return UUID(randomWords: (generator.next(), generator.next()))
    }

    /// A version 4 UUID made of the given random bits (the version and variant bits are overwritten).
    init(randomWords words: (UInt64, UInt64)) {
        var bytes = (
            UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0),
            UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0)
        )
        withUnsafeMutableBytes(of: &bytes) { buffer in
            buffer.storeBytes(of: words.0, toByteOffset: 0, as: UInt64.self)
            buffer.storeBytes(of: words.1, toByteOffset: 8, as: UInt64.self)
            buffer[6] = (buffer[6] & 0x0F) | 0x40  // version 4
            buffer[8] = (buffer[8] & 0x3F) | 0x80  // RFC 9562 variant
        }
        self.init(uuid: bytes)
    }
}
