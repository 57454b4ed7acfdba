import Foundation
import HummingbirdBcrypt
import NIOPosix

/// bcrypt hashing and checking, off the Swift concurrency pool.
///
/// A bcrypt check at cost 12 takes a few hundred milliseconds of CPU; running it on the cooperative pool would
/// stall every other request on that thread, so it runs on NIO's blocking thread pool.
public struct PasswordHasher: Sendable {
    /// The cost of new hashes.
    public let cost: Int

    /// A hash of a random password at the same cost, checked when the user does not exist, so that an unknown
    /// user costs the same time as a wrong password (no user enumeration by timing).
    let dummyHash: String

    /// Creates a hasher (computes the dummy hash once).
    public init(cost: Int) async throws {
        precondition((4...31).contains(cost))
        self.cost = cost
        let random = (0..<24).map { _ in UInt8.random(in: 0x61...0x7A) }
        let dummyPassword = String(decoding: random, as: UTF8.self)
        dummyHash = try await NIOThreadPool.singleton.runIfActive { Bcrypt.hash(dummyPassword, cost: UInt8(cost)) }
    }

    /// The bcrypt hash of `password`.
    public func hash(_ password: String) async throws -> String {
        let cost = UInt8(self.cost)
        return try await NIOThreadPool.singleton.runIfActive { Bcrypt.hash(password, cost: cost) }
    }

    /// Whether `password` matches `hash`; with `hash == nil` (unknown user) it checks the dummy hash and answers
    /// `false`, taking the same time.
    public func verify(_ password: String, against hash: String?) async throws -> Bool {
        let target = hash ?? dummyHash
        let matches = try await NIOThreadPool.singleton.runIfActive { Bcrypt.verify(password, hash: target) }
        return hash != nil && matches
    }
}
