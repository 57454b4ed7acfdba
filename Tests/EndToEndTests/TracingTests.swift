import CallDomain
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOFoundationCompat
import ServiceLifecycle
import ServiceSupport
import Synchronization
import TestSupport
import Testing
import Tracing

/// Distributed tracing across the real processes: `devstack up` with `OTEL_TRACES_EXPORTER=otlp`, its spans sent
/// over OTLP/HTTP (JSON) to a collector this test runs, one call followed from the client's `traceparent` to the
/// worker's last status event.
@Suite(.serialized, .timeLimit(.minutes(5))) struct TracingTests {
    @Test func oneTraceFollowsACallFromTheRequestThroughKafkaTheWorkerAndARIToItsStatusEvents() async throws {
        let collector = OTLPCollector()
        try await collector.run { endpoint in
            try await TestDatabase.withStore { _, databaseURL in
                let environment = [
                    "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json", "OTEL_BSP_SCHEDULE_DELAY": "200",
                ]
                let status = try await DevStackProcess.run(
                    databaseURL: databaseURL, workers: 1, extraEnvironment: environment
                ) { stack in
                    try await Self.followOneCall(stack: stack, collector: collector)
                }
                #expect(status == 0)
            }
        }
    }

    static func followOneCall(stack: DevStackProcess, collector: OTLPCollector) async throws {
        let api = APIClient(baseURL: stack.apiURL)
        let token = try await api.token(username: "admin", password: stack.adminPassword)
        // The client's own trace: every span of the call must join it.
        let traceID = TraceContext.newRequestID()
        let clientSpanID = "00f067aa0ba902b7"
        let response = try await api.request(
            "POST", "/api/v1/calls", token: token, body: Data(#"{"to":"+155501000001"}"#.utf8),
            headers: [("traceparent", "00-\(traceID)-\(clientSpanID)-01")])
        #expect(response.status == 202)
        let callID = try #require(try response.json()["id"] as? String)
        let events = try await api.followUntilTerminal(token: token, callID: callID, timeout: .seconds(60))
        #expect(events.count >= 4, "dispatched, initiated, answered, completed at least")

        // The exporters send every 200 ms: wait for the worker's last status span.
        let deadline = ContinuousClock.now + .seconds(30)
        var spans: [OTLPCollector.Span] = []
        while ContinuousClock.now < deadline {
            spans = collector.spans.filter { $0.traceID == traceID }
            if spans.filter({ $0.name == "publish calls.status.v1" }).count >= events.count { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        let names = spans.map { "\($0.service): \($0.name)" }.sorted()
        print("the call's trace, as the collector received it:\n" + OTLPCollector.tree(of: spans))

        let request = try #require(spans.first { $0.service == "api-gateway" && $0.kind == "SERVER" }, "\(names)")
        #expect(request.name == "/api/v1/calls")
        #expect(request.parentSpanID == clientSpanID, "the gateway continues the client's trace")
        #expect(request.attributes["http.response.status_code"] == "202")

        let command = try #require(
            spans.first { $0.service == "api-gateway" && $0.name == "publish calls.originate.v1" }, "\(names)")
        #expect(command.kind == "PRODUCER")
        #expect(command.parentSpanID == request.spanID)
        #expect(command.attributes["messaging.kafka.message.key"] == callID)

        // The worker's processing of the command is a child of the gateway's publish: the traceparent header.
        let placement = try #require(
            spans.first { $0.service == "dialer-worker" && $0.name == "process calls.originate.v1" }, "\(names)")
        #expect(placement.kind == "CONSUMER")
        #expect(placement.parentSpanID == command.spanID)
        #expect(placement.attributes["call.id"] == callID)
        // The worker's identity is said once, on its resource, not on every span.
        #expect(placement.resource["node.id"] == "node-a" && placement.resource["worker.id"]?.isEmpty == false)

        let originate = try #require(
            spans.first { $0.service == "dialer-worker" && $0.name == "ARI POST /channels/{channelId}" }, "\(names)")
        #expect(originate.kind == "CLIENT")
        #expect(originate.parentSpanID == placement.spanID)
        #expect(originate.attributes["http.response.status_code"] == "200")

        // One publish per status event, each a child of the placement: the status topic's records carry them.
        let published = spans.filter { $0.service == "dialer-worker" && $0.name == "publish calls.status.v1" }
        #expect(published.count == events.count, "\(names)")
        #expect(published.allSatisfy { $0.parentSpanID == placement.spanID && $0.kind == "PRODUCER" })
        let records = try await Kcat.consumeAll(bootstrap: stack.bootstrapServers, topic: "calls.status.v1")
            .filter { $0.key == callID }
        #expect(records.count == events.count)
        for record in records {
            let header = try #require(record.header("traceparent"))
            #expect(TraceContext.traceID(fromTraceParent: header) == traceID, "\(header)")
            #expect(published.contains { header.contains($0.spanID) }, "a status record names its publish span")
        }
    }

    @Test func aCollectorThatIsDownCostsSpansNotCalls() async throws {
        try await TestDatabase.withStore { _, databaseURL in
            // Nothing listens there: every export fails.
            let environment = [
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:\(try DevStackProcess.freePort())",
                "OTEL_BSP_SCHEDULE_DELAY": "100",
                // Each process's last flush, at shutdown, gives up after this (10 s by default).
                "OTEL_EXPORTER_OTLP_TIMEOUT": "1000",
            ]
            let status = try await DevStackProcess.run(
                databaseURL: databaseURL, workers: 1, extraEnvironment: environment
            ) { stack in
                let api = APIClient(baseURL: stack.apiURL)
                let token = try await api.token(username: "admin", password: stack.adminPassword)
                let ids = try await withThrowingTaskGroup(of: String.self) { group in
                    for _ in 0..<3 {
                        group.addTask { try await api.placeCall(token: token, body: ["to": .string("+155501000001")]) }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                for id in ids {
                    let events = try await api.followUntilTerminal(token: token, callID: id, timeout: .seconds(60))
                    let last = try WireCoding.decode(
                        CallStatusEvent.self, from: Array(try #require(events.last).data.utf8))
                    #expect(last.status == .completed)
                }
            }
            #expect(status == 0, "every process stopped cleanly, its exporter's last flush failing")
        }
    }

    @Test func withTracingOffASpanRunsItsWorkAndPassesTheHeaderOnUnchanged() async throws {
        // This test process never bootstraps tracing, as a service does not when OTEL_TRACES_EXPORTER is unset.
        #expect(!TracingSetup.isEnabled)
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        let passed = await TraceSpans.withSpan("work", ofKind: .consumer, parent: incoming) { $0 }
        #expect(passed == incoming)
        let none = await TraceSpans.withSpan("work", ofKind: .producer, parent: nil) { $0 }
        #expect(none == nil)
    }
}

/// An OpenTelemetry collector's OTLP/HTTP traces endpoint (`POST /v1/traces`, JSON encoding) on a free port,
/// keeping every span it receives.
final class OTLPCollector: Sendable {
    /// What the test looks at in a span.
    struct Span: Sendable {
        var service: String
        var traceID: String
        var spanID: String
        var parentSpanID: String?
        var name: String
        /// `SERVER`, `CLIENT`, `PRODUCER`, `CONSUMER` or `INTERNAL`.
        var kind: String
        /// String, integer and boolean attributes, as text.
        var attributes: [String: String]
        /// The attributes of the process that sent it (its resource).
        var resource: [String: String]
        /// Start and end, in nanoseconds since 1970.
        var start: UInt64
        var end: UInt64
    }

    /// The spans as an indented tree, children under their parent in start order, with their durations.
    static func tree(of spans: [Span]) -> String {
        let ids = Set(spans.map(\.spanID))
        func lines(under parent: String?, depth: Int) -> [String] {
            spans.filter { span in parent == nil ? !ids.contains(span.parentSpanID ?? "") : span.parentSpanID == parent
            }
            .sorted { $0.start < $1.start }
            .flatMap { span in
                let milliseconds = Double(span.end - span.start) / 1_000_000
                let line =
                    String(repeating: "  ", count: depth)
                    + "\(span.service) \(span.kind) \"\(span.name)\" \(String(format: "%.2f", milliseconds)) ms"
                return [line] + lines(under: span.spanID, depth: depth + 1)
            }
        }
        return lines(under: nil, depth: 0).joined(separator: "\n")
    }

    private let received = Mutex<[Span]>([])

    /// Every span received so far.
    var spans: [Span] { received.withLock { $0 } }

    /// Runs the endpoint while `body` runs; `body` gets the base URL for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    func run(_ body: @Sendable (String) async throws -> Void) async throws {
        let router = Router()
        router.post("/v1/traces") { request, context -> Response in
            let bytes = try await request.body.collect(upTo: 16 << 20)
            self.take(Data(buffer: bytes))
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: "{}")))
        }
        let port = Mutex<Int?>(nil)
        let application = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in port.withLock { $0 = channel.localAddress?.port } },
            logger: Logger(label: "otlp-collector"))
        let group = ServiceGroup(services: [application], logger: Logger(label: "otlp-collector"))
        try await withThrowingTaskGroup { tasks in
            tasks.addTask { try await group.run() }
            while port.withLock({ $0 }) == nil { try await Task.sleep(for: .milliseconds(20)) }
            do {
                try await body("http://127.0.0.1:\(port.withLock { $0 }!)")
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    /// Decodes an `ExportTraceServiceRequest` in OTLP's JSON encoding (ids in hex, as the specification requires).
    private func take(_ data: Data) {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return }
        var spans: [Span] = []
        for resourceSpans in object["resourceSpans"] as? [[String: Any]] ?? [] {
            let resource = Self.attributes(of: resourceSpans["resource"] as? [String: Any] ?? [:])
            for scopeSpans in resourceSpans["scopeSpans"] as? [[String: Any]] ?? [] {
                for span in scopeSpans["spans"] as? [[String: Any]] ?? [] {
                    let kind = (span["kind"] as? String).map { $0.replacingOccurrences(of: "SPAN_KIND_", with: "") }
                    let parent = span["parentSpanId"] as? String
                    spans.append(
                        Span(
                            service: resource["service.name"] ?? "", traceID: Self.hex(span["traceId"]),
                            spanID: Self.hex(span["spanId"]), parentSpanID: parent.map { Self.hex($0) },
                            name: span["name"] as? String ?? "",
                            kind: kind ?? Self.kinds[span["kind"] as? Int ?? 0] ?? "",
                            attributes: Self.attributes(of: span), resource: resource,
                            start: Self.nanoseconds(span["startTimeUnixNano"]),
                            end: Self.nanoseconds(span["endTimeUnixNano"])))
                }
            }
        }
        received.withLock { $0 += spans }
    }

    /// OTLP/JSON writes 64-bit integers as strings.
    private static func nanoseconds(_ value: Any?) -> UInt64 {
        (value as? String).flatMap { UInt64($0) } ?? (value as? NSNumber)?.uint64Value ?? 0
    }

    private static let kinds = [1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"]

    private static func attributes(of object: [String: Any]) -> [String: String] {
        var attributes: [String: String] = [:]
        for attribute in object["attributes"] as? [[String: Any]] ?? [] {
            guard let key = attribute["key"] as? String, let value = attribute["value"] as? [String: Any] else {
                continue
            }
            if let text = value["stringValue"] as? String {
                attributes[key] = text
            } else if let number = value["intValue"] {
                attributes[key] = "\(number)"
            } else if let flag = value["boolValue"] as? Bool {
                attributes[key] = "\(flag)"
            }
        }
        return attributes
    }

    /// An id as lowercase hex: OTLP/JSON writes ids in hex; a base64 id (protobuf's generic JSON) is converted.
    private static func hex(_ value: Any?) -> String {
        guard let text = value as? String else { return "" }
        if text.utf8.allSatisfy({
            (0x30...0x39).contains($0) || (0x61...0x66).contains($0) || (0x41...0x46).contains($0)
        }),
            text.count == 32 || text.count == 16
        {
            return text.lowercased()
        }
        guard let bytes = Data(base64Encoded: text) else { return text }
        return bytes.map { String(format: "%02x", $0) }.joined()
    }
}
