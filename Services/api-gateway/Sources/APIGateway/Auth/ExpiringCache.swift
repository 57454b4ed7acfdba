import Synchronization

/// A bounded map whose entries are good until their own deadline: what the gateway remembers to spare the hot path
/// a database read (users) or a signature check (tokens). It only saves work, so when it is full it drops the
/// expired entries and, if that is not enough, all of them; a forgotten entry is fetched or verified again.
final class ExpiringCache<Key: Hashable & Sendable, Value: Sendable, Deadline: Comparable & Sendable>: Sendable {
    private let entries = Mutex([Key: (value: Value, until: Deadline)]())
    private let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// The value of `key`, unless it is unknown or its deadline has passed at `now` (then it is dropped).
    func value(for key: Key, now: Deadline) -> Value? {
        entries.withLock { entries in
            guard let entry = entries[key] else { return nil }
            guard now < entry.until else {
                entries[key] = nil
                return nil
            }
            return entry.value
        }
    }

    /// Remembers `value` for `key` until `deadline`.
    func insert(_ value: Value, for key: Key, until deadline: Deadline, now: Deadline) {
        entries.withLock { entries in
            if entries.count >= capacity, entries[key] == nil {
                entries = entries.filter { now < $0.value.until }
                if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            }
            entries[key] = (value, deadline)
        }
    }

    /// Forgets `key` at once.
    func remove(_ key: Key) {
        _ = entries.withLock { $0.removeValue(forKey: key) }
    }

    /// How many entries are held (expired ones included until they are looked up or evicted).
    var count: Int { entries.withLock { $0.count } }
}
