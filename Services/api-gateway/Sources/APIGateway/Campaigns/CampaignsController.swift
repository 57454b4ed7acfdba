import CallDomain
import CallStore
import Campaigns
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// Contact lists, do-not-call lists and campaigns of the caller's organization (under `/api/v1`, scope
/// `campaigns`):
///
/// - `POST /contact-lists` (multipart upload), `GET /contact-lists`, `GET/DELETE /contact-lists/{id}`,
///   `GET /contact-lists/{id}/errors`;
/// - `POST/GET /dnc`, `GET /dnc/check?phone=`, `DELETE /dnc/{phone}`, and the same under `/campaigns/{id}/dnc`;
/// - `POST/GET /campaigns`, `GET/PUT /campaigns/{id}`, `POST /campaigns/{id}/start|pause|resume|stop`,
///   `GET /campaigns/{id}/contacts`, `GET /campaigns/{id}/results` (CSV).
struct CampaignsController: Sendable {
    typealias Context = AuthenticatedRequestContext

    let repository: any CampaignRepository
    let allowedContexts: Set<String>
    let defaultTimeoutSeconds: Int
    let maxBodyBytes: Int
    let uploadMaxBytes: Int
    let uploadDirectory: URL

    /// The most numbers one `POST /dnc` adds.
    static let maximumDoNotCallBatch = 10_000
    /// The body limit of `POST /dnc`: room for its 10,000 numbers.
    static let doNotCallBodyBytes = 1_048_576

    /// The body limit of this controller's upload routes (`nil` for the other paths): a contact list, a do-not-call
    /// batch.
    static func uploadLimit(of path: String, contactListMaxBytes: Int) -> Int? {
        if path == "/api/v1/contact-lists" { return contactListMaxBytes }
        if path == "/api/v1/dnc" || (path.hasPrefix("/api/v1/campaigns/") && path.hasSuffix("/dnc")) {
            return doNotCallBodyBytes
        }
        return nil
    }

    func addRoutes(to group: RouterGroup<Context>) {
        group.post("contact-lists", use: uploadList)
        group.get("contact-lists", use: lists)
        group.get("contact-lists/:id", use: showList)
        group.delete("contact-lists/:id", use: deleteList)
        group.get("contact-lists/:id/errors", use: listErrors)
        group.post("dnc", use: addDoNotCall)
        group.get("dnc", use: doNotCallList)
        group.get("dnc/check", use: checkDoNotCall)
        group.delete("dnc/:phone", use: removeDoNotCall)
        group.post("campaigns/:id/dnc", use: addDoNotCall)
        group.get("campaigns/:id/dnc", use: doNotCallList)
        group.delete("campaigns/:id/dnc/:phone", use: removeDoNotCall)
        group.post("campaigns", use: create)
        group.get("campaigns", use: list)
        group.get("campaigns/:id", use: show)
        group.put("campaigns/:id", use: update)
        group.post("campaigns/:id/start", use: { try await change($0, $1, to: .running, from: [.draft]) })
        group.post("campaigns/:id/pause", use: { try await change($0, $1, to: .paused, from: [.running]) })
        group.post("campaigns/:id/resume", use: { try await change($0, $1, to: .running, from: [.paused]) })
        group.post("campaigns/:id/stop", use: { try await change($0, $1, to: .stopped, from: nil) })
        group.get("campaigns/:id/contacts", use: contacts)
        group.get("campaigns/:id/results", use: results)
        group.get("campaigns/:id/events", use: events)
    }

    /// How often a campaign's event stream looks at its progress.
    static let progressInterval = Duration.seconds(2)
    /// A comment line after this long without an event, so proxies keep the stream open.
    static let streamHeartbeat = Duration.seconds(15)

    // MARK: - Contact lists

    @Sendable func uploadList(_ request: Request, context: Context) async throws -> Response {
        try context.require(.campaigns)
        let upload = try await ContactListUpload.read(request, limit: uploadMaxBytes, into: uploadDirectory)
        defer { upload.discard() }
        var errors: [FieldError] = []
        let name = upload.texts["name"]?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        if name.isEmpty || name.count > 200 || name.unicodeScalars.contains(where: { $0.value < 0x20 }) {
            errors.append(FieldError(field: "name", message: "must be 1 to 200 printable characters"))
        }
        var mapping = ContactColumnMapping(phone: "phone")
        if let text = upload.texts["mapping"] {
            do {
                mapping = try WireCoding.decoder.decode(ContactColumnMapping.self, from: Data(text.utf8))
            } catch {
                errors.append(
                    FieldError(
                        field: "mapping",
                        message: #"must be JSON: {"phone": "<column>", "time_zone": "<column>", "fields": [...]}"#))
            }
        }
        var region: PhoneRegion? = .us
        if let code = upload.texts["default_region"] {
            region = code.isEmpty ? nil : PhoneRegion(isoCode: code)
            if !code.isEmpty && region == nil {
                errors.append(FieldError(field: "default_region", message: "must be an ISO 3166 country code we know"))
            }
        }
        var zone: TimeZone?
        if let identifier = upload.texts["default_time_zone"], !identifier.isEmpty {
            zone = TimeZone(identifier: identifier)
            if zone == nil {
                errors.append(FieldError(field: "default_time_zone", message: "must be an IANA time zone"))
            }
        }
        guard let file = upload.fileURL else {
            errors.append(FieldError(field: "file", message: "is required (the CSV file part)"))
            throw Problem.validation(errors)
        }
        guard errors.isEmpty else { throw Problem.validation(errors) }
        let organization = context.caller.organizationID
        let list = try await context.store {
            try await repository.createContactList(name: name, in: organization, by: context.auditActor)
        }
        let imported: ContactList
        do {
            imported = try await context.store {
                try await ContactListImport(repository: repository).run(
                    list: list, file: file, mapping: mapping, defaultRegion: region, defaultTimeZone: zone)
            }
        } catch {
            // A list whose import broke off (the database went away) says so, rather than staying `importing`.
            _ = try? await repository.finishContactImport(
                list: list.id, rowsRead: 0, error: "the import was interrupted; upload the list again")
            throw error
        }
        context.logger.notice(
            "contact list imported",
            metadata: [
                "contact_list.id": .string(list.id.lowercased), "contacts": .stringConvertible(imported.contacts),
                "refused": .stringConvertible(imported.refused), "bytes": .stringConvertible(upload.fileBytes),
            ])
        return try JSONResponse.make(
            ContactListResource(list: imported), status: .created,
            headers: [.location: "/api/v1/contact-lists/\(list.id.lowercased)"])
    }

    @Sendable func lists(_ request: Request, context: Context) async throws -> Response {
        try context.require(.campaigns)
        let lists = try await context.store {
            try await repository.contactLists(in: context.caller.organizationID, limit: 200)
        }
        return try JSONResponse.make(ContactListPage(contactLists: lists.map(ContactListResource.init)))
    }

    @Sendable func showList(_ request: Request, context: Context) async throws -> Response {
        try context.require(.campaigns)
        let id = try Self.id(context, of: "contact list")
        guard
            let list = try await context.store({
                try await repository.contactList(id: id, in: context.caller.organizationID)
            })
        else { throw Self.notFound("contact list", id) }
        return try JSONResponse.make(ContactListResource(list: list))
    }

    @Sendable func deleteList(_ request: Request, context: Context) async throws -> Response {
        try context.require(.campaigns)
        let id = try Self.id(context, of: "contact list")
        guard
            try await campaignStore(
                context,
                {
                    try await repository.deleteContactList(
                        id: id, in: context.caller.organizationID, by: context.auditActor)
                })
        else { throw Self.notFound("contact list", id) }
        return Response(status: .noContent)
    }

    @Sendable func listErrors(_ request: Request, context: Context) async throws -> Response {
        try context.require(.campaigns)
        let id = try Self.id(context, of: "contact list")
        let (after, limit) = try Self.page(request, after: { Int($0).flatMap { $0 >= 0 ? $0 : nil } }, default: 0)
        guard
            let errors = try await context.store({
                try await repository.contactListErrors(
                    id: id, in: context.caller.organizationID, after: after, limit: limit)
            })
        else { throw Self.notFound("contact list", id) }
        return try JSONResponse.make(
            CursorPage(
                key: "errors", items: errors.map(ContactListErrorResource.init),
                next: errors.count == limit ? errors.last?.line : nil))
    }

    // MARK: - Do not call

    @Sendable func addDoNotCall(_ request: Request, context: Context) async throws -> Response {
        try context.require(.campaigns)
        let campaign = try Self.optionalID(context)
        let body = try await JSONInput.object(from: request, limit: max(maxBodyBytes, Self.doNotCallBodyBytes))
        var reader = JSONObjectReader(body)
        reader.refuseUnknown(["numbers", "reason", "default_region"])
        let numbers = reader.strings("numbers", required: true) ?? []
        let reason = reader.string("reason")
        if let reason, reason.count > 200 { reader.fail("reason", "must be at most 200 characters") }
        var region: PhoneRegion? = .us
        if let code = reader.string("default_region") {
            region = PhoneRegion(isoCode: code)
            if region == nil { reader.fail("default_region", "must be an ISO 3166 country code we know") }
        }
        if numbers.isEmpty || numbers.count > Self.maximumDoNotCallBatch {
            reader.fail("numbers", "must list 1 to \(Self.maximumDoNotCallBatch) numbers")
        }
        var phones: [String] = []
        for (index, number) in numbers.enumerated() {
            do {
                phones.append(try PhoneNumber(parsing: number, defaultRegion: region).e164)
            } catch {
                reader.fail("numbers[\(index)]", error.message)
            }
        }
        guard reader.errors.isEmpty else { throw Problem.validation(reader.errors) }
        let added = try await campaignStore(context) {
            try await repository.addDoNotCall(
                phones, campaign: campaign, reason: reason, in: context.caller.organizationID,
                by: context.auditActor)
        }
        return try JSONResponse.make(DoNotCallAdded(numbers: Set(phones).count, added: added), status: .ok)
    }

    @Sendable func doNotCallList(_ request: Request, context: Context) async throws -> Response {
        try context.require(.campaigns)
        let campaign = try Self.optionalID(context)
        let (after, limit) = try Self.page(request, after: { Optional($0) }, default: nil as String?)
        let entries = try await context.store {
            try await repository.doNotCallList(
                campaign: campaign, in: context.caller.organizationID, after: after, limit: limit)
        }
        return try JSONResponse.make(
            CursorPage(
                key: "entries", items: entries.map(DoNotCallResource.init),
                next: entries.count == limit ? entries.last?.phone : nil))
    }

    @Sendable func checkDoNotCall(_ request: Request, context: Context) async throws -> Response {
        try context.require(.campaigns)
        let phone = try Self.phone(request.uri.queryParameters.get("phone"), field: "phone")
        let entries = try await context.store {
            try await repository.doNotCallEntries(for: phone, in: context.caller.organizationID)
        }
        return try JSONResponse.make(DoNotCallCheck(phone: phone, entries: entries.map(DoNotCallResource.init)))
    }

    @Sendable func removeDoNotCall(_ request: Request, context: Context) async throws -> Response {
        try context.require(.campaigns)
        let campaign = try Self.optionalID(context)
        let phone = try Self.phone(context.parameters.get("phone")?.removingPercentEncoding, field: "phone")
        guard
            try await context.store({
                try await repository.removeDoNotCall(
                    phone, campaign: campaign, in: context.caller.organizationID, by: context.auditActor)
            })
        else { throw Problem(.notFound, detail: "\(phone) is not on that do-not-call list") }
        return Response(status: .noContent)
    }

    // MARK: - Campaigns

    @Sendable func create(_ request: Request, context: Context) async throws -> Response {
        try context.require(.campaigns)
        let body = try await JSONInput.object(from: request, limit: maxBodyBytes)
        let settings = try CampaignRequest.settings(
            from: body, allowedContexts: allowedContexts, defaultTimeoutSeconds: defaultTimeoutSeconds)
        let campaign = try await campaignStore(context) {
            try await repository.createCampaign(settings, in: context.caller.organizationID, by: context.auditActor)
        }
        context.logger.notice("campaign created", metadata: ["campaign.id": .string(campaign.id.lowercased)])
        return try JSONResponse.make(
            CampaignResource(campaign: campaign), status: .created,
            headers: [.location: "/api/v1/campaigns/\(campaign.id.lowercased)"])
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        try context.require(.campaigns)
        let campaigns = try await context.store {
            try await repository.campaigns(in: context.caller.organizationID, limit: 200)
        }
        return try JSONResponse.make(CampaignPage(campaigns: campaigns.map { CampaignResource(campaign: $0) }))
    }

    @Sendable func show(_ request: Request, context: Context) async throws -> Response {
        try context.require(.campaigns)
        let id = try Self.id(context, of: "campaign")
        let organization = context.caller.organizationID
        guard
            let (campaign, progress) = try await context.store({
                try await repository.campaignWithProgress(id: id, in: organization)
            })
        else { throw Self.notFound("campaign", id) }
        return try JSONResponse.make(CampaignResource(campaign: campaign, progress: progress))
    }

    @Sendable func update(_ request: Request, context: Context) async throws -> Response {
        try context.require(.campaigns)
        let id = try Self.id(context, of: "campaign")
        let body = try await JSONInput.object(from: request, limit: maxBodyBytes)
        let settings = try CampaignRequest.settings(
            from: body, allowedContexts: allowedContexts, defaultTimeoutSeconds: defaultTimeoutSeconds)
        let campaign = try await campaignStore(context) {
            try await repository.updateCampaign(
                id: id, in: context.caller.organizationID, settings: settings, by: context.auditActor)
        }
        return try JSONResponse.make(CampaignResource(campaign: campaign))
    }

    /// A lifecycle step; `from` lists the states it applies to (`nil`: any state the store allows).
    private func change(
        _ request: Request, _ context: Context, to target: CampaignState, from: Set<CampaignState>?
    ) async throws -> Response {
        try context.require(.campaigns)
        let id = try Self.id(context, of: "campaign")
        let campaign = try await campaignStore(context) {
            try await repository.changeCampaignState(
                id: id, in: context.caller.organizationID, to: target, from: from, at: Date(), by: context.auditActor)
        }
        context.logger.notice(
            "campaign state changed",
            metadata: ["campaign.id": .string(id.lowercased), "campaign.state": .string(target.rawValue)])
        return try JSONResponse.make(CampaignResource(campaign: campaign))
    }

    @Sendable func contacts(_ request: Request, context: Context) async throws -> Response {
        try context.require(.campaigns)
        let id = try Self.id(context, of: "campaign")
        let (after, limit) = try Self.page(request, after: { UUID(uuidString: $0) }, default: nil as UUID?)
        guard
            let contacts = try await context.store({
                try await repository.campaignContacts(
                    id: id, in: context.caller.organizationID, after: after, limit: limit)
            })
        else { throw Self.notFound("campaign", id) }
        let attempts = try await context.store {
            try await repository.campaignAttempts(campaign: id, contacts: contacts.map(\.contactID))
        }
        let byContact = Dictionary(grouping: attempts, by: \.contactID)
        return try JSONResponse.make(
            CursorPage(
                key: "contacts",
                items: contacts.map {
                    CampaignContactResource(contact: $0, attempts: byContact[$0.contactID] ?? [])
                },
                next: contacts.count == limit ? contacts.last?.contactID.lowercased : nil))
    }

    /// Every contact of the campaign as CSV (phone, time zone, state, attempts, last outcome, disposition, next
    /// attempt, then each attempt's outcome), streamed page by page.
    @Sendable func results(_ request: Request, context: Context) async throws -> Response {
        let (id, organization) = try await existingCampaign(context)
        let campaigns = repository
        var headers = HTTPFields()
        headers[.contentType] = "text/csv; charset=utf-8"
        headers[.contentDisposition] = "attachment; filename=\"campaign-\(id.lowercased)-results.csv\""
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                try await Self.writeResults(of: id, in: organization, from: campaigns, to: &writer)
            })
    }

    private static func writeResults(
        of id: UUID, in organization: OrganizationID, from repository: any CampaignRepository,
        to writer: inout any ResponseBodyWriter
    ) async throws {
        try await writer.write(
            ByteBuffer(
                string: "contact_id,phone,time_zone,state,attempts,last_outcome,disposition,next_attempt_at,"
                    + "attempt_outcomes\r\n"))
        var after: UUID?
        while let page = try await repository.campaignContacts(id: id, in: organization, after: after, limit: 1000),
            !page.isEmpty
        {
            let attempts = try await repository.campaignAttempts(campaign: id, contacts: page.map(\.contactID))
            var outcomes: [UUID: [String]] = [:]
            for attempt in attempts { outcomes[attempt.contactID, default: []].append(attempt.outcome ?? "in_flight") }
            var text = ""
            for contact in page {
                let cells = [
                    contact.contactID.lowercased, contact.phone, contact.timeZone, contact.state,
                    String(contact.attempts), contact.lastOutcome ?? "", contact.disposition ?? "",
                    contact.nextAttemptAt.map { WireCoding.formatTimestamp($0) } ?? "",
                    (outcomes[contact.contactID] ?? []).joined(separator: " "),
                ]
                text += cells.map { csvCell($0) }.joined(separator: ",") + "\r\n"
            }
            try await writer.write(ByteBuffer(string: text))
            after = page.last?.contactID
        }
        try await writer.finish(nil)
    }

    /// A campaign's live progress as Server-Sent Events: `event: progress` with the campaign (its state and
    /// progress, as `GET /campaigns/{id}` shows it) whenever it changed, looked at every 2 s; the stream ends after
    /// the campaign completed or stopped.
    @Sendable func events(_ request: Request, context: Context) async throws -> Response {
        let (id, organization) = try await existingCampaign(context)
        let campaigns = repository
        let logger = context.logger
        return Response(
            status: .ok, headers: EventsController.headers,
            body: ResponseBody { writer in
                try await Self.streamProgress(of: id, in: organization, from: campaigns, logger: logger, to: &writer)
            })
    }

    private static func streamProgress(
        of id: UUID, in organization: OrganizationID, from repository: any CampaignRepository, logger: Logger,
        to writer: inout any ResponseBodyWriter
    ) async throws {
        var last: String?
        var quietSince = ContinuousClock.now
        var sequence = 0
        while !Task.isCancelled {
            let snapshot: (campaign: Campaign, progress: CampaignProgress)?
            do {
                snapshot = try await repository.campaignWithProgress(id: id, in: organization)
            } catch {
                // The database is away: the stream waits for it rather than ending.
                logger.warning("campaign progress not read", metadata: ["error": .string("\(error)")])
                try await Task.sleep(for: progressInterval)
                continue
            }
            guard let (campaign, progress) = snapshot else { break }
            let data = String(
                decoding: try WireCoding.encode(CampaignResource(campaign: campaign, progress: progress)),
                as: UTF8.self)
            if data != last {
                sequence += 1
                try await writer.write(ByteBuffer(string: "id: \(sequence)\nevent: progress\ndata: \(data)\n\n"))
                last = data
                quietSince = .now
            } else if ContinuousClock.now - quietSince >= streamHeartbeat {
                try await writer.write(ByteBuffer(string: ": heartbeat\n\n"))
                quietSince = .now
            }
            if campaign.state.isFinal { break }
            try await Task.sleep(for: progressInterval)
        }
        try await writer.finish(nil)
    }

    // MARK: - Helpers

    /// The campaign the path names, when it is the caller's organization's (404 otherwise).
    private func existingCampaign(_ context: Context) async throws -> (id: UUID, organization: OrganizationID) {
        try context.require(.campaigns)
        let id = try Self.id(context, of: "campaign")
        let organization = context.caller.organizationID
        guard try await context.store({ try await repository.campaign(id: id, in: organization) }) != nil else {
            throw Self.notFound("campaign", id)
        }
        return (id, organization)
    }

    /// Runs a store call, answering the store's refusals as problems.
    private func campaignStore<Value>(_ context: Context, _ call: () async throws -> Value) async throws -> Value {
        try await context.store {
            do {
                return try await call()
            } catch let refusal as CampaignStoreError {
                throw Self.problem(refusal)
            }
        }
    }

    static func problem(_ refusal: CampaignStoreError) -> Problem {
        switch refusal {
        case .unknownList(let id):
            Problem.validation(field: "list_ids", message: "no contact list \(id.lowercased)")
        case .listNotReady(let id):
            Problem.validation(field: "list_ids", message: "contact list \(id.lowercased) is not ready (see its state)")
        case .listInUse:
            Problem(.conflict, detail: "a campaign uses this contact list")
        case .unknownCampaign:
            Problem(.notFound, detail: "no such campaign")
        case .notEditable(let state):
            Problem(
                .conflict,
                detail: "a \(state.rawValue) campaign cannot be changed (a paused one can, except its lists)")
        case .invalidTransition(let from, let to):
            Problem(.conflict, detail: "a \(from.rawValue) campaign cannot become \(to.rawValue)")
        }
    }

    /// A CSV cell, quoted when it must be (RFC 4180).
    static func csvCell(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    private static func page<Cursor>(
        _ request: Request, after parse: (String) -> Cursor?, default fallback: Cursor
    ) throws -> (Cursor, Int) {
        let query = request.uri.queryParameters
        var limit = 100
        if let text = query.get("limit") {
            guard let value = Int(text), (1...1000).contains(value) else {
                throw Problem.validation(field: "limit", message: "must be between 1 and 1000")
            }
            limit = value
        }
        guard let text = query.get("after") else { return (fallback, limit) }
        guard let cursor = parse(text) else {
            throw Problem.validation(field: "after", message: "must be the next_after of the previous page")
        }
        return (cursor, limit)
    }

    private static func phone(_ text: String?, field: String) throws -> String {
        guard let text, !text.isEmpty else { throw Problem.validation(field: field, message: "is required") }
        do {
            return try PhoneNumber(parsing: text, defaultRegion: .us).e164
        } catch {
            throw Problem.validation(field: field, message: error.message)
        }
    }

    private static func id(_ context: Context, of kind: String) throws -> UUID {
        guard let text = context.parameters.get("id"), let id = UUID(uuidString: text) else {
            throw Problem.validation(field: "id", message: "must be a \(kind) id (a UUID)")
        }
        return id
    }

    /// The campaign of a `/campaigns/{id}/dnc` route, `nil` for the organization's own list.
    private static func optionalID(_ context: Context) throws -> UUID? {
        guard context.parameters.get("id") != nil else { return nil }
        return try id(context, of: "campaign")
    }

    private static func notFound(_ kind: String, _ id: UUID) -> Problem {
        Problem(.notFound, detail: "no \(kind) \(id.lowercased)")
    }
}
