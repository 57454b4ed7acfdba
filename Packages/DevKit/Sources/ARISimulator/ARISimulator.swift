import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// An ARI server that behaves like Asterisk 22 for what a dialer uses: originate, hang up, channels,
/// continue, application subscriptions, `/asterisk/info`, and the events WebSocket.
///
/// Outcomes come from a rule table keyed by the dialed number (see ``OutcomeRule`` and
/// docs/ari-simulator.md); fault controls (dropping WebSockets, refusing originates, latency, hanging
/// requests) are available in process and under `/__sim/` on the same port. State lives in one lock and
/// every timed step is an event-loop timer, so thousands of live channels cost no tasks.
public final class ARISimulator: Service, Sendable {
    private let configuration: ARISimulatorConfiguration
    private let logger: Logger
    private let eventLoop: any EventLoop
    let state: Mutex<SimulatorState>
    /// Events WebSockets accepted but not yet handed to their handler, by NIO channel.
    let pendingConnections = Mutex<[ObjectIdentifier: PendingConnection]>([:])
    /// Every open TCP connection, closed when the simulator stops: an idle keep-alive connection (its handlers have
    /// no idle timeout, as Asterisk's HTTP server keeps them) would otherwise hold the server's shutdown forever.
    let openChannels = Mutex<[ObjectIdentifier: any Channel]>([:])
    /// Upgrades declined (bad credentials...), by NIO channel, waiting for their HTTP answer.
    let declinedUpgrades = Mutex<[ObjectIdentifier: DeclinedUpgrade]>([:])
    private let startup = Mutex<Startup>(.notStarted([]))

    private enum Startup {
        case notStarted([CheckedContinuation<Int, any Error>])
        case running(port: Int)
        case failed(any Error)
    }

    /// Creates a simulator; throws ``ARISimulatorError/invalidRule(_:)`` for a bad rule pattern.
    public init(configuration: ARISimulatorConfiguration = .init(), logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        self.eventLoop = MultiThreadedEventLoopGroup.singleton.next()
        let rules = try RuleTable(rules: configuration.rules, fallback: configuration.fallbackOutcome)
        self.state = Mutex(SimulatorState(configuration: configuration, rules: rules))
        let eventLoop = self.eventLoop
        let schedule: SimulatorState.Schedule = { [weak self] callID, generation, step, delay in
            let simulator = self
            return eventLoop.scheduleTask(in: delay.timeAmount) {
                simulator?.state.withLock { $0.fire(callID, generation: generation, step: step) }
            }
        }
        self.state.withLock { $0.schedule = schedule }
    }

    // MARK: - Lifecycle

    /// Serves until cancelled or gracefully shut down. Call once.
    public func run() async throws {
        let application = Application(
            responder: SimulatorResponder(simulator: self),
            server: HTTPServerBuilder { [self] responder in ARIServerChannel(responder: responder, simulator: self) },
            configuration: .init(
                address: .hostname(self.configuration.host, port: self.configuration.port),
                serverName: "Asterisk/\(self.configuration.asteriskVersion)"
            ),
            onServerRunning: { [self] channel in
                self.serverStarted(port: channel.localAddress?.port ?? self.configuration.port)
            },
            logger: self.logger
        )
        do {
            // Cancelled as well as shut down gracefully, the server waits for its connections to end: the open
            // events WebSockets and held requests are closed first, or a test's teardown would wait for them forever.
            try await withTaskCancellationHandler {
                try await withGracefulShutdownHandler {
                    try await application.run()
                } onGracefulShutdown: { [self] in
                    self.stopEverything()
                }
            } onCancel: { [self] in
                self.stopEverything()
            }
        } catch {
            self.serverFailed(error)
            self.stopEverything()
            throw error
        }
        self.serverFailed(ARISimulatorError.startupFailed("the simulator has stopped"))
        self.stopEverything()
    }

    /// The REST base URL, e.g. `http://127.0.0.1:49152/ari`, once the server listens.
    public var baseURL: String {
        get async throws {
            "http://\(self.urlHost):\(try await self.port)/ari"
        }
    }

    /// The events WebSocket base, e.g. `ws://127.0.0.1:49152/ari/events`.
    public var eventsURL: String {
        get async throws {
            "ws://\(self.urlHost):\(try await self.port)/ari/events"
        }
    }

    /// The listening port, once the server listens (waits for start-up).
    public var port: Int {
        get async throws {
            try await withCheckedThrowingContinuation { continuation in
                let immediate: Result<Int, any Error>? = self.startup.withLock { startup in
                    switch startup {
                    case .running(let port): return .success(port)
                    case .failed(let error): return .failure(error)
                    case .notStarted(var waiters):
                        waiters.append(continuation)
                        startup = .notStarted(waiters)
                        return nil
                    }
                }
                if let immediate { continuation.resume(with: immediate) }
            }
        }
    }

    private var urlHost: String {
        self.configuration.host.contains(":") ? "[\(self.configuration.host)]" : self.configuration.host
    }

    private func serverStarted(port: Int) {
        let bootWindow = self.configuration.bootWindow
        if bootWindow > .zero {
            self.state.withLock { $0.bootedAt = .now + bootWindow }
        }
        let waiters = self.startup.withLock { startup -> [CheckedContinuation<Int, any Error>] in
            guard case .notStarted(let waiters) = startup else { return [] }
            startup = .running(port: port)
            return waiters
        }
        self.logger.info("ARI simulator listening", metadata: ["ari.port": "\(port)"])
        for waiter in waiters { waiter.resume(returning: port) }
    }

    private func serverFailed(_ error: any Error) {
        let waiters = self.startup.withLock { startup -> [CheckedContinuation<Int, any Error>] in
            switch startup {
            case .notStarted(let waiters):
                startup = .failed(error)
                return waiters
            case .running:
                startup = .failed(error)
                return []
            case .failed:
                return []
            }
        }
        for waiter in waiters { waiter.resume(throwing: error) }
    }

    /// Closes every WebSocket and connection, releases hung requests and stops every call timer.
    private func stopEverything() {
        let aborts = self.state.withLock { state in
            for callID in Array(state.calls.keys) { state.cancelTimer(callID) }
            let aborts = state.dropConnections(application: nil)
            state.faults.unresponsive = false
            return aborts
        }
        for abort in aborts { abort() }
        let channels = self.openChannels.withLock { channels in
            defer { channels.removeAll() }
            return Array(channels.values)
        }
        for channel in channels { channel.close(promise: nil) }
    }

    /// Tracks a new connection until it closes (see ``openChannels``).
    func connectionOpened(_ channel: any Channel) {
        let key = ObjectIdentifier(channel)
        self.openChannels.withLock { $0[key] = channel }
        channel.closeFuture.whenComplete { [weak self] _ in
            _ = self?.openChannels.withLock { $0.removeValue(forKey: key) }
        }
    }

    // MARK: - Fault controls

    /// Closes the events WebSockets abruptly (no close frame: clients see 1006), for one application or all.
    /// Calls stay up; their events are lost until a client reconnects, as with a real Asterisk.
    public func dropWebSockets(application: String? = nil) {
        let aborts = self.state.withLock { $0.dropConnections(application: application) }
        for abort in aborts { abort() }
    }

    /// Simulates an Asterisk restart: every channel disappears without an event, every events WebSocket closes
    /// abruptly (1006), and for `bootWindow` REST answers `503 {"message":"Asterisk not booted"}` while WebSocket
    /// upgrades are accepted again at once, as a real Asterisk 22 does while it boots.
    public func restart(bootWindow: Duration) {
        let aborts = self.state.withLock { $0.restart(bootWindow: bootWindow, now: .now) }
        for abort in aborts { abort() }
    }

    /// Refuses the next `count` originates with `status` (counted in ``originateCount(channelID:)``).
    public func refuseOriginates(count: Int, status: Int = 503) {
        self.state.withLock {
            $0.faults.refuseNext = max(0, count)
            $0.faults.refuseNextStatus = status
        }
    }

    /// Refuses every originate with `status` for `duration`.
    public func refuseOriginates(for duration: Duration, status: Int = 503) {
        self.state.withLock {
            $0.faults.refuseUntil = ContinuousClock.now + duration
            $0.faults.refuseUntilStatus = status
        }
    }

    /// Delays every REST response by `latency` (zero to stop).
    public func setLatency(_ latency: Duration) {
        self.state.withLock { $0.faults.latency = max(latency, .zero) }
    }

    /// While `true`, REST requests get no answer at all (they wait until this is turned off).
    public func setUnresponsive(_ unresponsive: Bool) {
        self.state.withLock { $0.faults.unresponsive = unresponsive }
    }

    /// Clears every fault (refusals, latency, unresponsiveness). Calls, counters and sockets are kept.
    /// The next `count` recordings fail as they start (`RecordingFailed`, nothing stored).
    public func failRecordings(count: Int) {
        self.state.withLock { $0.faults.failRecordings = max(0, count) }
    }

    /// The names of the recordings the node keeps (`/recordings/stored`), sorted.
    public func storedRecordingNames() -> [String] {
        self.state.withLock { $0.storedRecordings.keys.sorted() }
    }

    /// The file of a stored recording, as `GET /recordings/stored/{name}/file` serves it.
    public func storedRecordingFile(name: String) -> [UInt8]? {
        self.state.withLock { $0.storedRecordings[name]?.bytes }
    }

    /// How many recordings the node has finished and stored.
    public func recordingsStored() -> Int {
        self.state.withLock { $0.counters.recordingsStored }
    }

    public func resetFaults() {
        self.state.withLock { $0.faults = Faults() }
    }

    /// Clears the counters.
    public func resetCounters() {
        self.state.withLock { $0.counters = Counters() }
    }

    /// Replaces the rule table at run time.
    public func setRules(_ rules: [OutcomeRule], fallback: SimulatedOutcome = OutcomeRule.defaultFallback) throws {
        let table = try RuleTable(rules: rules, fallback: fallback)
        self.state.withLock { $0.rules = table }
    }

    /// Hangs up a live channel from the network side with `cause`, as if the callee hung up now.
    /// Returns whether the channel existed.
    @discardableResult
    public func hangUpFromNetwork(channelID: String, cause: Int = 16) -> Bool {
        self.state.withLock { state in
            guard let callID = state.callID(owning: channelID) else { return false }
            state.hangup(callID, cause: cause)
            return true
        }
    }

    // MARK: - Counters

    /// Originate requests that named `channelID`, whatever their answer (200, 409, 4xx, 5xx, refusals).
    public func originateCount(channelID: String) -> Int {
        self.state.withLock { $0.counters.originatesByChannelID[channelID] ?? 0 }
    }

    /// Originates of `channelID` that created a channel (answered 200).
    public func acceptedOriginateCount(channelID: String) -> Int {
        self.state.withLock { $0.counters.acceptedByChannelID[channelID] ?? 0 }
    }

    /// The dialplan contexts `channelID` was continued to, in order (answering machine detection, then a target).
    public func continuedContexts(channelID: String) -> [String] {
        self.state.withLock { $0.counters.continuesByChannelID[channelID] ?? [] }
    }

    /// Every authenticated originate request.
    public var totalOriginates: Int {
        self.state.withLock { $0.counters.totalOriginates }
    }

    /// Originates that created a channel.
    public var acceptedOriginates: Int {
        self.state.withLock { $0.counters.acceptedOriginates }
    }

    /// Originates whose first events were written before their HTTP response (see ``EarlyEventsPolicy``).
    public var earlyEventOriginates: Int {
        self.state.withLock { $0.counters.earlyEventOriginates }
    }

    /// Live originated channels (a Local pair counts once).
    public var liveChannelCount: Int {
        self.state.withLock { $0.calls.count }
    }

    /// Ids of the live originated channels.
    public var liveChannelIDs: [String] {
        self.state.withLock { Array($0.calls.keys) }
    }

    /// Number of open events WebSockets (replaced ones included).
    public var webSocketCount: Int {
        self.state.withLock { $0.connections.count }
    }

    // MARK: - Request helpers

    func isAuthorized(_ request: Request, query: [String: String]) -> Bool {
        self.isAuthorized(authorization: request.headers[.authorization], query: query)
    }

    /// Basic auth or `api_key=user:password`, as ARI accepts both on REST and on the WebSocket.
    func isAuthorized(authorization: String?, query: [String: String]) -> Bool {
        let expected = "\(self.configuration.username):\(self.configuration.password)"
        if let apiKey = query["api_key"] {
            return apiKey == expected
        }
        guard let header = authorization, header.lowercased().hasPrefix("basic ") else {
            return false
        }
        let encoded = header.dropFirst("basic ".count).trimmingCharacters(in: .whitespaces)
        guard let data = Data(base64Encoded: encoded) else { return false }
        return String(decoding: data, as: UTF8.self) == expected
    }

    /// Applies latency and unresponsiveness to a REST request. An unresponsive request polls until the
    /// fault is lifted or the server stops (cancellation), so a shutdown never waits for it.
    func applyRequestFaults() async {
        let latency = self.state.withLock { $0.faults.latency }
        if latency > .zero {
            try? await Task.sleep(for: latency)
        }
        while self.state.withLock({ $0.faults.unresponsive }), !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Waits until every writer has passed its flush marker; a writer that disappears without draining
    /// (its socket closed) cannot hold the response for more than two seconds.
    func waitForFlush(_ writers: [AsyncStream<OutboundItem>.Continuation]) async {
        guard !writers.isEmpty else { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let countdown = FlushCountdown(count: writers.count, continuation: continuation)
            let guardTimer = self.eventLoop.scheduleTask(in: .seconds(2)) { countdown.finishAll() }
            countdown.onFinish { guardTimer.cancel() }
            for writer in writers {
                if case .terminated = writer.yield(.flushed({ countdown.done() })) { countdown.done() }
            }
        }
    }

    /// Starts a call whose first events waited for the HTTP response.
    func startCall(_ callID: String) {
        self.state.withLock { $0.start(callID) }
    }

    var simulatorConfiguration: ARISimulatorConfiguration { self.configuration }
}

/// Request context: Hummingbird's basics plus the TCP channel (the admin endpoints serve loopback only).
struct SimulatorRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }
}

/// Counts down flush acknowledgements and resumes the waiting request when all arrived (or on
/// `finishAll`), exactly once.
final class FlushCountdown: Sendable {
    private struct State {
        var remaining: Int
        var continuation: CheckedContinuation<Void, Never>?
        var onFinish: (@Sendable () -> Void)?
    }

    private let state: Mutex<State>

    init(count: Int, continuation: CheckedContinuation<Void, Never>) {
        self.state = Mutex(State(remaining: count, continuation: continuation))
    }

    /// Runs `action` once the countdown completes.
    func onFinish(_ action: @escaping @Sendable () -> Void) {
        let finishedAlready = self.state.withLock { state -> Bool in
            guard state.continuation != nil else { return true }
            state.onFinish = action
            return false
        }
        if finishedAlready { action() }
    }

    func done() {
        self.complete { $0.remaining -= 1 }
    }

    func finishAll() {
        self.complete { $0.remaining = 0 }
    }

    private func complete(_ update: (inout State) -> Void) {
        let finished = self.state.withLock { state -> (CheckedContinuation<Void, Never>, (@Sendable () -> Void)?)? in
            update(&state)
            guard state.remaining <= 0, let continuation = state.continuation else { return nil }
            state.continuation = nil
            defer { state.onFinish = nil }
            return (continuation, state.onFinish)
        }
        guard let (continuation, onFinish) = finished else { return }
        continuation.resume()
        onFinish?()
    }
}
