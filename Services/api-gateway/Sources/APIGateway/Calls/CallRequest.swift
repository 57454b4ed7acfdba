import CallDomain
import Crypto
import Foundation
import Webhooks

/// A validated `POST /api/v1/calls` body.
///
/// Every field goes through the domain's allow-list types (`DialTarget`, `CallerID`, `DialplanTarget`,
/// `ChannelVariables`, `ClientMetadata`), and every error of every field is collected before answering, so a
/// client fixes its request in one round trip.
public struct CallRequest: Sendable, Hashable {
    /// The number to dial.
    public var to: DialTarget
    /// The presented caller id.
    public var callerID: CallerID?
    /// Where an answered call goes (context and extension given together; priority defaults to 1).
    public var dialplan: DialplanTarget?
    /// Ring timeout in seconds.
    public var timeoutSeconds: Int
    /// Channel variables.
    public var variables: ChannelVariables
    /// Client metadata.
    public var metadata: ClientMetadata
    /// Time to live of the command in seconds.
    public var ttlSeconds: Int
    /// The call's own status webhook.
    public var statusCallback: StatusCallback?
    /// Answering machine detection; none when `nil`.
    public var machineDetection: MachineDetection?
    /// Whether the answered call is recorded.
    public var record: Bool

    /// The body fields this endpoint knows.
    static let fields: Set<String> = [
        "to", "caller_id", "context", "extension", "priority", "timeout_seconds", "variables", "metadata",
        "ttl_seconds", "status_callback", "status_callback_events", "machine_detection",
        "record",
    ]
    /// Accepted `ttl_seconds` (and `CALL_TTL_SECONDS`).
    public static let ttlRange = 10...86_400

    /// Validates a parsed body.
    ///
    /// - Throws: ``Problem`` 422 listing every invalid, missing or unknown field.
    init(
        body: [String: JSONValue], allowedContexts: Set<String>, defaultTimeoutSeconds: Int, defaultTTLSeconds: Int,
        webhookPolicy: WebhookTargetPolicy = .production
    ) throws {
        var reader = JSONObjectReader(body)
        reader.refuseUnknown(Self.fields)

        var to: DialTarget?
        if let raw = reader.string("to", required: true) {
            do { to = try DialTarget(raw) } catch { reader.add([error]) }
        }

        let callerID = Self.readCallerID(&reader)
        let dialplan = Self.readDialplan(&reader, allowedContexts: allowedContexts)

        let timeout =
            reader.int(
                "timeout_seconds",
                range: OriginateCommand.timeoutRange.lowerBound...OriginateCommand.timeoutRange.upperBound)
            ?? defaultTimeoutSeconds

        var variables = ChannelVariables.empty
        if let raw = reader.object("variables") {
            var strings: [String: String] = [:]
            for (name, value) in raw.sorted(by: { $0.key < $1.key }) {
                if case .string(let text) = value {
                    strings[name] = text
                } else {
                    reader.add([
                        FieldError(
                            field: "variables.\(JSONObjectReader.printable(name))", message: "must be a string")
                    ])
                }
            }
            do { variables = try ChannelVariables(strings) } catch { reader.add(error.errors) }
        }

        var metadata = ClientMetadata.empty
        if let raw = reader.object("metadata") {
            do { metadata = try ClientMetadata(raw) } catch { reader.add([error]) }
        }

        let ttl = reader.int("ttl_seconds", range: Self.ttlRange) ?? defaultTTLSeconds
        let statusCallback = Self.readStatusCallback(&reader, policy: webhookPolicy)
        let machineDetection = Self.readMachineDetection(&reader)
        let record = reader.bool("record") ?? false

        guard reader.errors.isEmpty, let to else { throw Problem.validation(reader.errors) }
        self.to = to
        self.callerID = callerID
        self.dialplan = dialplan
        self.timeoutSeconds = timeout
        self.variables = variables
        self.metadata = metadata
        self.ttlSeconds = ttl
        self.statusCallback = statusCallback
        self.machineDetection = machineDetection
        self.record = record
    }

    /// `machine_detection` is a mode (`off`, `detect`, `detect_message_end`) or an object with `mode`, `on_machine`
    /// (`hangup`, the default, or `continue`) and any of `AMD()`'s timings.
    static func readMachineDetection(_ reader: inout JSONObjectReader) -> MachineDetection? {
        let modes = MachineDetection.Mode.allCases.map(\.rawValue).joined(separator: ", ")
        switch reader.object["machine_detection"] {
        case nil, .null?, .string("off")?:
            return nil
        case .string(let name)?:
            guard let mode = MachineDetection.Mode(rawValue: name) else {
                reader.fail("machine_detection", "must be one of off, \(modes), or an object with mode")
                return nil
            }
            return try? MachineDetection(mode: mode)
        case .object(let fields)?:
            var nested = JSONObjectReader(fields, path: "machine_detection")
            nested.refuseUnknown(Set(["mode", "on_machine"] + MachineDetection.Timing.allCases.map(\.rawValue)))
            let modeName = nested.string("mode", required: true)
            let mode = modeName.flatMap(MachineDetection.Mode.init(rawValue:))
            if modeName != nil, mode == nil { nested.fail("mode", "must be one of \(modes)") }
            let policyName = nested.string("on_machine")
            let policy = policyName.flatMap(MachineDetection.MachinePolicy.init(rawValue:))
            if policyName != nil, policy == nil {
                let policies = MachineDetection.MachinePolicy.allCases.map(\.rawValue).joined(separator: ", ")
                nested.fail("on_machine", "must be one of \(policies)")
            }
            var timings: [MachineDetection.Timing: Int] = [:]
            for timing in MachineDetection.Timing.allCases {
                timings[timing] = nested.int(timing.rawValue, range: timing.range)
            }
            reader.add(nested.errors)
            guard nested.errors.isEmpty, let mode else { return nil }
            return try? MachineDetection(mode: mode, onMachine: policy ?? .hangup, timings: timings)
        default:
            reader.fail("machine_detection", "must be one of off, \(modes), or an object with mode")
            return nil
        }
    }

    /// `status_callback` (a webhook URL) and `status_callback_events` (statuses; the final ones when absent), as
    /// Twilio's `StatusCallback` and `StatusCallbackEvent`.
    private static func readStatusCallback(
        _ reader: inout JSONObjectReader, policy: WebhookTargetPolicy
    )
        -> StatusCallback?
    {
        let url = reader.string("status_callback")
        let names = reader.strings("status_callback_events")
        if names != nil, url == nil, reader.errors.allSatisfy({ $0.field != "status_callback" }) {
            reader.fail("status_callback_events", "needs status_callback")
        }
        if let names, Set(names).count != names.count {
            reader.fail("status_callback_events", "must not name a status twice")
            return nil
        }
        var statuses = Set<CallStatus>()
        for name in names ?? [] {
            guard let status = CallStatus(rawValue: name), status != .queued else {
                let allowed = WebhookEventType.subscribable.compactMap(\.status?.rawValue).joined(separator: ", ")
                reader.fail("status_callback_events", "must name call statuses (\(allowed))")
                return nil
            }
            statuses.insert(status)
        }
        guard let url else { return nil }
        do {
            _ = try WebhookURL(url, policy: policy)
        } catch {
            reader.fail("status_callback", error.description)
            return nil
        }
        return try? StatusCallback(url: url, events: statuses)
    }

    /// `caller_id` is `{"name": ..., "number": ...}` or just the number as a string.
    static func readCallerID(_ reader: inout JSONObjectReader) -> CallerID? {
        switch reader.object["caller_id"] {
        case nil, .null?:
            return nil
        case .string(let number)?:
            do { return try CallerID(name: nil, number: number) } catch {
                reader.add(error.errors)
                return nil
            }
        case .object(let fields)?:
            var nested = JSONObjectReader(fields, path: "caller_id")
            nested.refuseUnknown(["name", "number"])
            let name = nested.string("name")
            let number = nested.string("number", required: true)
            reader.add(nested.errors)
            guard let number, nested.errors.isEmpty else { return nil }
            do { return try CallerID(name: name, number: number) } catch {
                reader.add(error.errors)
                return nil
            }
        default:
            reader.fail("caller_id", "must be an object {name, number} or a number string")
            return nil
        }
    }

    /// `context` and `extension` come together; `priority` (default 1) only with them.
    static func readDialplan(
        _ reader: inout JSONObjectReader, allowedContexts: Set<String>
    )
        -> DialplanTarget?
    {
        let contextGiven = reader.has("context")
        let extensionGiven = reader.has("extension")
        guard contextGiven || extensionGiven || reader.has("priority") else { return nil }
        let errorsBefore = reader.errors.count
        let context = reader.string("context")
        let exten = reader.string("extension")
        let priority = reader.int("priority", range: 1...99_999)
        if !contextGiven { reader.fail("context", "is required when extension or priority is given") }
        if !extensionGiven { reader.fail("extension", "is required when context or priority is given") }
        if let context {
            do { try DialplanTarget.validateContext(context, allowed: allowedContexts) } catch { reader.add([error]) }
        }
        if let exten {
            do { try DialplanTarget.validateExtension(exten) } catch { reader.add([error]) }
        }
        guard reader.errors.count == errorsBefore, let context, let exten else { return nil }
        return try? DialplanTarget(context: context, extension: exten, priority: priority ?? 1)
    }

    // MARK: - Command and fingerprint

    /// The command for this request of `caller`, in the caller's organization.
    func command(callID: CallID, requestedAt: Date, by caller: Caller, requestID: String) -> OriginateCommand {
        OriginateCommand(
            callID: callID, requestedAt: requestedAt, expiresAt: requestedAt.addingTimeInterval(Double(ttlSeconds)),
            to: to, callerID: callerID, dialplan: dialplan, timeoutSeconds: timeoutSeconds, variables: variables,
            metadata: metadata, requestedBy: caller.name, requestID: requestID, organizationID: caller.organizationID,
            statusCallback: statusCallback, machineDetection: machineDetection, record: record)
    }

    /// The canonical form of the validated request: defaults applied, keys sorted.
    var canonical: Canonical {
        Canonical(
            to: to, callerID: callerID, dialplan: dialplan, timeoutSeconds: timeoutSeconds, variables: variables,
            metadata: metadata, ttlSeconds: ttlSeconds, statusCallback: statusCallback?.url,
            statusCallbackEvents: statusCallback.map { $0.events.map(\.rawValue).sorted() },
            machineDetection: machineDetection, record: record)
    }

    /// SHA-256 (hex) of the canonical form of the validated request, so that formatting, key order and spelled-out
    /// defaults do not make two identical requests differ.
    var fingerprint: String {
        WireCoding.hex(SHA256.hash(data: (try? canonical.jsonBytes()) ?? []))
    }

    /// The request as its fingerprint sees it. `JSONEncoder` wrote it before; the writer gives the same bytes (the
    /// tests keep that encoding and compare), so keys reserved before and after an upgrade still match.
    struct Canonical: JSONTextWritable {
        var to: DialTarget
        var callerID: CallerID?
        var dialplan: DialplanTarget?
        var timeoutSeconds: Int
        var variables: ChannelVariables
        var metadata: ClientMetadata
        var ttlSeconds: Int
        var statusCallback: String?
        var statusCallbackEvents: [String]?
        var machineDetection: MachineDetection?
        var record: Bool

        func write(to json: inout JSONTextWriter) throws {
            json.beginObject()
            try json.field("caller_id", callerID)
            try json.field("dialplan", dialplan)
            if let machineDetection { try json.field("machine_detection", machineDetection) }
            try json.field("metadata", metadata)
            if record { json.field("record", true) }
            if let statusCallback { json.field("status_callback", statusCallback) }
            if let statusCallbackEvents {
                json.key("status_callback_events")
                json.beginArray()
                for event in statusCallbackEvents { json.string(event) }
                json.endArray()
            }
            json.field("timeout_seconds", timeoutSeconds)
            json.field("to", to.value)
            json.field("ttl_seconds", ttlSeconds)
            try json.field("variables", variables)
            json.endObject()
        }
    }
}
