import Foundation
import NIOCore

/// Something a WebSocket writer does, in order.
enum OutboundItem: Sendable {
    /// Send a text frame.
    case text(String)
    /// Call back once everything before has been written (or the socket is gone).
    case flushed(@Sendable () -> Void)
}

/// One events WebSocket.
struct EventConnection: Sendable {
    let id: Int
    let application: String
    let outbound: AsyncStream<OutboundItem>.Continuation
    /// Closes the TCP connection without a close frame (the client sees 1006).
    let abort: @Sendable () -> Void
    var replaced = false
}

/// Injected faults.
struct Faults: Sendable {
    var refuseNext = 0
    var refuseNextStatus = 503
    var refuseUntil: ContinuousClock.Instant?
    var refuseUntilStatus = 503
    var latency: Duration = .zero
    var unresponsive = false
    /// How many of the next recordings fail (`RecordingFailed`) instead of starting.
    var failRecordings = 0

    /// Consumes one refusal if one is due; returns its status.
    mutating func takeRefusal(now: ContinuousClock.Instant) -> Int? {
        if self.refuseNext > 0 {
            self.refuseNext -= 1
            return self.refuseNextStatus
        }
        if let until = self.refuseUntil {
            if now < until { return self.refuseUntilStatus }
            self.refuseUntil = nil
        }
        return nil
    }
}

/// Counters tests read.
struct Counters: Sendable {
    var originatesByChannelID: [String: Int] = [:]
    var acceptedByChannelID: [String: Int] = [:]
    var totalOriginates = 0
    var acceptedOriginates = 0
    var earlyEventOriginates = 0
    /// Simulated Asterisk restarts.
    var restarts = 0
    /// REST requests refused with 503 "Asterisk not booted".
    var notBootedRefusals = 0
    /// When the first originate naming each channel id arrived, in seconds since 1970 (wall clock, so a benchmark
    /// in another process can compare it with its own timestamps).
    var firstOriginateAt: [String: Double] = [:]
    /// The `endpoint` each originate naming a channel id asked for, in order, so that tests can check what a worker
    /// dialed (security tests: only the template and the validated number).
    var endpointsByChannelID: [String: [String]] = [:]
    /// The contexts each channel was continued to (`POST /channels/{id}/continue` answered 204), in order.
    var continuesByChannelID: [String: [String]] = [:]
    /// Recordings the node finished and stored.
    var recordingsStored = 0

    /// Remembers when the first originate naming `channelID` arrived (later ones keep the first time).
    mutating func noteFirstOriginate(of channelID: String) {
        if self.firstOriginateAt[channelID] == nil {
            self.firstOriginateAt[channelID] = Date().timeIntervalSince1970
        }
    }
}

/// Everything the simulator knows, behind one lock. Methods run with the lock held: they mutate, build
/// event text and queue it on the WebSocket writers (queuing is non-blocking), and schedule timers on the
/// event loop (also non-blocking). Emitting under the lock is what keeps every application's events in
/// the order the state changed.
struct SimulatorState: Sendable {
    typealias Schedule =
        @Sendable (_ callID: String, _ generation: UInt64, _ step: SimulatedCall.Step, _ delay: Duration)
        -> Scheduled<Void>

    var calls: [String: SimulatedCall] = [:]
    /// `;2` id → primary id, for lookups of the second halves.
    var peerIndex: [String: String] = [:]
    /// Snoop channels by id.
    var snoops: [String: SnoopChannel] = [:]
    /// Recordings in progress by name.
    var liveRecordings: [String: LiveRecording] = [:]
    /// Recordings the node keeps (they survive a restart, as files on its disk do).
    var storedRecordings: [String: StoredRecording] = [:]
    var connections: [Int: EventConnection] = [:]
    var activeConnectionByApp: [String: Int] = [:]
    var nextConnectionID = 0
    var channelSequence: UInt32 = 0
    var uniqueIDSequence = 0
    var originateSequence = 0
    var counters = Counters()
    var faults = Faults()
    /// Until when REST answers 503 "Asterisk not booted" (after start or a simulated restart).
    var bootedAt: ContinuousClock.Instant?
    var rules: RuleTable
    let configuration: ARISimulatorConfiguration
    let technologies: Set<String>
    var schedule: Schedule?

    init(configuration: ARISimulatorConfiguration, rules: RuleTable) {
        self.configuration = configuration
        self.rules = rules
        self.technologies = Set(configuration.technologies.map { $0.lowercased() })
    }

    var asteriskID: String { self.configuration.asteriskID }

    // MARK: - Lookup

    /// The primary id of the call that owns leg `id` (itself or its `;2` half).
    func callID(owning id: String) -> String? {
        if self.calls[id] != nil { return id }
        return self.peerIndex[id]
    }

    /// Snapshot JSON of a live leg.
    func snapshot(of id: String) -> String? {
        if let call = self.calls[id] { return call.primary.json() }
        if let owner = self.peerIndex[id], let peer = self.calls[owner]?.peer { return peer.json() }
        if let snoop = self.snoops[id] { return snoop.leg.json() }
        return nil
    }

    /// Every live leg's snapshot, the `;2` halves included, as `GET /channels` lists them.
    func allSnapshots() -> [String] {
        var result: [String] = []
        result.reserveCapacity(self.calls.count * 2)
        for call in self.calls.values {
            result.append(call.primary.json())
            if let peer = call.peer { result.append(peer.json()) }
        }
        for snoop in self.snoops.values { result.append(snoop.leg.json()) }
        return result
    }

    /// Whether `application` exists for ARI: it has a WebSocket, or channels subscribed to it.
    func applicationExists(_ application: String) -> Bool {
        if self.activeConnectionByApp[application] != nil { return true }
        return self.calls.values.contains { $0.subscribers.contains(application) }
    }

    /// The `Application` JSON of an existing application.
    func applicationJSON(_ application: String) -> String {
        var ids: [String] = []
        for call in self.calls.values where call.subscribers.contains(application) {
            ids.append(contentsOf: call.legIDs)
        }
        var output = "{"
        JSONText.appendField("name", application, to: &output)
        output.append(",\"channel_ids\":[")
        for (index, id) in ids.enumerated() {
            if index > 0 { output.append(",") }
            JSONText.appendString(id, to: &output)
        }
        output.append("],\"bridge_ids\":[],\"endpoint_ids\":[],\"device_names\":[],")
        output.append("\"events_allowed\":[],\"events_disallowed\":[]}")
        return output
    }

    /// Names of applications that exist.
    func applicationNames() -> [String] {
        var names = Set(self.activeConnectionByApp.keys)
        for call in self.calls.values { names.formUnion(call.subscribers) }
        return names.sorted()
    }

    // MARK: - Emission

    /// Queues an event for every subscribed application that has a WebSocket. Events of an application
    /// without one are lost, as Asterisk loses them.
    func emit(_ prefix: String, to subscribers: Set<String>) {
        for application in subscribers {
            guard let connectionID = self.activeConnectionByApp[application],
                let connection = self.connections[connectionID]
            else { continue }
            connection.outbound.yield(.text(EventText.finish(prefix, application: application)))
        }
    }

    /// The writers of the applications subscribed to a call (for flushing before an HTTP response).
    func writers(for subscribers: Set<String>) -> [AsyncStream<OutboundItem>.Continuation] {
        subscribers.compactMap { application in
            self.activeConnectionByApp[application].flatMap { self.connections[$0]?.outbound }
        }
    }

    // MARK: - WebSocket connections

    /// Registers a new events WebSocket; the application's previous one gets `ApplicationReplaced` and
    /// then stays open and silent.
    mutating func connect(
        application: String,
        outbound: AsyncStream<OutboundItem>.Continuation,
        abort: @escaping @Sendable () -> Void
    ) -> Int {
        self.nextConnectionID += 1
        let id = self.nextConnectionID
        if let previousID = self.activeConnectionByApp[application], var previous = self.connections[previousID] {
            previous.outbound.yield(
                .text(EventText.applicationReplaced(application: application, asteriskID: self.asteriskID))
            )
            previous.replaced = true
            self.connections[previousID] = previous
        }
        self.connections[id] = EventConnection(id: id, application: application, outbound: outbound, abort: abort)
        self.activeConnectionByApp[application] = id
        return id
    }

    /// Forgets a closed WebSocket.
    mutating func disconnect(_ id: Int) {
        guard let connection = self.connections.removeValue(forKey: id) else { return }
        if self.activeConnectionByApp[connection.application] == id {
            self.activeConnectionByApp[connection.application] = nil
        }
    }

    /// Removes the WebSockets of `application` (all when `nil`) and returns their abort functions.
    /// Whether REST requests are refused as Asterisk refuses them before it is fully booted.
    func isBooting(now: ContinuousClock.Instant) -> Bool {
        guard let bootedAt = self.bootedAt else { return false }
        return now < bootedAt
    }

    /// Asterisk stops: every channel is gone without an event (the process died with them), every WebSocket closes
    /// without a close frame; it then boots again for `bootWindow`. Returns the socket aborts to run unlocked.
    mutating func restart(bootWindow: Duration, now: ContinuousClock.Instant) -> [@Sendable () -> Void] {
        for callID in Array(self.calls.keys) { self.cancelTimer(callID) }
        self.calls.removeAll()
        self.peerIndex.removeAll()
        self.snoops.removeAll()
        self.liveRecordings.removeAll()
        self.bootedAt = now + bootWindow
        self.counters.restarts += 1
        return self.dropConnections(application: nil)
    }

    mutating func dropConnections(application: String?) -> [@Sendable () -> Void] {
        var aborts: [@Sendable () -> Void] = []
        for (id, connection) in self.connections where application == nil || connection.application == application {
            aborts.append(connection.abort)
            connection.outbound.finish()
            self.disconnect(id)
        }
        return aborts
    }

    // MARK: - Timers

    mutating func reschedule(_ callID: String, _ step: SimulatedCall.Step, after delay: Duration) {
        guard var call = self.calls[callID] else { return }
        call.timer?.cancel()
        call.generation &+= 1
        call.timer = self.schedule?(callID, call.generation, step, max(delay, .zero))
        self.calls[callID] = call
    }

    mutating func cancelTimer(_ callID: String) {
        guard var call = self.calls[callID] else { return }
        call.timer?.cancel()
        call.timer = nil
        call.generation &+= 1
        self.calls[callID] = call
    }

    /// Ends a call: both legs are gone.
    mutating func remove(_ callID: String) {
        guard let call = self.calls.removeValue(forKey: callID) else { return }
        call.timer?.cancel()
        if let peer = call.peer { self.peerIndex[peer.id] = nil }
        self.endSnoops(of: callID)
    }

    // MARK: - Names and ids

    mutating func nextChannelSequence() -> String {
        self.channelSequence &+= 1
        let hex = String(self.channelSequence, radix: 16)
        return String(repeating: "0", count: max(0, 8 - hex.count)) + hex
    }

    /// Asterisk's generated unique id form, `<epoch seconds>.<sequence>`.
    mutating func generatedUniqueID() -> String {
        self.uniqueIDSequence += 1
        return "\(Int64(Date().timeIntervalSince1970)).\(self.uniqueIDSequence)"
    }
}
