import Synchronization

/// Decides when the dialer may take the next originate command from Kafka: the worker's back-pressure.
///
/// A command is admitted only while the worker is under `MAX_CONCURRENT_CALLS` (commands being placed plus live
/// calls), under `MAX_ORIGINATES_IN_FLIGHT`, within its `MAX_CALLS_PER_SECOND` budget (a token bucket holding one
/// second of burst), under `MAX_DEFERRED_CALLS` commands held back by their organization's limits, while PostgreSQL and ARI are reachable, and while the node says it is booted (a starting Asterisk
/// accepts the events WebSocket before its REST API stops answering `503 Asterisk not booted`). While it is closed the dialer's partitions are
/// paused, so commands wait in Kafka rather than in memory.
final class IntakeGate: Sendable {
    /// Why the gate is closed.
    enum BlockReason: String, Sendable, Equatable {
        case capacity = "max_concurrent_calls"
        case inFlight = "max_originates_in_flight"
        case rate = "max_calls_per_second"
        case database = "database_unreachable"
        case ari = "ari_disconnected"
        case nodeBooting = "ari_node_not_booted"
        case ownerLease = "owner_lease_lapsed"
        case deferred = "max_deferred_calls"
    }

    private enum Decision {
        case admitted
        case blocked(BlockReason, retryAfter: Duration)
        case stopped
    }

    private struct State {
        var slotsUsed = 0
        let maxSlots: Int
        var placing = 0
        let maxPlacing: Int
        /// Commands whose claim an organization limit held back, waiting to be claimed again (holding nothing else).
        var deferred = 0
        let maxDeferred: Int
        var tokens: Double
        let rate: Double
        let burst: Double
        var lastRefill: ContinuousClock.Instant
        var databaseAvailable = true
        var ariConnected = false
        var nodeBooted = false
        var leaseHeld = false
        var stopped = false
        var wakePending = false
        var waiter: CheckedContinuation<Void, Never>?
        var blockedBy: BlockReason?

        mutating func refill(now: ContinuousClock.Instant) {
            let elapsed = now - lastRefill
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            tokens = min(burst, tokens + seconds * rate)
            lastRefill = now
        }

        mutating func decide(now: ContinuousClock.Instant, forDeferred: Bool = false) -> Decision {
            if stopped { return .stopped }
            refill(now: now)
            // New commands wait in Kafka once enough are waiting here; a deferred one is already here.
            if !forDeferred, deferred >= maxDeferred { return .blocked(.deferred, retryAfter: .milliseconds(250)) }
            if !ariConnected { return .blocked(.ari, retryAfter: .seconds(1)) }
            if !nodeBooted { return .blocked(.nodeBooting, retryAfter: .seconds(1)) }
            if !databaseAvailable { return .blocked(.database, retryAfter: .seconds(1)) }
            if !leaseHeld { return .blocked(.ownerLease, retryAfter: .seconds(1)) }
            if slotsUsed >= maxSlots { return .blocked(.capacity, retryAfter: .seconds(1)) }
            if placing >= maxPlacing { return .blocked(.inFlight, retryAfter: .seconds(1)) }
            if tokens < 1 {
                let wait = (1 - tokens) / rate
                return .blocked(.rate, retryAfter: .milliseconds(Int64(max(1, (wait * 1000).rounded(.up)))))
            }
            tokens -= 1
            slotsUsed += 1
            placing += 1
            return .admitted
        }

        mutating func wake() -> CheckedContinuation<Void, Never>? {
            if let waiter {
                self.waiter = nil
                return waiter
            }
            wakePending = true
            return nil
        }
    }

    private let state: Mutex<State>

    /// Creates a gate; it stays closed until ARI is connected (``setARIConnected(_:)``), the node has answered as
    /// booted (``setNodeBooted(_:)``) and the worker holds its owner lease (``setLeaseHeld(_:)``).
    init(maxConcurrentCalls: Int, maxOriginatesInFlight: Int, maxCallsPerSecond: Double, maxDeferredCalls: Int = 1000) {
        let burst = max(1, maxCallsPerSecond)
        state = Mutex(
            State(
                maxSlots: maxConcurrentCalls, maxPlacing: maxOriginatesInFlight, maxDeferred: maxDeferredCalls,
                tokens: burst, rate: maxCallsPerSecond, burst: burst, lastRefill: .now))
    }

    /// Waits until a command may be taken, then takes a capacity slot, an in-flight place and a rate token for it.
    ///
    /// `onBlocked` runs when the gate closes (pause the partitions), `onAdmitted` when it reopens after having been
    /// closed (resume them). Returns `false` once the gate is stopped or the task is cancelled.
    func admit(onBlocked: (BlockReason) -> Void, onAdmitted: () -> Void) async -> Bool {
        var wasBlocked = false
        while !Task.isCancelled {
            let decision = state.withLock { state in
                let decision = state.decide(now: .now)
                if case .blocked(let reason, _) = decision { state.blockedBy = reason } else { state.blockedBy = nil }
                return decision
            }
            switch decision {
            case .admitted:
                if wasBlocked { onAdmitted() }
                return true
            case .stopped:
                return false
            case .blocked(let reason, let retryAfter):
                if !wasBlocked {
                    wasBlocked = true
                    onBlocked(reason)
                }
                await waitForChange(upTo: retryAfter)
            }
        }
        return false
    }

    /// The command taken by ``admit(onBlocked:onAdmitted:)`` is no longer being placed; `keepSlot` when it became a
    /// live call (its slot is released when the call ends), `refundToken` when nothing was originated for it.
    func finishPlacing(keepSlot: Bool, refundToken: Bool) {
        let waiter = state.withLock { state in
            state.placing -= 1
            if !keepSlot { state.slotsUsed -= 1 }
            if refundToken { state.tokens = min(state.burst, state.tokens + 1) }
            return state.wake()
        }
        waiter?.resume()
    }

    /// A command's claim was held back by an organization limit: it gave its slot, place and token back (see
    /// ``finishPlacing(keepSlot:refundToken:)``) and waits here, counted against `MAX_DEFERRED_CALLS`.
    func beginDeferral() {
        state.withLock { $0.deferred += 1 }
    }

    /// A deferred command stopped waiting (it is being claimed again, or gave up).
    func endDeferral() {
        let waiter = state.withLock { state in
            state.deferred -= 1
            return state.wake()
        }
        waiter?.resume()
    }

    /// Takes a slot, an in-flight place and a rate token for a deferred command's next claim, waiting (polling)
    /// while the gate is closed for another reason; `false` once stopped or cancelled. The intake's own admission
    /// keeps its single waiter: deferred commands poll instead.
    func readmitDeferred() async -> Bool {
        while !Task.isCancelled {
            let decision = state.withLock { $0.decide(now: .now, forDeferred: true) }
            switch decision {
            case .admitted: return true
            case .stopped: return false
            case .blocked(_, let retryAfter):
                guard (try? await Task.sleep(for: min(retryAfter, .milliseconds(250)))) != nil else { return false }
            }
        }
        return false
    }

    /// A live call ended: its slot is free.
    func releaseSlot() {
        let waiter = state.withLock { state in
            state.slotsUsed -= 1
            return state.wake()
        }
        waiter?.resume()
    }

    /// Calls adopted from a previous process occupy slots like calls placed by this one.
    func occupySlots(_ count: Int) {
        state.withLock { $0.slotsUsed += count }
    }

    /// PostgreSQL became unreachable (a claim failed) or reachable again (a probe succeeded).
    func setDatabaseAvailable(_ available: Bool) {
        set(\.databaseAvailable, available)
    }

    /// The ARI events WebSocket went down or came up. An originate without the WebSocket would fail (the
    /// application does not exist for Asterisk then), so the gate closes.
    func setARIConnected(_ connected: Bool) {
        set(\.ariConnected, connected)
    }

    /// The node answered `GET /asterisk/ping` (booted), or refused a request as not booted or could not be reached.
    func setNodeBooted(_ booted: Bool) {
        set(\.nodeBooted, booted)
    }

    /// The worker's heartbeat is recent enough for it to act for its calls (``OwnerLease``), or it lapsed.
    func setLeaseHeld(_ held: Bool) {
        set(\.leaseHeld, held)
    }

    /// Records one of the gate's conditions; wakes the waiting intake when it changed.
    private func set(_ condition: WritableKeyPath<State, Bool>, _ value: Bool) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard state[keyPath: condition] != value else { return nil }
            state[keyPath: condition] = value
            return state.wake()
        }
        waiter?.resume()
    }

    /// Closes the gate for good (shutdown): ``admit(onBlocked:onAdmitted:)`` returns `false`.
    func stop() {
        let waiter = state.withLock { state in
            state.stopped = true
            return state.wake()
        }
        waiter?.resume()
    }

    /// Whether PostgreSQL is believed reachable.
    var databaseAvailable: Bool { state.withLock { $0.databaseAvailable } }
    /// Whether the ARI WebSocket is connected.
    var ariConnected: Bool { state.withLock { $0.ariConnected } }
    /// Whether the gate was stopped (shutdown).
    var isStopped: Bool { state.withLock { $0.stopped } }
    /// Whether the node last answered as booted.
    var nodeBooted: Bool { state.withLock { $0.nodeBooted } }
    /// Whether the WebSocket is up and the node is booted.
    var nodeUsable: Bool { state.withLock { $0.ariConnected && $0.nodeBooted } }
    /// Whether the worker holds its owner lease.
    var leaseHeld: Bool { state.withLock { $0.leaseHeld } }
    /// Why the gate is closed right now, if it is.
    var blockedBy: BlockReason? { state.withLock { $0.blockedBy } }
    /// Commands being placed plus live calls.
    var slotsUsed: Int { state.withLock { $0.slotsUsed } }
    /// Commands being claimed and originated.
    var placing: Int { state.withLock { $0.placing } }
    /// Commands waiting for their organization's limits.
    var deferred: Int { state.withLock { $0.deferred } }

    /// Suspends until something changes (a slot frees, a dependency comes back, a token is due) or `timeout`.
    private func waitForChange(upTo timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                // Woken early (cancelled): the other child already returned, nothing to wake.
                guard (try? await Task.sleep(for: timeout)) != nil else { return }
                self.state.withLock { $0.wake() }?.resume()
            }
            group.addTask {
                await withTaskCancellationHandler {
                    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                        let resumeNow = self.state.withLock { state in
                            if state.wakePending || state.stopped {
                                state.wakePending = false
                                return true
                            }
                            state.waiter = continuation
                            return false
                        }
                        if resumeNow { continuation.resume() }
                    }
                } onCancel: {
                    self.state.withLock { $0.wake() }?.resume()
                }
            }
            await group.next()
            group.cancelAll()
        }
    }
}
