/// When the first events of an originate are written relative to its HTTP response.
///
/// A real Asterisk usually answers the POST first, but the events of a call can overtake the response
/// (16 of 1,000 `StasisStart` did in the captures). The simulator makes this deterministic: for the
/// originates the policy selects, the events of the first instant (up to `StasisStart` for an immediate
/// answer) are written to the WebSocket before the response is sent; for the others they are emitted once
/// the response body has been written.
public enum EarlyEventsPolicy: Sendable, Equatable {
    /// Always respond first.
    case never
    /// Always send the first events first.
    case always
    /// Events first when the callee answers at once (so `StasisStart` precedes the response).
    case whenAnsweredImmediately
    /// Events first for every n-th originate (1-based: the n-th, 2n-th, ...).
    case everyNth(Int)
}

/// Configuration of an ``ARISimulator``.
public struct ARISimulatorConfiguration: Sendable {
    /// Address to listen on (loopback by default).
    public var host: String
    /// Port; 0 picks a free one (read it from ``ARISimulator/baseURL()``).
    public var port: Int
    /// ARI user accepted in basic auth and `api_key`.
    public var username: String
    /// ARI password.
    public var password: String
    /// Outcome rules, first match wins.
    public var rules: [OutcomeRule]
    /// Outcome of numbers no rule matches.
    public var fallbackOutcome: SimulatedOutcome
    /// How long an answered call with no hold time stays up before the callee hangs up.
    public var defaultHold: Duration
    /// Event/response ordering of originates.
    public var earlyEvents: EarlyEventsPolicy
    /// Channel technologies that exist (case-insensitive); others fail with 500 `Allocation failed`.
    public var technologies: Set<String>
    /// Dialplan context of non-Local outbound channels (a PJSIP endpoint's `context`).
    public var outboundContext: String
    /// Contexts that exist for `continue` and dialplan-style originates; `nil`: every context exists.
    /// Continuing to a missing context ends the call with cause 0, as Asterisk does for a missing extension.
    public var dialplanContexts: Set<String>?
    /// The context that runs answering machine detection (deploy/asterisk/extensions.conf's `dialer-amd`): a channel
    /// continued there gets the number's `AMD()` verdict and returns to Stasis with the argument `amd`.
    public var machineDetectionContext: String
    /// `entity_id` / `asterisk_id` reported in events and `GET /asterisk/info`.
    public var asteriskID: String
    /// Version reported by `GET /asterisk/info` and the `Server` header.
    public var asteriskVersion: String
    /// How long after start REST answers `503 {"message":"Asterisk not booted"}` while the events WebSocket is
    /// already accepted, as a real Asterisk does until it is fully booted (zero: booted at once).
    public var bootWindow: Duration

    /// Creates a configuration; defaults match the captures' Asterisk (`dialer` / `dialer-secret`).
    public init(
        host: String = "127.0.0.1",
        port: Int = 0,
        username: String = "dialer",
        password: String = "dialer-secret",
        rules: [OutcomeRule] = OutcomeRule.defaults,
        fallbackOutcome: SimulatedOutcome = OutcomeRule.defaultFallback,
        defaultHold: Duration = .seconds(3600),
        earlyEvents: EarlyEventsPolicy = .whenAnsweredImmediately,
        technologies: Set<String> = ["PJSIP", "Local", "SIP", "IAX2", "DAHDI"],
        outboundContext: String = "default",
        dialplanContexts: Set<String>? = nil,
        machineDetectionContext: String = "dialer-amd",
        asteriskID: String = "02:fc:00:00:00:01",
        asteriskVersion: String = "22.10.1",
        bootWindow: Duration = .zero
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.rules = rules
        self.fallbackOutcome = fallbackOutcome
        self.defaultHold = defaultHold
        self.earlyEvents = earlyEvents
        self.technologies = technologies
        self.outboundContext = outboundContext
        self.dialplanContexts = dialplanContexts
        self.machineDetectionContext = machineDetectionContext
        self.asteriskID = asteriskID
        self.asteriskVersion = asteriskVersion
        self.bootWindow = bootWindow
    }
}
