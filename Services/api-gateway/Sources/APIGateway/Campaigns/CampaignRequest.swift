import CallDomain
import CallStore
import Campaigns
import Foundation

/// The body of `POST /campaigns` and `PUT /campaigns/{id}`, validated into ``CampaignSettings``.
///
/// ```json
/// {"name": "Renewals", "list_ids": ["…"], "caller_id": {"name": "ACME", "number": "+15550100"},
///  "context": "outbound", "extension": "s", "priority": 1, "timeout_seconds": 30,
///  "calling_windows": {"monday": [{"start": "08:00", "end": "21:00"}], …},
///  "starts_at": "…", "ends_at": "…", "max_calls_per_second": 5, "max_live_calls": 20,
///  "retry_rules": {"busy": {"delay_seconds": 600, "max_retries": 3}, …}, "max_attempts": 4,
///  "machine_detection": "detect", "record": true}
/// ```
///
/// Absent `calling_windows` are 08:00–21:00 every day; absent `retry_rules` are ``RetryRules/standard``.
enum CampaignRequest {
    static let fields: Set<String> = [
        "name", "list_ids", "caller_id", "context", "extension", "priority", "timeout_seconds", "calling_windows",
        "starts_at", "ends_at", "max_calls_per_second", "max_live_calls", "retry_rules", "max_attempts",
        "machine_detection", "record",
    ]

    /// The most lists a campaign dials.
    static let maximumLists = 20

    static func settings(
        from body: [String: JSONValue], allowedContexts: Set<String>, defaultTimeoutSeconds: Int
    ) throws -> CampaignSettings {
        var reader = JSONObjectReader(body)
        reader.refuseUnknown(fields)
        let name = reader.string("name", required: true)
        if let name, name.isEmpty || name.count > 200 || name.unicodeScalars.contains(where: { $0.value < 0x20 }) {
            reader.fail("name", "must be 1 to 200 printable characters")
        }
        var listIDs: [UUID] = []
        if let texts = reader.strings("list_ids", required: true) {
            let ids = texts.compactMap { UUID(uuidString: $0) }
            if ids.count != texts.count {
                reader.fail("list_ids", "must be contact list ids (UUIDs)")
            } else if ids.isEmpty || ids.count > maximumLists || Set(ids).count != ids.count {
                reader.fail("list_ids", "must name 1 to \(maximumLists) different contact lists")
            } else {
                listIDs = ids
            }
        }
        let callerID = CallRequest.readCallerID(&reader)
        let dialplan = CallRequest.readDialplan(&reader, allowedContexts: allowedContexts)
        let timeout =
            reader.int("timeout_seconds", range: OriginateCommand.timeoutRange) ?? defaultTimeoutSeconds
        let windows = decoded(CallingWindows.self, "calling_windows", &reader) ?? .standard
        let startsAt = timestamp("starts_at", &reader)
        let endsAt = timestamp("ends_at", &reader)
        if let startsAt, let endsAt, endsAt <= startsAt {
            reader.fail("ends_at", "must be after starts_at")
        }
        let rate = number("max_calls_per_second", range: 0.01...1000, &reader)
        let live = reader.int("max_live_calls", range: 1...10_000, required: true)
        let rules = decoded(RetryRules.self, "retry_rules", &reader) ?? .standard
        let attempts = reader.int("max_attempts", range: 1...20) ?? 3
        let machineDetection = CallRequest.readMachineDetection(&reader)
        let record = reader.bool("record") ?? false
        guard reader.errors.isEmpty, let name, let rate, let live else { throw Problem.validation(reader.errors) }
        return CampaignSettings(
            name: name, listIDs: listIDs, callerID: callerID, dialplan: dialplan, timeoutSeconds: timeout,
            callingWindows: windows, startsAt: startsAt, endsAt: endsAt, maxCallsPerSecond: rate, maxLiveCalls: live,
            retryRules: rules, maxAttempts: attempts, machineDetection: machineDetection, record: record)
    }

    /// A nested object decoded by its domain type, whose own validation message is the field's error.
    private static func decoded<Value: Decodable>(
        _ type: Value.Type, _ key: String, _ reader: inout JSONObjectReader
    ) -> Value? {
        guard let object = reader.object(key) else { return nil }
        do {
            return try WireCoding.decode(type, from: try WireCoding.encode(JSONValue.object(object)))
        } catch let error as DecodingError {
            reader.fail(key, Self.message(of: error))
        } catch {
            reader.fail(key, "\(error)")
        }
        return nil
    }

    private static func message(of error: DecodingError) -> String {
        switch error {
        case .dataCorrupted(let context), .typeMismatch(_, let context), .valueNotFound(_, let context),
            .keyNotFound(_, let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return path.isEmpty ? context.debugDescription : "\(path): \(context.debugDescription)"
        @unknown default:
            return "is not valid"
        }
    }

    private static func timestamp(_ key: String, _ reader: inout JSONObjectReader) -> Date? {
        guard let text = reader.string(key) else { return nil }
        guard let date = WireCoding.parseTimestamp(text) else {
            reader.fail(key, "must be an RFC 3339 timestamp")
            return nil
        }
        return date
    }

    private static func number(_ key: String, range: ClosedRange<Double>, _ reader: inout JSONObjectReader) -> Double? {
        switch reader.object[key] {
        case nil, .null?:
            reader.fail(key, "is required")
        case .number(let value)? where range.contains(value):
            return value
        default:
            reader.fail(key, "must be a number from \(range.lowerBound) to \(range.upperBound)")
        }
        return nil
    }
}
