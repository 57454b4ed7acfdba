/// How to reach one Asterisk node's ARI and how patient to be with it.
public struct ARIConfiguration: Sendable {
    /// Exponential back-off between WebSocket reconnect attempts.
    ///
    /// The n-th consecutive failed attempt waits a random time in `[d/2, d]` with
    /// `d = min(max, initial × 2ⁿ)` ("equal jitter"): never longer than the bound, never all workers at once.
    public struct ReconnectBackoff: Sendable, Equatable {
        /// Delay bound of the first retry.
        public var initial: Duration
        /// Upper bound of any delay.
        public var max: Duration

        /// Creates a back-off policy.
        public init(initial: Duration = .milliseconds(100), max: Duration = .seconds(10)) {
            self.initial = initial
            self.max = max
        }

        /// The upper bound of the delay before retry number `attempt` (0-based).
        public func bound(forAttempt attempt: Int) -> Duration {
            var delay = self.initial
            var remaining = attempt
            while remaining > 0, delay < self.max {
                delay = delay * 2
                remaining -= 1
            }
            return delay < self.max ? delay : self.max
        }

        /// A jittered delay for retry number `attempt`, in `[bound/2, bound]`.
        public func delay(forAttempt attempt: Int) -> Duration {
            let bound = self.bound(forAttempt: attempt)
            let half = bound / 2
            let nanoseconds = Self.nanoseconds(of: half)
            guard nanoseconds > 0 else { return bound }
            return half + .nanoseconds(Int64.random(in: 0...nanoseconds))
        }

        static func nanoseconds(of duration: Duration) -> Int64 {
            let (seconds, attoseconds) = duration.components
            return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        }
    }

    /// Base URL of the REST interface, including the `/ari` prefix, e.g. `http://127.0.0.1:8088/ari`.
    public var baseURL: String
    /// ARI user (`ari.conf`).
    public var username: String
    /// ARI password.
    public var password: String
    /// Stasis application name; one WebSocket per name, so every worker process needs its own.
    public var application: String
    /// Timeout of one REST request, from sending to the complete response.
    public var requestTimeout: Duration
    /// Reconnect back-off of the events WebSocket.
    public var reconnectBackoff: ReconnectBackoff
    /// Interval of WebSocket pings; a ping unanswered for one interval closes the socket (then reconnect).
    public var pingInterval: Duration
    /// Maximum number of received events waiting for the consumer. When the consumer falls this far behind,
    /// the stream drops the connection and reconnects, reporting a gap (`reconnected`) instead of dropping
    /// events silently.
    public var eventBufferLimit: Int

    /// Creates a configuration.
    public init(
        baseURL: String,
        username: String,
        password: String,
        application: String,
        requestTimeout: Duration = .seconds(5),
        reconnectBackoff: ReconnectBackoff = .init(),
        pingInterval: Duration = .seconds(10),
        eventBufferLimit: Int = 100_000
    ) {
        self.baseURL = baseURL
        self.username = username
        self.password = password
        self.application = application
        self.requestTimeout = requestTimeout
        self.reconnectBackoff = reconnectBackoff
        self.pingInterval = pingInterval
        self.eventBufferLimit = eventBufferLimit
    }

    /// `baseURL` without a trailing slash.
    var normalizedBaseURL: String {
        var url = self.baseURL
        while url.hasSuffix("/") { url.removeLast() }
        return url
    }

    /// The events WebSocket URL: `ws(s)://…/ari/events?app=…&api_key=user:pass&subscribeAll=false`.
    var eventsURL: String {
        var base = self.normalizedBaseURL
        if base.hasPrefix("https://") {
            base = "wss://" + base.dropFirst("https://".count)
        } else if base.hasPrefix("http://") {
            base = "ws://" + base.dropFirst("http://".count)
        }
        let apiKey = "\(self.username):\(self.password)"
        return base + "/events?app=" + URLEncoding.queryValue(self.application) + "&api_key="
            + URLEncoding.queryValue(apiKey) + "&subscribeAll=false"
    }
}

/// Percent-encoding for ARI URLs.
enum URLEncoding {
    /// Encodes a query value: everything but RFC 3986 unreserved characters (and `:` for `api_key`).
    static func queryValue(_ value: String) -> String {
        encode(value) { byte in
            isUnreserved(byte) || byte == UInt8(ascii: ":")
        }
    }

    /// Encodes a path segment. `;` stays literal: Asterisk expects the Local `;2` suffix as is.
    static func pathSegment(_ value: String) -> String {
        encode(value) { byte in
            isUnreserved(byte) || byte == UInt8(ascii: ";") || byte == UInt8(ascii: ":") || byte == UInt8(ascii: "@")
        }
    }

    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "~"):
            true
        default:
            false
        }
    }

    private static func encode(_ value: String, keep: (UInt8) -> Bool) -> String {
        let hex: [Character] = Array("0123456789ABCDEF")
        var output = ""
        output.reserveCapacity(value.utf8.count)
        for byte in value.utf8 {
            if keep(byte) {
                output.append(Character(Unicode.Scalar(byte)))
            } else {
                output.append("%")
                output.append(hex[Int(byte >> 4)])
                output.append(hex[Int(byte & 0x0F)])
            }
        }
        return output
    }
}
