import AsyncHTTPClient
import CallDomain
import CallStore
import EmbeddedKafka
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import PostgresNIO
import TestSupport
import Testing

/// Hostile requests against the real `api-gateway` executable over TCP: oversized and malformed input, injection
/// attempts in query strings, slow clients and event streams nobody reads. Each is refused as a client error (never a
/// 5xx), puts nothing on Kafka, and leaves the process healthy and its memory bounded. (Duplicate JSON keys are
/// read first-wins, and the value used is the value validated.)
///
/// The field-by-field validation matrix (every injection string in every field) is `APIGatewayTests`'
/// `CallValidationTests`; `StackSecurityTests` sends the foundation issue's list through the whole system.
@Suite struct HostileInputTests {
    // MARK: - Sizes

    @Test func oversizedBodiesHeadersAndURLsAreRefused() async throws {
        try await GatewayProcess.with { gateway in
            let api = APIClient(baseURL: gateway.baseURL)
            let token = try await api.token(username: "admin", password: gateway.adminPassword)
            let huge = Data("{\"to\":\"123\",\"metadata\":{\"x\":\"\(String(repeating: "a", count: 1 << 20))\"}}".utf8)
            let declared = try await api.request("POST", "/api/v1/calls", token: token, body: huge)
            #expect(declared.status == 413)
            #expect(declared.headers.first(name: "Content-Type") == "application/problem+json")

            // The same body without a declared length (chunked) stops at the limit too.
            let chunked = try await Self.streamed(huge, to: "\(gateway.baseURL)/api/v1/calls", token: token)
            #expect(chunked == 413, "a chunked body over the limit: \(chunked)")

            // A 100 KB header, 1,500 header fields, a 100 KB URL, a 60 KB bearer token: refused, never a 5xx.
            let bigHeader = try await Self.rawStatus(
                port: gateway.port,
                "GET /health HTTP/1.1\r\nHost: x\r\nX-Junk: \(String(repeating: "j", count: 100_000))\r\n\r\n")
            #expect([400, 431].contains(bigHeader), "100 KB header: \(bigHeader)")
            let manyFields = (0..<1_500).map { "X-F\($0): v\r\n" }.joined()
            let many = try await Self.rawStatus(
                port: gateway.port, "GET /health HTTP/1.1\r\nHost: x\r\n\(manyFields)\r\n")
            #expect([400, 431].contains(many), "1,500 header fields: \(many)")
            let longURL = try await Self.rawStatus(
                port: gateway.port,
                "GET /api/v1/calls?to=\(String(repeating: "1", count: 100_000)) HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect([400, 404, 414, 431].contains(longURL), "100 KB URL: \(longURL)")
            let bigToken = try await api.request(
                "GET", "/api/v1/calls", token: String(repeating: "A", count: 60_000))
            #expect(bigToken.status == 401)

            #expect(try await api.request("GET", "/health").status == 200)
            #expect(gateway.residentBytes < 512 << 20, "RSS \(gateway.residentBytes >> 20) MiB")
            #expect(try await Self.originateCommands(gateway).isEmpty, "nothing was published")
        }
    }

    // MARK: - Malformed JSON

    /// (what, body bytes, content type): each must be a 4xx and publish nothing.
    static var malformedBodies: [(String, [UInt8], String)] {
        func utf8(_ text: String) -> [UInt8] { Array(text.utf8) }
        let deepArrays = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        let deepObjects =
            "{\"to\":\"123\",\"metadata\":" + String(repeating: "{\"a\":", count: 10_000) + "1"
            + String(repeating: "}", count: 10_000) + "}"
        return [
            ("100,000 nested arrays", utf8(deepArrays), "application/json"),
            ("10,000 nested objects in metadata", utf8(deepObjects), "application/json"),
            ("invalid UTF-8 in to", utf8("{\"to\":\"12") + [0xFF] + utf8("3\"}"), "application/json"),
            (
                "overlong UTF-8 in the caller name",
                utf8("{\"to\":\"123\",\"caller_id\":{\"name\":\"a") + [0xC0, 0xAF] + utf8("\",\"number\":\"1\"}}"),
                "application/json"
            ),
            (
                "truncated UTF-8 sequence",
                utf8("{\"to\":\"123\",\"metadata\":{\"k\":\"") + [0xE2, 0x82] + utf8("\"}}"),
                "application/json"
            ),
            (
                "lone surrogate escape", utf8(#"{"to":"123","caller_id":{"name":"\ud800","number":"1"}}"#),
                "application/json"
            ),
            ("escaped NUL in to", utf8(#"{"to":"123\u0000456"}"#), "application/json"),
            // PostgreSQL cannot store U+0000: accepted, such a call would never be recorded and would hold up the
            // history writer and the claims behind it.
            ("escaped NUL in a metadata value", utf8(#"{"to":"123","metadata":{"k":"v\u0000"}}"#), "application/json"),
            ("escaped NUL in a metadata key", utf8(#"{"to":"123","metadata":{"k\u0000":1}}"#), "application/json"),
            ("duplicate key, the first invalid", utf8(#"{"to":"123&PJSIP/900@evil","to":"123"}"#), "application/json"),
            ("number overflowing a double", utf8(#"{"to":"123","timeout_seconds":1e400}"#), "application/json"),
            (
                "integer beyond 64 bits", utf8(#"{"to":"123","timeout_seconds":123456789012345678901234567890}"#),
                "application/json"
            ),
            ("trailing garbage", utf8(#"{"to":"123"} {"to":"456"}"#), "application/json"),
            ("NaN", utf8(#"{"to":"123","timeout_seconds":NaN}"#), "application/json"),
            ("text/plain", utf8(#"{"to":"123"}"#), "text/plain"),
            ("XML", utf8("<call><to>123</to></call>"), "application/xml"),
            ("form", utf8("to=123"), "application/x-www-form-urlencoded"),
            (
                "multipart", utf8("--b\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\n123\r\n--b--\r\n"),
                "multipart/form-data; boundary=b"
            ),
        ]
    }

    @Test func malformedJSONAndWrongContentTypesAreClientErrors() async throws {
        try await GatewayProcess.with { gateway in
            let api = APIClient(baseURL: gateway.baseURL)
            let token = try await api.token(username: "admin", password: gateway.adminPassword)
            for (name, body, contentType) in Self.malformedBodies {
                let response = try await api.request(
                    "POST", "/api/v1/calls", token: token, body: Data(body), contentType: contentType)
                #expect((400...499).contains(response.status), "\(name): \(response.status)")
                #expect(
                    [400, 413, 415, 422].contains(response.status),
                    "\(name): \(response.status) \(String(decoding: response.body.prefix(300), as: UTF8.self))")
                #expect(response.headers.first(name: "Content-Type") == "application/problem+json", "\(name)")
            }
            // A missing content type, and none of the above reached Kafka; the process is still healthy.
            let untyped = try await Self.rawStatus(
                port: gateway.port,
                "POST /api/v1/calls HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nContent-Length: 12\r\n\r\n"
                    + #"{"to":"123"}"#)
            #expect(untyped == 415)
            #expect(try await api.request("GET", "/health").status == 200)
            #expect(try await Self.originateCommands(gateway).isEmpty, "no refused request was published")

            // Duplicate keys: the value the gateway uses (the first) is the value it validated, and only that value
            // reaches Kafka; a request whose used value is invalid is refused.
            var accepted = 0
            // UTF-16 JSON is decoded (Foundation detects the encoding) and validated the same way.
            for body in [
                Data(#"{"to":"123","to":"123&PJSIP/900@evil"}"#.utf8),
                Data(#"{"to":"123","caller_id":{"number":"1","number":"1&2"},"caller_id":{"number":"9&9"}}"#.utf8),
                #"{"to":"123","to":"1&2"}"#.data(using: .utf16BigEndian) ?? Data(),
            ] {
                let response = try await api.request(
                    "POST", "/api/v1/calls", token: token, body: body, contentType: "application/json; charset=utf-8")
                #expect([202, 400, 415, 422].contains(response.status), "\(body): \(response.status)")
                guard response.status == 202 else { continue }
                accepted += 1
                let call = try response.json()
                #expect(call["to"] as? String == "123", "\(call)")
                let callerID = call["caller_id"] as? [String: Any]
                #expect(callerID == nil || callerID?["number"] as? String == "1", "\(call)")
            }
            let commands = try await Self.originateCommands(gateway)
            #expect(commands.count == accepted)
            for command in commands {
                #expect(!command.payload.contains("&") && !command.payload.contains("PJSIP"), "\(command.payload)")
            }
        }
    }

    // MARK: - Query strings

    static let sqlPayloads = [
        "' OR '1'='1", "1; DROP TABLE calls;--", "\") OR 1=1 --", "' UNION SELECT password_hash FROM users--",
        "1' AND pg_sleep(5)--", "$1", "\\", "%00", "%27%3B%20DROP%20TABLE%20users%3B--", "queued' --", "*",
        "completed%00", String(repeating: "'", count: 5_000),
    ]

    @Test func filtersLimitsAndCursorsCannotInjectOrOverflow() async throws {
        try await GatewayProcess.with { gateway in
            let api = APIClient(baseURL: gateway.baseURL)
            let token = try await api.token(username: "admin", password: gateway.adminPassword)
            let users = try await gateway.store.users(in: .default).count
            var cases: [(String, Set<Int>)] = []
            for parameter in ["status", "to", "created_after", "created_before", "limit", "cursor"] {
                for payload in Self.sqlPayloads {
                    let encoded = payload.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? payload
                    cases.append(("\(parameter)=\(encoded)", [400, 422]))
                }
            }
            for limit in ["1000000000000000000000000000000", "-1", "0", "201", "1.5", "", "NaN", "9223372036854775808"]
            {
                cases.append(("limit=\(limit)", [422]))
            }
            let garbage = Data("v1:99999999999999999999999999:not-a-uuid".utf8).base64EncodedString()
            let negative = Data("v1:-9223372036854775808:\(UUID().uuidString)".utf8).base64EncodedString()
            for cursor in [String(repeating: "A", count: 10_000), garbage, negative, "%25%25%25", "v1:1:x", "=="] {
                let encoded = cursor.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? cursor
                cases.append(("cursor=\(encoded)", [400]))
            }
            for instant in [
                "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "99999-01-01T00:00:00Z", "1970-01-01T00:00:00+99:00",
            ] {
                cases.append(("created_after=\(instant)", [200, 422]))
                cases.append(("created_before=\(instant)", [200, 422]))
            }
            cases.append(("status=queued&status=completed", [422]))
            cases.append(("unknown=1", [422]))
            for (query, allowed) in cases {
                let started = ContinuousClock.now
                let response = try await api.request("GET", "/api/v1/calls?\(query)", token: token)
                let text = String(decoding: response.body, as: UTF8.self)
                #expect(
                    allowed.contains(response.status), "\(query.prefix(80)): \(response.status) \(text.prefix(200))")
                #expect(!text.contains("$2") && !text.lowercased().contains("syntax error"), "\(query.prefix(80))")
                #expect(ContinuousClock.now - started < .seconds(4), "\(query.prefix(80)) took too long (pg_sleep?)")
            }
            for path in ["/api/v1/calls/'%20OR%201=1--", "/api/v1/calls/..%2F..%2Fusers", "/api/v1/calls/%00"] {
                let response = try await api.request("GET", path, token: token)
                #expect([404, 422].contains(response.status), "\(path): \(response.status)")
            }
            // The tables are intact: the listing works and the users are all there.
            #expect(try await api.request("GET", "/api/v1/calls?limit=200", token: token).status == 200)
            #expect(try await gateway.store.users(in: .default).count == users)
        }
    }

    // MARK: - Slow clients

    @Test func slowClientsAreCutOffAndDoNotHoldTheServer() async throws {
        try await GatewayProcess.with(environment: ["HTTP_READ_TIMEOUT_SECONDS": "4"]) { gateway in
            let api = APIClient(baseURL: gateway.baseURL)
            let token = try await api.token(username: "admin", password: gateway.adminPassword)
            let request = Array(
                ("POST /api/v1/calls HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\n"
                    + "Content-Type: application/json\r\nContent-Length: 40\r\n\r\n").utf8)
            enum Kind: String, CaseIterable { case head, body, silent }
            let perKind = 20
            let started = ContinuousClock.now
            // Each slow client sends one byte per second (the head, or the body after a complete head, or nothing)
            // and reports after how long the server closed its connection.
            let cutOff = try await withThrowingTaskGroup(of: (Kind, Duration?).self) { group in
                for kind in Kind.allCases {
                    for _ in 0..<perKind {
                        let connection = try RawConnection(port: gateway.port)
                        group.addTask {
                            defer { connection.close() }
                            var pending: ArraySlice<UInt8> =
                                switch kind {
                                case .head: request[...]
                                case .body:
                                    connection.send(request)
                                        ? ArraySlice(Array(#"{"to":"123","metadata":{"x":"yyyyyyy"}}"#.utf8)) : []
                                case .silent: []
                                }
                            let begin = ContinuousClock.now
                            while ContinuousClock.now - begin < .seconds(30) {
                                if connection.peerClosed() { return (kind, ContinuousClock.now - begin) }
                                if let byte = pending.popFirst(), !connection.send([byte]) {
                                    return (kind, ContinuousClock.now - begin)
                                }
                                try await Task.sleep(for: .seconds(1))
                            }
                            return (kind, nil)
                        }
                    }
                }
                // Meanwhile the server keeps answering everyone else at once.
                group.addTask {
                    for _ in 0..<10 {
                        let begin = ContinuousClock.now
                        let health = try await api.request("GET", "/health")
                        #expect(health.status == 200)
                        #expect(ContinuousClock.now - begin < .seconds(2), "a normal request waited on slow clients")
                        try await Task.sleep(for: .seconds(1))
                    }
                    return (.silent, .zero)
                }
                var results: [(Kind, Duration?)] = []
                for try await result in group where result.1 != .zero { results.append(result) }
                return results
            }
            #expect(cutOff.count == Kind.allCases.count * perKind)
            for kind in Kind.allCases {
                let times = cutOff.filter { $0.0 == kind }.map(\.1)
                #expect(times.allSatisfy { $0 != nil }, "\(kind.rawValue): some slow clients were never cut off")
                let slowest = times.compactMap { $0 }.max() ?? .zero
                #expect(slowest < .seconds(12), "\(kind.rawValue) clients were cut off after \(slowest)")
                print("slow \(kind.rawValue) clients (\(perKind)): cut off after at most \(slowest)")
            }
            #expect(ContinuousClock.now - started < .seconds(40))
            #expect(try await api.request("GET", "/health").status == 200)
        }
    }

    // MARK: - Event streams nobody reads

    @Test func aThousandEventStreamsThatReadNothingKeepMemoryBounded() async throws {
        try await GatewayProcess.with { gateway in
            let api = APIClient(baseURL: gateway.baseURL)
            let token = try await api.token(username: "admin", password: gateway.adminPassword)
            let before = gateway.residentBytes
            var streams: [RawConnection] = []
            defer { for stream in streams { stream.close() } }
            // In batches, each accepted before the next: a thousand connections at once would overflow the listen
            // backlog, and the retried SYNs would make the test about the kernel instead.
            for batch in 1...20 {
                for _ in 0..<50 {
                    let connection = try RawConnection(port: gateway.port, receiveBuffer: 4_096)
                    connection.send(
                        "GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\n"
                            + "Accept: text/event-stream\r\n\r\n")
                    streams.append(connection)
                }
                try await Self.eventually("\(batch * 50) stream clients connected", timeout: .seconds(120)) {
                    try await Self.metric("gateway_event_stream_clients", api: api) >= Double(batch * 50)
                }
            }
            let connected = gateway.residentBytes

            // Rounds of 1,000 status events of about 2 KB each: unbounded buffering would need 2 GB per round.
            var after: [Int] = []
            var healthDuringRounds: [Duration] = []
            for round in 0..<3 {
                try await StatusEvents.publish(count: 1_000, metadataBytes: 2_000, round: round, gateway: gateway)
                // While the gateway feeds (and drops) the streams, it keeps answering: the slowest /health is kept.
                let probe = Task {
                    var slowest = Duration.zero
                    while !Task.isCancelled {
                        let begin = ContinuousClock.now
                        _ = try? await api.request("GET", "/health")
                        slowest = max(slowest, ContinuousClock.now - begin)
                        try? await Task.sleep(for: .milliseconds(500))
                    }
                    return slowest
                }
                try await Self.eventually("round \(round) read by the gateway", timeout: .seconds(120)) {
                    try await Self.metric("gateway_status_events_received_total", api: api)
                        >= Double(1_000 * (round + 1))
                }
                probe.cancel()
                healthDuringRounds.append(await probe.value)
                try await Task.sleep(for: .seconds(1))
                after.append(gateway.residentBytes)
            }
            let dropped = try await Self.metric("gateway_event_stream_clients_dropped_total", api: api)
            let health = ContinuousClock.now
            #expect(try await api.request("GET", "/health").status == 200)
            let healthLatency = ContinuousClock.now - health
            print(
                "1,000 idle SSE clients: RSS \(before >> 20) MiB before, \(connected >> 20) MiB connected, "
                    + "\(after.map { "\($0 >> 20)" }.joined(separator: "/")) MiB after each round of 1,000 events; "
                    + "\(Int(dropped)) clients dropped for falling behind; slowest /health during the rounds "
                    + "\(healthDuringRounds.map { "\($0)" }.joined(separator: "/")), after \(healthLatency)")
            #expect(dropped >= 900, "clients that read nothing are dropped once their buffer is full")
            // Unbounded buffering would hold 1,000 × 1,000 × 2 KB = 2 GB per round, and grow with every round.
            #expect((after.max() ?? 0) < connected + (1 << 30), "memory grew with the events")
            #expect((after.last ?? 0) < (after.first ?? 0) + (64 << 20), "memory keeps growing round after round")
            #expect(healthLatency < .seconds(2))
        }
    }

    // MARK: - Helpers

    /// Sends raw request text and returns the status code of the answer (0 if the server closed without one).
    static func rawStatus(port: Int, _ text: String) async throws -> Int {
        let connection = try RawConnection(port: port)
        defer { connection.close() }
        connection.send(text)
        let answer = await connection.read(until: "\r\n", timeout: .seconds(20))
        let parts = answer.split(separator: " ")
        return parts.count > 1 ? Int(parts[1]) ?? 0 : 0
    }

    /// Posts `body` chunked (no Content-Length); returns the status.
    static func streamed(_ body: Data, to url: String, token: String) async throws -> Int {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.headers.add(name: "Content-Type", value: "application/json")
        let chunks = stride(from: 0, to: body.count, by: 16_384).map {
            ByteBuffer(data: body[$0..<min($0 + 16_384, body.count)])
        }
        let stream = AsyncStream<ByteBuffer> { continuation in
            for chunk in chunks { continuation.yield(chunk) }
            continuation.finish()
        }
        request.body = .stream(stream, length: .unknown)
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
            _ = try await response.body.collect(upTo: 1 << 20)
            return Int(response.status.code)
        } catch {
            // The server may answer 413 and close before the whole body was sent.
            return 413
        }
    }

    /// A gauge or counter of the gateway's `/metrics` (0 when absent).
    static func metric(_ name: String, api: APIClient) async throws -> Double {
        // A polling read: one retry covers a pooled connection the server closed as it was being reused.
        let response: APIClient.Response
        do {
            response = try await api.request("GET", "/metrics")
        } catch {
            response = try await api.request("GET", "/metrics")
        }
        let text = String(decoding: response.body, as: UTF8.self)
        let line = text.split(separator: "\n").first { $0.hasPrefix(name + " ") || $0.hasPrefix(name + "{") }
        return line.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
    }

    /// Commands on the originate topic (kcat).
    static func originateCommands(_ gateway: GatewayProcess) async throws -> [KcatRecord] {
        try await Kcat.consumeAll(bootstrap: gateway.cluster.bootstrapServers, topic: "calls.originate.v1")
    }

    static func eventually(
        _ what: String, timeout: Duration, _ condition: @Sendable () async throws -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(250))
        }
        throw TestEnvironmentError("timed out waiting for \(what)")
    }
}
