import CallDomain
import CallStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOHTTP1
import PostgresNIO
import TestSupport
import Testing

@testable import APIGateway

/// Contact lists, do-not-call lists and campaigns through the HTTP API (every answer is checked against the OpenAPI
/// contract when the gateway stops).
@Suite(.timeLimit(.minutes(4)))
struct CampaignAPITests {
    static let boundary = "----dialer-test-boundary"

    /// A `multipart/form-data` body with text parts and a `file` part.
    static func multipart(_ texts: [(String, String)], file: String?) -> String {
        var body = ""
        for (name, value) in texts {
            body += "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n"
        }
        if let file {
            body += "--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"list.csv\"\r\n"
            body += "Content-Type: text/csv\r\n\r\n\(file)\r\n"
        }
        return body + "--\(boundary)--\r\n"
    }

    static var multipartHeaders: HTTPFields {
        [.contentType: "multipart/form-data; boundary=\(boundary)"]
    }

    static func upload(
        _ gateway: Gateway, token: String, name: String = "spring", csv: String?, extra: [(String, String)] = []
    ) async throws -> TestResponse {
        try await gateway.request(
            .post, "/api/v1/contact-lists", token: token, json: multipart([("name", name)] + extra, file: csv),
            headers: multipartHeaders)
    }

    /// A list of `csv` and a draft campaign over it (1 call/s, 1 live call); their ids.
    static func draft(_ gateway: Gateway, token: String, csv: String) async throws -> (list: String, campaign: String) {
        let list = try await upload(gateway, token: token, csv: csv)
        let listID = try #require(list.json["id"] as? String)
        let created = try await gateway.request(
            .post, "/api/v1/campaigns", token: token,
            json: #"{"name":"c","list_ids":["\#(listID)"],"max_calls_per_second":1,"max_live_calls":1}"#)
        return (listID, try #require(created.json["id"] as? String))
    }

    static let sample = """
        phone,first_name,time_zone,plan
        (212) 555-0101,Ada,,gold
        +44 20 7946 0018,"Lovelace, Ada",Europe/London,silver
        not a number,Bob,,gold
        212-555-0101,Dup,,gold
        +7 495 123 45 67,Ivan,,none
        +91 98765 43210,Ravi,Mars/Olympus,gold
        +33 1 23 45 67 89,Zoé,,bronze

        """

    @Test("a CSV upload imports valid rows (normalised, zones derived) and reports every refused line with its reason")
    func uploadAndReport() async throws {
        try await GatewayHarness.run { gateway in
            let (_, operatorToken) = try await gateway.user(.operator)
            let created = try await Self.upload(
                gateway, token: operatorToken, csv: Self.sample,
                extra: [("mapping", #"{"phone":"phone","time_zone":"time_zone","fields":["first_name","plan"]}"#)])
            #expect(created.status == .created, "\(created.text)")
            let id = try #require(created.json["id"] as? String)
            #expect(created.json["state"] as? String == "ready")
            #expect(created.json["rows_read"] as? Int == 7)
            #expect(created.json["contacts"] as? Int == 3)
            #expect(created.json["refused"] as? Int == 4)
            let errors = try await gateway.request(.get, "/api/v1/contact-lists/\(id)/errors", token: operatorToken)
            let lines = try #require(errors.json["errors"] as? [[String: Any]])
            let byLine = Dictionary(uniqueKeysWithValues: lines.map { ($0["line"] as? Int ?? 0, $0) })
            #expect(Set(byLine.keys) == [4, 5, 6, 7])
            #expect((byLine[5]?["message"] as? String)?.contains("duplicate of line 2") == true)
            #expect((byLine[6]?["message"] as? String)?.contains("time_zone") == true, "+7 spans several zones")
            #expect(byLine[7]?["column"] as? String == "time_zone")
            let lists = try await gateway.request(.get, "/api/v1/contact-lists", token: operatorToken)
            #expect((lists.json["contact_lists"] as? [[String: Any]])?.map { $0["id"] as? String } == [id])
            // The contacts as stored: E.164, zones from the column or the number, the chosen fields only.
            let stored = try await gateway.store.client.query(
                "SELECT phone, time_zone, fields::text FROM contacts WHERE list_id = \(UUID(uuidString: id)!) ORDER BY line"
            )
            var rows: [(String, String, String)] = []
            for try await row in stored.decode((String, String, String).self) { rows.append(row) }
            #expect(rows.map(\.0) == ["+12125550101", "+442079460018", "+33123456789"])
            #expect(rows.map(\.1) == ["America/New_York", "Europe/London", "Europe/Paris"])
            #expect(rows[1].2.contains("Lovelace, Ada") && !rows[1].2.contains("time_zone"))
        }
    }

    @Test(
        "uploads that cannot be read: no file part, not multipart, a mapped column missing (the list fails, saying why)"
    )
    func uploadRefusals() async throws {
        try await GatewayHarness.run { gateway in
            let (_, token) = try await gateway.user(.operator)
            let noFile = try await Self.upload(gateway, token: token, csv: nil)
            #expect(noFile.status == .unprocessableContent && noFile.text.contains("file"))
            let notMultipart = try await gateway.request(
                .post, "/api/v1/contact-lists", token: token, json: "phone\n+12125550101\n",
                headers: [.contentType: "text/csv"])
            #expect(notMultipart.status == .unsupportedMediaType)
            let missing = try await Self.upload(gateway, token: token, csv: "number,name\n+12125550101,Ada\n")
            #expect(missing.status == .created)
            #expect(missing.json["state"] as? String == "failed")
            #expect((missing.json["error"] as? String)?.contains("\"phone\"") == true)
            let (_, viewer) = try await gateway.user(.viewer)
            #expect(try await Self.upload(gateway, token: viewer, csv: "phone\n+12125550101\n").status == .forbidden)
        }
    }

    @Test(
        "malformed multipart bodies are 400s and the gateway goes on serving: a non-ASCII header name (what stopped it under make fuzz-quick), a body cut before its closing boundary, a boundary too long (400); an empty boundary (415)"
    )
    func malformedUploads() async throws {
        try await GatewayHarness.run { gateway in
            let (_, token) = try await gateway.user(.operator)
            let complete = Self.multipart([("name", "x")], file: "phone\n+12125550101\n")
            let bodies: [(body: String, contentType: String, status: HTTPResponse.Status)] = [
                (
                    "--\(Self.boundary)\r\nÒ--\(Self.boundary)--\r\n", "multipart/form-data; boundary=\(Self.boundary)",
                    .badRequest
                ),
                (
                    "--\(Self.boundary)\r\nÒ: x\r\n\r\n\r\n--\(Self.boundary)--\r\n",
                    "multipart/form-data; boundary=\(Self.boundary)", .badRequest
                ),
                (String(complete.dropLast(12)), "multipart/form-data; boundary=\(Self.boundary)", .badRequest),
                (complete, "multipart/form-data; boundary=\(String(repeating: "b", count: 71))", .badRequest),
                (complete, "multipart/form-data; boundary=", .unsupportedMediaType),
                (complete, "multipart/form-data; boundary=\"\"", .unsupportedMediaType),
            ]
            for (body, contentType, status) in bodies {
                let refused = try await gateway.request(
                    .post, "/api/v1/contact-lists", token: token, json: body, headers: [.contentType: contentType])
                #expect(refused.status == status, "\(contentType): \(refused.text)")
                #expect(refused.text.contains("multipart"), "\(refused.text)")
            }
            let accepted = try await Self.upload(gateway, token: token, csv: "phone\n+12125550101\n")
            #expect(accepted.status == .created)
        }
    }

    @Test("do-not-call: add (normalised, counted once), check, list, remove; a campaign's own list")
    func doNotCall() async throws {
        try await GatewayHarness.run { gateway in
            let (_, token) = try await gateway.user(.operator)
            let added = try await gateway.request(
                .post, "/api/v1/dnc", token: token,
                json: #"{"numbers":["(212) 555-0101","+12125550101","+442079460018"],"reason":"asked"}"#)
            #expect(added.status == .ok)
            #expect(added.json["numbers"] as? Int == 2 && added.json["added"] as? Int == 2)
            let bad = try await gateway.request(.post, "/api/v1/dnc", token: token, json: #"{"numbers":["12"]}"#)
            #expect(bad.status == .unprocessableContent && bad.text.contains("numbers[0]"))
            let check = try await gateway.request(.get, "/api/v1/dnc/check?phone=%2B12125550101", token: token)
            #expect(check.json["on_organization_list"] as? Bool == true)
            let list = try await gateway.request(.get, "/api/v1/dnc?limit=1", token: token)
            #expect((list.json["entries"] as? [[String: Any]])?.count == 1)
            #expect(list.json["next_after"] as? String == "+12125550101")
            #expect(
                try await gateway.request(.delete, "/api/v1/dnc/%2B12125550101", token: token).status == .noContent)
            #expect(try await gateway.request(.delete, "/api/v1/dnc/%2B12125550101", token: token).status == .notFound)
            let clear = try await gateway.request(.get, "/api/v1/dnc/check?phone=2125550101", token: token)
            #expect(clear.json["on_organization_list"] as? Bool == false)
            let unknown = try await gateway.request(
                .post, "/api/v1/campaigns/\(UUID().uuidString.lowercased())/dnc", token: token,
                json: #"{"numbers":["+12125550101"]}"#)
            #expect(unknown.status == .notFound)
        }
    }

    @Test(
        "a campaign's lifecycle: validated settings, draft, start (contacts laid out), pause, resume, stop; progress, contacts and a CSV export"
    )
    func campaignLifecycle() async throws {
        try await GatewayHarness.run { gateway in
            let (_, token) = try await gateway.user(.operator)
            let list = try await Self.upload(
                gateway, token: token, csv: "phone,name\n+12125550101,Ada\n+442079460018,Bob\n")
            let listID = try #require(list.json["id"] as? String)
            let invalid = try await gateway.request(
                .post, "/api/v1/campaigns", token: token,
                json: """
                    {"name":"x","list_ids":["\(UUID().uuidString)"],"context":"forbidden","extension":"s",
                     "calling_windows":{"monday":[{"start":"25:00","end":"21:00"}]},
                     "retry_rules":{"completed":{"delay_seconds":60,"max_retries":1}},"max_calls_per_second":0}
                    """)
            #expect(invalid.status == .unprocessableContent)
            let fields = Set(
                (invalid.json["errors"] as? [[String: Any]] ?? []).compactMap { $0["field"] as? String })
            #expect(
                fields.isSuperset(
                    of: ["context", "calling_windows", "retry_rules", "max_calls_per_second", "max_live_calls"]),
                "\(fields)")
            let unknownList = try await gateway.request(
                .post, "/api/v1/campaigns", token: token,
                json: #"{"name":"x","list_ids":["\#(UUID().uuidString)"],"max_calls_per_second":1,"max_live_calls":1}"#)
            #expect(unknownList.status == .unprocessableContent && unknownList.text.contains("no contact list"))

            let body = """
                {"name":"Renewals","list_ids":["\(listID)"],"caller_id":{"name":"ACME","number":"+15550100"},
                 "context":"outbound","extension":"s","max_calls_per_second":2,"max_live_calls":5,
                 "retry_rules":{"busy":{"delay_seconds":600,"max_retries":3}},"max_attempts":4,
                 "machine_detection":{"mode":"detect","on_machine":"continue"},"record":true}
                """
            let created = try await gateway.request(.post, "/api/v1/campaigns", token: token, json: body)
            #expect(created.status == .created, "\(created.text)")
            let detection = created.json["machine_detection"] as? [String: Any]
            #expect(detection?["mode"] as? String == "detect" && detection?["on_machine"] as? String == "continue")
            #expect(created.json["record"] as? Bool == true)
            let id = try #require(created.json["id"] as? String)
            #expect(created.json["state"] as? String == "draft")
            #expect((created.json["calling_windows"] as? [String: Any])?.count == 7, "08:00-21:00 every day")
            let renamed = try await gateway.request(
                .put, "/api/v1/campaigns/\(id)", token: token,
                json: body.replacingOccurrences(of: "Renewals", with: "Renewals Q2"))
            #expect(renamed.json["name"] as? String == "Renewals Q2")

            let started = try await gateway.request(.post, "/api/v1/campaigns/\(id)/start", token: token)
            #expect(started.status == .ok && started.json["state"] as? String == "running")
            #expect(try await gateway.request(.post, "/api/v1/campaigns/\(id)/start", token: token).status == .conflict)
            let shown = try await gateway.request(.get, "/api/v1/campaigns/\(id)", token: token)
            let progress = try #require(shown.json["progress"] as? [String: Any])
            #expect(progress["contacts"] as? Int == 2 && progress["pending"] as? Int == 2)
            #expect(progress["remaining"] as? Int == 2)
            #expect(
                try await gateway.request(.post, "/api/v1/campaigns/\(id)/pause", token: token).json["state"]
                    as? String == "paused")
            let otherList = try await Self.upload(gateway, token: token, csv: "phone\n+12125550199\n")
            let relisted = try await gateway.request(
                .put, "/api/v1/campaigns/\(id)", token: token,
                json: body.replacingOccurrences(of: listID, with: otherList.json["id"] as? String ?? ""))
            #expect(relisted.status == .conflict, "a paused campaign keeps its lists")
            #expect(
                try await gateway.request(.post, "/api/v1/campaigns/\(id)/resume", token: token).json["state"]
                    as? String == "running")

            let contacts = try await gateway.request(.get, "/api/v1/campaigns/\(id)/contacts", token: token)
            let page = try #require(contacts.json["contacts"] as? [[String: Any]])
            #expect(Set(page.compactMap { $0["phone"] as? String }) == ["+12125550101", "+442079460018"])
            #expect(
                page.allSatisfy { $0["state"] as? String == "pending" && ($0["history"] as? [Any])?.isEmpty == true })
            let results = try await gateway.request(.get, "/api/v1/campaigns/\(id)/results", token: token)
            #expect(results.status == .ok)
            #expect(results.headers[.contentType]?.hasPrefix("text/csv") == true)
            let lines = results.text.split(separator: "\r\n")
            #expect(lines.first?.hasPrefix("contact_id,phone,time_zone,state") == true)
            #expect(lines.count == 3)

            let stopped = try await gateway.request(.post, "/api/v1/campaigns/\(id)/stop", token: token)
            #expect(stopped.json["state"] as? String == "stopped" && stopped.json["finished_at"] is String)
            #expect(
                try await gateway.request(.post, "/api/v1/campaigns/\(id)/resume", token: token).status == .conflict)
            // The list is in use: it stays.
            #expect(
                try await gateway.request(.delete, "/api/v1/contact-lists/\(listID)", token: token).status == .conflict)
            let audit = try await gateway.store.auditEvents(in: .default, limit: 100, before: nil).map(\.action)
            #expect(
                Set(audit).isSuperset(of: [
                    "campaign.create", "campaign.running", "campaign.paused", "campaign.stopped",
                ]))
        }
    }

    @Test("a campaign's progress streams as Server-Sent Events, and the stream ends once the campaign stopped")
    func progressStream() async throws {
        try await GatewayHarness.run { gateway in
            let (_, token) = try await gateway.user(.operator)
            let (_, id) = try await Self.draft(gateway, token: token, csv: "phone\n+12125550101\n+12125550102\n")
            _ = try await gateway.request(.post, "/api/v1/campaigns/\(id)/start", token: token)
            let stream = try await SSEConnection.open(
                port: gateway.port, path: "/api/v1/campaigns/\(id)/events", token: token)
            #expect(stream.status == .ok)
            let first = try #require(try await stream.next())
            #expect(first.event == "progress" && first.id == "1")
            let running = try JSONSerialization.jsonObject(with: Data(first.data.utf8)) as? [String: Any]
            #expect(running?["state"] as? String == "running")
            #expect((running?["progress"] as? [String: Any])?["pending"] as? Int == 2)
            _ = try await gateway.request(.post, "/api/v1/campaigns/\(id)/stop", token: token)
            let last = try #require(try await stream.next())
            let stopped = try JSONSerialization.jsonObject(with: Data(last.data.utf8)) as? [String: Any]
            #expect(stopped?["state"] as? String == "stopped" && last.id == "2")
            #expect(try await stream.next() == nil, "the stream ends with the campaign")
            await stream.close()
            let missing = try await SSEConnection.open(
                port: gateway.port, path: "/api/v1/campaigns/\(UUID().uuidString.lowercased())/events", token: token)
            #expect(missing.status == .notFound)
            await missing.close()
        }
    }

    @Test("another organization's lists and campaigns answer 404; a viewer may not touch campaigns")
    func isolation() async throws {
        try await GatewayHarness.run { gateway in
            let (_, token) = try await gateway.user(.operator)
            let (listID, id) = try await Self.draft(gateway, token: token, csv: "phone\n+12125550101\n")
            let other = try await gateway.organization()
            let (_, stranger) = try await gateway.user(.admin, organization: other.id)
            #expect(try await gateway.request(.get, "/api/v1/campaigns/\(id)", token: stranger).status == .notFound)
            #expect(
                try await gateway.request(.post, "/api/v1/campaigns/\(id)/start", token: stranger).status == .notFound)
            #expect(
                try await gateway.request(.get, "/api/v1/contact-lists/\(listID)", token: stranger).status == .notFound)
            let borrowed = try await gateway.request(
                .post, "/api/v1/campaigns", token: stranger,
                json: #"{"name":"c","list_ids":["\#(listID)"],"max_calls_per_second":1,"max_live_calls":1}"#)
            #expect(borrowed.status == .unprocessableContent, "another organization's list is no list")
            #expect(
                (try await gateway.request(.get, "/api/v1/campaigns", token: stranger).json["campaigns"] as? [Any])?
                    .isEmpty == true)
            let (_, viewer) = try await gateway.user(.viewer)
            #expect(try await gateway.request(.get, "/api/v1/campaigns", token: viewer).status == .forbidden)
        }
    }
}
