import AsyncHTTPClient
import CallDomain
import CallStore
import Foundation
import Kafka
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import TestSupport
import Testing

/// The whole system as `make run` starts it (`devstack up`: gateway, two workers, the ARI simulator, the embedded
/// broker): what hostile clients send never reaches the dial plan, the worker dials only its template filled with a
/// validated number (also for commands forged straight onto Kafka), the token endpoint resists brute force, CORS
/// answers strangers nothing, and no secret ever reaches a log file.
///
/// Token forgery (`alg: none`, another key, expired, another issuer or audience), disabled and deleted users and the
/// role matrix are `APIGatewayTests`' `AuthTests`; the field-by-field validation matrix is `CallValidationTests`.
@Suite(.serialized, .timeLimit(.minutes(5))) struct StackSecurityTests {
    /// Seconds of a duration.
    enum PhaseClock {
        static func seconds(_ duration: Duration) -> Double {
            Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        }
    }

    static let template = "PJSIP/{to}@trunk-eu"
    static let secretKey = "stack-security-\(UUID().uuidString)-\(UUID().uuidString)"

    /// The injection strings of the foundation issue, each with the field the 422 must name.
    static var injections: [(String, [String: Any], String)] {
        var cases: [(String, [String: Any], String)] = []
        for to in [
            "123&PJSIP/900@evil", "1,2", "a/b", "1@x", "123\u{0}456", "\u{661}\u{662}\u{663}\u{664}", "",
            String(repeating: "1", count: 10_000), "+1555\r\nVia: y",
        ] {
            cases.append(("to \(to.prefix(24).debugDescription)", ["to": to], "to"))
        }
        for name in [#""x" <1>\#r\#nVia: y"#, "a\"b", "a<b", "a>b", "a\rb", "a\nb", "a\u{0}b"] {
            cases.append(
                (
                    "caller name \(name.debugDescription)",
                    ["to": "+155501000001", "caller_id": ["name": name, "number": "1"]],
                    "caller_id.name"
                ))
        }
        let many = Dictionary(uniqueKeysWithValues: (0..<33).map { ("V\($0)", "x") })
        cases.append(("33 variables", ["to": "+155501000001", "variables": many], "variables"))
        for name in ["1BAD", "BAD-NAME", "A B", "CALLERID(num)", "X\r\nY"] {
            cases.append(
                (
                    "variable name \(name.debugDescription)", ["to": "+155501000001", "variables": [name: "x"]],
                    "variables."
                ))
        }
        cases.append(
            ("variable value", ["to": "+155501000001", "variables": ["OK": "a,b&c"]], "variables.OK"))
        cases.append(
            (
                "metadata over 4 KiB",
                ["to": "+155501000001", "metadata": ["x": String(repeating: "a", count: 4_200)]],
                "metadata"
            ))
        cases.append(("NUL in metadata", ["to": "+155501000001", "metadata": ["note": "a\u{0}b"]], "metadata"))
        cases.append(
            (
                "context not in ALLOWED_CONTEXTS",
                ["to": "+155501000001", "context": "from-internal", "extension": "100"],
                "context"
            ))
        cases.append(
            (
                "extension with an application",
                ["to": "+155501000001", "context": "agents", "extension": "1&Dial(x)"],
                "extension"
            ))
        return cases
    }

    @Test func hostileClientsNeverReachTheDialPlanAndSecretsNeverReachTheLogs() async throws {
        try await TestDatabase.withStore { store, databaseURL in
            let status = try await DevStackProcess.run(
                databaseURL: databaseURL,
                extraEnvironment: [
                    "ENDPOINT_TEMPLATE": Self.template, "SECRET_KEY": Self.secretKey,
                    "ALLOWED_ORIGINS": "https://app.example.com", "ALLOWED_CONTEXTS": "agents,outbound",
                    "LOG_LEVEL": "debug",
                    // A burst of 10, then one per minute: no refill can fall between the first refusal and the
                    // right password that follows it, however loaded the machine.
                    "TOKEN_RATE_LIMIT": "10/600",
                ]
            ) { stack in
                try await Self.exercise(stack: stack, store: store)
            }
            #expect(status == 0)
        }
    }

    static func exercise(stack: DevStackProcess, store: CallStore) async throws {
        let api = APIClient(baseURL: stack.apiURL)
        let token = try await api.token(username: "admin", password: stack.adminPassword)
        var secrets = [stack.adminPassword, token, secretKey]

        // 1. Every injection is refused, naming its field.
        for (name, body, field) in injections {
            let response = try await api.request(
                "POST", "/api/v1/calls", token: token, body: try JSONSerialization.data(withJSONObject: body))
            let fields = ((try? response.json())?["errors"] as? [[String: Any]] ?? []).compactMap {
                $0["field"] as? String
            }
            #expect(response.status == 422, "\(name): \(response.status)")
            #expect(fields.contains { $0.hasPrefix(field) }, "\(name): the problem names \(fields), not \(field)")
        }

        // 2. Commands forged straight onto Kafka, past the gateway, are validated again by the workers.
        let forged = try await forgeCommands(stack: stack)

        // 3. Valid calls, each with what a client may set.
        var placed: [String: String] = [:]
        let bodies: [[String: Any]] = [
            ["to": "+155501000001"],
            ["to": "155501000101", "caller_id": ["name": "Zoë Ångström-Øster", "number": "+4930123"]],
            ["to": "+155501010000", "variables": ["CAMPAIGN": "spring-24", "AGENT_GROUP": "a_1"]],
            ["to": "+155501000001", "context": "outbound", "extension": "*100#", "priority": 2],
            ["to": "+155501060000", "metadata": ["crm": ["id": 42, "note": "a&b,c@d/e <x>"]]],
        ]
        for body in bodies {
            let response = try await api.request(
                "POST", "/api/v1/calls", token: token, body: try JSONSerialization.data(withJSONObject: body))
            #expect(response.status == 202, "\(body): \(String(decoding: response.body, as: UTF8.self))")
            if let id = try? response.json()["id"] as? String { placed[id] = body["to"] as? String }
        }
        for id in placed.keys {
            _ = try await eventually("call \(id) ended", timeout: .seconds(60)) {
                try await store.call(id: CallID(id)!)?.status.isTerminal == true ? true : nil
            }
        }
        // What the node was asked to dial: exactly the template with the validated number, once per accepted call.
        let originates = try await originateLog(stack: stack)
        #expect(Set(originates.keys) == Set(placed.keys), "only accepted calls were originated")
        for (id, to) in placed {
            #expect(
                originates[id] == [template.replacingOccurrences(of: "{to}", with: to)],
                "call \(id) was originated on \(originates[id] ?? [])")
        }
        // The forged commands were read and refused by a worker's dialer (and its history writer), not overlooked:
        // copied to the dead-letter topic as undecodable, never dialed, never stored.
        let logDirectory = stack.stateDirectory.appendingPathComponent("logs")
        for id in forged {
            _ = try await eventually("the forged command \(id) refused", timeout: .seconds(60)) {
                let logs =
                    (try? FileManager.default.contentsOfDirectory(at: logDirectory, includingPropertiesForKeys: nil))
                    ?? []
                let refused = logs.filter { $0.lastPathComponent.hasPrefix("dialer-worker") }.contains { log in
                    ((try? String(contentsOf: log, encoding: .utf8)) ?? "").split(separator: "\n").contains {
                        $0.contains(id) && $0.contains("message sent to the dead-letter topic")
                            && $0.contains("undecodable")
                    }
                }
                return refused ? true : nil
            }
        }
        let afterForgery = try await originateLog(stack: stack)
        for id in forged {
            #expect(afterForgery[id] == nil, "a forged command \(id) was dialed")
            #expect(try await store.call(id: CallID(id)!) == nil, "a forged command \(id) is in the history")
        }

        // 4. Brute force on the token endpoint: the limit (a burst of 10, then one a minute per address) stops it,
        // and once it does, even the right password is refused. Guessing is slow (each wrong password costs a bcrypt
        // verification), so the budget refills a little during the burst: count what the limit allows.
        var allowed = 0
        var firstRefusal: APIClient.Response?
        let burstStarted = ContinuousClock.now
        for attempt in 0..<60 {
            let guess = "guess-\(attempt)-\(UUID().uuidString.prefix(6))"
            secrets.append(guess)
            let response = try await api.request(
                "POST", "/api/v1/auth/token", body: Data("username=admin&password=\(guess)".utf8),
                contentType: "application/x-www-form-urlencoded")
            if response.status == 429 {
                firstRefusal = response
                break
            }
            #expect(response.status == 401, "wrong password \(attempt): \(response.status)")
            allowed += 1
        }
        let burst = PhaseClock.seconds(ContinuousClock.now - burstStarted)
        let refusal = try #require(firstRefusal, "60 wrong passwords in a row were never rate limited")
        #expect(refusal.headers.first(name: "Retry-After").flatMap(Int.init) != nil)
        // 10 at once, one more per minute of the burst.
        #expect(allowed <= 10 + Int(burst / 60), "\(allowed) guesses allowed in \(burst) s")
        let right = try await api.request(
            "POST", "/api/v1/auth/token",
            body: Data(
                "username=admin&password=\(stack.adminPassword.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)"
                    .utf8),
            contentType: "application/x-www-form-urlencoded")
        #expect(right.status == 429, "the right password is refused too while the address is limited")
        print("brute force: \(allowed) wrong passwords answered 401 in \(String(format: "%.1f", burst)) s, then 429")

        // 5. CORS: a stranger's origin gets no CORS headers, on a preflight or a request; the listed one does.
        let preflight = try await api.request(
            "OPTIONS", "/api/v1/calls",
            headers: [("Origin", "https://evil.example"), ("Access-Control-Request-Method", "POST")])
        #expect(preflight.headers.first(name: "Access-Control-Allow-Origin") == nil)
        #expect(preflight.headers.first(name: "Access-Control-Allow-Methods") == nil)
        let stranger = try await api.request(
            "GET", "/api/v1/calls", token: token, headers: [("Origin", "https://evil.example")])
        #expect(stranger.headers.first(name: "Access-Control-Allow-Origin") == nil)
        #expect(stranger.headers.first(name: "Access-Control-Allow-Credentials") == nil)
        let friend = try await api.request(
            "OPTIONS", "/api/v1/calls",
            headers: [("Origin", "https://app.example.com"), ("Access-Control-Request-Method", "POST")])
        #expect(friend.headers.first(name: "Access-Control-Allow-Origin") == "https://app.example.com")

        // 6. No password, token, signing key or Authorization value in any log of the gateway, the workers, the
        // webhook dispatcher or the campaign scheduler.
        let ariPassword = try String(
            contentsOf: stack.stateDirectory.appendingPathComponent("ari_password"), encoding: .utf8)
        secrets.append(ariPassword.trimmingCharacters(in: .whitespacesAndNewlines))
        try await Task.sleep(for: .seconds(1))
        let logs = try FileManager.default.contentsOfDirectory(
            at: stack.stateDirectory.appendingPathComponent("logs"), includingPropertiesForKeys: nil)
        #expect(logs.count == 5, "\(logs.map(\.lastPathComponent))")
        var lines = 0
        for log in logs {
            let text = try String(contentsOf: log, encoding: .utf8)
            lines += text.split(separator: "\n").count
            for secret in secrets where !secret.isEmpty {
                #expect(!text.contains(secret), "\(log.lastPathComponent) contains a secret (\(secret.prefix(4))…)")
            }
            #expect(!text.contains("Bearer "), "\(log.lastPathComponent) contains an Authorization value")
            #expect(!text.lowercased().contains("\"authorization\""), "\(log.lastPathComponent) logs a header")
            #expect(!text.contains("Basic "), "\(log.lastPathComponent) contains ARI basic credentials")
            #expect(!text.contains("api_key="), "\(log.lastPathComponent) contains an ARI api_key")
        }
        let gatewayLog = try String(
            contentsOf: stack.stateDirectory.appendingPathComponent("logs/api-gateway.log"), encoding: .utf8)
        #expect(gatewayLog.contains("\"request\""), "the access log was captured")
        print("log scan: \(logs.count) files, \(lines) lines, \(secrets.count) secrets searched, none found")
    }

    /// Publishes originate commands that the gateway would refuse (bad number, caller name, variable, extension);
    /// returns their call ids.
    static func forgeCommands(stack: DevStackProcess) async throws -> [String] {
        let valid = try OriginateCommand(
            callID: .generate(), requestedAt: Date(), expiresAt: Date() + 300, to: DialTarget("+155501000001"),
            requestedBy: "forger")
        let json = String(decoding: try WireCoding.encode(valid), as: UTF8.self)
        let replacements = [
            (#""to":"+155501000001""#, #""to":"+155501000001&PJSIP/900@evil""#),
            (#""to":"+155501000001""#, #""to":"+155501000001","caller_id":{"name":"x\r\nVia: y","number":"1"}"#),
            (#""to":"+155501000001""#, #""to":"+155501000001","variables":{"X":"a,b&c"}"#),
            (
                #""to":"+155501000001""#,
                #""to":"+155501000001","dialplan":{"context":"agents","extension":"1&Dial(x)","priority":1}"#
            ),
        ]
        var configuration = KafkaConfiguration(bootstrapServers: stack.bootstrapServers)
        configuration.clientID = "security-tests-forger"
        let producer = try KafkaProducer(
            configuration: configuration, deliveryTimeout: .seconds(30), logger: Logger(label: "security-tests"))
        var ids: [String] = []
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await producer.run() }
            for (old, new) in replacements {
                let id = CallID.generate().description
                let payload = json.replacingOccurrences(of: valid.callID.description, with: id)
                    .replacingOccurrences(of: old, with: new)
                #expect(payload.contains(new), "the forgery applies: \(payload)")
                let attributes = CloudEventAttributes(
                    id: UUID().uuidString.lowercased(), source: "/forger", type: OriginateCommand.eventType,
                    time: Date(), subject: id, traceParent: nil)
                _ = try await producer.send(
                    topic: "calls.originate.v1", key: id, value: Array(payload.utf8),
                    headers: attributes.headers.map { KafkaHeader(key: $0.key, value: $0.value) })
                ids.append(id)
            }
            group.cancelAll()
        }
        return ids
    }

    /// The simulator's originate log: call id → the endpoints it was asked to dial.
    static func originateLog(stack: DevStackProcess) async throws -> [String: [String]] {
        let base = stack.ariURL.hasSuffix("/ari") ? String(stack.ariURL.dropLast(4)) : stack.ariURL
        var request = HTTPClientRequest(url: "\(base)/__sim/originate-log")
        request.method = .GET
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 64 << 20)
        guard let object = try JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any],
            let entries = object["originates"] as? [[String: Any]]
        else { throw TestEnvironmentError("originate-log: \(String(buffer: body))") }
        var log: [String: [String]] = [:]
        for entry in entries {
            if let id = entry["channel_id"] as? String { log[id] = entry["endpoints"] as? [String] ?? [] }
        }
        return log
    }

    static func eventually<T: Sendable>(
        _ what: String, timeout: Duration, _ body: @Sendable () async throws -> T?
    ) async throws -> T {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let value = try await body() { return value }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw TestEnvironmentError("timed out waiting for \(what)")
    }
}
