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
/// Fairness: at most `endpointConcurrency` attempts per endpoint are in flight in this process (one while its
/// circuit is half-open), out of `maxInFlight`; the claim skips endpoints at their limit, so a slow or dead endpoint
/// holds a few slots and never the queue. An endpoint whose circuit is open is not attempted: its deliveries wait
/// for the cool-down (see ``WebhookCircuit``).
///
/// Outcomes are stored in batches every few milliseconds. A dispatcher killed before storing an outcome leaves a
/// lease that passes, and the delivery is attempted again elsewhere: at least once, never lost.
final class DeliveryScheduler: Service, Sendable {
    private struct State {
        var inFlight: [UUID: Int] = [:]
        /// This process's own view of failing endpoints, ahead of the stored circuit (outcomes are stored in
        /// batches): failures in a row since the last success, and until when no attempt is made.
        var localFailures: [UUID: Int] = [:]
        var localOpenUntil: [UUID: Date] = [:]
        var total = 0
        var outcomes: [WebhookAttemptRecord] = []
        var claimingStopped = false
    }

    private let store: CallStore
    private let sender: WebhookSender
    private let clock: any WebhookClock
    private let configuration: DispatcherConfiguration
    private let metrics: DispatcherMetrics
    private let logger: Logger
    private let state = Mutex(State())
    private let wake = WakeSignal()

    /// How long a claimed delivery stays leased: the attempt, plus time to store its outcome.
    var lease: Duration { configuration.attemptTimeout * 2 + .seconds(5) }
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

    /// Looks for due deliveries now instead of at the next poll.
    func nudge() {
        wake.signal()
    }

    func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.storeOutcomes() }
            group.addTask { await self.houseKeeping() }
            // On graceful shutdown: no new claims; the attempts in flight finish (bounded by the attempt timeout)
            // and their outcomes are stored before the service returns.
            await withGracefulShutdownHandler {
                await self.claimLoop(group: &group)
            } onGracefulShutdown: {
                self.state.withLock { $0.claimingStopped = true }
                self.wake.stop()
            }
            state.withLock { $0.claimingStopped = true }
            wake.stop()
        }
    }

    // MARK: - Claiming

    private func claimLoop(group: inout DiscardingTaskGroup) async {
        let batch = min(configuration.maxInFlight, 100)
        while !Task.isCancelled {
            let (capacity, room, stopped) = state.withLock { state in
                (
                    configuration.maxInFlight - state.total,
                    state.inFlight.mapValues { max(0, configuration.endpointConcurrency - $0) },
                    state.claimingStopped
                )
            }
            if stopped { return }
            guard capacity > 0 else {
                await wake.wait(upTo: configuration.pollInterval)
                continue
            }
            let now = clock.now()
            let limit = min(capacity, batch)
            let claimed: [DueDelivery]
            do {
                claimed = try await withTimeout(configuration.databaseTimeout) { [store, configuration, lease, room] in
                    try await store.claimDueDeliveries(
                        dispatcherID: configuration.dispatcherID, limit: limit,
                        perEndpoint: configuration.endpointConcurrency, room: room, lease: lease, at: now)
                }
            } catch {
                logger.warning("could not claim webhook deliveries", metadata: ["error": "\(error)"])
                await wake.wait(upTo: .seconds(1))
                continue
            }
            var releaseNow: [UUID] = []
            var releaseUntil: [Date: [UUID]] = [:]
            var canceled: [UUID] = []
            for delivery in claimed {
                let endpoint = delivery.endpoint
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
                let cap =
                    endpoint.consecutiveFailures >= WebhookCircuit.threshold ? 1 : configuration.endpointConcurrency
                let admitted = state.withLock { state -> Int? in
                    guard state.inFlight[endpoint.id, default: 0] < cap else { return nil }
                    state.inFlight[endpoint.id, default: 0] += 1
                    state.total += 1
                    return state.total
                }
                guard let total = admitted else {
                    releaseNow.append(delivery.id)
                    continue
                }
                metrics.inFlight.record(total)
                group.addTask { await self.attempt(delivery) }
            }
            await giveBack(now: releaseNow, later: releaseUntil, canceled: canceled)
            if claimed.count < limit || claimed.count == releaseNow.count + canceled.count {
                await wake.wait(upTo: configuration.pollInterval)
            }
        }
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
        let total = state.withLock { state in
            state.outcomes.append(record)
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
                    state.localOpenUntil[endpoint.id] = now.addingTimeInterval(Self.seconds(cooldown))
                    state.localFailures[endpoint.id] = nil
                } else if failures >= WebhookCircuit.threshold {
                    state.localOpenUntil[endpoint.id] = now.addingTimeInterval(
                        Self.seconds(WebhookCircuit.firstCooldown))
                    state.localFailures[endpoint.id] = nil
                } else {
                    state.localFailures[endpoint.id] = failures
                }
            case .gone, .refused:
                break
            }
            state.inFlight[delivery.endpoint.id, default: 1] -= 1
            if state.inFlight[delivery.endpoint.id] == 0 { state.inFlight[delivery.endpoint.id] = nil }
            state.total -= 1
            return state.total
        }
        metrics.inFlight.record(total)
        wake.signal()
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

    static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) / 1e18
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
                return (batch, state.claimingStopped && state.total == 0 && batch.isEmpty)
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

    /// Every 30 s: fails deliveries older than the whole schedule, and samples the backlog for the metrics.
    private func houseKeeping() async {
        while !state.withLock({ $0.claimingStopped }) {
            let now = clock.now()
            do {
                let stale = try await store.failStaleDeliveries(olderThan: Self.retryWindow, at: now)
                if stale > 0 {
                    logger.warning(
                        "webhook deliveries failed after their retry window", metadata: ["count": "\(stale)"])
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
