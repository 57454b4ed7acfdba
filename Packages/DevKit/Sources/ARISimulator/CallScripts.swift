import NIOCore

/// Parameters of an originate after merging the query string and the JSON body (the body wins, as in
/// Asterisk's generated `*_parse_body`).
struct OriginateParameters: Sendable {
    var endpoint: String?
    var app: String?
    var appArgs: String?
    var context: String?
    var `extension`: String?
    var priority: Int?
    var callerID: String?
    var timeout: Int?
    var channelID: String?
    var otherChannelID: String?
    var variables: [(name: String, value: String, reportEvents: Bool)] = []
}

/// What an originate request gets.
enum OriginateDecision: Sendable {
    /// Refused with a status and a JSON body.
    case refused(status: Int, body: String)
    /// Created. `json` is the response body. When `startAfterResponse`, the first events wait until the
    /// response has been written; otherwise they are queued already and `flush` lists the writers to wait
    /// for before responding.
    case created(
        json: String,
        callID: String,
        startAfterResponse: Bool,
        flush: [AsyncStream<OutboundItem>.Continuation]
    )
}

/// What `continue` gets.
enum ContinueDecision: Sendable {
    case notFound
    case notInStasis
    case invalidState
    case continued
}

// MARK: - Originate

extension SimulatorState {
    /// The maximum length of a channel id (`AST_MAX_PUBLIC_UNIQUEID`).
    static let maximumUniqueIDLength = 149

    mutating func originate(_ parameters: OriginateParameters, now: ContinuousClock.Instant) -> OriginateDecision {
        self.counters.totalOriginates += 1
        if let id = parameters.channelID {
            self.counters.originatesByChannelID[id, default: 0] += 1
            self.counters.noteFirstOriginate(of: id)
            self.counters.endpointsByChannelID[id, default: []].append(parameters.endpoint ?? "")
        }
        if let status = self.faults.takeRefusal(now: now) {
            return .refused(status: status, body: Self.refusalBody(status: status))
        }
        // Checks in the order of ari_channels_handle_originate_with_id (res/ari/resource_channels.c).
        if (parameters.channelID?.count ?? 0) > Self.maximumUniqueIDLength
            || (parameters.otherChannelID?.count ?? 0) > Self.maximumUniqueIDLength
        {
            return .refused(status: 400, body: JSONText.message("Uniqueid length exceeds maximum of 149"))
        }
        guard let endpointText = parameters.endpoint, !endpointText.isEmpty else {
            return .refused(status: 400, body: JSONText.message("Endpoint must be specified"))
        }
        guard let endpoint = ParsedEndpoint.parse(endpointText) else {
            return .refused(status: 400, body: JSONText.message("Invalid endpoint specified"))
        }
        let app = parameters.app.flatMap { $0.isEmpty ? nil : $0 }
        let dialplanExtension = parameters.extension.flatMap { $0.isEmpty ? nil : $0 }
        guard app != nil || dialplanExtension != nil else {
            return .refused(status: 400, body: JSONText.message("Application or extension must be specified"))
        }
        guard
            let technology = self.configuration.technologies.first(where: {
                $0.lowercased() == endpoint.technology.lowercased()
            })
        else {
            return .refused(status: 500, body: #"{"error":"Allocation failed"}"#)
        }
        let channelID = parameters.channelID.flatMap { $0.isEmpty ? nil : $0 } ?? self.generatedUniqueID()
        let peerID = endpoint.isLocal ? (parameters.otherChannelID ?? channelID + ";2") : nil
        for id in [channelID, peerID].compactMap({ $0 }) where self.callID(owning: id) != nil {
            return .refused(status: 409, body: JSONText.message("Channel with given unique ID already exists"))
        }
        let (outcome, _, verdict) = self.rules.outcome(for: DialedNumber.from(endpoint: endpointText))
        if case .refuse(let status) = outcome {
            return .refused(status: status, body: Self.refusalBody(status: status))
        }

        let sequence = self.nextChannelSequence()
        let created = AsteriskClock.now()
        let caller = parameters.callerID.map(CallerIDText.parse) ?? (name: "", number: "")
        var primary: ChannelLeg
        var peer: ChannelLeg?
        if endpoint.isLocal {
            let target = endpoint.localTarget
            let base = "Local/\(target.exten)@\(target.context)-\(sequence)"
            primary = ChannelLeg(
                id: channelID,
                name: base + ";1",
                state: "Down",
                context: target.context,
                exten: target.exten,
                priority: 1,
                appName: "AppDial2",
                appData: "(Outgoing Line)",
                creationTime: created
            )
            peer = ChannelLeg(
                id: peerID ?? channelID + ";2",
                name: base + ";2",
                state: "Ring",
                context: target.context,
                exten: target.exten,
                priority: 1,
                appName: "",
                appData: "",
                creationTime: created
            )
        } else {
            primary = ChannelLeg(
                id: channelID,
                name: "\(technology)/\(endpoint.deviceName)-\(sequence)",
                state: "Down",
                context: self.configuration.outboundContext,
                exten: "s",
                priority: 1,
                appName: "AppDial2",
                appData: "(Outgoing Line)",
                creationTime: created
            )
        }
        primary.callerName = caller.name
        primary.callerNumber = caller.number
        primary.connectedName = caller.name
        primary.connectedNumber = caller.number
        var variables: [(name: String, value: String)] = []
        for variable in parameters.variables {
            switch variable.name {
            case "CALLERID(name)": primary.callerName = variable.value
            case "CALLERID(num)", "CALLERID(number)": primary.callerNumber = variable.value
            default:
                guard !variable.name.hasSuffix(")") else { continue }
                variables.append((variable.name, variable.value))
                if variable.reportEvents { primary.reportedVariables.append((variable.name, variable.value)) }
            }
        }
        let ringTimeout: Duration? =
            switch parameters.timeout {
            case .some(let seconds) where seconds > 0: .seconds(seconds)
            case .some(-1): nil
            default: .seconds(30)
            }
        var hold = self.configuration.defaultHold
        if case .answer(_, let ruleHold) = outcome, let ruleHold { hold = ruleHold }
        var call = SimulatedCall(
            primary: primary,
            peer: peer,
            subscribers: app.map { [$0] } ?? [],
            app: app,
            appArgs: parameters.appArgs,
            dialplanTarget: app == nil
                ? (
                    parameters.context.flatMap { $0.isEmpty ? nil : $0 } ?? "default", dialplanExtension ?? "s",
                    parameters.priority ?? 1
                )
                : nil,
            outcome: outcome,
            hold: hold,
            ringTimeout: ringTimeout,
            dialstring: endpoint.resource
        )
        call.variables = variables
        call.verdict = verdict
        self.calls[channelID] = call
        if let peer { self.peerIndex[peer.id] = channelID }
        self.counters.acceptedOriginates += 1
        self.counters.acceptedByChannelID[channelID, default: 0] += 1
        self.originateSequence += 1

        // The response shows the snapshot taken before dialing starts, without `channelvars`.
        var responseLeg = primary
        responseLeg.reportedVariables = []
        let json = responseLeg.json()
        let early: Bool =
            switch self.configuration.earlyEvents {
            case .never: false
            case .always: true
            case .whenAnsweredImmediately:
                if case .answer(let ringing, _) = outcome { ringing == .zero } else { false }
            case .everyNth(let n): n > 0 && self.originateSequence % n == 0
            }
        if early {
            self.counters.earlyEventOriginates += 1
            let subscribers = call.subscribers
            self.start(channelID)
            return .created(
                json: json,
                callID: channelID,
                startAfterResponse: false,
                flush: self.writers(for: subscribers)
            )
        }
        return .created(json: json, callID: channelID, startAfterResponse: true, flush: [])
    }

    /// Bodies of refusals the simulator injects: 500 as Asterisk's allocation failure, others with a
    /// `message` (Asterisk itself does not refuse originates with 503; a proxy or an overloaded node would).
    static func refusalBody(status: Int) -> String {
        switch status {
        case 500: #"{"error":"Allocation failed"}"#
        case 400: JSONText.message("Invalid endpoint specified")
        case 503: JSONText.message("Service Unavailable")
        default: JSONText.message("Originate refused")
        }
    }
}

// MARK: - Scripts

extension SimulatorState {
    func send(_ call: SimulatedCall, _ prefix: String) {
        self.emit(prefix, to: call.subscribers)
    }

    /// The first instant of a call: the `;2` half's caller id, `Dial` with an empty status, and whatever
    /// the outcome does at once.
    mutating func start(_ callID: String) {
        guard var call = self.calls[callID], !call.started else { return }
        call.started = true
        let id = self.asteriskID
        if var peer = call.peer {
            for variable in call.variables.reversed() {
                self.send(call, EventText.varset(variable.name, variable.value, peer, asteriskID: id))
            }
            peer.callerName = call.primary.callerName
            peer.callerNumber = call.primary.callerNumber
            peer.connectedName = call.primary.connectedName
            peer.connectedNumber = call.primary.connectedNumber
            self.send(call, EventText.callerID(peer, asteriskID: id))
            self.send(call, EventText.channelEvent("ChannelConnectedLine", peer, asteriskID: id))
            call.peer = peer
        }
        self.calls[callID] = call
        if case .nonexistent = call.outcome {
            // A11/A12: the Local half finds no extension; no Dial at all.
            if var peer = call.peer {
                peer.locate(priority: peer.priority, app: "", data: "")
                self.send(call, EventText.destroyed(cause: 0, peer, asteriskID: id))
            }
            self.send(call, EventText.destroyed(cause: 0, call.primary, asteriskID: id))
            self.remove(callID)
            return
        }
        self.send(call, EventText.dial(status: "", dialstring: call.dialstring, peer: call.primary, asteriskID: id))
        switch call.outcome {
        case .answer(let ringing, _):
            if ringing == .zero {
                self.answer(callID)
            } else {
                self.ring(callID, waitFor: ringing)
                self.scheduleBeforeTimeout(callID, .answer, after: ringing)
            }
        case .busy(let after), .congestion(let after), .calleeHangup(_, let after):
            if after == .zero {
                self.calleeOutcome(callID)
            } else {
                self.ring(callID, waitFor: after)
                self.scheduleBeforeTimeout(callID, .outcome, after: after)
            }
        case .noAnswer:
            self.ring(callID, waitFor: call.ringTimeout ?? .seconds(60))
            if let timeout = call.ringTimeout { self.reschedule(callID, .timeout, after: timeout) }
        case .nonexistent, .refuse:
            break
        }
    }

    /// A timer fired; stale generations (rescheduled or hung up since) are ignored.
    mutating func fire(_ callID: String, generation: UInt64, step: SimulatedCall.Step) {
        guard let call = self.calls[callID], call.generation == generation else { return }
        switch step {
        case .answer: self.answer(callID)
        case .outcome: self.calleeOutcome(callID)
        case .timeout: self.ringTimeout(callID)
        case .peerWait: self.peerWait(callID)
        case .calleeHangup: self.calleeHangup(callID)
        case .machineDetectionVerdict: self.machineDetectionVerdict(callID)
        case .machineDetectionReturn: self.returnFromMachineDetection(callID)
        }
    }

    private mutating func scheduleBeforeTimeout(_ callID: String, _ step: SimulatedCall.Step, after delay: Duration) {
        if let timeout = self.calls[callID]?.ringTimeout, timeout <= delay {
            self.reschedule(callID, .timeout, after: timeout)
        } else {
            self.reschedule(callID, step, after: delay)
        }
    }

    /// Ringing (A02, A07): the Local half runs `Ringing()`, the channel goes Ringing, `Dial` RINGING.
    private mutating func ring(_ callID: String, waitFor wait: Duration) {
        guard var call = self.calls[callID] else { return }
        let id = self.asteriskID
        if var peer = call.peer {
            peer.locate(priority: 1, app: "Ringing", data: "")
            self.send(call, EventText.dialplan(peer, asteriskID: id))
            call.peer = peer
        }
        call.primary.state = "Ringing"
        self.send(call, EventText.channelEvent("ChannelStateChange", call.primary, asteriskID: id))
        self.send(
            call,
            EventText.dial(status: "RINGING", dialstring: call.dialstring, peer: call.primary, asteriskID: id)
        )
        if var peer = call.peer {
            peer.locate(priority: 2, app: "Wait", data: wait.waitArgument)
            self.send(call, EventText.dialplan(peer, asteriskID: id))
            call.peer = peer
        }
        call.phase = .ringing
        self.calls[callID] = call
    }

    /// The callee answers (A01, A02): `Up`, `Dial` ANSWER, then `StasisStart` (app style) or the dialplan.
    private mutating func answer(_ callID: String) {
        guard var call = self.calls[callID] else { return }
        let id = self.asteriskID
        if var peer = call.peer {
            peer.locate(priority: call.phase == .ringing ? 3 : 1, app: "Answer", data: "")
            self.send(call, EventText.dialplan(peer, asteriskID: id))
            peer.state = "Up"
            self.send(call, EventText.channelEvent("ChannelStateChange", peer, asteriskID: id))
            call.peer = peer
        }
        call.primary.state = "Up"
        self.send(call, EventText.channelEvent("ChannelStateChange", call.primary, asteriskID: id))
        self.send(
            call,
            EventText.dial(status: "ANSWER", dialstring: call.dialstring, peer: call.primary, asteriskID: id)
        )
        call.answeredAt = .now
        if let app = call.app {
            let appArgs = call.appArgs.flatMap { $0.isEmpty ? nil : $0 }
            call.primary.appName = "Stasis"
            call.primary.appData = appArgs.map { "\(app),\($0)" } ?? app
            self.send(call, EventText.varset("STASISSTATUS", "", call.primary, asteriskID: id))
            guard self.activeConnectionByApp[app] != nil else {
                // D02/D04: no WebSocket for the application, Stasis() fails and the call ends with cause 0.
                self.send(call, EventText.varset("STASISSTATUS", "FAILED", call.primary, asteriskID: id))
                if var peer = call.peer {
                    self.send(call, EventText.hangupRequest(cause: 0, soft: false, peer, asteriskID: id))
                    self.send(call, EventText.hangupRequest(cause: 16, soft: true, peer, asteriskID: id))
                    peer.locate(priority: peer.priority, app: "", data: "")
                    self.send(call, EventText.destroyed(cause: 0, peer, asteriskID: id))
                }
                call.primary.appName = "AppDial2"
                call.primary.appData = "(Outgoing Line)"
                self.send(call, EventText.destroyed(cause: 0, call.primary, asteriskID: id))
                self.calls[callID] = call
                self.remove(callID)
                return
            }
            call.phase = .stasis
            call.wasInStasis = true
            let args = appArgs.map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) } ?? []
            self.send(call, EventText.stasisStart(args: args, call.primary, asteriskID: id))
            self.calls[callID] = call
        } else if let target = call.dialplanTarget {
            call.phase = .dialplan
            self.calls[callID] = call
            guard self.enterDialplan(callID, context: target.context, exten: target.exten, priority: target.priority)
            else { return }
        }
        self.scheduleHold(callID)
    }

    private mutating func scheduleHold(_ callID: String) {
        guard let call = self.calls[callID] else { return }
        if call.isLocal, call.hold > .milliseconds(500) {
            self.reschedule(callID, .peerWait, after: .milliseconds(500))
        } else {
            self.reschedule(callID, .calleeHangup, after: call.hold)
        }
    }

    /// The Local half's `Answer()` returns after 500 ms and it waits for the rest of the hold time.
    private mutating func peerWait(_ callID: String) {
        guard var call = self.calls[callID], var peer = call.peer else { return }
        let remaining = call.hold - .milliseconds(500)
        peer.locate(priority: peer.priority + 1, app: "Wait", data: remaining.waitArgument)
        self.send(call, EventText.dialplan(peer, asteriskID: self.asteriskID))
        call.peer = peer
        self.calls[callID] = call
        self.reschedule(callID, .calleeHangup, after: remaining)
    }

    /// The callee hangs up after the hold time (A01 in Stasis; B01/B50 in the dialplan).
    mutating func calleeHangup(_ callID: String) {
        guard var call = self.calls[callID] else { return }
        let id = self.asteriskID
        if var peer = call.peer {
            peer.locate(priority: peer.priority + 1, app: "Hangup", data: "")
            self.send(call, EventText.dialplan(peer, asteriskID: id))
            self.send(call, EventText.hangupRequest(cause: 16, soft: true, peer, asteriskID: id))
            call.peer = peer
        }
        self.send(call, EventText.hangupRequest(cause: 16, soft: false, call.primary, asteriskID: id))
        if var peer = call.peer {
            peer.locate(priority: peer.priority, app: "", data: "")
            self.send(call, EventText.destroyed(cause: 16, peer, asteriskID: id))
        }
        switch call.phase {
        case .stasis:
            self.send(call, EventText.channelEvent("StasisEnd", call.primary, asteriskID: id))
            self.send(call, EventText.varset("STASISSTATUS", "SUCCESS", call.primary, asteriskID: id))
        default:
            self.send(call, EventText.hangupRequest(cause: 16, soft: true, call.primary, asteriskID: id))
            if call.wasInStasis {
                self.send(call, EventText.varset("STASISSTATUS", "SUCCESS", call.primary, asteriskID: id))
            }
        }
        call.primary.appName = "AppDial2"
        call.primary.appData = "(Outgoing Line)"
        self.send(call, EventText.destroyed(cause: 16, call.primary, asteriskID: id))
        self.calls[callID] = call
        self.remove(callID)
    }

    /// Busy/congestion/hangup by the callee before answering (A03 to A06, A08 to A10).
    private mutating func calleeOutcome(_ callID: String) {
        guard var call = self.calls[callID] else { return }
        let id = self.asteriskID
        let priority = call.phase == .ringing ? 3 : 1
        switch call.outcome {
        case .busy, .congestion:
            let isBusy: Bool = if case .busy = call.outcome { true } else { false }
            if var peer = call.peer {
                peer.locate(priority: priority, app: isBusy ? "Busy" : "Congestion", data: "5")
                self.send(call, EventText.dialplan(peer, asteriskID: id))
                peer.state = "Busy"
                self.send(call, EventText.channelEvent("ChannelStateChange", peer, asteriskID: id))
                call.peer = peer
            }
            self.send(
                call,
                EventText.dial(
                    status: isBusy ? "BUSY" : "CONGESTION",
                    dialstring: call.dialstring,
                    peer: call.primary,
                    asteriskID: id
                )
            )
            if let peer = call.peer {
                self.send(call, EventText.hangupRequest(cause: 0, soft: false, peer, asteriskID: id))
                if !isBusy { self.send(call, EventText.hangupRequest(cause: 16, soft: true, peer, asteriskID: id)) }
            }
            self.send(call, EventText.destroyed(cause: 0, call.primary, asteriskID: id))
            if var peer = call.peer {
                if isBusy { self.send(call, EventText.hangupRequest(cause: 16, soft: true, peer, asteriskID: id)) }
                peer.locate(priority: peer.priority, app: "", data: "")
                self.send(call, EventText.destroyed(cause: isBusy ? 17 : 34, peer, asteriskID: id))
            }
        case .calleeHangup(let cause, _):
            if var peer = call.peer {
                peer.locate(priority: priority, app: "Hangup", data: String(cause))
                self.send(call, EventText.dialplan(peer, asteriskID: id))
                self.send(call, EventText.hangupRequest(cause: 16, soft: true, peer, asteriskID: id))
                call.peer = peer
            }
            self.send(call, EventText.hangupRequest(cause: cause, soft: false, call.primary, asteriskID: id))
            let status = HangupCause.dialStatus(forCalleeHangup: cause)
            var peerDestroyed = call.peer
            peerDestroyed?.locate(priority: priority, app: "", data: "")
            // The captures show the `;2` ChannelDestroyed before the final Dial for causes 1 and 34 and
            // after it otherwise; the order is a race inside Asterisk, reproduced as captured.
            let peerFirst = cause == 1 || cause == 34
            if peerFirst, let peer = peerDestroyed {
                self.send(call, EventText.destroyed(cause: cause, peer, asteriskID: id))
            }
            self.send(
                call,
                EventText.dial(status: status, dialstring: call.dialstring, peer: call.primary, asteriskID: id)
            )
            self.send(call, EventText.destroyed(cause: cause, call.primary, asteriskID: id))
            if !peerFirst, let peer = peerDestroyed {
                self.send(call, EventText.destroyed(cause: cause, peer, asteriskID: id))
            }
        case .answer, .noAnswer, .nonexistent, .refuse:
            return
        }
        self.calls[callID] = call
        self.remove(callID)
    }

    /// The originate timeout passed while ringing (A07): cause 19 and no final Dial.
    private mutating func ringTimeout(_ callID: String) {
        guard let call = self.calls[callID] else { return }
        let id = self.asteriskID
        if let peer = call.peer {
            self.send(call, EventText.hangupRequest(cause: 19, soft: false, peer, asteriskID: id))
        }
        self.send(call, EventText.destroyed(cause: 19, call.primary, asteriskID: id))
        if var peer = call.peer {
            self.send(call, EventText.hangupRequest(cause: 16, soft: true, peer, asteriskID: id))
            peer.locate(priority: peer.priority, app: "", data: "")
            self.send(call, EventText.destroyed(cause: 19, peer, asteriskID: id))
        }
        self.remove(callID)
    }

    // MARK: - Requests on live calls

    /// `DELETE /channels/{id}` (C02, C03, C04): a soft hangup with mask 32, then the cause `cause`.
    mutating func hangup(_ callID: String, cause: Int) {
        guard var call = self.calls[callID] else { return }
        self.cancelTimer(callID)
        let id = self.asteriskID
        self.send(call, EventText.hangupRequest(cause: 32, soft: true, call.primary, asteriskID: id))
        switch call.phase {
        case .dialing, .ringing:
            self.send(
                call,
                EventText.dial(status: "NOANSWER", dialstring: call.dialstring, peer: call.primary, asteriskID: id)
            )
        case .stasis:
            self.send(call, EventText.channelEvent("StasisEnd", call.primary, asteriskID: id))
            self.send(call, EventText.varset("STASISSTATUS", "SUCCESS", call.primary, asteriskID: id))
        case .dialplan:
            self.send(call, EventText.hangupRequest(cause: 16, soft: true, call.primary, asteriskID: id))
            if call.wasInStasis {
                self.send(call, EventText.varset("STASISSTATUS", "SUCCESS", call.primary, asteriskID: id))
            }
        }
        if let peer = call.peer {
            self.send(call, EventText.hangupRequest(cause: cause, soft: false, peer, asteriskID: id))
        }
        call.primary.appName = "AppDial2"
        call.primary.appData = "(Outgoing Line)"
        self.send(call, EventText.destroyed(cause: cause, call.primary, asteriskID: id))
        if var peer = call.peer {
            self.send(call, EventText.hangupRequest(cause: 16, soft: true, peer, asteriskID: id))
            peer.locate(priority: peer.priority, app: "", data: "")
            self.send(call, EventText.destroyed(cause: cause, peer, asteriskID: id))
        }
        self.calls[callID] = call
        self.remove(callID)
    }

    /// Validates `POST /channels/{id}/continue` (find_control and channel_state_invalid in
    /// resource_channels.c); on success the caller responds 204 and then calls ``continueCall``.
    func checkContinue(_ id: String) -> ContinueDecision {
        guard let callID = self.callID(owning: id), let call = self.calls[callID] else { return .notFound }
        guard callID == id, call.phase == .stasis else { return .notInStasis }
        switch call.primary.state {
        case "Down", "Rsrved", "Ringing": return .invalidState
        default: return .continued
        }
    }

    /// Leaves Stasis for the dialplan (C07): `StasisEnd`, then the dialplan's events; the callee stays
    /// until the hold time ends or the channel is hung up.
    mutating func continueCall(_ callID: String, context: String?, exten: String?, priority: Int?) {
        guard var call = self.calls[callID], call.phase == .stasis else { return }
        let targetContext = context.flatMap { $0.isEmpty ? nil : $0 } ?? call.primary.context
        let targetExten: String
        let targetPriority: Int
        if context.map({ !$0.isEmpty }) == true {
            targetExten = exten.flatMap { $0.isEmpty ? nil : $0 } ?? "s"
        } else {
            targetExten = exten.flatMap { $0.isEmpty ? nil : $0 } ?? call.primary.exten
        }
        if let priority, priority != 0 {
            targetPriority = priority
        } else if context.map({ !$0.isEmpty }) != true, exten.map({ !$0.isEmpty }) != true {
            targetPriority = call.primary.priority + 1
        } else {
            targetPriority = 1
        }
        self.counters.continuesByChannelID[callID, default: []].append(targetContext)
        self.send(call, EventText.channelEvent("StasisEnd", call.primary, asteriskID: self.asteriskID))
        call.phase = .dialplan
        self.calls[callID] = call
        if targetContext == self.configuration.machineDetectionContext {
            self.enterMachineDetection(callID, exten: targetExten)
            return
        }
        _ = self.enterDialplan(callID, context: targetContext, exten: targetExten, priority: targetPriority)
    }

    /// Runs the simulated dialplan at a location. The simulator has no dialplan: an existing context
    /// behaves like the captures' `agents,s` (`Answer()`, then `Wait()` until the callee hangs up); a
    /// missing one (see `dialplanContexts`) ends the call with cause 0 as C07 shows for a missing
    /// extension. Returns whether the call is still up.
    private mutating func enterDialplan(_ callID: String, context: String, exten: String, priority: Int) -> Bool {
        guard var call = self.calls[callID] else { return false }
        let id = self.asteriskID
        call.primary.context = context
        call.primary.exten = exten
        let exists = self.configuration.dialplanContexts.map { $0.contains(context) } ?? true
        guard exists else {
            if call.wasInStasis {
                self.send(call, EventText.varset("STASISSTATUS", "SUCCESS", call.primary, asteriskID: id))
            }
            if let peer = call.peer {
                self.send(call, EventText.hangupRequest(cause: 0, soft: false, peer, asteriskID: id))
            }
            call.primary.locate(priority: priority, app: "AppDial2", data: "(Outgoing Line)")
            self.send(call, EventText.destroyed(cause: 0, call.primary, asteriskID: id))
            self.send(call, EventText.dialplan(call.primary, asteriskID: id))
            if var peer = call.peer {
                self.send(call, EventText.hangupRequest(cause: 16, soft: true, peer, asteriskID: id))
                peer.locate(priority: peer.priority, app: "", data: "")
                self.send(call, EventText.destroyed(cause: 0, peer, asteriskID: id))
            }
            self.calls[callID] = call
            self.remove(callID)
            return false
        }
        call.primary.locate(priority: priority, app: "Answer", data: "")
        self.send(call, EventText.dialplan(call.primary, asteriskID: id))
        let elapsed = call.answeredAt.map { $0.duration(to: .now) } ?? .zero
        call.primary.locate(priority: priority + 1, app: "Wait", data: max(call.hold - elapsed, .zero).waitArgument)
        self.send(call, EventText.dialplan(call.primary, asteriskID: id))
        self.calls[callID] = call
        return true
    }

    /// `POST /applications/{app}/subscription?eventSource=channel:<id>`: the application receives the
    /// call's events from now on. Returns whether the channel exists.
    mutating func subscribe(application: String, channelID: String) -> Bool {
        guard let callID = self.callID(owning: channelID), var call = self.calls[callID] else { return false }
        call.subscribers.insert(application)
        self.calls[callID] = call
        return true
    }

    /// Value of a channel variable, for `GET /channels/{id}/variable`.
    func variable(_ name: String, channelID: String) -> String?? {
        guard let callID = self.callID(owning: channelID), let call = self.calls[callID] else { return .none }
        if let value = call.variable(name) { return .some(value) }
        if name == "STASISSTATUS", call.wasInStasis || call.phase == .stasis { return .some("") }
        return .some(nil)
    }
}
