import ARI
import ARISimulator
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Synchronization
import Testing
import WSClient

let testLogger: Logger = {
    var logger = Logger(label: "ari-tests")
    logger.logLevel = .warning
    return logger
}()

/// A running simulator on a free port.
struct Harness: Sendable {
    let simulator: ARISimulator
    let baseURL: String

    /// A client configuration for `application` (unique per test).
    func configuration(application: String, password: String = "dialer-secret") -> ARIConfiguration {
        ARIConfiguration(
            baseURL: self.baseURL,
            username: "dialer",
            password: password,
            application: application,
            requestTimeout: .seconds(10),
            reconnectBackoff: .init(initial: .milliseconds(100), max: .seconds(1)),
            pingInterval: .seconds(5)
        )
    }

    func client(application: String, password: String = "dialer-secret") -> ARIClient {
        ARIClient(configuration: self.configuration(application: application, password: password), logger: testLogger)
    }

    /// `ws://…/ari/events?app=…&api_key=…`.
    func eventsURL(application: String, apiKey: String = "dialer:dialer-secret") -> String {
        self.baseURL.replacingOccurrences(of: "http://", with: "ws://") + "/events?app=\(application)&api_key=\(apiKey)"
    }
}

/// Runs `body` against a fresh simulator; the simulator stops afterwards.
func withSimulator<Result: Sendable>(
    _ configuration: ARISimulatorConfiguration = .init(),
    _ body: @Sendable (Harness) async throws -> Result
) async throws -> Result {
    let simulator = try ARISimulator(configuration: configuration, logger: testLogger)
    return try await withThrowingTaskGroup(of: Void.self, returning: Result.self) { group in
        group.addTask { _ = try? await simulator.run() }
        do {
            let harness = Harness(simulator: simulator, baseURL: try await simulator.baseURL)
            let result = try await body(harness)
            group.cancelAll()
            return result
        } catch {
            group.cancelAll()
            throw error
        }
    }
}

/// Runs `body` against a fresh simulator with an application of its own, its event stream connected (so that its
/// calls' events are recorded from the first), and a client for it; the stream and the simulator stop afterwards.
func withSimulatorApplication<Result: Sendable>(
    _ configuration: ARISimulatorConfiguration = .init(),
    _ body: @Sendable (Harness, _ application: String, EventRecorder, ARIClient) async throws -> Result
) async throws -> Result {
    try await withSimulator(configuration) { harness in
        let application = uniqueName()
        let events = try await EventRecorder.connected(harness.configuration(application: application))
        defer { events.stop() }
        return try await body(harness, application, events, harness.client(application: application))
    }
}

/// A unique application name per test (tests run in parallel).
func uniqueName(_ prefix: String = "app") -> String {
    "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
}

struct TimeoutError: Error, CustomStringConvertible {
    var description: String
}

/// Polls `condition` until it holds or `timeout` passes (a generous bound: CI machines are slow).
func eventually(
    timeout: Duration = .seconds(15),
    _ what: String,
    _ condition: @Sendable () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    if try await condition() { return }
    throw TimeoutError(description: "timed out waiting for \(what)")
}

/// A lock-protected value that closures can share (a `Mutex` itself cannot be captured).
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) {
        self.mutex = Mutex(value)
    }

    func withLock<Result: Sendable>(_ body: (inout Value) -> Result) -> Result {
        self.mutex.withLock { body(&$0) }
    }

    var value: Value { self.mutex.withLock { $0 } }
}

// MARK: - Typed events through the client's event stream

/// Runs an ``ARIEventStream`` and records what it delivers.
final class EventRecorder: Sendable {
    let stream: ARIEventStream
    private let recorded = Locked<[ARIEvent]>([])
    private let states = Locked<[ARIConnectionState]>([])
    private let tasks = Locked<[Task<Void, Never>]>([])

    init(configuration: ARIConfiguration) {
        self.stream = ARIEventStream(configuration: configuration, logger: testLogger)
        let stream = self.stream
        let runner = Task { _ = try? await stream.run() }
        let eventReader = Task { [recorded] in
            for await event in stream.events { recorded.withLock { $0.append(event) } }
        }
        let stateReader = Task { [states] in
            for await state in stream.connectionStates { states.withLock { $0.append(state) } }
        }
        self.tasks.withLock { $0 = [runner, eventReader, stateReader] }
    }

    /// Starts a recorder and waits until its WebSocket is connected.
    static func connected(_ configuration: ARIConfiguration) async throws -> EventRecorder {
        let recorder = EventRecorder(configuration: configuration)
        try await recorder.waitForState("connected") { $0.contains(.connected) }
        return recorder
    }

    var events: [ARIEvent] { self.recorded.withLock { $0 } }
    var connectionStates: [ARIConnectionState] { self.states.withLock { $0 } }

    /// Events whose channel id is exactly `channelID`.
    func events(for channelID: String) -> [ARIEvent] {
        self.events.filter { $0.channelID == channelID }
    }

    func waitForEvents(
        _ what: String,
        timeout: Duration = .seconds(15),
        _ condition: @escaping @Sendable ([ARIEvent]) -> Bool
    ) async throws {
        try await eventually(timeout: timeout, what) { condition(self.events) }
    }

    /// Waits until `channelID` has a `ChannelDestroyed`; returns its events.
    @discardableResult
    func waitForDestroyed(_ channelID: String, timeout: Duration = .seconds(15)) async throws -> [ARIEvent] {
        try await self.waitForEvents("ChannelDestroyed of \(channelID)", timeout: timeout) { events in
            events.contains { if case .channelDestroyed(let e) = $0 { e.channel.id == channelID } else { false } }
        }
        return self.events(for: channelID)
    }

    func waitForState(
        _ what: String,
        timeout: Duration = .seconds(15),
        _ condition: @escaping @Sendable ([ARIConnectionState]) -> Bool
    ) async throws {
        try await eventually(timeout: timeout, "connection state \(what)") { condition(self.connectionStates) }
    }

    func stop() {
        for task in self.tasks.withLock({ $0 }) { task.cancel() }
    }

    deinit {
        for task in self.tasks.withLock({ $0 }) { task.cancel() }
    }
}

/// A compact, comparable form of an event: `Dial(BUSY)`, `Destroyed(17)`, `HangupRequest(32,soft)`...
func signature(_ event: ARIEvent) -> String {
    switch event {
    case .dial(let e): "Dial(\(e.dialstatus))"
    case .channelStateChange(let e): "State(\(e.channel.state))"
    case .channelHangupRequest(let e):
        "HangupRequest(\(e.cause.map(String.init) ?? "-")\(e.soft == true ? ",soft" : ""))"
    case .channelDestroyed(let e): "Destroyed(\(e.cause))"
    case .channelVarset(let e): "Varset(\(e.variable)=\(e.value))"
    case .channelDialplan(let e): "Dialplan(\(e.dialplanApp))"
    case .stasisStart: "StasisStart"
    case .stasisEnd: "StasisEnd"
    case .applicationReplaced: "ApplicationReplaced"
    case .recording(let e): "\(e.kind.rawValue)(\(e.recording.state))"
    case .other(let type, _): type
    }
}

// MARK: - Raw WebSocket frames

/// A plain WebSocket client that keeps every text frame as received (for schema checks and for
/// comparisons with the captures).
final class RawEventRecorder: Sendable {
    private let frames = Locked<[String]>([])
    private let isConnected = Locked(false)
    private let task = Locked<Task<Void, Never>?>(nil)

    init(url: String) {
        let frames = self.frames
        let isConnected = self.isConnected
        let task = Task {
            _ = try? await WebSocketClient.connect(url: url, logger: testLogger) { inbound, _, _ in
                isConnected.withLock { $0 = true }
                for try await message in inbound.messages(maxSize: 1 << 22) {
                    if case .text(let text) = message { frames.withLock { $0.append(text) } }
                }
            }
            isConnected.withLock { $0 = false }
        }
        self.task.withLock { $0 = task }
    }

    static func connected(url: String) async throws -> RawEventRecorder {
        let recorder = RawEventRecorder(url: url)
        try await eventually("raw WebSocket connected") { recorder.isConnected.withLock { $0 } }
        return recorder
    }

    var texts: [String] { self.frames.withLock { $0 } }

    var values: [JSONValue] { self.texts.compactMap { try? JSONValue.parse($0) } }

    func waitUntil(_ what: String, _ condition: @escaping @Sendable ([JSONValue]) -> Bool) async throws {
        try await eventually(what) { condition(self.values) }
    }

    /// Waits for `ChannelDestroyed` of `channelID`.
    func waitForDestroyed(_ channelID: String) async throws {
        try await self.waitUntil("ChannelDestroyed of \(channelID)") { values in
            values.contains {
                $0["type"]?.stringValue == "ChannelDestroyed" && $0["channel"]?["id"]?.stringValue == channelID
            }
        }
    }

    func stop() {
        self.task.withLock { $0?.cancel() }
    }

    deinit {
        self.task.withLock { $0?.cancel() }
    }
}

/// Signature of a raw event (captured or simulated); `;2` marks the Local channel's second half.
func rawSignature(_ event: JSONValue) -> String {
    let type = event["type"]?.stringValue ?? "?"
    let channel = event["channel"] ?? event["peer"]
    let half = channel?["id"]?.stringValue?.hasSuffix(";2") == true ? ";2 " : ""
    switch type {
    case "Dial": return "Dial(\(event["dialstatus"]?.stringValue ?? "?"))"
    case "ChannelStateChange": return "\(half)State(\(channel?["state"]?.stringValue ?? "?"))"
    case "ChannelHangupRequest":
        let soft = event["soft"]?.boolValue == true ? ",soft" : ""
        return "\(half)HangupRequest(\(event["cause"]?.intValue.map(String.init) ?? "-")\(soft))"
    case "ChannelDestroyed":
        return "\(half)Destroyed(\(event["cause"]?.intValue ?? -1) \(event["cause_txt"]?.stringValue ?? "?"))"
    case "ChannelVarset":
        return "\(half)Varset(\(event["variable"]?.stringValue ?? "?")=\(event["value"]?.stringValue ?? "?"))"
    case "ChannelDialplan": return "\(half)Dialplan(\(event["dialplan_app"]?.stringValue ?? "?"))"
    default: return "\(half)\(type)"
    }
}

// MARK: - Plain HTTP

/// A raw HTTP exchange with the simulator (status, headers, body text).
func httpRequest(
    _ method: HTTPMethod,
    _ url: String,
    headers: [(String, String)] = [("Authorization", basicAuthorization())],
    body: String? = nil
) async throws -> (status: Int, headers: HTTPHeaders, body: String) {
    var request = HTTPClientRequest(url: url)
    request.method = method
    for (name, value) in headers { request.headers.add(name: name, value: value) }
    if let body {
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: body))
    }
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
    let bytes = try await response.body.collect(upTo: 16 << 20)
    return (Int(response.status.code), response.headers, String(buffer: bytes))
}

func basicAuthorization(_ user: String = "dialer", _ password: String = "dialer-secret") -> String {
    "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()
}
