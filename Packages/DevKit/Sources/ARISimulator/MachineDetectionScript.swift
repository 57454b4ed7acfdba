/// What the simulated `AMD()` decides for a call: by number, like the other outcomes (the rule table: numbering-plan
/// codes 15 and 16); every other answered call is a human.
public enum SimulatedVerdict: String, Sendable, Equatable {
    /// `AMDSTATUS=HUMAN`: a short greeting, then silence.
    case human = "HUMAN"
    /// `AMDSTATUS=MACHINE`: a greeting longer than `AMD()`'s `greeting` parameter.
    case machine = "MACHINE"
    /// `AMDSTATUS=NOTSURE`: nothing decided within the total analysis time.
    case notSure = "NOTSURE"
}

/// `AMD()`'s parameters as the worker passes them in `DIALER_AMD_ARGS` (empty: `amd.conf`'s defaults, which are
/// also Asterisk's built-in ones).
struct AMDParameters: Sendable, Equatable {
    var greeting: Duration = .milliseconds(1500)
    var afterGreetingSilence: Duration = .milliseconds(800)
    var totalAnalysisTime: Duration = .milliseconds(5000)

    init(arguments: String) {
        let values = arguments.split(separator: ",", omittingEmptySubsequences: false).map { Int($0) }
        func value(_ index: Int) -> Duration? {
            guard index < values.count, let milliseconds = values[index] else { return nil }
            return .milliseconds(milliseconds)
        }
        greeting = value(1) ?? greeting
        afterGreetingSilence = value(2) ?? afterGreetingSilence
        totalAnalysisTime = value(3) ?? totalAnalysisTime
    }

    /// A human says a short "hello" (500 ms) and waits: `AMD()` decides after the silence that follows.
    static let humanGreeting = Duration.milliseconds(500)
    /// A machine's greeting, from the answer to its beep.
    static let machineMessage = Duration.seconds(3)
    /// The silence `WaitForSilence()` waits for after a machine's greeting (the dial plan's first argument).
    static let messageEndSilence = Duration.seconds(1)

    /// When `AMD()` decides `verdict`, from the start of the analysis, and the cause it gives (as app_amd.c words
    /// them): a verdict that would come after the total analysis time is `NOTSURE`/`TOOLONG`.
    func decision(for verdict: SimulatedVerdict) -> AMDDecision {
        let total = totalAnalysisTime
        let tooLong = AMDDecision(status: .notSure, cause: "TOOLONG-\(total.milliseconds)", after: total)
        switch verdict {
        case .human:
            let after = Self.humanGreeting + afterGreetingSilence
            guard after < total else { return tooLong }
            let silence = afterGreetingSilence.milliseconds
            return AMDDecision(status: .human, cause: "HUMAN-\(silence)-\(silence)", after: after)
        case .machine:
            guard greeting < total else { return tooLong }
            let greeting = greeting.milliseconds
            return AMDDecision(status: .machine, cause: "LONGGREETING-\(greeting)-\(greeting)", after: self.greeting)
        case .notSure:
            return tooLong
        }
    }
}

/// What `AMD()` sets (`AMDSTATUS`, `AMDCAUSE`) and how long after the start of the analysis.
struct AMDDecision: Sendable, Equatable {
    var status: SimulatedVerdict
    var cause: String
    var after: Duration
}

// MARK: - The dialer-amd context

extension SimulatorState {
    /// Runs deploy/asterisk/extensions.conf's `dialer-amd` context for a channel the worker continued there:
    ///
    ///     s,1 AMD(${DIALER_AMD_ARGS})
    ///     s,2 GotoIf(MACHINE and detect_message_end ? message_end)
    ///     s,3(back) Stasis(${DIALER_AMD_APP},amd)
    ///     s,4 Hangup()
    ///     s,5(message_end) WaitForSilence(1000,1,30)
    ///     s,6 Goto(back)
    ///
    /// The verdict comes after the time `AMD()` would need; a callee that hangs up sooner ends the call meanwhile
    /// (`AMDSTATUS=HANGUP` is never seen: the channel is gone).
    mutating func enterMachineDetection(_ callID: String, exten: String) {
        guard var call = self.calls[callID] else { return }
        let arguments = call.variable("DIALER_AMD_ARGS") ?? ""
        call.primary.context = self.configuration.machineDetectionContext
        call.primary.exten = exten
        call.primary.locate(priority: 1, app: "AMD", data: arguments)
        self.send(call, EventText.dialplan(call.primary, asteriskID: self.asteriskID))
        let decision = AMDParameters(arguments: arguments).decision(for: call.verdict)
        call.amdDecision = decision
        self.calls[callID] = call
        if let left = call.holdLeft, left <= decision.after { return }  // the callee hangs up first
        self.reschedule(callID, .machineDetectionVerdict, after: decision.after)
    }

    /// `AMD()` decided: it sets `AMDSTATUS` and `AMDCAUSE`; a machine in `detect_message_end` mode waits for the end
    /// of its greeting, anything else goes back to Stasis.
    mutating func machineDetectionVerdict(_ callID: String) {
        guard var call = self.calls[callID], let decision = call.amdDecision else { return }
        let id = self.asteriskID
        for (name, value) in [("AMDSTATUS", decision.status.rawValue), ("AMDCAUSE", decision.cause)] {
            call.variables.append((name, value))
            self.send(call, EventText.varset(name, value, call.primary, asteriskID: id))
        }
        let waitsForMessageEnd = decision.status == .machine && call.variable("DIALER_AMD_MODE") == "detect_message_end"
        call.primary.locate(
            priority: 2, app: "GotoIf",
            data: "\(waitsForMessageEnd ? 1 : 0)?message_end")
        self.send(call, EventText.dialplan(call.primary, asteriskID: id))
        self.calls[callID] = call
        guard waitsForMessageEnd else {
            self.returnFromMachineDetection(callID)
            return
        }
        call.primary.locate(priority: 5, app: "WaitForSilence", data: "1000,1,30")
        self.send(call, EventText.dialplan(call.primary, asteriskID: id))
        self.calls[callID] = call
        let messageLeft = AMDParameters.machineMessage - decision.after
        let wait = max(messageLeft, .zero) + AMDParameters.messageEndSilence
        if let left = call.holdLeft, left <= wait {
            self.reschedule(callID, .calleeHangup, after: left)
            return
        }
        self.reschedule(callID, .machineDetectionReturn, after: wait)
    }

    /// `Stasis(${DIALER_AMD_APP},amd)`: `StasisStart` with the argument `amd`, and the callee's hold time goes on.
    /// Without a WebSocket for the application, `Stasis()` fails and the dial plan's `Hangup()` ends the call.
    mutating func returnFromMachineDetection(_ callID: String) {
        guard var call = self.calls[callID] else { return }
        let id = self.asteriskID
        if call.primary.appName == "WaitForSilence" {
            call.primary.locate(priority: 6, app: "Goto", data: "back")
            self.send(call, EventText.dialplan(call.primary, asteriskID: id))
        }
        let app = call.variable("DIALER_AMD_APP") ?? ""
        call.primary.locate(priority: 3, app: "Stasis", data: "\(app),amd")
        self.send(call, EventText.dialplan(call.primary, asteriskID: id))
        self.send(call, EventText.varset("STASISSTATUS", "", call.primary, asteriskID: id))
        guard self.activeConnectionByApp[app] != nil else {
            self.send(call, EventText.varset("STASISSTATUS", "FAILED", call.primary, asteriskID: id))
            call.primary.locate(priority: 4, app: "Hangup", data: "")
            self.send(call, EventText.dialplan(call.primary, asteriskID: id))
            self.calls[callID] = call
            self.calleeHangup(callID)
            return
        }
        call.subscribers.insert(app)
        call.phase = .stasis
        call.wasInStasis = true
        self.send(call, EventText.stasisStart(args: ["amd"], call.primary, asteriskID: id))
        self.calls[callID] = call
        self.reschedule(callID, .calleeHangup, after: call.holdLeft ?? .zero)
    }
}

extension SimulatedCall {
    /// The channel variable's latest value.
    func variable(_ name: String) -> String? {
        variables.last { $0.name == name }?.value
    }

    /// The rest of the callee's hold time, from its answer.
    var holdLeft: Duration? {
        answeredAt.map { max(hold - $0.duration(to: .now), .zero) }
    }
}
