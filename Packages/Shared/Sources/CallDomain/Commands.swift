import Foundation

/// The command to place one call, published by the gateway on `calls.originate.v1` (key: call id).
///
/// Everything in it was validated by the gateway, and is validated again when decoded (the dialer does not trust
/// the topic more than the API). The dialer builds the dial endpoint from `to` and its own `ENDPOINT_TEMPLATE`.
public struct OriginateCommand: Hashable, Sendable, Codable {
    /// The CloudEvents type of this message.
    public static let eventType = "com.outbound-dialer.call.originate.v1"
    /// The call.
    public var callID: CallID
    /// When the gateway accepted the request.
    public var requestedAt: Date
    /// After this instant the call must not be dialed; it becomes `expired`.
    public var expiresAt: Date
    /// The number to dial.
    public var to: DialTarget
    /// The presented caller id, or the node's default when `nil`.
    public var callerID: CallerID?
    /// Where the answered call goes; the worker's defaults when `nil`.
    public var dialplan: DialplanTarget?
    /// How long to let the phone ring, in seconds.
    public var timeoutSeconds: Int
    /// Variables set on the channel.
    public var variables: ChannelVariables
    /// The client's own data, echoed in every event.
    public var metadata: ClientMetadata
    /// The user who asked for the call.
    public var requestedBy: String
    /// The gateway request id, for correlating logs.
    public var requestID: String?
    /// The organization of the caller: the call is in its history only (``OrganizationID/default`` when the
    /// command, from an older gateway, names none).
    public var organizationID: OrganizationID
    /// Where the dialer's status webhooks for this call go, and for which statuses (Twilio's `StatusCallback`).
    public var statusCallback: StatusCallback?
    /// Answering machine detection for the answered call; none when `nil`.
    public var machineDetection: MachineDetection?
    /// Whether the answered call is recorded (from its answer, or from the detection's verdict when there is one,
    /// until it ends).
    public var record: Bool

    /// Creates a command.
    public init(
        callID: CallID,
        requestedAt: Date,
        expiresAt: Date,
        to: DialTarget,
        callerID: CallerID? = nil,
        dialplan: DialplanTarget? = nil,
        timeoutSeconds: Int = 30,
        variables: ChannelVariables = .empty,
        metadata: ClientMetadata = .empty,
        requestedBy: String,
        requestID: String? = nil,
        organizationID: OrganizationID = .default,
        statusCallback: StatusCallback? = nil,
        machineDetection: MachineDetection? = nil,
        record: Bool = false
    ) {
        self.callID = callID
        self.requestedAt = requestedAt
        self.expiresAt = expiresAt
        self.to = to
        self.callerID = callerID
        self.dialplan = dialplan
        self.timeoutSeconds = timeoutSeconds
        self.variables = variables
        self.metadata = metadata
        self.requestedBy = requestedBy
        self.requestID = requestID
        self.organizationID = organizationID
        self.statusCallback = statusCallback
        self.machineDetection = machineDetection
        self.record = record
    }

    /// Ring timeouts accepted, in seconds.
    public static let timeoutRange = 5...300

    /// Whether the command's time to live has passed at `now`.
    public func isExpired(at now: Date) -> Bool { now >= expiresAt }

    enum CodingKeys: String, CodingKey {
        case callID = "call_id"
        case requestedAt = "requested_at"
        case expiresAt = "expires_at"
        case to
        case callerID = "caller_id"
        case dialplan
        case timeoutSeconds = "timeout_seconds"
        case variables
        case metadata
        case requestedBy = "requested_by"
        case requestID = "request_id"
        case organizationID = "organization_id"
        case statusCallback = "status_callback"
        case statusCallbackEvents = "status_callback_events"
        case machineDetection = "machine_detection"
        case record
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        callID = try container.decode(CallID.self, forKey: .callID)
        requestedAt = try container.decode(Date.self, forKey: .requestedAt)
        expiresAt = try container.decode(Date.self, forKey: .expiresAt)
        to = try container.decode(DialTarget.self, forKey: .to)
        callerID = try container.decodeIfPresent(CallerID.self, forKey: .callerID)
        dialplan = try container.decodeIfPresent(DialplanTarget.self, forKey: .dialplan)
        timeoutSeconds = try container.decode(Int.self, forKey: .timeoutSeconds)
        guard Self.timeoutRange.contains(timeoutSeconds) else {
            throw DecodingError.dataCorruptedError(
                forKey: .timeoutSeconds, in: container, debugDescription: "out of range \(Self.timeoutRange)")
        }
        variables = try container.decodeIfPresent(ChannelVariables.self, forKey: .variables) ?? .empty
        metadata = try container.decodeIfPresent(ClientMetadata.self, forKey: .metadata) ?? .empty
        requestedBy = try container.decode(String.self, forKey: .requestedBy)
        requestID = try container.decodeIfPresent(String.self, forKey: .requestID)
        organizationID = try container.decodeIfPresent(OrganizationID.self, forKey: .organizationID) ?? .default
        if let url = try container.decodeIfPresent(String.self, forKey: .statusCallback) {
            let events = try container.decodeIfPresent([CallStatus].self, forKey: .statusCallbackEvents) ?? []
            do {
                statusCallback = try StatusCallback(url: url, events: Set(events))
            } catch {
                throw DecodingError.dataCorruptedError(
                    forKey: .statusCallback, in: container, debugDescription: "\(error)")
            }
        } else {
            statusCallback = nil
        }
        machineDetection = try container.decodeIfPresent(MachineDetection.self, forKey: .machineDetection)
        record = try container.decodeIfPresent(Bool.self, forKey: .record) ?? false
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(callID, forKey: .callID)
        try container.encode(requestedAt, forKey: .requestedAt)
        try container.encode(expiresAt, forKey: .expiresAt)
        try container.encode(to, forKey: .to)
        try container.encodeIfPresent(callerID, forKey: .callerID)
        try container.encodeIfPresent(dialplan, forKey: .dialplan)
        try container.encode(timeoutSeconds, forKey: .timeoutSeconds)
        try container.encode(variables, forKey: .variables)
        try container.encode(metadata, forKey: .metadata)
        try container.encode(requestedBy, forKey: .requestedBy)
        try container.encodeIfPresent(requestID, forKey: .requestID)
        try container.encode(organizationID, forKey: .organizationID)
        if let statusCallback {
            try container.encode(statusCallback.url, forKey: .statusCallback)
            try container.encode(statusCallback.events.map(\.rawValue).sorted(), forKey: .statusCallbackEvents)
        }
        try container.encodeIfPresent(machineDetection, forKey: .machineDetection)
        // Absent when false, so that a worker of the previous release still reads every command it can carry out.
        if record { try container.encode(true, forKey: .record) }
    }
}

/// A call's own status webhook: the URL and the statuses it is sent for (Twilio's `StatusCallback` and
/// `StatusCallbackEvent`). The gateway checks the URL against the webhook target policy; a decoder checks its form.
public struct StatusCallback: Hashable, Sendable {
    /// The URL the dialer POSTs signed status messages to.
    public var url: String
    /// The statuses sent; never empty (``defaultEvents`` when the client names none).
    public var events: Set<CallStatus>

    /// The statuses sent when the client names none: the call's end, whichever it is.
    public static let defaultEvents = CallStatus.terminal
    /// The longest URL accepted.
    public static let maximumURLLength = 2048

    /// Why a status callback is refused.
    public enum Problem: Error, Equatable, Sendable {
        /// Not an http(s) URL of at most 2,048 characters.
        case badURL
        /// `queued` was named: no message is ever sent for it (a call starts queued).
        case queuedEvent
    }

    /// Creates a callback; an empty `events` means ``defaultEvents``.
    public init(url: String, events: Set<CallStatus>) throws(Problem) {
        let lower = url.lowercased()
        guard url.utf8.count <= Self.maximumURLLength, lower.hasPrefix("https://") || lower.hasPrefix("http://")
        else { throw .badURL }
        guard !events.contains(.queued) else { throw .queuedEvent }
        self.url = url
        self.events = events.isEmpty ? Self.defaultEvents : events
    }
}

extension CallerID {
    enum CodingKeys: String, CodingKey {
        case name, number
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let name = try container.decodeIfPresent(String.self, forKey: .name)
        let number = try container.decode(String.self, forKey: .number)
        do {
            try self.init(name: name, number: number)
        } catch {
            throw DecodingError.dataCorruptedError(
                forKey: .number, in: container,
                debugDescription: error.errors.map { "\($0.field) \($0.message)" }.joined(separator: "; "))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(name, forKey: .name)
        try container.encode(number, forKey: .number)
    }
}

extension DialplanTarget {
    enum CodingKeys: String, CodingKey {
        case context, `extension`, priority
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let context = try container.decode(String.self, forKey: .context)
        let exten = try container.decode(String.self, forKey: .extension)
        let priority = try container.decode(Int.self, forKey: .priority)
        do {
            try self.init(context: context, extension: exten, priority: priority)
        } catch {
            throw DecodingError.dataCorruptedError(
                forKey: .context, in: container,
                debugDescription: error.errors.map { "\($0.field) \($0.message)" }.joined(separator: "; "))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(context, forKey: .context)
        try container.encode(`extension`, forKey: .extension)
        try container.encode(priority, forKey: .priority)
    }
}

/// Hang up a live call (`calls.control.v1`, key: call id). Every worker reads it; the one that owns the call acts.
public struct HangupCommand: Hashable, Sendable, Codable {
    /// The CloudEvents type of this message.
    public static let eventType = "com.outbound-dialer.call.hangup.v1"
    /// The call.
    public var callID: CallID
    /// When it was asked for.
    public var requestedAt: Date
    /// Who asked.
    public var requestedBy: String
    /// The gateway request id.
    public var requestID: String?

    /// Creates a hangup command.
    public init(callID: CallID, requestedAt: Date, requestedBy: String, requestID: String? = nil) {
        self.callID = callID
        self.requestedAt = requestedAt
        self.requestedBy = requestedBy
        self.requestID = requestID
    }

    enum CodingKeys: String, CodingKey {
        case callID = "call_id"
        case requestedAt = "requested_at"
        case requestedBy = "requested_by"
        case requestID = "request_id"
    }
}

/// Cancel a call that is still queued (`calls.control.v1`, key: call id): it must never be dialed.
///
/// Whichever worker reads it moves the call `queued → canceled` with a conditional update; if the call was
/// claimed meanwhile, the worker that owns it treats the cancel as a hangup.
public struct CancelCommand: Hashable, Sendable, Codable {
    /// The CloudEvents type of this message.
    public static let eventType = "com.outbound-dialer.call.cancel.v1"
    /// The call.
    public var callID: CallID
    /// When it was asked for.
    public var requestedAt: Date
    /// Who asked.
    public var requestedBy: String
    /// The gateway request id.
    public var requestID: String?

    /// Creates a cancel command.
    public init(callID: CallID, requestedAt: Date, requestedBy: String, requestID: String? = nil) {
        self.callID = callID
        self.requestedAt = requestedAt
        self.requestedBy = requestedBy
        self.requestID = requestID
    }

    enum CodingKeys: String, CodingKey {
        case callID = "call_id"
        case requestedAt = "requested_at"
        case requestedBy = "requested_by"
        case requestID = "request_id"
    }
}

/// A message of `calls.control.v1`; the CloudEvents `ce_type` header says which.
public enum ControlCommand: Hashable, Sendable {
    /// Hang up a live call.
    case hangup(HangupCommand)
    /// Cancel a queued call.
    case cancel(CancelCommand)

    /// The call it is about.
    public var callID: CallID {
        switch self {
        case .hangup(let command): command.callID
        case .cancel(let command): command.callID
        }
    }

    /// The CloudEvents type.
    public var eventType: String {
        switch self {
        case .hangup: HangupCommand.eventType
        case .cancel: CancelCommand.eventType
        }
    }

    /// Encodes the payload (without the type, which travels in the `ce_type` header).
    public func encoded() throws -> [UInt8] {
        switch self {
        case .hangup(let command): try WireCoding.encode(command)
        case .cancel(let command): try WireCoding.encode(command)
        }
    }

    /// Decodes a control message from its `ce_type` and payload.
    public static func decode(eventType: String, payload: some Collection<UInt8>) throws -> ControlCommand {
        switch eventType {
        case HangupCommand.eventType: .hangup(try WireCoding.decode(HangupCommand.self, from: payload))
        case CancelCommand.eventType: .cancel(try WireCoding.decode(CancelCommand.self, from: payload))
        default: throw WireError.unknownEventType(eventType)
        }
    }
}

/// A message that cannot be understood.
public enum WireError: Error, Hashable, Sendable {
    /// The `ce_type` is not one this version knows.
    case unknownEventType(String)
    /// A required header is missing.
    case missingHeader(String)
}
