import Foundation

extension UUID {
    /// A random (version 4) UUID drawn from the system's secure generator.
    ///
    /// Foundation's `UUID()` on Linux opens, reads and closes `/dev/urandom` for every id: three system calls and a
    /// path lookup, which a profile of the gateway showed on every request (an event id, a request id) and the
    /// worker on every status event. `random(using:)` with the system generator takes two `getrandom` words.
    public static func systemRandom() -> UUID {
        var generator = SystemRandomNumberGenerator()
        return UUID.random(using: &generator)
    }
}
