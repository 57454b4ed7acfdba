import CallDomain
import CallStore
import Campaigns
import Foundation

/// A contact list as the API shows it.
struct ContactListResource: Encodable {
    var list: ContactList

    enum CodingKeys: String, CodingKey {
        case id, name, state, contacts, refused, error
        case rowsRead = "rows_read"
        case createdBy = "created_by"
        case createdAt = "created_at"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(list.id.lowercased, forKey: .id)
        try container.encode(list.name, forKey: .name)
        try container.encode(list.state.rawValue, forKey: .state)
        try container.encode(list.rowsRead, forKey: .rowsRead)
        try container.encode(list.contacts, forKey: .contacts)
        try container.encode(list.refused, forKey: .refused)
        try container.encode(list.error, forKey: .error)
        try container.encode(list.createdBy, forKey: .createdBy)
        try container.encode(list.createdAt, forKey: .createdAt)
    }
}

struct ContactListPage: Encodable {
    var contactLists: [ContactListResource]

    enum CodingKeys: String, CodingKey {
        case contactLists = "contact_lists"
    }
}

/// A refused line of an import.
struct ContactListErrorResource: Encodable {
    var error: ContactListError

    enum CodingKeys: String, CodingKey {
        case line, column, message, value
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(error.line, forKey: .line)
        try container.encode(error.column, forKey: .column)
        try container.encode(error.message, forKey: .message)
        try container.encode(error.value, forKey: .value)
    }
}

/// A do-not-call entry.
struct DoNotCallResource: Encodable {
    var entry: DoNotCallEntry

    enum CodingKeys: String, CodingKey {
        case phone, reason
        case campaignID = "campaign_id"
        case createdBy = "created_by"
        case createdAt = "created_at"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(entry.phone, forKey: .phone)
        try container.encode(entry.campaignID?.lowercased, forKey: .campaignID)
        try container.encode(entry.reason, forKey: .reason)
        try container.encode(entry.createdBy, forKey: .createdBy)
        try container.encode(entry.createdAt, forKey: .createdAt)
    }
}

/// What `POST /dnc` did.
struct DoNotCallAdded: Encodable {
    var numbers: Int
    var added: Int
}

/// The answer to a number check: whether it may be dialed, and the entries that forbid it.
struct DoNotCallCheck: Encodable {
    var phone: String
    var entries: [DoNotCallResource]

    enum CodingKeys: String, CodingKey {
        case phone, entries
        case onOrganizationList = "on_organization_list"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(phone, forKey: .phone)
        try container.encode(entries.contains { $0.entry.campaignID == nil }, forKey: .onOrganizationList)
        try container.encode(entries, forKey: .entries)
    }
}

/// A campaign with its settings and, when read alone, its progress.
struct CampaignResource: Encodable {
    var campaign: Campaign
    var progress: CampaignProgress?

    enum CodingKeys: String, CodingKey {
        case id, name, state, context, `extension`, priority, progress
        case listIDs = "list_ids"
        case callerID = "caller_id"
        case timeoutSeconds = "timeout_seconds"
        case callingWindows = "calling_windows"
        case startsAt = "starts_at"
        case endsAt = "ends_at"
        case maxCallsPerSecond = "max_calls_per_second"
        case maxLiveCalls = "max_live_calls"
        case retryRules = "retry_rules"
        case maxAttempts = "max_attempts"
        case machineDetection = "machine_detection"
        case record
        case createdBy = "created_by"
        case createdAt = "created_at"
        case startedAt = "started_at"
        case finishedAt = "finished_at"
    }

    enum CallerKeys: String, CodingKey {
        case name, number
    }

    func encode(to encoder: any Encoder) throws {
        let settings = campaign.settings
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(campaign.id.lowercased, forKey: .id)
        try container.encode(settings.name, forKey: .name)
        try container.encode(campaign.state.rawValue, forKey: .state)
        try container.encode(settings.listIDs.map(\.lowercased), forKey: .listIDs)
        if let callerID = settings.callerID {
            var caller = container.nestedContainer(keyedBy: CallerKeys.self, forKey: .callerID)
            try caller.encode(callerID.name, forKey: .name)
            try caller.encode(callerID.number, forKey: .number)
        } else {
            try container.encodeNil(forKey: .callerID)
        }
        try container.encode(settings.dialplan?.context, forKey: .context)
        try container.encode(settings.dialplan?.extension, forKey: .extension)
        try container.encode(settings.dialplan?.priority, forKey: .priority)
        try container.encode(settings.timeoutSeconds, forKey: .timeoutSeconds)
        try container.encode(settings.callingWindows, forKey: .callingWindows)
        try container.encode(settings.startsAt, forKey: .startsAt)
        try container.encode(settings.endsAt, forKey: .endsAt)
        try container.encode(settings.maxCallsPerSecond, forKey: .maxCallsPerSecond)
        try container.encode(settings.maxLiveCalls, forKey: .maxLiveCalls)
        try container.encode(settings.retryRules, forKey: .retryRules)
        try container.encode(settings.maxAttempts, forKey: .maxAttempts)
        try container.encode(settings.machineDetection, forKey: .machineDetection)
        try container.encode(settings.record, forKey: .record)
        try container.encode(campaign.createdBy, forKey: .createdBy)
        try container.encode(campaign.createdAt, forKey: .createdAt)
        try container.encode(campaign.startedAt, forKey: .startedAt)
        try container.encode(campaign.finishedAt, forKey: .finishedAt)
        try container.encodeIfPresent(progress.map(ProgressResource.init), forKey: .progress)
    }
}

/// A campaign's progress: contacts by state, done ones by disposition, attempts by outcome.
struct ProgressResource: Encodable {
    var progress: CampaignProgress

    enum CodingKeys: String, CodingKey {
        case contacts, pending, dialing, done, attempts, outcomes
        case remaining
        case nextAttemptAt = "next_attempt_at"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(progress.contacts, forKey: .contacts)
        try container.encode(progress.pending, forKey: .pending)
        try container.encode(progress.dialing, forKey: .dialing)
        try container.encode(progress.pending + progress.dialing, forKey: .remaining)
        try container.encode(progress.done, forKey: .done)
        try container.encode(progress.attempts, forKey: .attempts)
        try container.encode(progress.outcomes, forKey: .outcomes)
        try container.encode(progress.nextAttemptAt, forKey: .nextAttemptAt)
    }
}

struct CampaignPage: Encodable {
    var campaigns: [CampaignResource]
}

/// A campaign contact with its attempts.
struct CampaignContactResource: Encodable {
    var contact: CampaignContact
    var attempts: [CampaignAttempt]

    enum CodingKeys: String, CodingKey {
        case phone, state, attempts, disposition, history
        case contactID = "contact_id"
        case timeZone = "time_zone"
        case nextAttemptAt = "next_attempt_at"
        case lastOutcome = "last_outcome"
    }

    enum AttemptKeys: String, CodingKey {
        case attempt, outcome
        case callID = "call_id"
        case dispatchedAt = "dispatched_at"
        case endedAt = "ended_at"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(contact.contactID.lowercased, forKey: .contactID)
        try container.encode(contact.phone, forKey: .phone)
        try container.encode(contact.timeZone, forKey: .timeZone)
        try container.encode(contact.state, forKey: .state)
        try container.encode(contact.attempts, forKey: .attempts)
        try container.encode(contact.nextAttemptAt, forKey: .nextAttemptAt)
        try container.encode(contact.lastOutcome, forKey: .lastOutcome)
        try container.encode(contact.disposition, forKey: .disposition)
        var history = container.nestedUnkeyedContainer(forKey: .history)
        for attempt in attempts {
            var entry = history.nestedContainer(keyedBy: AttemptKeys.self)
            try entry.encode(attempt.attempt, forKey: .attempt)
            try entry.encode(attempt.callID.description, forKey: .callID)
            try entry.encode(attempt.dispatchedAt, forKey: .dispatchedAt)
            try entry.encode(attempt.outcome, forKey: .outcome)
            try entry.encode(attempt.endedAt, forKey: .endedAt)
        }
    }
}

/// One page of a listing: its items under `key`, and `next_after`, the `after` of the next page (null on the last).
struct CursorPage<Item: Encodable, Cursor: Encodable>: Encodable {
    var key: String
    var items: [Item]
    var next: Cursor?

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(items, forKey: Key(stringValue: key))
        try container.encode(next, forKey: Key(stringValue: "next_after"))
    }
}
