import CallDomain
import CallStore
import Campaigns
import Foundation
import PostgresNIO
import TestSupport
import Testing

/// Campaigns in the store against a real PostgreSQL: the lay-out of contacts in their calling windows, dispatch
/// (do-not-call, closed windows, one attempt in flight), call ends by the retry rules, leases and completion. Every
/// instant is given, as the scheduler's clock gives them.
@Suite struct CampaignStoreTests {
    static let actor = AuditActor(name: "tester")
    static let owner = "scheduler-a"

    /// 2026-03-08 06:30 UTC: 01:30 in New York (EST, the night of the change to EDT at 02:00), 06:30 in London,
    /// 12:00 in Kolkata.
    static let dstMorning = date("2026-03-08T06:30:00Z")

    static func date(_ text: String) -> Date { WireCoding.parseTimestamp(text)! }

    /// A ready list of the numbers given (E.164) with their zones.
    static func list(
        _ store: CallStore, in organization: OrganizationID, _ contacts: [(String, String)], name: String = "list"
    ) async throws -> ContactList {
        let list = try await store.createContactList(name: name, in: organization, by: actor)
        let rows = try contacts.enumerated().map { index, contact in
            NewContact(
                line: index + 2, phone: try PhoneNumber(parsing: contact.0, defaultRegion: nil).e164,
                timeZone: contact.1, fieldsJSON: #"{"row":"\#(index)"}"#)
        }
        try await store.appendContacts(rows, to: list.id)
        return try await store.finishContactImport(list: list.id, rowsRead: rows.count, error: nil)
    }

    static func settings(
        _ lists: [ContactList], rate: Double = 100, live: Int = 100, rules: RetryRules = .standard, attempts: Int = 3,
        windows: CallingWindows = .standard, endsAt: Date? = nil
    ) -> CampaignSettings {
        CampaignSettings(
            name: "test", listIDs: lists.map(\.id), callerID: nil, dialplan: nil, timeoutSeconds: 30,
            callingWindows: windows, startsAt: nil, endsAt: endsAt, maxCallsPerSecond: rate, maxLiveCalls: live,
            retryRules: rules, maxAttempts: attempts)
    }

    /// Creates, starts and leases a campaign at `now`.
    static func running(
        _ store: CallStore, _ settings: CampaignSettings, in organization: OrganizationID, at now: Date
    ) async throws -> Campaign {
        let draft = try await store.createCampaign(settings, in: organization, by: actor)
        let started = try await store.changeCampaignState(
            id: draft.id, in: organization, to: .running, at: now, by: actor)
        let leased = try await store.leaseCampaigns(owner: owner, limit: 10, lease: .seconds(7 * 86_400), at: now)
        #expect(leased.map(\.campaign.id).contains(started.id))
        return started
    }

    static func contacts(_ store: CallStore, _ campaign: Campaign) async throws -> [String: CampaignContact] {
        let all = try #require(
            try await store.campaignContacts(id: campaign.id, in: campaign.organizationID, after: nil, limit: 1000))
        return Dictionary(uniqueKeysWithValues: all.map { ($0.phone, $0) })
    }

    @Test(
        "starting lays each contact out at its own zone's first opening (across a DST change); a number in two lists once"
    )
    func layOut() async throws {
        try await TestDatabase.withStore { store, _ in
            let organization = try await store.createOrganization(name: "o-\(UUID())", by: Self.actor).id
            let first = try await Self.list(
                store, in: organization,
                [("+12125550101", "America/New_York"), ("+442079460018", "Europe/London")])
            let second = try await Self.list(
                store, in: organization,
                [("+919876543210", "Asia/Kolkata"), ("+12125550101", "America/New_York")], name: "second")
            let campaign = try await Self.running(
                store, Self.settings([first, second]), in: organization, at: Self.dstMorning)
            let contacts = try await Self.contacts(store, campaign)
            #expect(contacts.count == 3)
            // New York: 08:00 EDT (UTC-4, the clocks went forward at 02:00) = 12:00 UTC.
            #expect(contacts["+12125550101"]?.nextAttemptAt == Self.date("2026-03-08T12:00:00Z"))
            #expect(contacts["+442079460018"]?.nextAttemptAt == Self.date("2026-03-08T08:00:00Z"))
            // Kolkata is open (12:00 IST): due now.
            #expect(contacts["+919876543210"]?.nextAttemptAt == Self.dstMorning)
            #expect(contacts.values.allSatisfy { $0.state == "pending" && $0.attempts == 0 })
            // A started campaign's lists cannot go away, nor can it start twice.
            await #expect(throws: CampaignStoreError.listInUse) {
                _ = try await store.deleteContactList(id: first.id, in: organization, by: Self.actor)
            }
            await #expect(throws: CampaignStoreError.invalidTransition(from: .running, to: .running)) {
                _ = try await store.changeCampaignState(
                    id: campaign.id, in: organization, to: .running, at: Self.dstMorning, by: Self.actor)
            }
        }
    }

    @Test(
        "dispatch: due contacts in an open window only, under derived call ids, never one with an attempt in flight; a number put on a do-not-call list is never dialed after"
    )
    func dispatch() async throws {
        try await TestDatabase.withStore { store, _ in
            let organization = try await store.createOrganization(name: "o-\(UUID())", by: Self.actor).id
            let list = try await Self.list(
                store, in: organization,
                [
                    ("+919876543210", "Asia/Kolkata"), ("+919876543211", "Asia/Kolkata"),
                    ("+919876543212", "Asia/Kolkata"), ("+12125550101", "America/New_York"),
                ])
            let campaign = try await Self.running(store, Self.settings([list]), in: organization, at: Self.dstMorning)
            // One number goes on the organization's list, one on the campaign's, while it runs.
            #expect(
                try await store.addDoNotCall(
                    ["+919876543211"], campaign: nil, reason: "asked", in: organization, by: Self.actor) == 1)
            #expect(
                try await store.addDoNotCall(
                    ["+919876543212"], campaign: campaign.id, reason: nil, in: organization, by: Self.actor) == 1)
            let first = try await store.dispatchDueContacts(
                of: campaign, owner: Self.owner, limit: 10, at: Self.dstMorning)
            #expect(!first.leaseLost)
            #expect(first.doNotCall == 2)
            #expect(first.dials.map(\.phone) == ["+919876543210"])
            let dial = try #require(first.dials.first)
            #expect(dial.attempt == 1)
            #expect(dial.callID == .campaignAttempt(campaign: campaign.id, contact: dial.contactID, attempt: 1))
            #expect(dial.fields == ["row": "0"])
            // The same instant again: nothing (the dialing contact is not picked twice; New York is not due).
            let second = try await store.dispatchDueContacts(
                of: campaign, owner: Self.owner, limit: 10, at: Self.dstMorning)
            #expect(second.dials.isEmpty && second.doNotCall == 0)
            let contacts = try await Self.contacts(store, campaign)
            #expect(contacts["+919876543211"]?.disposition == "do_not_call")
            #expect(contacts["+919876543212"]?.disposition == "do_not_call")
            #expect(contacts["+919876543210"]?.state == "dialing")
            #expect(try await store.dialingContacts(campaign: campaign.id).count == 1)
            // Another scheduler holds nothing: it dispatches nothing.
            let stranger = try await store.dispatchDueContacts(
                of: campaign, owner: "scheduler-b", limit: 10, at: Self.dstMorning)
            #expect(stranger.leaseLost && stranger.dials.isEmpty)
            // New York at 12:00 UTC (08:00 EDT) is due and open.
            let later = try await store.dispatchDueContacts(
                of: campaign, owner: Self.owner, limit: 10, at: Self.date("2026-03-08T12:00:00Z"))
            #expect(later.dials.map(\.phone) == ["+12125550101"])
        }
    }

    @Test("dispatch stays within the campaign's max live calls, counting the contacts already dialing")
    func liveLimit() async throws {
        try await TestDatabase.withStore { store, _ in
            let organization = try await store.createOrganization(name: "o-\(UUID())", by: Self.actor).id
            let list = try await Self.list(
                store, in: organization,
                [
                    ("+919876543210", "Asia/Kolkata"), ("+919876543211", "Asia/Kolkata"),
                    ("+919876543212", "Asia/Kolkata"),
                ])
            let campaign = try await Self.running(
                store, Self.settings([list], live: 2), in: organization, at: Self.dstMorning)
            let first = try await store.dispatchDueContacts(
                of: campaign, owner: Self.owner, limit: 10, at: Self.dstMorning)
            #expect(first.dials.count == 2 && !first.atLiveLimit)
            let second = try await store.dispatchDueContacts(
                of: campaign, owner: Self.owner, limit: 10, at: Self.dstMorning)
            #expect(second.dials.isEmpty && second.atLiveLimit)
            _ = try await store.recordCampaignCallEnds(
                [.init(callID: try #require(first.dials.first).callID, outcome: .completed)], at: Self.dstMorning + 5)
            let third = try await store.dispatchDueContacts(
                of: campaign, owner: Self.owner, limit: 10, at: Self.dstMorning + 5)
            #expect(third.dials.count == 1)
        }
    }

    @Test("contacts are stored with COPY: custom fields with backslashes, tabs and line breaks come back intact")
    func copyEscaping() async throws {
        try await TestDatabase.withStore { store, _ in
            let organization = try await store.createOrganization(name: "o-\(UUID())", by: Self.actor).id
            let list = try await store.createContactList(name: "escapes", in: organization, by: Self.actor)
            let fields = ["note": "line one\nline two\tafter a tab \\ and a backslash\r\n", "plain": "x"]
            let json = String(decoding: try WireCoding.encode(fields), as: UTF8.self)
            try await store.appendContacts(
                [NewContact(line: 2, phone: "+12125550101", timeZone: "America/New_York", fieldsJSON: json)],
                to: list.id)
            _ = try await store.finishContactImport(list: list.id, rowsRead: 1, error: nil)
            let rows = try await store.client.query("SELECT fields::text FROM contacts WHERE list_id = \(list.id)")
            for try await text in rows.decode(String.self) {
                #expect(try WireCoding.decoder.decode([String: String].self, from: Data(text.utf8)) == fields)
            }
            #expect(try await store.contactList(id: list.id, in: organization)?.contacts == 1)
        }
    }

    @Test("a due contact whose window has closed since (a paused campaign resumed at night) moves to the next opening")
    func closedWindowReschedules() async throws {
        try await TestDatabase.withStore { store, _ in
            let organization = try await store.createOrganization(name: "o-\(UUID())", by: Self.actor).id
            let list = try await Self.list(store, in: organization, [("+442079460018", "Europe/London")])
            let start = Self.date("2026-03-09T10:00:00Z")
            let campaign = try await Self.running(store, Self.settings([list]), in: organization, at: start)
            // 22:30 in London: past the 21:00 close.
            let night = Self.date("2026-03-09T22:30:00Z")
            let result = try await store.dispatchDueContacts(of: campaign, owner: Self.owner, limit: 10, at: night)
            #expect(result.dials.isEmpty && result.rescheduled == 1)
            let contact = try #require(try await Self.contacts(store, campaign)["+442079460018"])
            #expect(contact.nextAttemptAt == Self.date("2026-03-10T08:00:00Z"))
            #expect(contact.state == "pending")
        }
    }

    @Test(
        "call ends follow the retry rules: busy after 10 minutes (in the window), up to its retries and the attempts; invalid_number never again; a repeated end changes nothing"
    )
    func retries() async throws {
        try await TestDatabase.withStore { store, _ in
            let organization = try await store.createOrganization(name: "o-\(UUID())", by: Self.actor).id
            let list = try await Self.list(
                store, in: organization, [("+919876543210", "Asia/Kolkata"), ("+919876543219", "Asia/Kolkata")])
            let rules = try RetryRules([.busy: try RetryRule(delaySeconds: 600, maxRetries: 1)])
            var now = Self.dstMorning
            let campaign = try await Self.running(
                store, Self.settings([list], rules: rules, attempts: 3), in: organization, at: now)
            let first = try await store.dispatchDueContacts(of: campaign, owner: Self.owner, limit: 10, at: now)
            #expect(first.dials.count == 2)
            let busy = try #require(first.dials.first { $0.phone == "+919876543210" })
            let invalid = try #require(first.dials.first { $0.phone == "+919876543219" })
            now += 30
            let ended = try await store.recordCampaignCallEnds(
                [.init(callID: busy.callID, outcome: .busy), .init(callID: invalid.callID, outcome: .invalidNumber)],
                at: now)
            #expect(ended == 2)
            // The same ends again (a status event read twice): nothing changes.
            #expect(
                try await store.recordCampaignCallEnds([.init(callID: busy.callID, outcome: .busy)], at: now) == 0)
            var contacts = try await Self.contacts(store, campaign)
            #expect(contacts["+919876543210"]?.state == "pending")
            #expect(contacts["+919876543210"]?.nextAttemptAt == now.addingTimeInterval(600))
            #expect(contacts["+919876543210"]?.lastOutcome == "busy")
            #expect(contacts["+919876543219"]?.state == "done")
            #expect(contacts["+919876543219"]?.disposition == "invalid_number")
            // Not due before its 10 minutes.
            #expect(
                try await store.dispatchDueContacts(
                    of: campaign, owner: Self.owner, limit: 10, at: now.addingTimeInterval(599)
                ).dials.isEmpty)
            now += 600
            let second = try await store.dispatchDueContacts(of: campaign, owner: Self.owner, limit: 10, at: now)
            let retry = try #require(second.dials.first)
            #expect(retry.attempt == 2)
            #expect(retry.callID == .campaignAttempt(campaign: campaign.id, contact: busy.contactID, attempt: 2))
            #expect(retry.callID != busy.callID)
            // Busy again: its one retry is spent, so it is done as busy.
            _ = try await store.recordCampaignCallEnds([.init(callID: retry.callID, outcome: .busy)], at: now + 5)
            contacts = try await Self.contacts(store, campaign)
            #expect(contacts["+919876543210"]?.state == "done")
            #expect(contacts["+919876543210"]?.disposition == "busy")
            #expect(contacts["+919876543210"]?.attempts == 2)
            let attempts = try await store.campaignAttempts(campaign: campaign.id, contacts: [busy.contactID])
            #expect(attempts.map(\.outcome) == ["busy", "busy"])
            let progress = try #require(try await store.campaignWithProgress(id: campaign.id, in: organization))
                .progress
            #expect(progress.done == ["busy": 1, "invalid_number": 1])
            #expect(progress.attempts == 3 && progress.outcomes == ["busy": 2, "invalid_number": 1])
            // Nothing left: the campaign completes.
            #expect(try await store.completeCampaignIfDone(campaign.id, owner: Self.owner, at: now + 10))
            #expect(try await store.campaign(id: campaign.id, in: organization)?.state == .completed)
        }
    }

    @Test(
        "leases: a held campaign is not taken; one whose lease passed is, and its attempts in flight are there to publish again"
    )
    func leases() async throws {
        try await TestDatabase.withStore { store, _ in
            let organization = try await store.createOrganization(name: "o-\(UUID())", by: Self.actor).id
            let list = try await Self.list(store, in: organization, [("+919876543210", "Asia/Kolkata")])
            let now = Self.dstMorning
            let draft = try await store.createCampaign(Self.settings([list]), in: organization, by: Self.actor)
            let campaign = try await store.changeCampaignState(
                id: draft.id, in: organization, to: .running, at: now, by: Self.actor)
            let taken = try await store.leaseCampaigns(owner: "a", limit: 10, lease: .seconds(10), at: now)
            #expect(taken.map(\.campaign.id) == [campaign.id])
            let dial = try #require(
                try await store.dispatchDueContacts(of: campaign, owner: "a", limit: 10, at: now).dials.first)
            #expect(try await store.leaseCampaigns(owner: "b", limit: 10, lease: .seconds(10), at: now + 5).isEmpty)
            // "a" died: after its lease, "b" takes the campaign and finds the attempt in flight.
            let takeover = try await store.leaseCampaigns(owner: "b", limit: 10, lease: .seconds(10), at: now + 11)
            #expect(takeover.map(\.campaign.id) == [campaign.id])
            let inFlight = try await store.dialingContacts(campaign: campaign.id)
            #expect(inFlight.map(\.callID) == [dial.callID])
            #expect(
                try await store.renewCampaignLeases([campaign.id], owner: "a", lease: .seconds(10), at: now + 12)
                    .isEmpty)
            #expect(
                try await store.dispatchDueContacts(of: campaign, owner: "a", limit: 10, at: now + 12).leaseLost)
            // Paused: no lease is renewed, and nobody takes it.
            _ = try await store.changeCampaignState(
                id: campaign.id, in: organization, to: .paused, at: now + 13, by: Self.actor)
            #expect(
                try await store.renewCampaignLeases([campaign.id], owner: "b", lease: .seconds(10), at: now + 14)
                    .isEmpty)
            #expect(try await store.leaseCampaigns(owner: "c", limit: 10, lease: .seconds(10), at: now + 30).isEmpty)
        }
    }
}
