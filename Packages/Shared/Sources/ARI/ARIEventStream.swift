import Logging
import Metrics
import NIOCore
import ServiceLifecycle
import Synchronization
import WSClient

/// Connection state of the events WebSocket, as the owner of the calls should see it.
public enum ARIConnectionState: Sendable, Equatable {
    /// A connection attempt is starting.
    case connecting
    /// The first connection is up: events flow.
    case connected
    /// The connection is down (or an attempt failed); `reason` says why. Events of the gap are lost.
    case disconnected(reason: String)
    /// A connection is up again after a gap: events that happened meanwhile were not delivered, so the
    /// owner must reconcile its live calls (`GET /channels`, `GET /channels/{id}`).
    case reconnected
}

/// The ARI events WebSocket of one application, kept connected.
///
/// `run()` connects to `GET /ari/events?app=…&api_key=…&subscribeAll=false`, decodes every message into
/// ``events``, answers and sends pings (a ping unanswered for one `pingInterval` closes the socket), and
/// reconnects with exponential back-off and jitter until the task is cancelled or the service group
/// shuts down gracefully. Asterisk does not replay events missed while disconnected: ``connectionStates``
/// reports `reconnected` so the owner can reconcile.
///
/// The application only exists for Asterisk while its WebSocket is connected: an app-style originate
/// made before the first `connected` ends with `STASISSTATUS=FAILED` (the call is hung up with cause 0).
///
/// Both streams have a single consumer. ``events`` holds up to `eventBufferLimit` events; a consumer that
/// falls further behind causes a reconnect (reported as a gap) rather than silent loss. ``connectionStates``
/// keeps the latest 64 states.
public final class ARIEventStream: Service, Sendable {
    /// Decoded events, in the order Asterisk sent them. Single consumer.
    public let events: AsyncStream<ARIEvent>
    /// Connection state changes. Single consumer.
    public let connectionStates: AsyncStream<ARIConnectionState>

    private let configuration: ARIConfiguration
    private let logger: Logger
    private let eventContinuation: AsyncStream<ARIEvent>.Continuation
    private let stateContinuation: AsyncStream<ARIConnectionState>.Continuation
    private let eventCounter: Counter
    private let reconnectCounter: Counter
    private let decodeFailureCounter: Counter

    /// Creates the stream; nothing connects before `run()`.
    public init(configuration: ARIConfiguration, logger: Logger) {
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "ari.app"] = "\(configuration.application)"
        self.logger = logger
        (self.events, self.eventContinuation) = AsyncStream.makeStream(
            of: ARIEvent.self,
            bufferingPolicy: .bufferingOldest(max(1, configuration.eventBufferLimit))
        )
        (self.connectionStates, self.stateContinuation) = AsyncStream.makeStream(
            of: ARIConnectionState.self,
            bufferingPolicy: .bufferingNewest(64)
        )
        self.eventCounter = Counter(label: "ari_events_received_total")
        self.reconnectCounter = Counter(label: "ari_websocket_reconnects_total")
        self.decodeFailureCounter = Counter(label: "ari_event_decode_failures_total")
    }

    /// Connects and stays connected until cancellation or graceful shutdown, then finishes both streams.
    /// Call it once.
    public func run() async throws {
        defer {
            self.eventContinuation.finish()
            self.stateContinuation.finish()
        }
        await cancelWhenGracefulShutdown {
            await self.connectLoop()
        }
    }

    // MARK: - Connection loop

    private enum StreamError: Error, CustomStringConvertible {
        case consumerTooSlow
        case connectTimeout
        var description: String {
            switch self {
            case .consumerTooSlow: "event buffer full: consumer too slow"
            case .connectTimeout: "WebSocket upgrade timed out"
            }
        }
    }

    private final class AttemptFlag: Sendable {
        let connected = Mutex(false)
    }

    private func connectLoop() async {
        var attempt = 0
        var everConnected = false
        let url = self.configuration.eventsURL
        let wsConfiguration: WebSocketClientConfiguration = {
            var wsConfiguration = WebSocketClientConfiguration(
                maxFrameSize: 1 << 20,
                closeTimeout: .seconds(2),
                autoPing: .enabled(timePeriod: self.configuration.pingInterval),
                validateUTF8: true
            )
            wsConfiguration.ignoreUncleanSSLShutdownErrors = true
            return wsConfiguration
        }()
        while !Task.isCancelled {
            self.stateContinuation.yield(.connecting)
            let flag = AttemptFlag()
            let upState: ARIConnectionState = everConnected ? .reconnected : .connected
            var reason: String
            do {
                let closeFrame = try await self.connectWithTimeout(flag: flag) {
                    try await WebSocketClient.connect(
                        url: url,
                        configuration: wsConfiguration,
                        logger: self.logger
                    ) { inbound, _, _ in
                        flag.connected.withLock { $0 = true }
                        self.logger.info("ARI events WebSocket connected")
                        self.stateContinuation.yield(upState)
                        for try await message in inbound.messages(maxSize: 1 << 22) {
                            guard case .text(let text) = message else { continue }
                            try self.deliver(text)
                        }
                    }
                }
                if let closeFrame {
                    reason = "closed by server (\(closeFrame.closeCode))"
                } else {
                    reason = "connection closed"
                }
            } catch let error as WebSocketClientError where error == .webSocketUpgradeFailed {
                reason = await self.diagnoseUpgradeFailure()
            } catch {
                reason = "\(error)"
            }
            if Task.isCancelled { break }
            if flag.connected.withLock({ $0 }) {
                everConnected = true
                attempt = 0
                self.reconnectCounter.increment()
            }
            self.logger.warning("ARI events WebSocket down", metadata: ["ari.reason": "\(reason)"])
            self.stateContinuation.yield(.disconnected(reason: reason))
            let delay = self.configuration.reconnectBackoff.delay(forAttempt: attempt)
            attempt += 1
            do {
                try await Task.sleep(for: delay)
            } catch {
                break
            }
        }
    }

    /// Runs a connection attempt, failing it when the upgrade has not completed within `requestTimeout`
    /// (a server that accepts TCP but never answers must not stall the reconnect loop).
    private func connectWithTimeout(
        flag: AttemptFlag,
        _ connect: @escaping @Sendable () async throws -> WebSocketCloseFrame?
    ) async throws -> WebSocketCloseFrame? {
        let timeout = self.configuration.requestTimeout
        return try await withThrowingTaskGroup(of: WebSocketCloseFrame??.self) { group in
            group.addTask { .some(try await connect()) }
            group.addTask {
                try await Task.sleep(for: timeout)
                guard flag.connected.withLock({ $0 }) else { throw StreamError.connectTimeout }
                return .none
            }
            while let result = try await group.next() {
                if case .some(let closeFrame) = result {
                    group.cancelAll()
                    return closeFrame
                }
            }
            return nil
        }
    }

    private func deliver(_ text: String) throws {
        let event: ARIEvent
        do {
            event = try ARIEvent.decode(json: text)
        } catch {
            self.decodeFailureCounter.increment()
            self.logger.error(
                "undecodable ARI event",
                metadata: ["ari.error": "\(error)", "ari.event": "\(text.prefix(512))"]
            )
            return
        }
        self.eventCounter.increment()
        if case .dropped = self.eventContinuation.yield(event) {
            throw StreamError.consumerTooSlow
        }
    }

    /// The WebSocket client does not expose the HTTP status of a refused upgrade; ask the REST interface
    /// with the same credentials to tell bad credentials from an unreachable server.
    private func diagnoseUpgradeFailure() async -> String {
        var probeConfiguration = self.configuration
        probeConfiguration.requestTimeout = .seconds(2)
        let probe = ARIClient(configuration: probeConfiguration, logger: self.logger)
        do {
            try await probe.ping()
            return "WebSocket upgrade refused"
        } catch ARIError.unauthorized {
            return "unauthorized"
        } catch {
            return "WebSocket upgrade failed (\(error))"
        }
    }
}
