import CallDomain
import CallStore
import Foundation
import Logging
import Metrics
import ServiceLifecycle
import ServiceSupport
import Synchronization
import Webhooks

/// Works through the due deliveries: leases them from PostgreSQL, sends each one signed, and stores the outcomes.
///
/// Fairness: at most `endpointConcurrency` attempts per endpoint run at once in this process (one while its circuit
/// is half-open), out of `maxInFlight`; a claim takes at most twice that per endpoint, so a slow or dead endpoint
/// holds a few slots and leases and never the queue. Claimed deliveries wait in a queue per endpoint that its
/// running slots drain one after the other, so a busy endpoint's attempts follow each other without a database
/// round trip in between (a queued delivery waits at most one attempt: its lease covers that and its own attempt).
/// An endpoint whose circuit is open is not attempted: its deliveries wait for the cool-down (``WebhookCircuit``).
///
/// Outcomes are stored in batches every few milliseconds. A dispatcher killed before storing an outcome leaves a
/// lease that passes, and the delivery is attempted again elsewhere: at least once, never lost.
final class DeliveryScheduler: Service, Sendable {
    private struct State {
        /// Slots (tasks draining an endpoint's queue) running per endpoint, and in all.
        var slots: [UUID: Int] = [:]
        var totalSlots = 0
        /// Claimed deliveries not yet attempted, per endpoint.
        var queues: [UUID: [DueDelivery]] = [:]
        var totalQueued = 0
        /// The concurrency allowed per endpoint as last claimed (1 while its circuit is half-open).
        var caps: [UUID: Int] = [:]
        /// How long an endpoint's attempts take (a moving average, seconds): how many of its deliveries may wait
        /// queued here within their lease.
        var attemptSeconds: [UUID: Double] = [:]
        /// This process's own view of failing endpoints, ahead of the stored circuit (outcomes are stored in
        /// batches): failures in a row since the last success, and until when no attempt is made.
        var localFailures: [UUID: Int] = [:]
        var localOpenUntil: [UUID: Date] = [:]
        var outcomes: [WebhookAttemptRecord] = []
        var claimingStopped = false
        /// A claim is wanted before the next poll: deliveries wait in the table (the fan-out could not hand them all
        /// over, or the last claim was cut short by a limit and an attempt has since made room).
        var claimRequested = true
        /// The last claim stopped at a limit: more deliveries are probably due.
        var backlog = false

        /// Queues a claimed or handed-over delivery for its endpoint's slots (one slot while its circuit is
        /// half-open).
        mutating func enqueue(_ delivery: DueDelivery, concurrency: Int) {
            let endpoint = delivery.endpoint
            queues[endpoint.id, default: []].append(delivery)
            totalQueued += 1
            caps[endpoint.id] = endpoint.consecutiveFailures >= WebhookCircuit.threshold ? 1 : concurrency
        }

        mutating func dequeue(_ endpoint: UUID) -> DueDelivery? {
            guard var queue = queues[endpoint], !queue.isEmpty else { return nil }
            let next = queue.removeFirst()
            queues[endpoint] = queue.isEmpty ? nil : queue
            totalQueued -= 1
            return next
        }

        mutating func drain(_ endpoint: UUID) -> [DueDelivery] {
            let queue = queues.removeValue(forKey: endpoint) ?? []
            totalQueued -= queue.count
            return queue
        }
    }

    private let store: CallStore
    private let sender: WebhookSender
    private let clock: any WebhookClock
    private let configuration: DispatcherConfiguration
    private let metrics: DispatcherMetrics
    private let logger: Logger
    private let state = Mutex(State())
    private let wake = WakeSignal()

    /// How long a claimed delivery stays leased: a wait in its endpoint's queue (one attempt at most), its own
    /// attempt, and time to store the outcome.
    var lease: Duration { configuration.attemptTimeout * 2 + .seconds(5) }
    /// The shortest time between two claims while everything due has been claimed.
    static let minimumClaimInterval = Duration.milliseconds(5)
    /// Finished deliveries deleted per statement, and statements per house-keeping round at most.
    static let purgeBatch = 5000
    static let purgeBatchesPerRound = 20
    /// A pending delivery older than this is failed (it waited behind an open circuit past its whole schedule).
    static let retryWindow = WebhookRetrySchedule.delays.reduce(Duration.zero, +) + .seconds(3600)

    init(
        store: CallStore, sender: WebhookSender, clock: any WebhookClock, configuration: DispatcherConfiguration,
        metrics: DispatcherMetrics, logger: Logger
    ) {
        self.store = store
        self.sender = sender
        self.clock = clock
        self.configuration = configuration
        self.metrics = metrics
        var logger = logger
        logger[metadataKey: "component"] = "webhook-scheduler"
        self.logger = logger
    }

    /// What the fan-out may lease to this dispatcher straight away: per endpoint, the room its window leaves
    /// (none while its circuit is open here), and a new endpoint's first window. Nothing once claiming stopped.
    func handOff() -> WebhookHandOff? {
        let now = clock.now()
        let concurrency = configuration.endpointConcurrency
        return state.withLock { state -> WebhookHandOff? in
            guard !state.claimingStopped, capacity(state) > 0 else { return nil }
            return WebhookHandOff(
                dispatcherID: configuration.dispatcherID, lease: lease, room: room(state, at: now),
                defaultRoom: 2 * concurrency)
        }
    }

    /// Takes the deliveries the fan-out leased to this dispatcher, and looks for more when some wait in the table.
    /// Once claiming stopped, they go back at once.
    func accept(_ fanOut: WebhookFanOut) async {
        let concurrency = configuration.endpointConcurrency
        let stopped = state.withLock { state -> Bool in
            guard !state.claimingStopped else { return true }
            for delivery in fanOut.handedOff { state.enqueue(delivery, concurrency: concurrency) }
            if fanOut.waitingDue { state.claimRequested = true }
            return false
        }
        if stopped {
            await giveBack(now: fanOut.handedOff.map(\.id), later: [:], canceled: [])
        } else {
            wake.signal()
        }
    }

    func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.storeOutcomes() }
            group.addTask { await self.houseKeeping() }
            // On graceful shutdown: no new claims or attempts; the attempts in flight finish (bounded by the attempt
            // timeout) and their outcomes are stored before the service returns.
            await withGracefulShutdownHandler {
                await self.claimLoop(group: &group)
            } onGracefulShutdown: {
                self.state.withLock { $0.claimingStopped = true }
                self.wake.stop()
            }
            state.withLock { $0.claimingStopped = true }
            wake.stop()
        }
        // What was claimed and never started goes back at once, rather than when its lease passes.
        let unstarted = state.withLock { state in
            state.queues.keys.flatMap { state.drain($0) }.map(\.id)
        }
        await giveBack(now: unstarted, later: [:], canceled: [])
        sender.closeIdleConnections()
    }

    // MARK: - Claiming

    /// Claims due deliveries from the table when some are known or likely to wait there (a nudge, a claim cut short
    /// by a limit), and at least every poll interval for retries coming due and leases passing; starts slots for
    /// whatever was claimed or handed over.
    private func claimLoop(group: inout DiscardingTaskGroup) async {
        let concurrency = configuration.endpointConcurrency
        var lastClaim = ContinuousClock.now - configuration.pollInterval
        while !Task.isCancelled {
            startSlots(group: &group)
            let pollDue = ContinuousClock.now >= lastClaim + configuration.pollInterval
            let now = clock.now()
            let (capacity, room, stopped, wanted) = state.withLock { state in
                (
                    self.capacity(state), self.room(state, at: now), state.claimingStopped,
                    state.claimRequested || pollDue
                )
            }
            if stopped { return }
            guard wanted, capacity > 0 else {
                await wake.wait(
                    upTo: capacity > 0
                        ? lastClaim + configuration.pollInterval - ContinuousClock.now : configuration.pollInterval)
                continue
            }
            lastClaim = ContinuousClock.now
            state.withLock { $0.claimRequested = false }
            let limit = min(capacity, 200)
            let claimed: [DueDelivery]
            do {
                claimed = try await withTimeout(configuration.databaseTimeout) { [store, configuration, lease, room] in
                    try await store.claimDueDeliveries(
                        dispatcherID: configuration.dispatcherID, limit: limit, perEndpoint: 2 * concurrency,
                        room: room, lease: lease, at: now)
                }
            } catch {
                logger.warning("could not claim webhook deliveries", metadata: ["error": "\(error)"])
                await wake.wait(upTo: .seconds(1))
                continue
            }
            var releaseUntil: [Date: [UUID]] = [:]
            var canceled: [UUID] = []
            var perEndpoint: [UUID: Int] = [:]
            for delivery in claimed {
                let endpoint = delivery.endpoint
                perEndpoint[endpoint.id, default: 0] += 1
                if !endpoint.enabled {
                    canceled.append(delivery.id)
                    continue
                }
                let openUntil = max(
                    endpoint.circuitOpenUntil ?? .distantPast,
                    state.withLock { $0.localOpenUntil[endpoint.id] } ?? .distantPast)
                if openUntil > now {
                    releaseUntil[openUntil, default: []].append(delivery.id)
                    continue
                }
                state.withLock { $0.enqueue(delivery, concurrency: concurrency) }
            }
            // A claim that filled the batch or an endpoint's room probably left due deliveries behind: the next
            // finished attempt (which makes room) asks for another claim.
            let cutShort =
                claimed.count >= limit
                || perEndpoint.contains { $0.value >= (room[$0.key] ?? 2 * concurrency) }
            state.withLock { $0.backlog = cutShort }
            startSlots(group: &group)
            await giveBack(now: [], later: releaseUntil, canceled: canceled)
            // Claims made at most this often gather the attempts finished meanwhile, so a busy endpoint costs
            // PostgreSQL a claim per few attempts rather than one per attempt.
            try? await Task.sleep(until: lastClaim + Self.minimumClaimInterval)
        }
    }

    /// How many more deliveries this process may hold (running and queued): twice its slots.
    private func capacity(_ state: State) -> Int {
        2 * configuration.maxInFlight - state.totalSlots - state.totalQueued
    }

    /// What each endpoint known here may take now: its window less what it runs and has queued, none while its
    /// circuit is open here. (An endpoint not listed may take a first window.)
    private func room(_ state: State, at now: Date) -> [UUID: Int] {
        var room: [UUID: Int] = [:]
        for endpoint in Set(state.slots.keys).union(state.queues.keys).union(state.localOpenUntil.keys) {
            if let open = state.localOpenUntil[endpoint], open > now {
                room[endpoint] = 0
                continue
            }
            let window = window(
                cap: state.caps[endpoint] ?? configuration.endpointConcurrency, state.attemptSeconds[endpoint])
            room[endpoint] = max(
                0, window - state.slots[endpoint, default: 0] - state.queues[endpoint, default: []].count)
        }
        return room
    }

    /// How many of an endpoint's deliveries this process holds at most (running and queued): twice its cap until
    /// its attempts' duration is known, then as many as its slots get through in one attempt timeout (up to 16 per
    /// slot), so that a queued delivery starts well within its lease while a fast endpoint's slots never wait for
    /// a claim.
    private func window(cap: Int, _ attemptSeconds: Double?) -> Int {
        guard let attemptSeconds, attemptSeconds > 0 else { return 2 * cap }
        let perSlot = configuration.attemptTimeout.timeInterval / attemptSeconds
        return cap * max(2, min(16, Int(perSlot)))
    }

    /// Starts a slot for each endpoint with queued deliveries and fewer slots than its cap, within `maxInFlight`.
    private func startSlots(group: inout DiscardingTaskGroup) {
        let started = state.withLock { state -> [UUID] in
            var started: [UUID] = []
            for (endpoint, queue) in state.queues where !queue.isEmpty {
                let running = state.slots[endpoint, default: 0]
                let wanted = min((state.caps[endpoint] ?? configuration.endpointConcurrency) - running, queue.count)
                let granted = min(wanted, configuration.maxInFlight - state.totalSlots)
                guard granted > 0 else { continue }
                state.slots[endpoint] = running + granted
                state.totalSlots += granted
                started += Array(repeating: endpoint, count: granted)
            }
            return started
        }
        metrics.inFlight.record(state.withLock { $0.totalSlots })
        for endpoint in started {
            group.addTask { await self.runSlot(endpoint) }
        }
    }

    /// One slot of an endpoint: attempts its queued deliveries one after the other until the queue is empty, the
    /// dispatcher stops, or the endpoint's circuit opens here (then the rest of its queue goes back until then).
    private func runSlot(_ endpoint: UUID) async {
        while true {
            let now = clock.now()
            let next = state.withLock { state -> (DueDelivery?, [DueDelivery], Date?) in
                if state.claimingStopped { return (nil, [], nil) }
                if let open = state.localOpenUntil[endpoint], open > now {
                    return (nil, state.drain(endpoint), open)
                }
                return (state.dequeue(endpoint), [], nil)
            }
            if let until = next.2, !next.1.isEmpty {
                await giveBack(now: [], later: [until: next.1.map(\.id)], canceled: [])
            }
            guard let delivery = next.0 else { break }
            await attempt(delivery)
            // Its queue has room again: if deliveries were left in the table, the claim loop fetches more.
            let claimAgain = state.withLock { state in
                if state.backlog { state.claimRequested = true }
                return state.backlog
            }
            if claimAgain { wake.signal() }
        }
        let total = state.withLock { state in
            state.slots[endpoint, default: 1] -= 1
            if state.slots[endpoint] == 0 { state.slots[endpoint] = nil }
            state.totalSlots -= 1
            return state.totalSlots
        }
        metrics.inFlight.record(total)
        wake.signal()
    }

    private func giveBack(now: [UUID], later: [Date: [UUID]], canceled: [UUID]) async {
        do {
            try await store.releaseDeliveries(now)
            for (until, ids) in later { try await store.releaseDeliveries(ids, until: until) }
            try await store.cancelDeliveries(canceled, reason: "endpoint disabled")
        } catch {
            // Their leases pass on their own.
            logger.debug("could not release webhook deliveries", metadata: ["error": "\(error)"])
        }
    }

    // MARK: - Attempts

    private func attempt(_ delivery: DueDelivery) async {
        let started = clock.now()
        let start = ContinuousClock.now
        let result = await send(delivery)
        let duration = ContinuousClock.now - start
        metrics.attemptDuration.record(duration: duration)
        switch result {
        case .delivered:
            metrics.attempt("delivered")
            metrics.deliveryLatency.record(
                duration: .seconds(max(0, clock.now().timeIntervalSince(delivery.createdAt))))
        case .failed: metrics.attempt("failed")
        case .gone: metrics.attempt("gone")
        case .refused: metrics.attempt("refused")
        }
        let record = WebhookAttemptRecord(delivery: delivery, startedAt: started, duration: duration, result: result)
        let now = clock.now()
        state.withLock { state in
            state.outcomes.append(record)
            let seconds = duration.timeInterval
            state.attemptSeconds[delivery.endpoint.id] =
                state.attemptSeconds[delivery.endpoint.id].map {
                    0.8 * $0 + 0.2 * seconds
                } ?? seconds
            let endpoint = delivery.endpoint
            switch result {
            case .delivered:
                state.localFailures[endpoint.id] = nil
                state.localOpenUntil[endpoint.id] = nil
            case .failed:
                let failures = state.localFailures[endpoint.id, default: 0] + 1
                if endpoint.consecutiveFailures >= WebhookCircuit.threshold,
                    let cooldown = WebhookCircuit.cooldown(afterFailures: endpoint.consecutiveFailures + 1)
                {
                    // A failed probe of a half-open circuit: closed to this process until the stored one reopens.
                    state.localOpenUntil[endpoint.id] = now.addingTimeInterval(cooldown.timeInterval)
                    state.localFailures[endpoint.id] = nil
                } else if failures >= WebhookCircuit.threshold {
                    state.localOpenUntil[endpoint.id] = now.addingTimeInterval(
                        WebhookCircuit.firstCooldown.timeInterval)
                    state.localFailures[endpoint.id] = nil
                } else {
                    state.localFailures[endpoint.id] = failures
                }
            case .gone, .refused:
                break
            }
        }
    }

    private func send(_ delivery: DueDelivery) async -> WebhookAttemptResult {
        let url: WebhookURL
        do {
            url = try WebhookURL(delivery.endpoint.url, policy: configuration.targetPolicy)
        } catch {
            return .refused("the URL is refused: \(error)")
        }
        guard !delivery.secrets.isEmpty else { return .refused("no signing secret") }
        let id = delivery.id.uuidString.lowercased()
        let timestamp = Int64(clock.now().timeIntervalSince1970)
        let body = Array(delivery.payload.utf8)
        let headers = [
            (WebhookSignature.Header.id, id),
            (WebhookSignature.Header.timestamp, String(timestamp)),
            (
                WebhookSignature.Header.signature,
                WebhookSignature.sign(id: id, timestamp: timestamp, body: body, secrets: delivery.secrets)
            ),
        ]
        switch await sender.send(to: url, headers: headers, body: body) {
        case .success(let answer) where (200...299).contains(answer.status):
            return .delivered(status: answer.status)
        case .success(let answer) where answer.status == 410:
            return .gone
        case .success(let answer):
            let why =
                (300...399).contains(answer.status)
                ? "HTTP \(answer.status): redirects are not followed" : "HTTP \(answer.status)"
            return .failed(status: answer.status, error: why, retryAfter: answer.retryAfter)
        case .failure(.refused(let why)):
            return .refused(why)
        case .failure(.unreachable(let why)):
            return .failed(status: nil, error: why, retryAfter: nil)
        }
    }

    // MARK: - Storing outcomes

    /// Stores the outcomes every few milliseconds in one transaction; ends once claiming stopped, no attempt is in
    /// flight and everything is stored (or PostgreSQL stayed away too long: the leases pass, others retry).
    private func storeOutcomes() async {
        var failures = 0
        while true {
            let (batch, done) = state.withLock { state -> ([WebhookAttemptRecord], Bool) in
                let batch = state.outcomes
                state.outcomes = []
                return (batch, state.claimingStopped && state.totalSlots == 0 && batch.isEmpty)
            }
            if done { return }
            if !batch.isEmpty {
                do {
                    try await withTimeout(configuration.databaseTimeout) { [store, configuration, clock] in
                        try await store.recordAttempts(
                            batch, dispatcherID: configuration.dispatcherID, at: clock.now())
                    }
                    failures = 0
                } catch {
                    failures += 1
                    logger.warning(
                        "webhook outcomes not stored; retrying",
                        metadata: ["error": "\(error)", "outcomes": "\(batch.count)"])
                    let stopping = state.withLock { state in
                        state.outcomes.insert(contentsOf: batch, at: 0)
                        return state.claimingStopped
                    }
                    if stopping && failures >= 5 {
                        logger.error(
                            "webhook outcomes lost at shutdown; their deliveries will be attempted again",
                            metadata: ["outcomes": "\(batch.count)"])
                        return
                    }
                    try? await Task.sleep(for: .seconds(1))
                    continue
                }
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    // MARK: - House-keeping

    /// Every 30 s: fails deliveries older than the whole schedule, deletes finished ones past the retention period
    /// (a bounded amount per round, so a first run on a large table does not hold the database), and samples the
    /// backlog for the metrics.
    private func houseKeeping() async {
        while !state.withLock({ $0.claimingStopped }) {
            let now = clock.now()
            do {
                let stale = try await store.failStaleDeliveries(olderThan: Self.retryWindow, at: now)
                if stale > 0 {
                    logger.warning(
                        "webhook deliveries failed after their retry window", metadata: ["count": "\(stale)"])
                }
                let cutoff = now.addingTimeInterval(-configuration.retention.timeInterval)
                for _ in 0..<Self.purgeBatchesPerRound {
                    let purged = try await store.purgeFinishedDeliveries(
                        finishedBefore: cutoff, limit: Self.purgeBatch)
                    metrics.deliveriesPurged.increment(by: purged)
                    if purged < Self.purgeBatch { break }
                }
                let backlog = try await store.webhookBacklog(at: now)
                metrics.backlogDue.record(backlog.due)
                metrics.backlogWaiting.record(backlog.waiting)
            } catch {
                logger.debug("webhook house-keeping failed", metadata: ["error": "\(error)"])
            }
            await wake.wait(upTo: .seconds(30), tag: .houseKeeping)
        }
    }
}

/// Wakes sleeping loops early: ``signal(_:)`` ends the current (or the next) ``wait(upTo:tag:)`` of a tag at once,
/// ``stop()`` ends every wait for good.
final class WakeSignal: Sendable {
    /// Which loop waits (one waiter per tag).
    enum Tag: Sendable, Hashable { case scheduler, houseKeeping }

    private struct Waiter {
        var id: Int
        var continuation: CheckedContinuation<Void, Never>
    }

    private struct State {
        var pending: Set<Tag> = []
        var nextID = 0
        var waiters: [Tag: Waiter] = [:]
        /// The wait being set up per tag, and whether its timeout already passed.
        var registering: [Tag: Int] = [:]
        var expiredEarly: Set<Int> = []
        var stopped = false
    }

    private let state = Mutex(State())

    /// Wakes the wait of `tag` (remembered if it is not waiting now).
    func signal(_ tag: Tag = .scheduler) {
        let waiter = state.withLock { state -> Waiter? in
            guard let waiter = state.waiters.removeValue(forKey: tag) else {
                state.pending.insert(tag)
                return nil
            }
            return waiter
        }
        waiter?.continuation.resume()
    }

    /// Ends every wait, now and later.
    func stop() {
        let waiters = state.withLock { state -> [Waiter] in
            state.stopped = true
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.continuation.resume() }
    }

    /// Waits until signalled, stopped, or `timeout` passed.
    func wait(upTo timeout: Duration, tag: Tag = .scheduler) async {
        let id = state.withLock { state -> Int? in
            if state.stopped || state.pending.remove(tag) != nil { return nil }
            state.nextID += 1
            state.registering[tag] = state.nextID
            return state.nextID
        }
        guard let id else { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let resumeNow = self.state.withLock { state -> Bool in
                        state.registering[tag] = nil
                        if state.stopped || state.pending.remove(tag) != nil || state.expiredEarly.remove(id) != nil {
                            return true
                        }
                        state.waiters[tag] = Waiter(id: id, continuation: continuation)
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                self.expire(id: id, tag: tag)
            }
            await group.next()
            group.cancelAll()
        }
    }

    private func expire(id: Int, tag: Tag) {
        let waiter = state.withLock { state -> Waiter? in
            if let waiter = state.waiters[tag], waiter.id == id {
                state.waiters[tag] = nil
                return waiter
            }
            if state.registering[tag] == id { state.expiredEarly.insert(id) }
            return nil
        }
        waiter?.continuation.resume()
    }
}
