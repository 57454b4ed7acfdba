/// An originate (`POST /channels/{channelId}`) with a channel id chosen by the caller.
///
/// App style (`app` set) subscribes the application to the channel from its creation, so every event of
/// the call reaches it and `StasisStart` tells that the callee answered. Dialplan style
/// (`context`/`extension`, no `app`) sends the application no events unless it subscribes, and subscribing
/// after the POST is racy: prefer app style and `continueInDialplan` after `StasisStart`.
public struct OriginateRequest: Sendable, Equatable {
    /// Channel id to create; the call id, so it is unique per call and reusable only after destruction.
    public var channelID: String
    /// Dial endpoint, e.g. `PJSIP/15550100001@carrier` or `Local/100@agents`.
    public var endpoint: String
    /// Stasis application to enter on answer (app style); `nil` for dialplan style.
    public var app: String?
    /// Arguments of the Stasis application (comma separated, as `Stasis(app,args)` takes them).
    public var appArgs: String?
    /// Dialplan context (dialplan style).
    public var context: String?
    /// Dialplan extension (dialplan style).
    public var `extension`: String?
    /// Dialplan priority (dialplan style).
    public var priority: Int?
    /// Caller id, e.g. `"Sales <5551000>"`.
    public var callerID: String?
    /// Ring timeout in seconds (Asterisk's default is 30; -1 means none).
    public var timeout: Int?
    /// Channel variables, sent in the JSON body as `{"variables": {...}}`.
    public var variables: [String: String]

    /// App-style originate.
    public init(
        channelID: String,
        endpoint: String,
        app: String,
        appArgs: String? = nil,
        callerID: String? = nil,
        timeout: Int? = nil,
        variables: [String: String] = [:]
    ) {
        self.channelID = channelID
        self.endpoint = endpoint
        self.app = app
        self.appArgs = appArgs
        self.context = nil
        self.extension = nil
        self.priority = nil
        self.callerID = callerID
        self.timeout = timeout
        self.variables = variables
    }

    /// Dialplan-style originate.
    public init(
        channelID: String,
        endpoint: String,
        context: String,
        extension: String,
        priority: Int = 1,
        callerID: String? = nil,
        timeout: Int? = nil,
        variables: [String: String] = [:]
    ) {
        self.channelID = channelID
        self.endpoint = endpoint
        self.app = nil
        self.appArgs = nil
        self.context = context
        self.extension = `extension`
        self.priority = priority
        self.callerID = callerID
        self.timeout = timeout
        self.variables = variables
    }

    /// Query parameters in the order ARI documents them.
    var queryItems: [(String, String)] {
        var items: [(String, String)] = [("endpoint", self.endpoint)]
        if let app { items.append(("app", app)) }
        if let appArgs { items.append(("appArgs", appArgs)) }
        if let context { items.append(("context", context)) }
        if let `extension` { items.append(("extension", `extension`)) }
        if let priority { items.append(("priority", String(priority))) }
        if let callerID { items.append(("callerId", callerID)) }
        if let timeout { items.append(("timeout", String(timeout))) }
        return items
    }
}
