import CallDomain
import CallStore
import Campaigns
import Foundation
import Webhooks

/// The users the gateway authenticates and administers. Everything but the lookups for logging in and for checking
/// a token is scoped by organization: another organization's user is as absent as a deleted one.
public protocol UserRepository: Sendable {
    /// Creates a user in `organization`; throws `StoreError.duplicateUsername` if the name is taken.
    func createUser(
        username: String, passwordHash: String, role: UserRole, organization: OrganizationID, platformOperator: Bool,
        by actor: AuditActor
    ) async throws -> User
    /// The user with this name, in any organization (logging in).
    func user(named username: String) async throws -> User?
    /// The user with this id, in any organization (checking a token).
    func user(id: UUID) async throws -> User?
    /// The users of an organization, by name.
    func users(in organization: OrganizationID) async throws -> [User]
    /// Changes a user of the organization; `nil` when it has none with this id.
    func updateUser(
        id: UUID, in organization: OrganizationID, disabled: Bool?, role: UserRole?, by actor: AuditActor
    ) async throws -> User?
    /// Deletes a user of the organization; returns whether it had one with this id.
    func deleteUser(id: UUID, in organization: OrganizationID, by actor: AuditActor) async throws -> Bool
}

/// Organizations, API keys and the audit log.
public protocol OrganizationRepository: Sendable {
    /// Creates an organization; throws `StoreError.duplicateOrganization` if the name is taken.
    func createOrganization(
        name: String, limits: OrganizationLimits, by actor: AuditActor
    ) async throws
        -> Organization
    /// Every organization, by name.
    func organizations() async throws -> [Organization]
    /// The organization with this id.
    func organization(id: OrganizationID) async throws -> Organization?
    /// Replaces an organization's limits; `nil` when there is none with this id.
    func setLimits(
        _ limits: OrganizationLimits, of id: OrganizationID, by actor: AuditActor
    ) async throws
        -> Organization?
    /// The organization's calls being dialed or up.
    func liveCallCount(in organization: OrganizationID) async throws -> Int
    /// Stores a new key.
    func createAPIKey(_ key: NewAPIKey, by actor: AuditActor) async throws -> APIKey
    /// The organization's keys, newest first.
    func apiKeys(in organization: OrganizationID) async throws -> [APIKey]
    /// One key of the organization.
    func apiKey(id: UUID, in organization: OrganizationID) async throws -> APIKey?
    /// The key with this lookup id, in any organization (authenticating a request).
    func apiKey(lookupID: String) async throws -> APIKey?
    /// Revokes a key of the organization; `nil` when it has none with this id.
    func revokeAPIKey(id: UUID, in organization: OrganizationID, by actor: AuditActor) async throws -> APIKey?
    /// Records a key's use (at most once a minute).
    func recordAPIKeyUse(id: UUID, at now: Date) async throws
    /// The organization's audit log, newest first.
    func auditEvents(in organization: OrganizationID, limit: Int, before: Int64?) async throws -> [AuditEvent]
}

/// The call history the gateway answers queries from, and the idempotency keys it reserves. Every read is scoped
/// by organization: another organization's call answers `nil`, exactly like an unknown one.
public protocol CallRepository: Sendable {
    /// The call with its timeline if it is in `organization`'s history, or `nil` (also for a call accepted but not
    /// yet recorded by the history writer).
    func call(id: CallID, in organization: OrganizationID) async throws -> CallRecord?
    /// The organization whose history holds this call, or `nil` when it is not recorded (yet): a stream of a call of
    /// another organization answers 404, while one of a call not recorded yet waits for its events.
    func organization(ofCall id: CallID) async throws -> OrganizationID?
    /// The call's timeline after `afterSeq`, oldest first (only for a call already found in the organization).
    func timeline(of id: CallID, afterSeq: Int) async throws -> [CallTimelineEntry]
    /// One page of the organization's calls, newest first.
    func listCalls(
        in organization: OrganizationID, filter: CallFilter, limit: Int, cursor: CallCursor?
    ) async throws -> CallPage
    /// Binds an idempotency key to a fingerprint and call id unless it is bound already.
    func reserveIdempotencyKey(
        userID: UUID, key: String, fingerprint: String, callID: CallID
    ) async throws
        -> IdempotencyReservation
    /// Removes a reservation whose command could not be published.
    func releaseIdempotencyKey(userID: UUID, key: String) async throws
    /// A round trip to the database.
    func ping() async throws
}

/// Call recordings, for the organization's users: read, and erased on request.
public protocol CallRecordingRepository: Sendable {
    /// The call's recording if the call is in `organization`'s history (`nil` also for a call without one).
    func recording(of callID: CallID, in organization: OrganizationID) async throws -> CallRecording?
    /// Marks a stored recording erased and audits it; `nil` when there is no stored recording to erase.
    func eraseRecording(
        of callID: CallID, in organization: OrganizationID, by actor: AuditActor, at now: Date
    ) async throws -> CallRecording?
}

extension CallStore: CallRecordingRepository {}

/// Webhook endpoints, the signing secrets and the delivery log, for the organization's admins (the dispatcher
/// uses the store directly).
public protocol WebhookRepository: Sendable {
    /// Creates a subscription endpoint with its first secret.
    func createWebhookEndpoint(
        in organization: OrganizationID, url: String, description: String, eventTypes: Set<WebhookEventType>,
        enabled: Bool, secret: WebhookSecret, by actor: AuditActor
    ) async throws -> WebhookEndpoint
    /// The organization's subscription endpoints, newest first.
    func webhookEndpoints(in organization: OrganizationID) async throws -> [WebhookEndpoint]
    /// One endpoint of the organization.
    func webhookEndpoint(id: UUID, in organization: OrganizationID) async throws -> WebhookEndpoint?
    /// Changes an endpoint; `nil` when the organization has none with this id.
    func updateWebhookEndpoint(
        id: UUID, in organization: OrganizationID, change: CallStore.WebhookEndpointChange, by actor: AuditActor
    ) async throws -> WebhookEndpoint?
    /// Deletes an endpoint; whether it existed.
    func deleteWebhookEndpoint(id: UUID, in organization: OrganizationID, by actor: AuditActor) async throws -> Bool
    /// Adds a newest secret for `owner` (an endpoint, or the organization's status callbacks); when the older ones
    /// stop signing, or `nil` when the owner is not the organization's.
    func rotateWebhookSecret(
        owner: UUID, in organization: OrganizationID, secret: WebhookSecret, overlap: Duration, at now: Date,
        by actor: AuditActor
    ) async throws -> Date?
    /// Whether the organization can sign status callbacks.
    func hasStatusCallbackSecret(_ organization: OrganizationID, at now: Date) async throws -> Bool
    /// Queues a test message; `nil` when the endpoint is not the organization's or is disabled.
    func queueTestDelivery(
        endpoint id: UUID, in organization: OrganizationID, at now: Date
    ) async throws
        -> WebhookDelivery?
    /// An endpoint's deliveries, newest first.
    func webhookDeliveries(
        endpoint: UUID, in organization: OrganizationID, limit: Int, before: UUID?
    ) async throws
        -> [WebhookDelivery]
    /// A call's deliveries, oldest first.
    func webhookDeliveries(call: CallID, in organization: OrganizationID) async throws -> [WebhookDelivery]
    /// One delivery with its attempts.
    func webhookDelivery(id: UUID, in organization: OrganizationID) async throws -> (WebhookDelivery, [WebhookAttempt])?
    /// Sends a delivery again, now, with a fresh schedule.
    func redeliver(id: UUID, in organization: OrganizationID, at now: Date) async throws -> WebhookDelivery?
}

extension CallStore: UserRepository {}
extension CallStore: WebhookRepository {}
extension CallStore: OrganizationRepository {}
extension CallStore: CallRepository {}

/// Contact lists, do-not-call lists and campaigns of an organization. Every read and change is scoped by
/// organization; refusals are ``CampaignStoreError``s.
public protocol CampaignRepository: Sendable {
    /// Creates an empty list being imported.
    func createContactList(
        name: String, in organization: OrganizationID, by actor: AuditActor
    ) async throws
        -> ContactList
    /// Adds accepted contacts to a list being imported.
    func appendContacts(_ contacts: [NewContact], to list: UUID) async throws
    /// Records refused lines of a list being imported.
    func recordContactErrors(_ errors: [ContactListError], list: UUID) async throws
    /// Ends an import (`ready`, or `failed` with `error`).
    func finishContactImport(list: UUID, rowsRead: Int, error: String?) async throws -> ContactList
    /// A list of the organization.
    func contactList(id: UUID, in organization: OrganizationID) async throws -> ContactList?
    /// The organization's lists, newest first.
    func contactLists(in organization: OrganizationID, limit: Int) async throws -> [ContactList]
    /// A list's refused lines after `after`.
    func contactListErrors(
        id: UUID, in organization: OrganizationID, after: Int, limit: Int
    ) async throws
        -> [ContactListError]?
    /// Deletes a list no campaign uses.
    func deleteContactList(id: UUID, in organization: OrganizationID, by actor: AuditActor) async throws -> Bool
    /// Adds numbers to the organization's or a campaign's do-not-call list.
    func addDoNotCall(
        _ phones: [String], campaign: UUID?, reason: String?, in organization: OrganizationID, by actor: AuditActor
    ) async throws -> Int
    /// Removes a number from a do-not-call list.
    func removeDoNotCall(
        _ phone: String, campaign: UUID?, in organization: OrganizationID, by actor: AuditActor
    )
        async throws -> Bool
    /// Every entry for a number in the organization.
    func doNotCallEntries(for phone: String, in organization: OrganizationID) async throws -> [DoNotCallEntry]
    /// One page of a do-not-call list.
    func doNotCallList(
        campaign: UUID?, in organization: OrganizationID, after: String?, limit: Int
    ) async throws
        -> [DoNotCallEntry]
    /// Creates a draft campaign.
    func createCampaign(
        _ settings: CampaignSettings, in organization: OrganizationID, by actor: AuditActor
    )
        async throws -> Campaign
    /// A campaign of the organization.
    func campaign(id: UUID, in organization: OrganizationID) async throws -> Campaign?
    /// The organization's campaigns, newest first.
    func campaigns(in organization: OrganizationID, limit: Int) async throws -> [Campaign]
    /// Replaces a draft's or a paused campaign's settings.
    func updateCampaign(
        id: UUID, in organization: OrganizationID, settings: CampaignSettings, by actor: AuditActor
    )
        async throws -> Campaign
    /// Moves a campaign along its lifecycle (from one of `from`, when given).
    func changeCampaignState(
        id: UUID, in organization: OrganizationID, to target: CampaignState, from: Set<CampaignState>?, at now: Date,
        by actor: AuditActor
    ) async throws -> Campaign
    /// A campaign with where its contacts stand.
    func campaignWithProgress(
        id: UUID, in organization: OrganizationID
    ) async throws
        -> (campaign: Campaign, progress: CampaignProgress)?
    /// One page of a campaign's contacts.
    func campaignContacts(
        id: UUID, in organization: OrganizationID, after: UUID?, limit: Int
    ) async throws
        -> [CampaignContact]?
    /// The attempts of some of a campaign's contacts.
    func campaignAttempts(campaign: UUID, contacts: [UUID]) async throws -> [CampaignAttempt]
}

extension CallStore: CampaignRepository {}
