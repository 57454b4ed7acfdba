import CallDomain
import Campaigns
import Foundation

/// A contact list as stored: its import's state and report.
public struct ContactList: Sendable, Hashable {
    /// Whether its import finished.
    public enum State: String, Sendable, Hashable, Codable {
        /// Rows are being read.
        case importing
        /// Imported: usable by campaigns.
        case ready
        /// The import stopped (see `error`); nothing of it is usable.
        case failed
    }

    /// Stable id.
    public var id: UUID
    /// Its organization.
    public var organizationID: OrganizationID
    /// Its name.
    public var name: String
    /// Its import's state.
    public var state: State
    /// Lines read (without the header).
    public var rowsRead: Int
    /// Contacts accepted.
    public var contacts: Int
    /// Lines refused (see the errors).
    public var refused: Int
    /// Why the import failed, when it did.
    public var error: String?
    /// Who imported it.
    public var createdBy: String
    /// When.
    public var createdAt: Date
}

/// A contact to store in a list being imported.
public struct NewContact: Sendable, Hashable {
    /// Its line in the file.
    public var line: Int
    /// Its number, E.164.
    public var phone: String
    /// Its IANA time zone.
    public var timeZone: String
    /// Its custom fields as a JSON object.
    public var fieldsJSON: String

    /// Creates a contact.
    public init(line: Int, phone: String, timeZone: String, fieldsJSON: String) {
        self.line = line
        self.phone = phone
        self.timeZone = timeZone
        self.fieldsJSON = fieldsJSON
    }
}

/// A refused line of an import.
public struct ContactListError: Sendable, Hashable {
    /// The line in the file (the header is line 1).
    public var line: Int
    /// The column at fault, when one is.
    public var column: String?
    /// Why.
    public var message: String
    /// The value refused (truncated).
    public var value: String?

    /// Creates a refused line.
    public init(line: Int, column: String?, message: String, value: String?) {
        self.line = line
        self.column = column
        self.message = message
        self.value = value
    }
}

/// A do-not-call entry: organization-wide (`campaignID == nil`) or for one campaign.
public struct DoNotCallEntry: Sendable, Hashable {
    /// The number, E.164.
    public var phone: String
    /// The campaign it applies to, or `nil` for the whole organization.
    public var campaignID: UUID?
    /// Why it was added.
    public var reason: String?
    /// Who added it.
    public var createdBy: String
    /// When.
    public var createdAt: Date
}

/// A campaign's lifecycle: draft → running ⇄ paused → completed (everything attempted as the rules say, or its end
/// passed) or stopped (by a user).
public enum CampaignState: String, Sendable, Hashable, Codable, CaseIterable {
    /// Being set up; nothing is dialed.
    case draft
    /// Dialing.
    case running
    /// No new calls; calls in flight end normally.
    case paused
    /// Every contact is done, or the campaign's end passed.
    case completed
    /// Stopped by a user for good.
    case stopped

    /// Whether the campaign can never run again.
    public var isFinal: Bool { self == .completed || self == .stopped }
}

/// What a campaign dials and how: everything a user sets.
public struct CampaignSettings: Sendable, Hashable {
    /// Its name.
    public var name: String
    /// The lists it dials (their contacts, a phone once).
    public var listIDs: [UUID]
    /// The caller id presented.
    public var callerID: CallerID?
    /// Where answered calls go in the dial plan (`nil`: into the dialer's Stasis application, as calls without one).
    public var dialplan: DialplanTarget?
    /// How long a call rings before it counts as not answered.
    public var timeoutSeconds: Int
    /// When contacts may be called, in each contact's local time.
    public var callingWindows: CallingWindows
    /// No call before this instant.
    public var startsAt: Date?
    /// No call after this instant; the campaign completes then.
    public var endsAt: Date?
    /// New calls per second at most.
    public var maxCallsPerSecond: Double
    /// Calls in flight at once at most.
    public var maxLiveCalls: Int
    /// When to try a contact again, by outcome.
    public var retryRules: RetryRules
    /// Attempts per contact at most.
    public var maxAttempts: Int
    /// Answering machine detection on every call of the campaign (`nil`: none).
    public var machineDetection: MachineDetection?
    /// Whether every answered call of the campaign is recorded.
    public var record: Bool

    /// Creates settings.
    public init(
        name: String, listIDs: [UUID], callerID: CallerID?, dialplan: DialplanTarget?, timeoutSeconds: Int,
        callingWindows: CallingWindows, startsAt: Date?, endsAt: Date?, maxCallsPerSecond: Double, maxLiveCalls: Int,
        retryRules: RetryRules, maxAttempts: Int, machineDetection: MachineDetection? = nil, record: Bool = false
    ) {
        self.name = name
        self.listIDs = listIDs
        self.callerID = callerID
        self.dialplan = dialplan
        self.timeoutSeconds = timeoutSeconds
        self.callingWindows = callingWindows
        self.startsAt = startsAt
        self.endsAt = endsAt
        self.maxCallsPerSecond = maxCallsPerSecond
        self.maxLiveCalls = maxLiveCalls
        self.retryRules = retryRules
        self.maxAttempts = maxAttempts
        self.machineDetection = machineDetection
        self.record = record
    }
}

/// A campaign as stored.
public struct Campaign: Sendable, Hashable {
    /// Stable id.
    public var id: UUID
    /// Its organization.
    public var organizationID: OrganizationID
    /// Where it is in its lifecycle.
    public var state: CampaignState
    /// What it dials and how.
    public var settings: CampaignSettings
    /// Who created it.
    public var createdBy: String
    /// When.
    public var createdAt: Date
    /// When it first started.
    public var startedAt: Date?
    /// When it completed or stopped.
    public var finishedAt: Date?
}

/// A campaign's contacts counted by where they are.
public struct CampaignProgress: Sendable, Hashable {
    /// Contacts in the campaign.
    public var contacts: Int
    /// Waiting for their first or next attempt.
    public var pending: Int
    /// With an attempt in flight.
    public var dialing: Int
    /// Done, by disposition (the last outcome, or `do_not_call`).
    public var done: [String: Int]
    /// Attempts made in all.
    public var attempts: Int
    /// Ended attempts by outcome.
    public var outcomes: [String: Int]
    /// When the next pending contact is due.
    public var nextAttemptAt: Date?
}

/// A contact of a campaign: where it stands.
public struct CampaignContact: Sendable, Hashable {
    /// The contact.
    public var contactID: UUID
    /// Its number.
    public var phone: String
    /// Its time zone.
    public var timeZone: String
    /// `pending`, `dialing` or `done`.
    public var state: String
    /// Attempts made.
    public var attempts: Int
    /// When it is next due (pending only).
    public var nextAttemptAt: Date?
    /// The outcome of its last ended attempt.
    public var lastOutcome: String?
    /// Its final disposition (done only).
    public var disposition: String?
}

/// One attempt of a campaign contact.
public struct CampaignAttempt: Sendable, Hashable {
    /// The contact.
    public var contactID: UUID
    /// 1, 2, ...
    public var attempt: Int
    /// Its call.
    public var callID: CallID
    /// When the command was published.
    public var dispatchedAt: Date
    /// How it ended (`nil` while in flight).
    public var outcome: String?
    /// When it ended.
    public var endedAt: Date?
}

/// A contact picked to dial now: everything its originate command needs.
public struct CampaignDial: Sendable, Hashable {
    /// The contact.
    public var contactID: UUID
    /// Its number.
    public var phone: String
    /// Its custom fields (passed on as the call's metadata).
    public var fields: [String: String]
    /// This attempt's number (1 for the first).
    public var attempt: Int
    /// The call: derived from (campaign, contact, attempt), so a repeated dispatch names the same call.
    public var callID: CallID
}

/// A running campaign leased by a scheduler.
public struct LeasedCampaign: Sendable, Hashable {
    /// The campaign.
    public var campaign: Campaign
    /// Until when the lease holds unless renewed.
    public var leaseUntil: Date
}
