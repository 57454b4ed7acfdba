import Foundation

/// Caller identification (`CallerID` in the ARI models): a display name and a number, both possibly empty.
public struct ARICallerID: Sendable, Codable, Hashable {
    /// Display name; empty when unknown.
    public var name: String
    /// Number; empty when unknown.
    public var number: String

    /// Creates a caller id.
    public init(name: String = "", number: String = "") {
        self.name = name
        self.number = number
    }
}

/// A channel's current location in the dialplan (`DialplanCEP`).
///
/// For an originated channel `appName` is `AppDial2` while it is being dialed, `Stasis` while it is in an
/// application, and the running dialplan application after a `continue`.
public struct ARIDialplanLocation: Sendable, Codable, Hashable {
    /// Dialplan context.
    public var context: String
    /// Dialplan extension.
    public var exten: String
    /// Dialplan priority.
    public var priority: Int
    /// Name of the dialplan application being executed.
    public var appName: String
    /// Arguments of that application.
    public var appData: String

    /// Creates a dialplan location.
    public init(context: String, exten: String, priority: Int, appName: String = "", appData: String = "") {
        self.context = context
        self.exten = exten
        self.priority = priority
        self.appName = appName
        self.appData = appData
    }

    private enum CodingKeys: String, CodingKey {
        case context, exten, priority
        case appName = "app_name"
        case appData = "app_data"
    }
}

/// A channel as ARI describes it (`Channel` in `channels.json`).
///
/// `id` is the unique id: for our originates it is the channel id we chose (the call id). The second half
/// of a Local channel pair carries `<id>;2`: compare ids exactly to tell them apart.
public struct ARIChannel: Sendable, Codable, Hashable {
    /// Unique id (`Uniqueid`); the `channelId` given to the originate.
    public var id: String
    /// Channel name, e.g. `PJSIP/carrier-0000001c` or `Local/answer@dialer-test-00000002;1`.
    public var name: String
    /// Channel state: `Down`, `Ringing`, `Up`, `Busy`, `Ring`, ... (kept as text: ARI may add values).
    public var state: String
    /// Protocol id (the SIP Call-ID for PJSIP); empty when not applicable.
    public var protocolID: String?
    /// Caller id of the channel.
    public var caller: ARICallerID
    /// Connected line.
    public var connected: ARICallerID
    /// Account code.
    public var accountcode: String
    /// Current dialplan location.
    public var dialplan: ARIDialplanLocation
    /// When the channel was created.
    public var creationtime: Date
    /// Default language.
    public var language: String
    /// Channel variables that were set with `report_events` (absent otherwise).
    public var channelvars: [String: String]?

    /// Creates a channel value (mostly for tests and reconciliation code).
    public init(
        id: String,
        name: String,
        state: String,
        protocolID: String? = "",
        caller: ARICallerID = .init(),
        connected: ARICallerID = .init(),
        accountcode: String = "",
        dialplan: ARIDialplanLocation,
        creationtime: Date,
        language: String = "en",
        channelvars: [String: String]? = nil
    ) {
        self.id = id
        self.name = name
        self.state = state
        self.protocolID = protocolID
        self.caller = caller
        self.connected = connected
        self.accountcode = accountcode
        self.dialplan = dialplan
        self.creationtime = creationtime
        self.language = language
        self.channelvars = channelvars
    }

    /// Whether this is the second (`;2`) half of a Local channel pair rather than the channel we originated.
    public var isLocalSecondHalf: Bool { self.id.hasSuffix(";2") && self.name.hasSuffix(";2") }

    private enum CodingKeys: String, CodingKey {
        case id, name, state, caller, connected, accountcode, dialplan, creationtime, language, channelvars
        case protocolID = "protocol_id"
    }

    /// Decodes a channel; `creationtime` is in Asterisk's format (`…+0000`).
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.id = try container.decode(String.self, forKey: .id)
        self.name = try container.decode(String.self, forKey: .name)
        self.state = try container.decode(String.self, forKey: .state)
        self.protocolID = try container.decodeIfPresent(String.self, forKey: .protocolID)
        self.caller = try container.decode(ARICallerID.self, forKey: .caller)
        self.connected = try container.decode(ARICallerID.self, forKey: .connected)
        self.accountcode = try container.decode(String.self, forKey: .accountcode)
        self.dialplan = try container.decode(ARIDialplanLocation.self, forKey: .dialplan)
        let creation = try container.decode(String.self, forKey: .creationtime)
        guard let date = ARITimestamp.parse(creation) else {
            throw DecodingError.dataCorruptedError(
                forKey: .creationtime,
                in: container,
                debugDescription: "not an Asterisk timestamp: \(creation)"
            )
        }
        self.creationtime = date
        self.language = try container.decode(String.self, forKey: .language)
        self.channelvars = try container.decodeIfPresent(LenientStringMap.self, forKey: .channelvars)?.values
    }

    /// Encodes the channel the way Asterisk does (timestamps as `…+0000`).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.id, forKey: .id)
        try container.encode(self.name, forKey: .name)
        try container.encode(self.state, forKey: .state)
        try container.encodeIfPresent(self.protocolID, forKey: .protocolID)
        try container.encode(self.caller, forKey: .caller)
        try container.encode(self.connected, forKey: .connected)
        try container.encode(self.accountcode, forKey: .accountcode)
        try container.encode(self.dialplan, forKey: .dialplan)
        try container.encode(ARITimestamp.format(self.creationtime), forKey: .creationtime)
        try container.encode(self.language, forKey: .language)
        try container.encodeIfPresent(self.channelvars, forKey: .channelvars)
    }
}

/// `channelvars` is declared as a free-form object; values are strings in practice, but a number or a
/// boolean must not make a whole event undecodable.
struct LenientStringMap: Decodable {
    var values: [String: String]

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: AnyKey.self)
        var values: [String: String] = [:]
        for key in container.allKeys {
            if let text = try? container.decode(String.self, forKey: key) {
                values[key.stringValue] = text
            } else if let number = try? container.decode(Double.self, forKey: key) {
                values[key.stringValue] = number == number.rounded() ? String(Int64(number)) : String(number)
            } else if let flag = try? container.decode(Bool.self, forKey: key) {
                values[key.stringValue] = String(flag)
            }
        }
        self.values = values
    }
}

struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// A Stasis application as `GET /applications/{name}` and the subscription calls return it.
public struct ARIApplication: Sendable, Codable, Hashable {
    /// Application name.
    public var name: String
    /// Channels the application is subscribed to.
    public var channelIDs: [String]
    /// Bridges the application is subscribed to.
    public var bridgeIDs: [String]
    /// Endpoints (`tech/resource`) the application is subscribed to.
    public var endpointIDs: [String]
    /// Device names the application is subscribed to.
    public var deviceNames: [String]

    /// Creates an application value.
    public init(name: String, channelIDs: [String], bridgeIDs: [String], endpointIDs: [String], deviceNames: [String]) {
        self.name = name
        self.channelIDs = channelIDs
        self.bridgeIDs = bridgeIDs
        self.endpointIDs = endpointIDs
        self.deviceNames = deviceNames
    }

    private enum CodingKeys: String, CodingKey {
        case name
        case channelIDs = "channel_ids"
        case bridgeIDs = "bridge_ids"
        case endpointIDs = "endpoint_ids"
        case deviceNames = "device_names"
    }
}

/// The parts of `GET /asterisk/info` a dialer cares about (every section is optional in the model).
public struct ARIAsteriskInfo: Sendable, Codable, Hashable {
    /// `system` section.
    public struct System: Sendable, Codable, Hashable {
        /// Asterisk version, e.g. `22.10.1`.
        public var version: String
        /// Entity id (the `asterisk_id` of events).
        public var entityID: String

        private enum CodingKeys: String, CodingKey {
            case version
            case entityID = "entity_id"
        }
    }

    /// `status` section.
    public struct Status: Sendable, Codable, Hashable {
        /// When Asterisk started (Asterisk format).
        public var startupTime: String
        /// When the configuration was last reloaded.
        public var lastReloadTime: String

        private enum CodingKeys: String, CodingKey {
            case startupTime = "startup_time"
            case lastReloadTime = "last_reload_time"
        }
    }

    /// Version and entity id, when present.
    public var system: System?
    /// Start-up and reload times, when present.
    public var status: Status?
    /// The complete response body, for anything not modelled here.
    public var rawJSON: String

    /// Creates an info value.
    public init(system: System?, status: Status?, rawJSON: String) {
        self.system = system
        self.status = status
        self.rawJSON = rawJSON
    }

    private enum CodingKeys: String, CodingKey {
        case system, status
    }

    /// Decodes the modelled sections; `rawJSON` is filled in by the client.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.system = try container.decodeIfPresent(System.self, forKey: .system)
        self.status = try container.decodeIfPresent(Status.self, forKey: .status)
        self.rawJSON = ""
    }

    /// Encodes the modelled sections.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(self.system, forKey: .system)
        try container.encodeIfPresent(self.status, forKey: .status)
    }
}

/// A recording in progress or just ended (`LiveRecording`), as `POST /channels/{id}/record` answers it and the
/// `Recording*` events carry it.
///
/// Asterisk 22's `recordings.json` describes it; that file is not among the API description files this repository
/// was given (`resources.json` lists it), so the fields follow Asterisk 22's source tree.
public struct ARILiveRecording: Sendable, Codable, Hashable {
    /// The recording's name: the stored file's base name under the node's recording directory.
    public var name: String
    /// `wav`, `gsm`, ...
    public var format: String
    /// What is recorded: `channel:<id>` or `bridge:<id>`.
    public var targetURI: String?
    /// `queued`, `recording`, `paused`, `done`, `failed` or `canceled` (kept as text: ARI may add values).
    public var state: String
    /// Length in seconds, once done.
    public var duration: Int?
    /// Seconds of talking, once done (with silence detection).
    public var talkingDuration: Int?
    /// Seconds of silence, once done (with silence detection).
    public var silenceDuration: Int?
    /// Why it failed.
    public var cause: String?

    /// Creates a recording value (for the simulator and tests).
    public init(
        name: String, format: String, targetURI: String?, state: String, duration: Int? = nil,
        talkingDuration: Int? = nil, silenceDuration: Int? = nil, cause: String? = nil
    ) {
        self.name = name
        self.format = format
        self.targetURI = targetURI
        self.state = state
        self.duration = duration
        self.talkingDuration = talkingDuration
        self.silenceDuration = silenceDuration
        self.cause = cause
    }

    enum CodingKeys: String, CodingKey {
        case name, format, state, duration, cause
        case targetURI = "target_uri"
        case talkingDuration = "talking_duration"
        case silenceDuration = "silence_duration"
    }
}

/// A recording the node has stored (`StoredRecording`): what `GET /recordings/stored/{name}` answers.
public struct ARIStoredRecording: Sendable, Codable, Hashable {
    /// The recording's name.
    public var name: String
    /// Its format.
    public var format: String

    /// Creates a value.
    public init(name: String, format: String) {
        self.name = name
        self.format = format
    }
}
