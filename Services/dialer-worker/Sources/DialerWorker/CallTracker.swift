import ARI
import CallDomain
import CallStore
import Foundation
import Synchronization

/// Something the owner of a ``CallTracker`` must do after a state change, outside the tracker's lock.
enum TrackerAction: Sendable {
    /// Start a publisher for this call's outbox (none is running for it).
    case startPublishing(CallID)
    /// Send the answered call into the dialplan (`POST /channels/{id}/continue`).
    case continueInDialplan(CallID, channelID: String, target: DialplanTarget)
    /// Hang the channel up (`DELETE /channels/{id}`): the call's hangup was requested, or a machine answered and
    /// the request said to hang up then.
    case hangup(CallID, channelID: String)
    /// Read `AMDSTATUS` and `AMDCAUSE` from the channel, back in Stasis from the detection's dial plan, and hand them
    /// to ``CallTracker/machineDetected(_:status:cause:at:)``.
    case readMachineDetection(CallID, channelID: String)
    /// Record the answered call (``Recorder/start(_:channelID:organizationID:)``): it is on its way to its target.
    case startRecording(CallID, channelID: String, organizationID: OrganizationID)
    /// A call left the tracker: its capacity slot is free again.
    case releaseSlot
    /// A call reached its terminal status (for logs and metrics).
    case ended(CallStatusEvent)
}

/// What a hangup or cancel request found.
enum HangupDisposition: Sendable, Equatable {
    /// This worker does not own the call.
    case notTracked
    /// The call is being claimed or originated; the request is recorded and acted on when the originate returns.
    case deferred
    /// The channel exists; the returned `hangup` action deletes it.
    case hangingUp
}

/// The live calls of this worker and the ordered outbox of each call's status events.
///
/// One lock protects both, so a status change and the enqueueing of its event are one step: events of a call
/// are enqueued in `seq` order whichever task produced them (the originate task, the ARI event loop, a
/// reconciliation), and each call's outbox is published by one task at a time, in order.
final class CallTracker: Sendable {
    private let state: Mutex<State>
    /// The ARI application whose events are ours.
    let application: String
    /// Where answered calls go for answering machine detection.
    let machineDetectionDialplan: DialplanTarget
    /// Where calls answered by a machine go when their request says `continue`.
    let machineDialplan: DialplanTarget

    /// The `appArgs` the detection's dial plan returns a channel to Stasis with.
    static let detectionDoneArgument = "amd"

    init(
        nodeID: String, workerID: String, application: String,
        machineDetectionDialplan: DialplanTarget = WorkerConfiguration.dialplan(context: "dialer-amd"),
        machineDialplan: DialplanTarget = WorkerConfiguration.dialplan(context: "dialer-machine")
    ) {
        self.application = application
        self.machineDetectionDialplan = machineDetectionDialplan
        self.machineDialplan = machineDialplan
        self.state = Mutex(State(nodeID: nodeID, workerID: workerID))
    }

    // MARK: - Placing a call

    /// Registers a call before its claim; `false` when the call is already tracked here (a redelivered command).
    func register(_ command: OriginateCommand, traceParent: String?, dialplan: DialplanTarget) -> Bool {
        insert(TrackedCall(command: command, traceParent: traceParent, dialplan: dialplan))
    }

    /// Stops tracking a call without publishing anything: its claim was lost (someone else has it, or it was
    /// canceled or ended), or it already ended under another process (the history says so).
    func forget(_ callID: CallID) -> [TrackerAction] {
        state.withLock { state in
            state.calls.removeValue(forKey: callID.description) == nil ? [] : [.releaseSlot]
        }
    }

    /// The claim was won: publishes its `dispatched` event. Returns whether to originate; a hangup or cancel that
    /// arrived during the claim ends the call `canceled` instead.
    func claimWon(_ dispatched: CallStatusEvent, now: Date = Date()) -> (originate: Bool, actions: [TrackerAction]) {
        state.withLock { state in
            let key = dispatched.callID.description
            guard var call = state.calls[key] else { return (false, []) }
            call.status = dispatched.status
            call.seq = dispatched.seq
            call.ownerEpoch = dispatched.ownerEpoch ?? 0
            var actions = state.enqueue(dispatched, traceParent: call.traceParent)
            if call.hangupRequested {
                actions += state.end(
                    &call, outcome: CallOutcome(status: .canceled), cause: nil, at: now,
                    detail: "canceled before the originate")
                return (false, actions)
            }
            call.phase = .originating
            call.originatedAt = .now
            state.calls[key] = call
            return (true, actions)
        }
    }

    /// The node accepted the originate: the call is `initiated` (unless events already said more).
    func originateAccepted(_ callID: CallID, at date: Date = Date()) -> [TrackerAction] {
        state.withLock { state in
            state.update(callID.description) { state, call in state.accept(&call, at: date) }
        }
    }

    /// The node refused the originate: the call ends `failed` (`originate_refused`) with `detail` — unless events
    /// showed the channel exists after all (a transport error after Asterisk created it).
    func originateRefused(_ callID: CallID, detail: String, at date: Date = Date()) -> [TrackerAction] {
        state.withLock { state in
            state.update(callID.description) { state, call in
                if call.sawChannel { return state.accept(&call, at: date) }
                return state.end(
                    &call, outcome: CallOutcome(status: .failed, failureReason: .originateRefused), cause: nil,
                    at: date, detail: detail)
            }
        }
    }

    /// What an originate that got no channel leaves to do.
    enum RetryCheck: Sendable, Equatable {
        /// Nothing showed the channel and nobody asked to end the call: the originate may be sent again.
        case retry
        /// Events showed the channel after all: the originate was taken (the call is now `originated`).
        case channelExists
        /// A hangup or cancel arrived meanwhile: the call ended `canceled`, undialed.
        case canceled
        /// The call is no longer this worker's.
        case notTracked
    }

    /// Decides, for a call whose originate got no channel, whether it may be sent again (see ``RetryCheck``).
    func checkOriginateRetry(_ callID: CallID, at date: Date = Date()) -> (RetryCheck, [TrackerAction]) {
        state.withLock { state in
            let key = callID.description
            guard let call = state.calls[key], call.phase == .originating else { return (.notTracked, []) }
            if call.sawChannel {
                return (.channelExists, state.update(key) { state, call in state.accept(&call, at: date) })
            }
            if call.hangupRequested {
                let actions = state.update(key) { state, call in
                    state.end(
                        &call, outcome: CallOutcome(status: .canceled), cause: nil, at: date,
                        detail: "canceled while the node could not take the originate")
                }
                return (.canceled, actions)
            }
            return (.retry, [])
        }
    }

    // MARK: - ARI events

    /// Applies one ARI event. Events of other applications, of channels this worker does not track (including the
    /// `;2` halves of Local channels: ids are compared exactly) and of calls not yet originated are ignored.
    func handle(_ event: ARIEvent) -> [TrackerAction] {
        guard event.application == application, let channelID = event.channelID else { return [] }
        return state.withLock { state in
            guard let phase = state.calls[channelID]?.phase, phase != .claiming else { return [] }
            return state.update(channelID) { state, call in
                call.sawChannel = true
                let at = event.timestamp ?? Date()
                switch event {
                case .dial(let dial):
                    if !dial.dialstatus.isEmpty { call.lastDialStatus = dial.dialstatus }
                    switch dial.dialstatus.uppercased() {
                    case "RINGING": return state.advance(&call, to: .ringing, at: at)
                    case "ANSWER": return state.advance(&call, to: .answered, at: at)
                    default: return state.advance(&call, to: .initiated, at: at)
                    }
                case .channelStateChange(let change):
                    switch change.channel.state {
                    case "Ringing": return state.advance(&call, to: .ringing, at: at)
                    case "Up": return state.advance(&call, to: .answered, at: at)
                    default: return state.advance(&call, to: .initiated, at: at)
                    }
                case .stasisStart(let start):
                    var actions = state.advance(&call, to: .answered, at: at)
                    if start.args.first == Self.detectionDoneArgument {
                        actions += detectionReturned(&call, &state, at: at)
                    } else if !call.continued {
                        call.continued = true
                        actions.append(firstContinue(call))
                        if !call.awaitsDetection { actions += recording(&call) }
                    }
                    return actions
                case .channelVarset(let varset) where varset.variable == "AMDSTATUS" || varset.variable == "AMDCAUSE":
                    if varset.variable == "AMDSTATUS" {
                        call.heardVerdict.status = varset.value
                    } else {
                        call.heardVerdict.cause = varset.value
                    }
                    return []
                case .channelDestroyed(let destroyed):
                    let rang = destroyed.timestamp.timeIntervalSince(destroyed.channel.creationtime)
                    let outcome = CallOutcome.decide(
                        answered: call.answered,
                        hangupRequested: call.hangupRequested,
                        lastDialStatus: call.lastDialStatus,
                        cause: destroyed.cause,
                        ringTimeReachedTimeout: rang + 0.25 >= Double(call.timeoutSeconds)
                    )
                    return state.end(
                        &call, outcome: outcome,
                        cause: HangupCause(code: destroyed.cause, text: destroyed.causeText), at: at, detail: nil)
                default:
                    return state.advance(&call, to: .initiated, at: at)
                }
            }
        }
    }

    /// Where an answered call goes first: the detection's dial plan when the request asked for it, else its target.
    private func firstContinue(_ call: TrackedCall) -> TrackerAction {
        .continueInDialplan(
            call.callID, channelID: call.channelID,
            target: call.awaitsDetection ? machineDetectionDialplan : call.dialplan)
    }

    /// The verdict read from the channel (`AMDSTATUS`, `AMDCAUSE`; `nil` when unreadable), for a call back in Stasis
    /// whose `ChannelVarset` events did not show it: see ``decide(_:_:status:cause:at:)``.
    func machineDetected(_ callID: CallID, status: String?, cause: String?, at date: Date = Date()) -> [TrackerAction] {
        state.withLock { state in
            state.update(callID.description) { state, call in
                decide(&call, &state, status: status, cause: cause, at: date)
            }
        }
    }

    /// Back in Stasis from the detection's dial plan: the verdict the channel's `ChannelVarset` events showed decides
    /// at once; without them (events lost, a call taken over) it is read from the channel.
    private func detectionReturned(_ call: inout TrackedCall, _ state: inout State, at date: Date) -> [TrackerAction] {
        guard call.awaitsDetection else { return [] }
        guard let status = call.heardVerdict.status else {
            return [.readMachineDetection(call.callID, channelID: call.channelID)]
        }
        return decide(&call, &state, status: status, cause: call.heardVerdict.cause, at: date)
    }

    /// The detection decided: publishes the held `answered` status with who answered, then sends a human (or an
    /// undecided call) to its target, and a machine to the machine context or away, as the request said.
    private func decide(
        _ call: inout TrackedCall, _ state: inout State, status: String?, cause: String?, at date: Date
    ) -> [TrackerAction] {
        guard call.awaitsDetection, let detection = call.machineDetection else { return [] }
        let answeredBy = status.map(AnsweredBy.init(amdStatus:)) ?? .unknown
        call.answeredBy = answeredBy
        var actions = state.advance(
            &call, to: .answered, at: call.answeredAt ?? date,
            detail: Self.detectionDetail(status: status, cause: cause))
        switch (answeredBy, detection.onMachine) {
        case (.machine, .hangup):
            actions.append(.hangup(call.callID, channelID: call.channelID))
        case (.machine, .continue):
            actions.append(.continueInDialplan(call.callID, channelID: call.channelID, target: machineDialplan))
            actions += recording(&call)
        case (.human, _), (.unknown, _):
            actions.append(.continueInDialplan(call.callID, channelID: call.channelID, target: call.dialplan))
            actions += recording(&call)
        }
        return actions
    }

    /// The recording of a call on its way to its target (after the detection, when there is one), if the request
    /// asked for it: asked once.
    private func recording(_ call: inout TrackedCall) -> [TrackerAction] {
        guard call.record, !call.recordingRequested else { return [] }
        call.recordingRequested = true
        return [
            .startRecording(call.callID, channelID: call.channelID, organizationID: call.organizationID ?? .default)
        ]
    }

    /// The `detail` of an `answered` event after detection: the status and cause `AMD()` set.
    static func detectionDetail(status: String?, cause: String?) -> String {
        guard let status else { return "answering machine detection: no verdict" }
        guard let cause, !cause.isEmpty else { return "answering machine detection: \(status)" }
        return "answering machine detection: \(status) (\(cause))"
    }

    // MARK: - Hangup and cancel

    /// Records a hangup (or cancel) request for a call this worker owns.
    func requestHangup(_ callID: CallID) -> (HangupDisposition, [TrackerAction]) {
        state.withLock { state in
            let key = callID.description
            guard var call = state.calls[key] else { return (.notTracked, []) }
            call.hangupRequested = true
            state.calls[key] = call
            guard call.phase == .originated else { return (.deferred, []) }
            return (.hangingUp, [.hangup(callID, channelID: call.channelID)])
        }
    }

    // MARK: - Reconciliation

    /// Brings a call in line with its channel as `GET /channels` shows it (events were lost while disconnected).
    func synchronize(with channel: ARIChannel, at date: Date = Date()) -> [TrackerAction] {
        state.withLock { state in
            guard let phase = state.calls[channel.id]?.phase, phase == .originated else { return [] }
            return state.update(channel.id) { state, call in
                call.sawChannel = true
                call.vanishCheckPending = false
                var actions: [TrackerAction] = []
                switch channel.state {
                case "Ringing":
                    actions += state.advance(&call, to: .ringing, at: date)
                case "Up":
                    actions += state.advance(&call, to: .answered, at: date)
                    guard channel.dialplan.appName == "Stasis" else { break }
                    let arguments = channel.dialplan.appData.split(separator: ",").dropFirst()
                    if arguments.first.map(String.init) == Self.detectionDoneArgument {
                        actions += detectionReturned(&call, &state, at: date)
                    } else if !call.continued {
                        call.continued = true
                        actions.append(firstContinue(call))
                    }
                default:
                    actions += state.advance(&call, to: .initiated, at: date)
                }
                return actions
            }
        }
    }

    /// Marks a call whose channel was missing from a listing; `true` when the caller should schedule the check
    /// (none is pending yet).
    func markVanishCheck(_ channelID: String) -> Bool {
        state.withLock { state in
            guard var call = state.calls[channelID], call.phase == .originated, !call.vanishCheckPending else {
                return false
            }
            call.vanishCheckPending = true
            state.calls[channelID] = call
            return true
        }
    }

    /// The channel is confirmed gone and no `ChannelDestroyed` came during the grace period: ends the call with the
    /// best-known outcome.
    func vanished(_ channelID: String, now: ContinuousClock.Instant = .now, at date: Date = Date()) -> [TrackerAction] {
        state.withLock { state in
            guard let call = state.calls[channelID], call.phase == .originated, call.vanishCheckPending else {
                return []
            }
            return state.update(channelID) { state, call in
                let outcome = call.bestKnownOutcome(now: now)
                return state.end(
                    &call, outcome: outcome, cause: nil, at: date,
                    detail: "the channel vanished while its events were not received; outcome inferred")
            }
        }
    }

    /// The channel still exists after all: the vanish check is over.
    func clearVanishCheck(_ channelID: String) {
        state.withLock { state in
            state.calls[channelID]?.vanishCheckPending = false
        }
    }

    /// Takes over a live call from PostgreSQL after a restart; `false` when it is tracked already.
    func adopt(_ record: CallRecord, dialplan: DialplanTarget, seqSkip: Int) -> Bool {
        insert(TrackedCall(adopting: record, dialplan: dialplan, seqSkip: seqSkip, now: .now))
    }

    /// Takes over a call that its previous owner claimed but never dialed; the caller sends the originate. `false` when
    /// it is tracked already.
    func resume(_ command: OriginateCommand, record: CallRecord, dialplan: DialplanTarget, seqSkip: Int) -> Bool {
        insert(TrackedCall(resuming: command, record: record, dialplan: dialplan, seqSkip: seqSkip))
    }

    /// The owner epoch this worker holds for a tracked call.
    /// The `traceparent` the call's work continues (its placement's span), `nil` for an unknown call.
    func traceParent(of callID: CallID) -> String? {
        state.withLock { $0.calls[callID.description]?.traceParent }
    }

    func ownerEpoch(of callID: CallID) -> Int? {
        state.withLock { $0.calls[callID.description]?.ownerEpoch }
    }

    /// Starts tracking `call`; `false` when its channel is tracked already.
    private func insert(_ call: TrackedCall) -> Bool {
        state.withLock { state in
            guard state.calls[call.channelID] == nil else { return false }
            state.calls[call.channelID] = call
            return true
        }
    }

    /// Every tracked call, for reconciliation.
    func snapshot() -> [TrackedCallSnapshot] {
        state.withLock { state in
            state.calls.values.map {
                TrackedCallSnapshot(
                    callID: $0.callID, channelID: $0.channelID, phase: $0.phase, status: $0.status,
                    answered: $0.answered, timeoutSeconds: $0.timeoutSeconds, originatedAt: $0.originatedAt)
            }
        }
    }

    /// Whether this worker owns the call.
    func isTracked(_ callID: CallID) -> Bool {
        state.withLock { $0.calls[callID.description] != nil }
    }

    /// Number of calls this worker owns (claiming, originating or live).
    var count: Int {
        state.withLock { $0.calls.count }
    }

    /// Number of calls whose status events are still waiting to be acknowledged by Kafka.
    var pendingOutboxes: Int {
        state.withLock { $0.outboxes.count }
    }

    // MARK: - Outbox

    /// The next event to publish for the call, or `nil` (and the publisher stops) when its outbox is empty.
    func nextPublication(_ callID: CallID) -> (event: CallStatusEvent, traceParent: String?)? {
        state.withLock { state in
            guard var outbox = state.outboxes[callID] else { return nil }
            guard let head = outbox.queue.first else {
                outbox.publishing = false
                state.outboxes[callID] = outbox
                state.removeOutboxIfIdle(callID)
                return nil
            }
            return head
        }
    }

    /// The brokers acknowledged the call's event `seq`; returns the waiters to resume with `true`.
    func publicationAcknowledged(_ callID: CallID, seq: Int) -> [CheckedContinuation<Bool, Never>] {
        state.withLock { state in
            guard var outbox = state.outboxes[callID] else { return [] }
            if outbox.queue.first?.event.seq == seq { outbox.queue.removeFirst() }
            outbox.acknowledged = max(outbox.acknowledged, seq)
            let ready = outbox.waiters.filter { $0.seq <= outbox.acknowledged }.map(\.continuation)
            outbox.waiters.removeAll { $0.seq <= outbox.acknowledged }
            state.outboxes[callID] = outbox
            return ready
        }
    }

    /// Another worker took these calls over while this one could not prove it was alive: stops tracking them and
    /// drops their unpublished events (the history would refuse them: their owner epoch is stale). Returns the slot
    /// releases and the publication waiters to resume with `false`.
    func drop(_ callIDs: Set<CallID>) -> (releasedSlots: Int, waiters: [CheckedContinuation<Bool, Never>]) {
        state.withLock { state in
            var released = 0
            var waiters: [CheckedContinuation<Bool, Never>] = []
            for callID in callIDs {
                if state.calls.removeValue(forKey: callID.description) != nil { released += 1 }
                if let outbox = state.outboxes.removeValue(forKey: callID) {
                    waiters += outbox.waiters.map(\.continuation)
                }
            }
            return (released, waiters)
        }
    }

    /// The owner epoch this worker holds for each call it answers for: the claimed ones and those whose last events
    /// are still being published.
    func ownerEpochs() -> [CallID: Int] {
        state.withLock { state in
            var epochs: [CallID: Int] = [:]
            for (callID, outbox) in state.outboxes {
                if let epoch = outbox.queue.last?.event.ownerEpoch { epochs[callID] = epoch }
            }
            for call in state.calls.values where call.phase != .claiming { epochs[call.callID] = call.ownerEpoch }
            return epochs
        }
    }

    /// Publishing failed for good (shutdown): drops the call's outbox; returns the waiters to resume with `false`.
    func abandonOutbox(_ callID: CallID) -> (dropped: Int, waiters: [CheckedContinuation<Bool, Never>]) {
        state.withLock { state in
            guard let outbox = state.outboxes.removeValue(forKey: callID) else { return (0, []) }
            return (outbox.queue.count, outbox.waiters.map(\.continuation))
        }
    }

    /// Waits until every event enqueued so far for the call is acknowledged by the brokers; `false` if publishing
    /// was abandoned.
    func waitForPublications(_ callID: CallID) async -> Bool {
        await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let immediate: Bool? = state.withLock { state in
                guard var outbox = state.outboxes[callID], outbox.acknowledged < outbox.enqueued else { return true }
                outbox.waiters.append((outbox.enqueued, continuation))
                state.outboxes[callID] = outbox
                return nil
            }
            if let immediate { continuation.resume(returning: immediate) }
        }
    }

    // MARK: - State

    struct Outbox {
        var queue: [(event: CallStatusEvent, traceParent: String?)] = []
        var publishing = false
        /// Highest `seq` enqueued.
        var enqueued = 0
        /// Highest `seq` acknowledged.
        var acknowledged = 0
        var waiters: [(seq: Int, continuation: CheckedContinuation<Bool, Never>)] = []
    }

    struct State {
        let nodeID: String
        let workerID: String
        var calls: [String: TrackedCall] = [:]
        var outboxes: [CallID: Outbox] = [:]

        init(nodeID: String, workerID: String) {
            self.nodeID = nodeID
            self.workerID = workerID
        }

        /// Runs `body` on the tracked call `key` and stores it back unless `body` ended it.
        mutating func update(
            _ key: String, _ body: (inout State, inout TrackedCall) -> [TrackerAction]
        )
            -> [TrackerAction]
        {
            guard var call = calls[key] else { return [] }
            let actions = body(&self, &call)
            if calls[key] != nil { calls[key] = call }
            return actions
        }

        /// The channel exists: the call is at least `initiated`; a hangup requested meanwhile is sent now.
        mutating func accept(_ call: inout TrackedCall, at date: Date) -> [TrackerAction] {
            var actions: [TrackerAction] = []
            call.phase = .originated
            call.sawChannel = true
            if call.status == .dispatched {
                actions += advance(&call, to: .initiated, at: date)
            }
            if call.hangupRequested {
                actions.append(.hangup(call.callID, channelID: call.channelID))
            }
            return actions
        }

        /// Moves a call forward to `status` if the state machine allows it; a channel that shows any sign of life
        /// makes a `dispatched` call `initiated` first (events may overtake the originate's HTTP response).
        ///
        /// A call with answering machine detection holds its `answered` status until the detection decides, so that
        /// the event says who answered; the instant of the answer is kept meanwhile.
        mutating func advance(
            _ call: inout TrackedCall, to status: CallStatus, at date: Date, detail: String? = nil
        ) -> [TrackerAction] {
            var actions: [TrackerAction] = []
            if call.status == .dispatched, status != .dispatched {
                actions += emit(&call, status: .initiated, at: date)
            }
            if status == .answered, !call.answered {
                call.answered = true
                call.answeredAt = date
            }
            guard status != .initiated, call.status.canTransition(to: status) else { return actions }
            if status == .answered, call.awaitsDetection { return actions }
            actions += emit(&call, status: status, at: date, detail: detail)
            return actions
        }

        /// Ends the call with `outcome`, publishing its terminal event, and forgets it.
        mutating func end(
            _ call: inout TrackedCall, outcome: CallOutcome, cause: HangupCause?, at date: Date, detail: String?
        ) -> [TrackerAction] {
            var actions: [TrackerAction] = []
            // A channel that existed makes the call `initiated` first; only a refused or canceled originate goes
            // from `dispatched` straight to its end.
            if call.status == .dispatched, call.sawChannel {
                actions += emit(&call, status: .initiated, at: date)
            }
            // An answered call that ended before the detection's verdict came back: its held `answered` goes out first,
            // with the verdict the channel's variables showed, if any.
            if call.answered, call.awaitsDetection {
                let (status, cause) = call.heardVerdict
                call.answeredBy = status.map(AnsweredBy.init(amdStatus:)) ?? .unknown
                let detail =
                    CallTracker.detectionDetail(status: status, cause: cause) + ", the call ended before it went on"
                actions += advance(&call, to: .answered, at: call.answeredAt ?? date, detail: detail)
            }
            var outcome = outcome
            if !call.status.canTransition(to: outcome.status) {
                // The table decided something the state machine cannot reach from here (a defensive fallback;
                // the rows of the table only produce reachable statuses).
                outcome =
                    call.answered
                    ? CallOutcome(status: .completed) : CallOutcome(status: .failed, failureReason: .unknown)
                if !call.status.canTransition(to: outcome.status) {
                    outcome = CallOutcome(status: .canceled)
                }
            }
            let duration =
                outcome.status == .completed ? call.answeredAt.map { max(0, date.timeIntervalSince($0)) } : nil
            let event = makeEvent(
                &call, status: outcome.status, at: date, cause: cause, reason: outcome.failureReason, detail: detail,
                endedAt: date, duration: duration)
            actions += enqueue(event, traceParent: call.traceParent)
            actions.append(.ended(event))
            actions.append(.releaseSlot)
            calls.removeValue(forKey: call.channelID)
            return actions
        }

        private mutating func emit(
            _ call: inout TrackedCall, status: CallStatus, at date: Date, detail: String? = nil
        ) -> [TrackerAction] {
            let event = makeEvent(&call, status: status, at: date, detail: detail)
            return enqueue(event, traceParent: call.traceParent)
        }

        private func makeEvent(
            _ call: inout TrackedCall,
            status: CallStatus,
            at date: Date,
            cause: HangupCause? = nil,
            reason: FailureReason? = nil,
            detail: String? = nil,
            endedAt: Date? = nil,
            duration: Double? = nil
        ) -> CallStatusEvent {
            call.seq += 1
            let event = CallStatusEvent(
                callID: call.callID,
                seq: call.seq,
                status: status,
                previousStatus: call.status,
                occurredAt: date,
                nodeID: nodeID,
                workerID: workerID,
                channelID: call.channelID,
                to: call.to,
                hangupCause: cause,
                failureReason: reason,
                detail: detail,
                answeredAt: call.answeredAt,
                answeredBy: call.answeredBy,
                endedAt: endedAt,
                durationSeconds: duration,
                metadata: call.metadata,
                ownerEpoch: call.ownerEpoch,
                organizationID: call.organizationID
            )
            call.status = status
            return event
        }

        /// Appends an event to its call's outbox; asks for a publisher when none is running.
        mutating func enqueue(_ event: CallStatusEvent, traceParent: String?) -> [TrackerAction] {
            var outbox = outboxes[event.callID] ?? Outbox()
            outbox.queue.append((event, traceParent))
            outbox.enqueued = max(outbox.enqueued, event.seq)
            let start = !outbox.publishing
            outbox.publishing = true
            outboxes[event.callID] = outbox
            return start ? [.startPublishing(event.callID)] : []
        }

        mutating func removeOutboxIfIdle(_ callID: CallID) {
            guard let outbox = outboxes[callID], outbox.queue.isEmpty, !outbox.publishing, outbox.waiters.isEmpty,
                calls[callID.description] == nil
            else { return }
            outboxes.removeValue(forKey: callID)
        }
    }
}
