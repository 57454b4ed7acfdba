import Foundation

/// An event from the ARI WebSocket, typed for what a dialer needs and raw for the rest.
///
/// Filter by ``channelID`` with exact comparison: a Local channel originate also reports its second half
/// as `<id>;2`, and those events must not be taken for the originated channel's.
public enum ARIEvent: Sendable {
    /// The channel entered the application: for an app-style originate, the callee answered.
    case stasisStart(StasisStart)
    /// The channel left the application (hangup, or `continue` to the dialplan).
    case stasisEnd(StasisEnd)
    /// The channel's state changed (`Ringing`, `Up`, `Busy`, ...).
    case channelStateChange(ChannelStateChange)
    /// The channel moved in the dialplan (after `continue`, and the `;2` half of Local channels).
    case channelDialplan(ChannelDialplan)
    /// A hangup was requested; with `soft: true` the cause is a bit mask, not a Q.850 cause.
    case channelHangupRequest(ChannelHangupRequest)
    /// The channel is gone; `cause`/`causeText` say why (Q.850; 0 after `Busy()`/`Congestion()`).
    case channelDestroyed(ChannelDestroyed)
    /// A channel variable was set.
    case channelVarset(ChannelVarset)
    /// Dial progress of the originated channel (`peer`): `""`, `RINGING`, `ANSWER`, `BUSY`, `CONGESTION`, ...
    case dial(Dial)
    /// Another WebSocket took over this application; this socket receives nothing more.
    case applicationReplaced(ApplicationReplaced)
    /// `RecordingStarted`, `RecordingFinished` or `RecordingFailed`.
    case recording(RecordingEvent)
    /// Any other event, kept as its JSON text.
    case other(type: String, json: String)

    /// The event type as ARI names it (`StasisStart`, `Dial`, ...).
    public var type: String {
        switch self {
        case .stasisStart: "StasisStart"
        case .stasisEnd: "StasisEnd"
        case .channelStateChange: "ChannelStateChange"
        case .channelDialplan: "ChannelDialplan"
        case .channelHangupRequest: "ChannelHangupRequest"
        case .channelDestroyed: "ChannelDestroyed"
        case .channelVarset: "ChannelVarset"
        case .dial: "Dial"
        case .applicationReplaced: "ApplicationReplaced"
        case .recording(let event): event.kind.rawValue
        case .other(let type, _): type
        }
    }

    /// Id of the channel the event is about: the `peer` for `Dial`, the `channel` otherwise; `nil` for
    /// application events (and untyped events, whose JSON the caller may inspect).
    public var channelID: String? {
        switch self {
        case .stasisStart(let event): event.channel.id
        case .stasisEnd(let event): event.channel.id
        case .channelStateChange(let event): event.channel.id
        case .channelDialplan(let event): event.channel.id
        case .channelHangupRequest(let event): event.channel.id
        case .channelDestroyed(let event): event.channel.id
        case .channelVarset(let event): event.channel?.id
        case .dial(let event): event.peer.id
        case .applicationReplaced, .recording, .other: nil
        }
    }

    /// When Asterisk created the event; `nil` only for untyped events without a parsable timestamp.
    public var timestamp: Date? {
        switch self {
        case .stasisStart(let event): event.timestamp
        case .stasisEnd(let event): event.timestamp
        case .channelStateChange(let event): event.timestamp
        case .channelDialplan(let event): event.timestamp
        case .channelHangupRequest(let event): event.timestamp
        case .channelDestroyed(let event): event.timestamp
        case .channelVarset(let event): event.timestamp
        case .dial(let event): event.timestamp
        case .applicationReplaced(let event): event.timestamp
        case .recording(let event): event.timestamp
        case .other(_, let json): Self.peekTimestamp(json)
        }
    }

    /// Name of the application that received the event.
    public var application: String? {
        switch self {
        case .stasisStart(let event): event.application
        case .stasisEnd(let event): event.application
        case .channelStateChange(let event): event.application
        case .channelDialplan(let event): event.application
        case .channelHangupRequest(let event): event.application
        case .channelDestroyed(let event): event.application
        case .channelVarset(let event): event.application
        case .dial(let event): event.application
        case .applicationReplaced(let event): event.application
        case .recording(let event): event.application
        case .other(_, let json): Self.peekApplication(json)
        }
    }

    // MARK: - Payloads

    /// `StasisStart`: the channel entered the application with `args`.
    public struct StasisStart: Sendable, Hashable {
        /// Event time.
        public var timestamp: Date
        /// Receiving application.
        public var application: String
        /// Application arguments (`appArgs` split on commas).
        public var args: [String]
        /// The channel.
        public var channel: ARIChannel
        /// The channel this one replaces (transfers); absent for originates.
        public var replaceChannel: ARIChannel?
    }

    /// `StasisEnd`: the channel left the application.
    public struct StasisEnd: Sendable, Hashable {
        /// Event time.
        public var timestamp: Date
        /// Receiving application.
        public var application: String
        /// The channel.
        public var channel: ARIChannel
    }

    /// `ChannelStateChange`: `channel.state` is the new state.
    public struct ChannelStateChange: Sendable, Hashable {
        /// Event time.
        public var timestamp: Date
        /// Receiving application.
        public var application: String
        /// The channel, with its new state.
        public var channel: ARIChannel
    }

    /// `ChannelDialplan`: the channel is about to run `dialplanApp(dialplanAppData)`.
    public struct ChannelDialplan: Sendable, Hashable {
        /// Event time.
        public var timestamp: Date
        /// Receiving application.
        public var application: String
        /// The channel, with its new dialplan location.
        public var channel: ARIChannel
        /// Application about to run.
        public var dialplanApp: String
        /// Its arguments.
        public var dialplanAppData: String
    }

    /// `ChannelHangupRequest`. When `soft` is true, `cause` is a soft-hangup bit mask
    /// (32 explicit/ARI DELETE, 16 dialplan finished, 4 shutdown), not a Q.850 cause.
    public struct ChannelHangupRequest: Sendable, Hashable {
        /// Event time.
        public var timestamp: Date
        /// Receiving application.
        public var application: String
        /// The channel.
        public var channel: ARIChannel
        /// Q.850 cause, or a bit mask when `soft`.
        public var cause: Int?
        /// Whether this was a soft hangup request.
        public var soft: Bool?
    }

    /// `ChannelDestroyed`: the channel is gone.
    public struct ChannelDestroyed: Sendable, Hashable {
        /// Event time.
        public var timestamp: Date
        /// Receiving application.
        public var application: String
        /// The channel in its last state.
        public var channel: ARIChannel
        /// Q.850 hangup cause (0 after the dialplan's `Busy()`/`Congestion()`).
        public var cause: Int
        /// Asterisk's text for the cause, e.g. `Normal Clearing`, `User busy`.
        public var causeText: String
    }

    /// `ChannelVarset`: `variable` was set to `value` (on `channel`, or globally when absent).
    public struct ChannelVarset: Sendable, Hashable {
        /// Event time.
        public var timestamp: Date
        /// Receiving application.
        public var application: String
        /// The channel; `nil` for a global variable.
        public var channel: ARIChannel?
        /// Variable name (`STASISSTATUS`, ...).
        public var variable: String
        /// New value.
        public var value: String
    }

    /// `Dial`: dialing progress towards `peer`. For an originate, `peer` is the originated channel (our
    /// channel id) and `caller` is absent. `dialstatus` is `""` at the start, then `RINGING`, and a final
    /// `ANSWER`/`BUSY`/`CONGESTION`/`NOANSWER`/`CHANUNAVAIL`/`CANCEL`; an originate timeout sends no final one.
    public struct Dial: Sendable, Hashable {
        /// Event time.
        public var timestamp: Date
        /// Receiving application.
        public var application: String
        /// The dialed channel.
        public var peer: ARIChannel
        /// The calling channel, when there is one (not for originates).
        public var caller: ARIChannel?
        /// Dial status.
        public var dialstatus: String
        /// Dial string, e.g. `15550100001@carrier`.
        public var dialstring: String?
        /// Forwarding target, when the callee forwarded.
        public var forward: String?
    }

    /// `ApplicationReplaced`: a newer WebSocket took this application over.
    public struct ApplicationReplaced: Sendable, Hashable {
        /// Event time.
        public var timestamp: Date
        /// The application.
        public var application: String
    }

    /// A recording's progress: the `recording` is the LiveRecording as the event carries it.
    public struct RecordingEvent: Sendable, Hashable {
        /// Which of the three recording events.
        public enum Kind: String, Sendable, Hashable {
            case started = "RecordingStarted"
            case finished = "RecordingFinished"
            case failed = "RecordingFailed"
        }

        /// Which event.
        public var kind: Kind
        /// Event time.
        public var timestamp: Date
        /// Receiving application.
        public var application: String
        /// The recording.
        public var recording: ARILiveRecording
    }

    // MARK: - Decoding

    /// Decodes one WebSocket text message. Unknown types become ``other(type:json:)``; a typed event whose
    /// fields do not match the model throws (it would be a protocol change worth seeing in the logs).
    public static func decode(json: String) throws -> ARIEvent {
        let data = Data(json.utf8)
        let raw = try Self.decoder.decode(RawEvent.self, from: data)
        func require<Value>(_ value: Value?, _ field: String) throws -> Value {
            guard let value else {
                throw DecodingError.keyNotFound(
                    AnyKey(stringValue: field),
                    .init(codingPath: [], debugDescription: "\(raw.type) without \(field)")
                )
            }
            return value
        }
        switch raw.type {
        case "StasisStart":
            return .stasisStart(
                StasisStart(
                    timestamp: try require(raw.timestamp, "timestamp").date,
                    application: try require(raw.application, "application"),
                    args: raw.args ?? [],
                    channel: try require(raw.channel, "channel"),
                    replaceChannel: raw.replaceChannel
                )
            )
        case "StasisEnd":
            return .stasisEnd(
                StasisEnd(
                    timestamp: try require(raw.timestamp, "timestamp").date,
                    application: try require(raw.application, "application"),
                    channel: try require(raw.channel, "channel")
                )
            )
        case "ChannelStateChange":
            return .channelStateChange(
                ChannelStateChange(
                    timestamp: try require(raw.timestamp, "timestamp").date,
                    application: try require(raw.application, "application"),
                    channel: try require(raw.channel, "channel")
                )
            )
        case "ChannelDialplan":
            return .channelDialplan(
                ChannelDialplan(
                    timestamp: try require(raw.timestamp, "timestamp").date,
                    application: try require(raw.application, "application"),
                    channel: try require(raw.channel, "channel"),
                    dialplanApp: raw.dialplanApp ?? "",
                    dialplanAppData: raw.dialplanAppData ?? ""
                )
            )
        case "ChannelHangupRequest":
            return .channelHangupRequest(
                ChannelHangupRequest(
                    timestamp: try require(raw.timestamp, "timestamp").date,
                    application: try require(raw.application, "application"),
                    channel: try require(raw.channel, "channel"),
                    cause: raw.cause,
                    soft: raw.soft
                )
            )
        case "ChannelDestroyed":
            return .channelDestroyed(
                ChannelDestroyed(
                    timestamp: try require(raw.timestamp, "timestamp").date,
                    application: try require(raw.application, "application"),
                    channel: try require(raw.channel, "channel"),
                    cause: try require(raw.cause, "cause"),
                    causeText: try require(raw.causeText, "cause_txt")
                )
            )
        case "ChannelVarset":
            return .channelVarset(
                ChannelVarset(
                    timestamp: try require(raw.timestamp, "timestamp").date,
                    application: try require(raw.application, "application"),
                    channel: raw.channel,
                    variable: try require(raw.variable, "variable"),
                    value: raw.value ?? ""
                )
            )
        case "Dial":
            return .dial(
                Dial(
                    timestamp: try require(raw.timestamp, "timestamp").date,
                    application: try require(raw.application, "application"),
                    peer: try require(raw.peer, "peer"),
                    caller: raw.caller,
                    dialstatus: try require(raw.dialstatus, "dialstatus"),
                    dialstring: raw.dialstring,
                    forward: raw.forward
                )
            )
        case "ApplicationReplaced":
            return .applicationReplaced(
                ApplicationReplaced(
                    timestamp: try require(raw.timestamp, "timestamp").date,
                    application: try require(raw.application, "application")
                )
            )
        case "RecordingStarted", "RecordingFinished", "RecordingFailed":
            return .recording(
                RecordingEvent(
                    kind: try require(RecordingEvent.Kind(rawValue: raw.type), "type"),
                    timestamp: try require(raw.timestamp, "timestamp").date,
                    application: try require(raw.application, "application"),
                    recording: try require(raw.recording, "recording")
                )
            )
        default:
            return .other(type: raw.type, json: json)
        }
    }

    private static let decoder = JSONDecoder()

    private static func peekTimestamp(_ json: String) -> Date? {
        struct Peek: Decodable { var timestamp: String? }
        return (try? Self.decoder.decode(Peek.self, from: Data(json.utf8)))?.timestamp.flatMap(ARITimestamp.parse)
    }

    private static func peekApplication(_ json: String) -> String? {
        struct Peek: Decodable { var application: String? }
        return (try? Self.decoder.decode(Peek.self, from: Data(json.utf8)))?.application
    }
}

/// One pass over any event: every field a typed event needs, all optional. Decoding once into this is
/// cheaper than sniffing the type first and decoding again.
private struct RawEvent: Decodable {
    struct Timestamp: Decodable {
        var date: Date
        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = ARITimestamp.parse(text) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "bad timestamp \(text)")
            }
            self.date = date
        }
    }

    var type: String
    var timestamp: Timestamp?
    var application: String?
    var channel: ARIChannel?
    var replaceChannel: ARIChannel?
    var peer: ARIChannel?
    var caller: ARIChannel?
    var args: [String]?
    var dialplanApp: String?
    var dialplanAppData: String?
    var cause: Int?
    var causeText: String?
    var soft: Bool?
    var variable: String?
    var value: String?
    var dialstatus: String?
    var dialstring: String?
    var forward: String?
    var recording: ARILiveRecording?

    enum CodingKeys: String, CodingKey {
        case type, timestamp, application, channel, peer, caller, args, cause, soft, variable, value, recording
        case dialstatus, dialstring, forward
        case replaceChannel = "replace_channel"
        case dialplanApp = "dialplan_app"
        case dialplanAppData = "dialplan_app_data"
        case causeText = "cause_txt"
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.type = try container.decode(String.self, forKey: .type)
        // Only the fields of types we model are decoded: the others stay raw, and a shape we do not know
        // (e.g. `caller` being something else in a future event) cannot break them.
        switch self.type {
        case "StasisStart", "StasisEnd", "ChannelStateChange", "ChannelDialplan", "ChannelHangupRequest",
            "ChannelDestroyed", "ChannelVarset", "Dial", "ApplicationReplaced", "RecordingStarted", "RecordingFinished",
            "RecordingFailed":
            break
        default:
            return
        }
        self.timestamp = try container.decodeIfPresent(Timestamp.self, forKey: .timestamp)
        self.application = try container.decodeIfPresent(String.self, forKey: .application)
        self.channel = try container.decodeIfPresent(ARIChannel.self, forKey: .channel)
        self.replaceChannel = try container.decodeIfPresent(ARIChannel.self, forKey: .replaceChannel)
        self.peer = try container.decodeIfPresent(ARIChannel.self, forKey: .peer)
        self.caller = try container.decodeIfPresent(ARIChannel.self, forKey: .caller)
        self.args = try container.decodeIfPresent([String].self, forKey: .args)
        self.dialplanApp = try container.decodeIfPresent(String.self, forKey: .dialplanApp)
        self.dialplanAppData = try container.decodeIfPresent(String.self, forKey: .dialplanAppData)
        self.cause = try container.decodeIfPresent(Int.self, forKey: .cause)
        self.causeText = try container.decodeIfPresent(String.self, forKey: .causeText)
        self.soft = try container.decodeIfPresent(Bool.self, forKey: .soft)
        self.variable = try container.decodeIfPresent(String.self, forKey: .variable)
        self.value = try container.decodeIfPresent(String.self, forKey: .value)
        self.dialstatus = try container.decodeIfPresent(String.self, forKey: .dialstatus)
        self.dialstring = try container.decodeIfPresent(String.self, forKey: .dialstring)
        self.forward = try container.decodeIfPresent(String.self, forKey: .forward)
        self.recording = try container.decodeIfPresent(ARILiveRecording.self, forKey: .recording)
    }
}
