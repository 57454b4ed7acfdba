import CallDomain
import Campaigns
import Foundation
import Logging
import PostgresNIO

/// Why a campaign operation was refused.
public enum CampaignStoreError: Error, Hashable, Sendable {
    /// A list named does not exist in the organization.
    case unknownList(UUID)
    /// A list named has not finished importing (or failed).
    case listNotReady(UUID)
    /// The list is used by a campaign.
    case listInUse
    /// The campaign does not exist in the organization.
    case unknownCampaign
    /// The campaign cannot change in its present state.
    case notEditable(CampaignState)
    /// The state change is not allowed.
    case invalidTransition(from: CampaignState, to: CampaignState)
}

// Contact lists, do-not-call lists and campaigns (the API's side), then the scheduler's side: leases, dispatch and
// outcomes. Every time the scheduler uses is passed in (its clock), so windows and retries can be tested without
// waiting for them.
extension CallStore {
    static let contactListColumns =
        "id, organization_id, name, state, rows_read, contacts, refused, error, created_by, created_at"

    // MARK: - Contact lists

    /// Creates an empty list in `importing` state.
    public func createContactList(
        name: String, in organization: OrganizationID, by actor: AuditActor
    ) async throws
        -> ContactList
    {
        let id = UUID.systemRandom()
        let logger = self.logger
        return try await transaction { connection in
            let rows = try await connection.query(
                """
                INSERT INTO contact_lists (id, organization_id, name, state, created_by)
                VALUES (\(id), \(organization.uuid), \(name), 'importing', \(actor.name))
                RETURNING \(unescaped: Self.contactListColumns)
                """,
                logger: logger)
            var created: ContactList?
            for try await row in rows { created = try Self.decodeContactList(row) }
            guard let created else { throw StoreError.corruptRow("INSERT returned no row") }
            try await Self.audit(
                AuditRecord(
                    organizationID: organization, action: "contact_list.create", targetType: "contact_list",
                    targetID: id.uuidString.lowercased(), detail: ["name": name]),
                by: actor, on: connection, logger: logger)
            return created
        }
    }

    /// Adds accepted contacts to a list being imported, with `COPY` (a list is imported once, from one file whose
    /// reader refused duplicate numbers, so no row can conflict).
    public func appendContacts(_ contacts: [NewContact], to list: UUID) async throws {
        guard !contacts.isEmpty else { return }
        var text = ""
        text.reserveCapacity(contacts.count * 96)
        let listID = list.uuidString.lowercased()
        for contact in contacts {
            text += UUID.systemRandom().uuidString.lowercased()
            text += "\t" + listID + "\t" + String(contact.line) + "\t" + Self.copyText(contact.phone) + "\t"
            text += Self.copyText(contact.timeZone) + "\t" + Self.copyText(contact.fieldsJSON) + "\n"
        }
        let logger = self.logger
        try await client.withConnection { connection in
            try await connection.copyFrom(
                table: "contacts", columns: ["id", "list_id", "line", "phone", "time_zone", "fields"], logger: logger
            ) { writer in
                try await writer.write(ByteBuffer(string: text))
            }
        }
    }

    /// A value in `COPY`'s text format: backslash, tab, newline and carriage return escaped.
    static func copyText(_ value: String) -> String {
        guard value.utf8.contains(where: { $0 == 0x5C || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) else { return value }
        var escaped = ""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\\": escaped += "\\\\"
            case "\t": escaped += "\\t"
            case "\n": escaped += "\\n"
            case "\r": escaped += "\\r"
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }

    /// Records refused lines of a list being imported.
    public func recordContactErrors(_ errors: [ContactListError], list: UUID) async throws {
        guard !errors.isEmpty else { return }
        let lines = errors.map(\.line)
        let columns = errors.map { $0.column ?? "" }
        let messages = errors.map(\.message)
        let values = errors.map { $0.value ?? "" }
        try await client.query(
            """
            INSERT INTO contact_list_errors (list_id, line, column_name, message, value)
            SELECT \(list), line, NULLIF(column_name, ''), message, NULLIF(value, '')
            FROM unnest(\(lines)::int[], \(columns)::text[], \(messages)::text[], \(values)::text[])
                AS t(line, column_name, message, value)
            ON CONFLICT (list_id, line) DO NOTHING
            """,
            logger: logger)
    }

    /// Ends an import: `ready` with its counts, or `failed` with `error` (its contacts are then deleted).
    public func finishContactImport(list: UUID, rowsRead: Int, error: String?) async throws -> ContactList {
        let logger = self.logger
        return try await transaction { connection in
            if error != nil {
                try await connection.query("DELETE FROM contacts WHERE list_id = \(list)", logger: logger)
            }
            let rows = try await connection.query(
                """
                UPDATE contact_lists SET state = \(error == nil ? "ready" : "failed"), rows_read = \(rowsRead),
                    contacts = (SELECT count(*) FROM contacts WHERE list_id = \(list)),
                    refused = (SELECT count(*) FROM contact_list_errors WHERE list_id = \(list)),
                    error = \(error)::text, updated_at = now()
                WHERE id = \(list)
                RETURNING \(unescaped: Self.contactListColumns)
                """,
                logger: logger)
            for try await row in rows { return try Self.decodeContactList(row) }
            throw StoreError.corruptRow("contact list \(list) vanished during its import")
        }
    }

    /// A list of the organization.
    public func contactList(id: UUID, in organization: OrganizationID) async throws -> ContactList? {
        let rows = try await client.query(
            """
            SELECT \(unescaped: Self.contactListColumns) FROM contact_lists
            WHERE id = \(id) AND organization_id = \(organization.uuid)
            """,
            logger: logger)
        for try await row in rows { return try Self.decodeContactList(row) }
        return nil
    }

    /// The organization's lists, newest first.
    public func contactLists(in organization: OrganizationID, limit: Int) async throws -> [ContactList] {
        let rows = try await client.query(
            """
            SELECT \(unescaped: Self.contactListColumns) FROM contact_lists
            WHERE organization_id = \(organization.uuid) ORDER BY created_at DESC, id DESC LIMIT \(limit)
            """,
            logger: logger)
        var lists: [ContactList] = []
        for try await row in rows { lists.append(try Self.decodeContactList(row)) }
        return lists
    }

    /// The refused lines of a list, by line, `limit` after line `after`; `nil` if the list is not the organization's.
    public func contactListErrors(
        id: UUID, in organization: OrganizationID, after: Int, limit: Int
    ) async throws -> [ContactListError]? {
        guard try await contactList(id: id, in: organization) != nil else { return nil }
        let rows = try await client.query(
            """
            SELECT line, column_name, message, value FROM contact_list_errors
            WHERE list_id = \(id) AND line > \(after) ORDER BY line LIMIT \(limit)
            """,
            logger: logger)
        var errors: [ContactListError] = []
        for try await (line, column, message, value) in rows.decode((Int, String?, String, String?).self) {
            errors.append(ContactListError(line: line, column: column, message: message, value: value))
        }
        return errors
    }

    /// Deletes a list and its contacts; `false` if it is not the organization's. A list a campaign uses stays.
    public func deleteContactList(
        id: UUID, in organization: OrganizationID, by actor: AuditActor
    ) async throws
        -> Bool
    {
        let logger = self.logger
        return try await transaction { connection in
            let used = try await connection.query(
                "SELECT 1 FROM campaign_lists WHERE list_id = \(id) LIMIT 1", logger: logger)
            for try await _ in used { throw CampaignStoreError.listInUse }
            let rows = try await connection.query(
                """
                DELETE FROM contact_lists WHERE id = \(id) AND organization_id = \(organization.uuid) RETURNING 1
                """,
                logger: logger)
            var deleted = false
            for try await _ in rows { deleted = true }
            if deleted {
                try await Self.audit(
                    AuditRecord(
                        organizationID: organization, action: "contact_list.delete", targetType: "contact_list",
                        targetID: id.uuidString.lowercased(), detail: [:]),
                    by: actor, on: connection, logger: logger)
            }
            return deleted
        }
    }

    // MARK: - Do not call

    /// Adds numbers (E.164) to the organization's list, or to a campaign's; returns how many were new. A number
    /// added here is never dialed by a campaign after this returns.
    public func addDoNotCall(
        _ phones: [String], campaign: UUID?, reason: String?, in organization: OrganizationID, by actor: AuditActor
    ) async throws -> Int {
        let logger = self.logger
        let unique = Array(Set(phones))
        guard !unique.isEmpty else { return 0 }
        return try await transaction { connection in
            if let campaign {
                guard try await Self.campaignExists(campaign, in: organization, on: connection, logger: logger) else {
                    throw CampaignStoreError.unknownCampaign
                }
            }
            let rows = try await connection.query(
                """
                INSERT INTO dnc_entries (organization_id, campaign_id, phone, reason, created_by)
                SELECT \(organization.uuid), \(campaign)::uuid, phone, \(reason)::text, \(actor.name)
                FROM unnest(\(unique)::text[]) AS t(phone)
                ON CONFLICT DO NOTHING
                RETURNING 1
                """,
                logger: logger)
            var added = 0
            for try await _ in rows { added += 1 }
            try await Self.audit(
                AuditRecord(
                    organizationID: organization, action: "dnc.add",
                    targetType: campaign == nil ? "organization" : "campaign",
                    targetID: (campaign?.uuidString ?? organization.description).lowercased(),
                    detail: ["numbers": String(unique.count), "added": String(added)]),
                by: actor, on: connection, logger: logger)
            return added
        }
    }

    /// Removes a number from the organization's list or a campaign's; `false` if it was not there.
    public func removeDoNotCall(
        _ phone: String, campaign: UUID?, in organization: OrganizationID, by actor: AuditActor
    ) async throws -> Bool {
        let logger = self.logger
        return try await transaction { connection in
            let rows = try await connection.query(
                """
                DELETE FROM dnc_entries
                WHERE organization_id = \(organization.uuid) AND phone = \(phone)
                    AND campaign_id IS NOT DISTINCT FROM \(campaign)::uuid
                RETURNING 1
                """,
                logger: logger)
            var removed = false
            for try await _ in rows { removed = true }
            if removed {
                try await Self.audit(
                    AuditRecord(
                        organizationID: organization, action: "dnc.remove",
                        targetType: campaign == nil ? "organization" : "campaign",
                        targetID: (campaign?.uuidString ?? organization.description).lowercased(),
                        detail: ["phone": phone]),
                    by: actor, on: connection, logger: logger)
            }
            return removed
        }
    }

    /// Every entry for `phone` in the organization: its own list and any campaign's.
    public func doNotCallEntries(for phone: String, in organization: OrganizationID) async throws -> [DoNotCallEntry] {
        let rows = try await client.query(
            """
            SELECT phone, campaign_id, reason, created_by, created_at FROM dnc_entries
            WHERE organization_id = \(organization.uuid) AND phone = \(phone)
            ORDER BY campaign_id NULLS FIRST
            """,
            logger: logger)
        return try await Self.decodeDoNotCall(rows)
    }

    /// The entries of the organization's list (`campaign == nil`) or of a campaign's, by number, after `after`.
    public func doNotCallList(
        campaign: UUID?, in organization: OrganizationID, after: String?, limit: Int
    ) async throws -> [DoNotCallEntry] {
        let rows = try await client.query(
            """
            SELECT phone, campaign_id, reason, created_by, created_at FROM dnc_entries
            WHERE organization_id = \(organization.uuid) AND campaign_id IS NOT DISTINCT FROM \(campaign)::uuid
                AND phone > \(after ?? "")
            ORDER BY phone LIMIT \(limit)
            """,
            logger: logger)
        return try await Self.decodeDoNotCall(rows)
    }

    // MARK: - Campaigns

    static let campaignColumns = """
        id, organization_id, state, name, caller_id_name, caller_id_number, context, extension, priority,
        timeout_seconds, calling_windows::text, starts_at, ends_at, max_calls_per_second, max_live_calls,
        retry_rules::text, max_attempts, created_by, created_at, started_at, finished_at,
        ARRAY(SELECT list_id FROM campaign_lists WHERE campaign_id = campaigns.id ORDER BY list_id),
        machine_detection::text, record
        """

    /// Creates a draft campaign over ready lists of the organization.
    public func createCampaign(
        _ settings: CampaignSettings, in organization: OrganizationID, by actor: AuditActor
    )
        async throws -> Campaign
    {
        let id = UUID.systemRandom()
        let logger = self.logger
        let windows = try WireCoding.encodeText(settings.callingWindows)
        let rules = try WireCoding.encodeText(settings.retryRules)
        let detection = try settings.machineDetection.map { try WireCoding.encodeText($0) }
        return try await transaction { connection in
            try await Self.requireReadyLists(settings.listIDs, in: organization, on: connection, logger: logger)
            try await connection.query(
                """
                INSERT INTO campaigns (id, organization_id, name, state, caller_id_name, caller_id_number, context,
                    extension, priority, timeout_seconds, calling_windows, starts_at, ends_at, max_calls_per_second,
                    max_live_calls, retry_rules, max_attempts, created_by, machine_detection, record)
                VALUES (\(id), \(organization.uuid), \(settings.name), 'draft', \(settings.callerID?.name),
                    \(settings.callerID?.number), \(settings.dialplan?.context), \(settings.dialplan?.extension),
                    \(settings.dialplan?.priority), \(settings.timeoutSeconds), \(windows)::jsonb,
                    \(settings.startsAt)::timestamptz, \(settings.endsAt)::timestamptz,
                    \(settings.maxCallsPerSecond), \(settings.maxLiveCalls), \(rules)::jsonb,
                    \(settings.maxAttempts), \(actor.name), \(detection)::jsonb, \(settings.record))
                """,
                logger: logger)
            try await connection.query(
                """
                INSERT INTO campaign_lists (campaign_id, list_id)
                SELECT \(id), list_id FROM unnest(\(settings.listIDs)::uuid[]) AS t(list_id) ON CONFLICT DO NOTHING
                """,
                logger: logger)
            try await Self.audit(
                AuditRecord(
                    organizationID: organization, action: "campaign.create", targetType: "campaign",
                    targetID: id.uuidString.lowercased(), detail: ["name": settings.name]),
                by: actor, on: connection, logger: logger)
            guard let created = try await Self.campaign(id, on: connection, logger: logger) else {
                throw StoreError.corruptRow("campaign \(id) vanished")
            }
            return created
        }
    }

    /// A campaign of the organization.
    public func campaign(id: UUID, in organization: OrganizationID) async throws -> Campaign? {
        let rows = try await client.query(
            """
            SELECT \(unescaped: Self.campaignColumns) FROM campaigns
            WHERE id = \(id) AND organization_id = \(organization.uuid)
            """,
            logger: logger)
        for try await row in rows { return try Self.decodeCampaign(row) }
        return nil
    }

    /// The organization's campaigns, newest first.
    public func campaigns(in organization: OrganizationID, limit: Int) async throws -> [Campaign] {
        let rows = try await client.query(
            """
            SELECT \(unescaped: Self.campaignColumns) FROM campaigns
            WHERE organization_id = \(organization.uuid) ORDER BY created_at DESC, id DESC LIMIT \(limit)
            """,
            logger: logger)
        var campaigns: [Campaign] = []
        for try await row in rows { campaigns.append(try Self.decodeCampaign(row)) }
        return campaigns
    }

    /// Replaces a campaign's settings: a draft's all of them, a paused one's all but its lists.
    public func updateCampaign(
        id: UUID, in organization: OrganizationID, settings: CampaignSettings, by actor: AuditActor
    ) async throws -> Campaign {
        let logger = self.logger
        let windows = try WireCoding.encodeText(settings.callingWindows)
        let detection = try settings.machineDetection.map { try WireCoding.encodeText($0) }
        let rules = try WireCoding.encodeText(settings.retryRules)
        return try await transaction { connection in
            guard let current = try await Self.lockCampaign(id, in: organization, on: connection, logger: logger) else {
                throw CampaignStoreError.unknownCampaign
            }
            switch current.state {
            case .draft:
                try await Self.requireReadyLists(settings.listIDs, in: organization, on: connection, logger: logger)
                try await connection.query("DELETE FROM campaign_lists WHERE campaign_id = \(id)", logger: logger)
                try await connection.query(
                    """
                    INSERT INTO campaign_lists (campaign_id, list_id)
                    SELECT \(id), list_id FROM unnest(\(settings.listIDs)::uuid[]) AS t(list_id)
                    ON CONFLICT DO NOTHING
                    """,
                    logger: logger)
            case .paused:
                guard Set(settings.listIDs) == Set(current.settings.listIDs) else {
                    throw CampaignStoreError.notEditable(.paused)
                }
            case .running, .completed, .stopped:
                throw CampaignStoreError.notEditable(current.state)
            }
            try await connection.query(
                """
                UPDATE campaigns SET name = \(settings.name), caller_id_name = \(settings.callerID?.name),
                    caller_id_number = \(settings.callerID?.number), context = \(settings.dialplan?.context),
                    extension = \(settings.dialplan?.extension), priority = \(settings.dialplan?.priority),
                    timeout_seconds = \(settings.timeoutSeconds), calling_windows = \(windows)::jsonb,
                    starts_at = \(settings.startsAt)::timestamptz, ends_at = \(settings.endsAt)::timestamptz,
                    max_calls_per_second = \(settings.maxCallsPerSecond), max_live_calls = \(settings.maxLiveCalls),
                    retry_rules = \(rules)::jsonb, max_attempts = \(settings.maxAttempts),
                    machine_detection = \(detection)::jsonb, record = \(settings.record), updated_at = now()
                WHERE id = \(id)
                """,
                logger: logger)
            try await Self.audit(
                AuditRecord(
                    organizationID: organization, action: "campaign.update", targetType: "campaign",
                    targetID: id.uuidString.lowercased(), detail: ["name": settings.name]),
                by: actor, on: connection, logger: logger)
            guard let updated = try await Self.campaign(id, on: connection, logger: logger) else {
                throw CampaignStoreError.unknownCampaign
            }
            return updated
        }
    }

    /// Moves a campaign along its lifecycle: draft → running (its contacts are laid out, each due at the first
    /// opening of its calling window), running ⇄ paused, draft, running or paused → stopped. A stopped campaign's
    /// pending contacts are never dialed; attempts in flight end normally. With `from`, only a campaign in one of
    /// those states moves (`start` is draft → running, `resume` paused → running).
    public func changeCampaignState(
        id: UUID, in organization: OrganizationID, to target: CampaignState, from: Set<CampaignState>? = nil,
        at now: Date, by actor: AuditActor
    ) async throws -> Campaign {
        let logger = self.logger
        return try await transaction { connection in
            guard let current = try await Self.lockCampaign(id, in: organization, on: connection, logger: logger) else {
                throw CampaignStoreError.unknownCampaign
            }
            if let from, !from.contains(current.state) {
                throw CampaignStoreError.invalidTransition(from: current.state, to: target)
            }
            switch (current.state, target) {
            case (.draft, .running):
                try await Self.requireReadyLists(
                    current.settings.listIDs, in: organization, on: connection, logger: logger)
                try await Self.layOutContacts(of: current, at: now, on: connection, logger: logger)
            case (.paused, .running), (.running, .paused), (.running, .stopped), (.paused, .stopped),
                (.draft, .stopped):
                break
            default:
                throw CampaignStoreError.invalidTransition(from: current.state, to: target)
            }
            try await connection.query(
                """
                UPDATE campaigns SET state = \(target.rawValue), updated_at = now(),
                    started_at = CASE WHEN \(target.rawValue) = 'running' THEN COALESCE(started_at, \(now))
                        ELSE started_at END,
                    finished_at = CASE WHEN \(target.rawValue) = 'stopped' THEN \(now) ELSE finished_at END,
                    lease_owner = CASE WHEN \(target.rawValue) = 'running' THEN lease_owner END,
                    lease_until = CASE WHEN \(target.rawValue) = 'running' THEN lease_until END
                WHERE id = \(id)
                """,
                logger: logger)
            try await Self.audit(
                AuditRecord(
                    organizationID: organization, action: "campaign.\(target.rawValue)", targetType: "campaign",
                    targetID: id.uuidString.lowercased(), detail: ["from": current.state.rawValue]),
                by: actor, on: connection, logger: logger)
            guard let changed = try await Self.campaign(id, on: connection, logger: logger) else {
                throw CampaignStoreError.unknownCampaign
            }
            return changed
        }
    }

    /// A campaign of the organization with where its contacts stand; `nil` if it has none with this id.
    public func campaignWithProgress(
        id: UUID, in organization: OrganizationID
    ) async throws
        -> (campaign: Campaign, progress: CampaignProgress)?
    {
        guard let campaign = try await campaign(id: id, in: organization) else { return nil }
        var progress = CampaignProgress(
            contacts: 0, pending: 0, dialing: 0, done: [:], attempts: 0, outcomes: [:], nextAttemptAt: nil)
        let states = try await client.query(
            """
            SELECT state, COALESCE(disposition, ''), count(*) FROM campaign_contacts
            WHERE campaign_id = \(id) GROUP BY 1, 2
            """,
            logger: logger)
        for try await (state, disposition, count) in states.decode((String, String, Int).self) {
            progress.contacts += count
            switch state {
            case "pending": progress.pending += count
            case "dialing": progress.dialing += count
            default: progress.done[disposition, default: 0] += count
            }
        }
        let outcomes = try await client.query(
            """
            SELECT COALESCE(outcome, ''), count(*) FROM campaign_attempts WHERE campaign_id = \(id) GROUP BY 1
            """,
            logger: logger)
        for try await (outcome, count) in outcomes.decode((String, Int).self) {
            progress.attempts += count
            if !outcome.isEmpty { progress.outcomes[outcome] = count }
        }
        let next = try await client.query(
            """
            SELECT min(next_attempt_at) FROM campaign_contacts WHERE campaign_id = \(id) AND state = 'pending'
            """,
            logger: logger)
        for try await value in next.decode(Date?.self) { progress.nextAttemptAt = value }
        return (campaign, progress)
    }

    /// A campaign's contacts by id, `limit` after `after`; `nil` if the campaign is not the organization's.
    public func campaignContacts(
        id: UUID, in organization: OrganizationID, after: UUID?, limit: Int
    ) async throws -> [CampaignContact]? {
        guard try await campaign(id: id, in: organization) != nil else { return nil }
        let rows = try await client.query(
            """
            SELECT contact_id, phone, time_zone, state, attempts, next_attempt_at, last_outcome, disposition
            FROM campaign_contacts
            WHERE campaign_id = \(id) AND contact_id > \(after ?? Self.lowestUUID)
            ORDER BY contact_id LIMIT \(limit)
            """,
            logger: logger)
        var contacts: [CampaignContact] = []
        for try await (contact, phone, zone, state, attempts, next, last, disposition) in rows.decode(
            (UUID, String, String, String, Int, Date?, String?, String?).self)
        {
            contacts.append(
                CampaignContact(
                    contactID: contact, phone: phone, timeZone: zone, state: state, attempts: attempts,
                    nextAttemptAt: next, lastOutcome: last, disposition: disposition))
        }
        return contacts
    }

    /// The attempts of a campaign's contacts (`contacts`), in order.
    public func campaignAttempts(campaign: UUID, contacts: [UUID]) async throws -> [CampaignAttempt] {
        guard !contacts.isEmpty else { return [] }
        let rows = try await client.query(
            """
            SELECT contact_id, attempt, call_id, dispatched_at, outcome, ended_at FROM campaign_attempts
            WHERE campaign_id = \(campaign) AND contact_id = ANY(\(contacts)::uuid[])
            ORDER BY contact_id, attempt
            """,
            logger: logger)
        var attempts: [CampaignAttempt] = []
        for try await (contact, attempt, call, dispatched, outcome, ended) in rows.decode(
            (UUID, Int, UUID, Date, String?, Date?).self)
        {
            attempts.append(
                CampaignAttempt(
                    contactID: contact, attempt: attempt, callID: CallID(uuid: call), dispatchedAt: dispatched,
                    outcome: outcome, endedAt: ended))
        }
        return attempts
    }

    // MARK: - The scheduler

    /// Leases up to `limit` running campaigns nobody holds (or whose holder's lease passed) to `owner` until
    /// `now + lease`.
    public func leaseCampaigns(
        owner: String, limit: Int, lease: Duration, at now: Date
    ) async throws
        -> [LeasedCampaign]
    {
        let until = now.addingTimeInterval(lease.timeInterval)
        let rows = try await client.query(
            """
            UPDATE campaigns SET lease_owner = \(owner), lease_until = \(until)
            WHERE id IN (
                SELECT id FROM campaigns WHERE state = 'running' AND (lease_until IS NULL OR lease_until < \(now))
                ORDER BY lease_until NULLS FIRST LIMIT \(limit) FOR UPDATE SKIP LOCKED)
            RETURNING \(unescaped: Self.campaignColumns)
            """,
            logger: logger)
        var leased: [LeasedCampaign] = []
        for try await row in rows {
            leased.append(LeasedCampaign(campaign: try Self.decodeCampaign(row), leaseUntil: until))
        }
        return leased
    }

    /// Extends `owner`'s leases; returns the campaigns it still holds and that still run, as they are now (a user
    /// may have changed their settings while paused).
    public func renewCampaignLeases(
        _ ids: [UUID], owner: String, lease: Duration, at now: Date
    ) async throws
        -> [LeasedCampaign]
    {
        guard !ids.isEmpty else { return [] }
        let until = now.addingTimeInterval(lease.timeInterval)
        let rows = try await client.query(
            """
            UPDATE campaigns SET lease_until = \(until)
            WHERE id = ANY(\(ids)::uuid[]) AND lease_owner = \(owner) AND state = 'running'
            RETURNING \(unescaped: Self.campaignColumns)
            """,
            logger: logger)
        var held: [LeasedCampaign] = []
        for try await row in rows {
            held.append(LeasedCampaign(campaign: try Self.decodeCampaign(row), leaseUntil: until))
        }
        return held
    }

    /// Gives a lease back at once (a scheduler stopping), so another scheduler takes the campaign without waiting.
    public func releaseCampaignLeases(_ ids: [UUID], owner: String) async throws {
        guard !ids.isEmpty else { return }
        try await client.query(
            """
            UPDATE campaigns SET lease_owner = NULL, lease_until = NULL
            WHERE id = ANY(\(ids)::uuid[]) AND lease_owner = \(owner)
            """,
            logger: logger)
    }

    /// The attempts of a campaign in flight (a new holder publishes their commands again: their call ids are the
    /// same, so a call already placed is not placed twice).
    public func dialingContacts(campaign: UUID) async throws -> [CampaignDial] {
        let rows = try await client.query(
            """
            SELECT cc.contact_id, cc.phone, c.fields::text, cc.attempts, cc.call_id
            FROM campaign_contacts cc JOIN contacts c ON c.id = cc.contact_id
            WHERE cc.campaign_id = \(campaign) AND cc.state = 'dialing'
            """,
            logger: logger)
        var dials: [CampaignDial] = []
        for try await (contact, phone, fields, attempt, call) in rows.decode((UUID, String, String, Int, UUID).self) {
            dials.append(
                CampaignDial(
                    contactID: contact, phone: phone, fields: try Self.decodeFields(fields), attempt: attempt,
                    callID: CallID(uuid: call)))
        }
        return dials
    }

    /// What one dispatch round did.
    public struct CampaignDispatch: Sendable {
        /// Contacts to dial now: marked `dialing`, their attempt recorded; publish their commands.
        public var dials: [CampaignDial]
        /// Contacts skipped because their number is on a do-not-call list (now `done`).
        public var doNotCall: Int
        /// Contacts due whose calling window is closed now (moved to its next opening).
        public var rescheduled: Int
        /// Whether `owner` no longer holds the campaign (nothing was done).
        public var leaseLost: Bool
        /// Whether the campaign's live calls were at its `max_live_calls` (nothing was picked).
        public var atLiveLimit = false
    }

    /// Picks up to `limit` due contacts of a campaign `owner` holds, fewer if its `max_live_calls` leaves less room
    /// beside the contacts already dialing, in one transaction: a contact on a do-not-call
    /// list (the organization's or the campaign's) as of now is set `done` with disposition `do_not_call`; one whose
    /// calling window is closed now moves to its next opening; the rest become `dialing` with their next attempt
    /// recorded under a call id derived from (campaign, contact, attempt). A contact never has two attempts in
    /// flight: only `pending` contacts are picked, and rows another transaction holds are skipped.
    public func dispatchDueContacts(
        of campaign: Campaign, owner: String, limit: Int, at now: Date
    ) async throws -> CampaignDispatch {
        let logger = self.logger
        return try await transaction { connection in
            let held = try await connection.query(
                """
                SELECT 1 FROM campaigns
                WHERE id = \(campaign.id) AND state = 'running' AND lease_owner = \(owner) AND lease_until > \(now)
                """,
                logger: logger)
            var holds = false
            for try await _ in held { holds = true }
            guard holds else { return CampaignDispatch(dials: [], doNotCall: 0, rescheduled: 0, leaseLost: true) }
            var dialing = 0
            let counted = try await connection.query(
                "SELECT count(*) FROM campaign_contacts WHERE campaign_id = \(campaign.id) AND state = 'dialing'",
                logger: logger)
            for try await count in counted.decode(Int.self) { dialing = count }
            let limit = min(limit, campaign.settings.maxLiveCalls - dialing)
            guard limit > 0 else {
                return CampaignDispatch(dials: [], doNotCall: 0, rescheduled: 0, leaseLost: false, atLiveLimit: true)
            }
            let rows = try await connection.query(
                """
                SELECT cc.contact_id, cc.phone, cc.time_zone, cc.attempts, c.fields::text,
                    EXISTS (SELECT 1 FROM dnc_entries d WHERE d.organization_id = \(campaign.organizationID.uuid)
                        AND d.phone = cc.phone AND (d.campaign_id IS NULL OR d.campaign_id = \(campaign.id)))
                FROM campaign_contacts cc JOIN contacts c ON c.id = cc.contact_id
                WHERE cc.campaign_id = \(campaign.id) AND cc.state = 'pending' AND cc.next_attempt_at <= \(now)
                ORDER BY cc.next_attempt_at LIMIT \(limit)
                FOR UPDATE OF cc SKIP LOCKED
                """,
                logger: logger)
            var dials: [CampaignDial] = []
            var blocked: [UUID] = []
            var later: [(UUID, Date)] = []
            var closedForGood: [UUID] = []
            var zones: [String: TimeZone] = [:]
            for try await (contact, phone, zoneName, attempts, fields, onList) in rows.decode(
                (UUID, String, String, Int, String, Bool).self)
            {
                if onList {
                    blocked.append(contact)
                    continue
                }
                let zone = zones[zoneName] ?? TimeZone(identifier: zoneName) ?? TimeZone(identifier: "UTC")!
                zones[zoneName] = zone
                if !campaign.settings.callingWindows.isOpen(at: now, in: zone) {
                    if let next = campaign.settings.callingWindows.nextOpening(atOrAfter: now, in: zone) {
                        later.append((contact, next))
                    } else {
                        closedForGood.append(contact)
                    }
                    continue
                }
                let attempt = attempts + 1
                dials.append(
                    CampaignDial(
                        contactID: contact, phone: phone, fields: try Self.decodeFields(fields), attempt: attempt,
                        callID: .campaignAttempt(campaign: campaign.id, contact: contact, attempt: attempt)))
            }
            if !blocked.isEmpty || !closedForGood.isEmpty {
                let ids = blocked + closedForGood
                let dispositions =
                    blocked.map { _ in "do_not_call" } + closedForGood.map { _ in "no_calling_window" }
                try await connection.query(
                    """
                    UPDATE campaign_contacts cc SET state = 'done', next_attempt_at = NULL,
                        disposition = t.disposition, updated_at = now()
                    FROM unnest(\(ids)::uuid[], \(dispositions)::text[]) AS t(id, disposition)
                    WHERE cc.campaign_id = \(campaign.id) AND cc.contact_id = t.id
                    """,
                    logger: logger)
            }
            if !later.isEmpty {
                try await connection.query(
                    """
                    UPDATE campaign_contacts cc SET next_attempt_at = t.next, updated_at = now()
                    FROM unnest(\(later.map(\.0))::uuid[], \(later.map(\.1))::timestamptz[]) AS t(id, next)
                    WHERE cc.campaign_id = \(campaign.id) AND cc.contact_id = t.id
                    """,
                    logger: logger)
            }
            if !dials.isEmpty {
                let contacts = dials.map(\.contactID)
                let calls = dials.map(\.callID.uuid)
                let attempts = dials.map(\.attempt)
                try await connection.query(
                    """
                    UPDATE campaign_contacts cc SET state = 'dialing', attempts = t.attempt, call_id = t.call,
                        next_attempt_at = NULL, updated_at = now()
                    FROM unnest(\(contacts)::uuid[], \(calls)::uuid[], \(attempts)::int[]) AS t(id, call, attempt)
                    WHERE cc.campaign_id = \(campaign.id) AND cc.contact_id = t.id
                    """,
                    logger: logger)
                try await connection.query(
                    """
                    INSERT INTO campaign_attempts (campaign_id, contact_id, attempt, call_id, dispatched_at)
                    SELECT \(campaign.id), id, attempt, call, \(now)
                    FROM unnest(\(contacts)::uuid[], \(calls)::uuid[], \(attempts)::int[]) AS t(id, call, attempt)
                    """,
                    logger: logger)
            }
            return CampaignDispatch(
                dials: dials, doNotCall: blocked.count, rescheduled: later.count, leaseLost: false)
        }
    }

    /// The end of a campaign call, as the status topic told it.
    public struct CampaignCallEnd: Sendable, Hashable {
        /// The call.
        public var callID: CallID
        /// How it ended.
        public var outcome: CampaignOutcome

        /// Creates an end.
        public init(callID: CallID, outcome: CampaignOutcome) {
            self.callID = callID
            self.outcome = outcome
        }
    }

    /// Applies the ends of campaign calls (other calls are ignored): each attempt gets its outcome, and its contact
    /// is due again after the retry rules' wait (at the next opening of its calling window from then), or done with
    /// the outcome as its disposition. Idempotent: an attempt that has its outcome already changes nothing. Returns
    /// how many attempts were ended.
    public func recordCampaignCallEnds(_ ends: [CampaignCallEnd], at now: Date) async throws -> Int {
        guard !ends.isEmpty else { return 0 }
        let logger = self.logger
        var outcomes: [UUID: CampaignOutcome] = [:]
        for end in ends { outcomes[end.callID.uuid] = end.outcome }
        let callIDs = Array(outcomes.keys)
        return try await transaction { connection in
            let rows = try await connection.query(
                """
                SELECT a.call_id, a.campaign_id, a.contact_id, cc.attempts, cc.retries::text, cc.time_zone,
                    cc.state = 'dialing' AND cc.call_id = a.call_id, k.state, k.calling_windows::text,
                    k.retry_rules::text, k.max_attempts, k.ends_at
                FROM campaign_attempts a
                JOIN campaign_contacts cc ON cc.campaign_id = a.campaign_id AND cc.contact_id = a.contact_id
                JOIN campaigns k ON k.id = a.campaign_id
                WHERE a.call_id = ANY(\(callIDs)::uuid[]) AND a.outcome IS NULL
                ORDER BY a.campaign_id, a.contact_id
                FOR UPDATE OF a, cc
                """,
                logger: logger)
            var endedCalls: [UUID] = [], endedOutcomes: [String] = []
            var contactCampaigns: [UUID] = [], contactIDs: [UUID] = [], states: [String] = []
            var nexts: [Date] = [], retries: [String] = [], lastOutcomes: [String] = [], dispositions: [String] = []
            for try await row in rows {
                let columns = row.makeRandomAccess()
                let call = try columns[0].decode(UUID.self)
                let campaignID = try columns[1].decode(UUID.self)
                let contact = try columns[2].decode(UUID.self)
                let attempts = try columns[3].decode(Int.self)
                var retried = try JSONDecoder().decode(
                    [String: Int].self, from: Data(try columns[4].decode(String.self).utf8))
                let zoneName = try columns[5].decode(String.self)
                let current = try columns[6].decode(Bool.self)
                let campaignState = CampaignState(rawValue: try columns[7].decode(String.self)) ?? .stopped
                let windows = try WireCoding.decoder.decode(
                    CallingWindows.self, from: Data(try columns[8].decode(String.self).utf8))
                let rules = try WireCoding.decoder.decode(
                    RetryRules.self, from: Data(try columns[9].decode(String.self).utf8))
                let maxAttempts = try columns[10].decode(Int.self)
                let endsAt = try columns[11].decode(Date?.self)
                guard let outcome = outcomes[call] else { continue }
                endedCalls.append(call)
                endedOutcomes.append(outcome.rawValue)
                // An attempt that is no longer its contact's current one (a repeated end) changes only its log.
                guard current else { continue }
                var state = "done"
                var next = now
                var disposition = outcome.rawValue
                if !campaignState.isFinal {
                    switch rules.decide(
                        after: outcome, attemptsMade: attempts, retriesOf: retried[outcome.rawValue, default: 0],
                        maxAttempts: maxAttempts)
                    {
                    case .retry(let wait):
                        let zone = TimeZone(identifier: zoneName) ?? TimeZone(identifier: "UTC")!
                        if let opening = windows.nextOpening(
                            atOrAfter: now.addingTimeInterval(wait.timeInterval), in: zone),
                            endsAt.map({ opening < $0 }) ?? true
                        {
                            state = "pending"
                            next = opening
                            disposition = ""
                            retried[outcome.rawValue, default: 0] += 1
                        }
                    case .finished(let final):
                        disposition = final.rawValue
                    }
                }
                contactCampaigns.append(campaignID)
                contactIDs.append(contact)
                states.append(state)
                nexts.append(next)
                retries.append(String(decoding: try JSONEncoder().encode(retried), as: UTF8.self))
                lastOutcomes.append(outcome.rawValue)
                dispositions.append(disposition)
            }
            guard !endedCalls.isEmpty else { return 0 }
            try await connection.query(
                """
                UPDATE campaign_attempts a SET outcome = t.outcome, ended_at = \(now)
                FROM unnest(\(endedCalls)::uuid[], \(endedOutcomes)::text[]) AS t(call, outcome)
                WHERE a.call_id = t.call AND a.outcome IS NULL
                """,
                logger: logger)
            if !contactIDs.isEmpty {
                try await connection.query(
                    """
                    UPDATE campaign_contacts cc SET state = t.state,
                        next_attempt_at = CASE WHEN t.state = 'pending' THEN t.next END,
                        call_id = NULL, retries = t.retries::jsonb, last_outcome = t.last,
                        disposition = NULLIF(t.disposition, ''), updated_at = now()
                    FROM unnest(\(contactCampaigns)::uuid[], \(contactIDs)::uuid[], \(states)::text[],
                        \(nexts)::timestamptz[], \(retries)::text[], \(lastOutcomes)::text[], \(dispositions)::text[])
                        AS t(campaign, contact, state, next, retries, last, disposition)
                    WHERE cc.campaign_id = t.campaign AND cc.contact_id = t.contact AND cc.state = 'dialing'
                    """,
                    logger: logger)
            }
            return endedCalls.count
        }
    }

    /// Completes a campaign `owner` holds when nothing is left to do (no contact pending or dialing), or when its
    /// end has passed and nothing is dialing (pending contacts then stay undialed). Returns whether it completed.
    public func completeCampaignIfDone(_ campaign: UUID, owner: String, at now: Date) async throws -> Bool {
        let rows = try await client.query(
            """
            UPDATE campaigns k SET state = 'completed', finished_at = \(now), updated_at = now(),
                lease_owner = NULL, lease_until = NULL
            WHERE k.id = \(campaign) AND k.state = 'running' AND k.lease_owner = \(owner)
                AND NOT EXISTS (
                    SELECT 1 FROM campaign_contacts WHERE campaign_id = \(campaign) AND state = 'dialing')
                AND (
                    (k.ends_at IS NOT NULL AND k.ends_at <= \(now))
                    OR NOT EXISTS (
                        SELECT 1 FROM campaign_contacts WHERE campaign_id = \(campaign) AND state = 'pending'))
            RETURNING 1
            """,
            logger: logger)
        for try await _ in rows { return true }
        return false
    }

    // MARK: - Helpers

    /// The UUID that sorts before every other (a first page's cursor).
    static let lowestUUID = UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))

    /// Every contact of the campaign's lists (a phone once), pending from the first opening of its calling window
    /// at or after `max(now, startsAt)`; contacts whose zone has no opening before the campaign's end are done.
    static func layOutContacts(
        of campaign: Campaign, at now: Date, on connection: PostgresConnection, logger: Logger
    )
        async throws
    {
        let listIDs = campaign.settings.listIDs
        let zoneRows = try await connection.query(
            "SELECT DISTINCT time_zone FROM contacts WHERE list_id = ANY(\(listIDs)::uuid[])", logger: logger)
        var zones: [String] = [], openings: [Date] = [], states: [String] = []
        let from = max(now, campaign.settings.startsAt ?? now)
        for try await name in zoneRows.decode(String.self) {
            let zone = TimeZone(identifier: name) ?? TimeZone(identifier: "UTC")!
            zones.append(name)
            if let opening = campaign.settings.callingWindows.nextOpening(atOrAfter: from, in: zone),
                campaign.settings.endsAt.map({ opening < $0 }) ?? true
            {
                openings.append(opening)
                states.append("pending")
            } else {
                openings.append(from)
                states.append("done")
            }
        }
        try await connection.query(
            """
            INSERT INTO campaign_contacts (campaign_id, contact_id, phone, time_zone, state, next_attempt_at,
                disposition)
            SELECT \(campaign.id), c.id, c.phone, c.time_zone, z.state,
                CASE WHEN z.state = 'pending' THEN z.opening END,
                CASE WHEN z.state = 'done' THEN 'no_calling_window' END
            FROM contacts c
            JOIN unnest(\(zones)::text[], \(openings)::timestamptz[], \(states)::text[]) AS z(zone, opening, state)
                ON z.zone = c.time_zone
            WHERE c.list_id = ANY(\(listIDs)::uuid[])
            ON CONFLICT DO NOTHING
            """,
            logger: logger)
    }

    static func requireReadyLists(
        _ listIDs: [UUID], in organization: OrganizationID, on connection: PostgresConnection, logger: Logger
    ) async throws {
        let rows = try await connection.query(
            """
            SELECT id, state FROM contact_lists
            WHERE id = ANY(\(listIDs)::uuid[]) AND organization_id = \(organization.uuid)
            """,
            logger: logger)
        var states: [UUID: String] = [:]
        for try await (id, state) in rows.decode((UUID, String).self) { states[id] = state }
        for list in listIDs {
            guard let state = states[list] else { throw CampaignStoreError.unknownList(list) }
            guard state == ContactList.State.ready.rawValue else { throw CampaignStoreError.listNotReady(list) }
        }
    }

    static func campaignExists(
        _ id: UUID, in organization: OrganizationID, on connection: PostgresConnection, logger: Logger
    ) async throws -> Bool {
        let rows = try await connection.query(
            "SELECT 1 FROM campaigns WHERE id = \(id) AND organization_id = \(organization.uuid)", logger: logger)
        for try await _ in rows { return true }
        return false
    }

    static func lockCampaign(
        _ id: UUID, in organization: OrganizationID, on connection: PostgresConnection, logger: Logger
    ) async throws -> Campaign? {
        let rows = try await connection.query(
            """
            SELECT \(unescaped: campaignColumns) FROM campaigns
            WHERE id = \(id) AND organization_id = \(organization.uuid) FOR UPDATE
            """,
            logger: logger)
        for try await row in rows { return try decodeCampaign(row) }
        return nil
    }

    static func campaign(_ id: UUID, on connection: PostgresConnection, logger: Logger) async throws -> Campaign? {
        let rows = try await connection.query(
            "SELECT \(unescaped: campaignColumns) FROM campaigns WHERE id = \(id)", logger: logger)
        for try await row in rows { return try decodeCampaign(row) }
        return nil
    }

    static func decodeContactList(_ row: PostgresRow) throws -> ContactList {
        let (id, organization, name, state, rowsRead, contacts, refused, error, createdBy, createdAt) = try row.decode(
            (UUID, UUID, String, String, Int, Int, Int, String?, String, Date).self)
        guard let state = ContactList.State(rawValue: state) else {
            throw StoreError.corruptRow("contact list \(id) has state \(state)")
        }
        return ContactList(
            id: id, organizationID: OrganizationID(uuid: organization), name: name, state: state, rowsRead: rowsRead,
            contacts: contacts, refused: refused, error: error, createdBy: createdBy, createdAt: createdAt)
    }

    static func decodeDoNotCall(_ rows: PostgresRowSequence) async throws -> [DoNotCallEntry] {
        var entries: [DoNotCallEntry] = []
        for try await (phone, campaign, reason, createdBy, createdAt) in rows.decode(
            (String, UUID?, String?, String, Date).self)
        {
            entries.append(
                DoNotCallEntry(
                    phone: phone, campaignID: campaign, reason: reason, createdBy: createdBy, createdAt: createdAt))
        }
        return entries
    }

    static func decodeFields(_ text: String) throws -> [String: String] {
        do {
            return try WireCoding.decoder.decode([String: String].self, from: Data(text.utf8))
        } catch {
            throw StoreError.corruptRow("contact fields: \(error)")
        }
    }

    static func decodeCampaign(_ row: PostgresRow) throws -> Campaign {
        let columns = row.makeRandomAccess()
        let id = try columns[0].decode(UUID.self)
        do {
            let stateText = try columns[2].decode(String.self)
            guard let state = CampaignState(rawValue: stateText) else {
                throw StoreError.corruptRow("campaign \(id) has state \(stateText)")
            }
            let callerName = try columns[4].decode(String?.self)
            let callerNumber = try columns[5].decode(String?.self)
            let settings = CampaignSettings(
                name: try columns[3].decode(String.self),
                listIDs: try columns[21].decode([UUID].self),
                callerID: try callerNumber.map { try CallerID(name: callerName, number: $0) },
                dialplan: try columns[6].decode(String?.self).map { context in
                    try DialplanTarget(
                        context: context, extension: try columns[7].decode(String.self),
                        priority: try columns[8].decode(Int.self))
                },
                timeoutSeconds: try columns[9].decode(Int.self),
                callingWindows: try WireCoding.decoder.decode(
                    CallingWindows.self, from: Data(try columns[10].decode(String.self).utf8)),
                startsAt: try columns[11].decode(Date?.self),
                endsAt: try columns[12].decode(Date?.self),
                maxCallsPerSecond: try columns[13].decode(Double.self),
                maxLiveCalls: try columns[14].decode(Int.self),
                retryRules: try WireCoding.decoder.decode(
                    RetryRules.self, from: Data(try columns[15].decode(String.self).utf8)),
                maxAttempts: try columns[16].decode(Int.self),
                machineDetection: try columns[22].decode(String?.self).map {
                    try WireCoding.decode(MachineDetection.self, from: Array($0.utf8))
                },
                record: try columns[23].decode(Bool.self))
            return Campaign(
                id: id, organizationID: OrganizationID(uuid: try columns[1].decode(UUID.self)), state: state,
                settings: settings, createdBy: try columns[17].decode(String.self),
                createdAt: try columns[18].decode(Date.self), startedAt: try columns[19].decode(Date?.self),
                finishedAt: try columns[20].decode(Date?.self))
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError.corruptRow("campaign \(id): \(error)")
        }
    }
}
