import ArgumentParser
import AsyncHTTPClient
import CallDomain
import DevStack
import Foundation
import Kafka
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// `loadgen campaigns`: a campaign of a large contact list through the real processes. The list is uploaded to a
/// running gateway (`POST /contact-lists`, multipart CSV; the answer comes once every row is imported), a campaign of
/// it is created and started (which lays its contacts out), then a real `campaign-scheduler` process dispatches it;
/// the dispatch rate is read from the originate topic's end offsets, the scheduler's CPU from `/proc`. No worker
/// runs: the campaign's live-call limit (10,000 at most) bounds how long the dispatch can be measured.
struct CampaignBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "campaigns",
        abstract: "Contact-list import time, then a campaign's dispatch rate and the scheduler's CPU per call."
    )

    @Option(help: "The gateway's base URL.")
    var url: String

    @Option(help: "A bearer token of a user with the campaigns scope (an operator).")
    var token: String

    @Option(help: "The gateway's process id (its CPU during the import is reported).")
    var gatewayPid: Int32?

    @Option(help: "The PostgreSQL database the gateway uses (the scheduler is pointed at it).")
    var databaseUrl: String

    @Option(help: "The Kafka bootstrap servers the gateway uses.")
    var bootstrapServers: String

    @Option(help: "The campaign-scheduler executable.")
    var scheduler: String

    @Option(help: "Contacts in the list.")
    var contacts: Int = 1_000_000

    @Option(help: "The campaign's max_calls_per_second.")
    var rate: Double = 500

    @Option(help: "Seconds of dispatch to measure (at most 10,000 / rate - 1: the live-call limit stops it).")
    var duration: Double = 15

    @Option(help: "Write the figures as JSON to this file.")
    var out: String

    struct Result: Codable, Sendable {
        var contacts: Int
        var imported: Int
        var refused: Int
        var uploadBytes: Int
        /// From the first byte sent to the answer (the list imported).
        var importSeconds: Double
        /// CPU seconds the gateway spent meanwhile.
        var gatewayImportCpuSeconds: Double?
        /// `POST /campaigns/{id}/start`: the contacts laid out.
        var startSeconds: Double
        var rate: Double
        var dispatched: Int
        var dispatchSeconds: Double
        var dispatchPerSecond: Double
        /// The scheduler's CPU milliseconds per dispatched call (`nil`: nothing dispatched in the window).
        var schedulerCpuMillisecondsPerCall: Double?
        var schedulerCores: Double
    }

    /// Area codes of several time zones (each contact's zone is derived from its number, as in production).
    static let areaCodes = ["212", "312", "415", "617", "206", "303", "404", "512", "702", "305"]

    func run() async throws {
        guard contacts > 0, rate > 0, duration > 0 else { throw ValidationError("contacts, rate and duration > 0") }
        let api = url.hasSuffix("/") ? String(url.dropLast()) : url
        let csv = Self.contactList(count: contacts)
        let boundary = "bench-\(UInt64.random(in: 0 ... .max))"
        var body = ByteBuffer()
        body.writeString(
            "--\(boundary)\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nbench \(contacts) contacts\r\n"
                + "--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"contacts.csv\"\r\n"
                + "Content-Type: text/csv\r\n\r\n")
        body.writeBytes(csv)
        body.writeString("\r\n--\(boundary)--\r\n")
        let uploadBytes = body.readableBytes

        let gatewayCPUBefore = gatewayPid.flatMap(ProcessProbe.cpuSeconds)
        let importStarted = ContinuousClock.now
        let list = try await call(
            .POST, "\(api)/api/v1/contact-lists", body: body,
            contentType: "multipart/form-data; boundary=\(boundary)", timeout: 900)
        let importSeconds = Self.seconds(ContinuousClock.now - importStarted)
        let gatewayCPUAfter = gatewayPid.flatMap(ProcessProbe.cpuSeconds)
        let gatewayCPU = gatewayCPUBefore.flatMap { before in gatewayCPUAfter.map { $0 - before } }
        guard let listID = list["id"] as? String, list["state"] as? String == "ready" else {
            throw BenchError("the contact list was not imported: \(list)")
        }
        let imported = list["contacts"] as? Int ?? 0
        let refused = list["refused"] as? Int ?? 0
        print(
            String(
                format: "campaigns: %d-row list (%.1f MB) imported in %.1f s: %d contacts, %d refused",
                contacts, Double(uploadBytes) / 1e6, importSeconds, imported, refused))

        let allDay = [["start": "00:00", "end": "23:59"]]
        let days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
        let campaign = try await call(
            .POST, "\(api)/api/v1/campaigns",
            json: [
                "name": "bench", "list_ids": [listID], "max_calls_per_second": rate, "max_live_calls": 10_000,
                "timeout_seconds": 30, "calling_windows": Dictionary(uniqueKeysWithValues: days.map { ($0, allDay) }),
            ])
        guard let campaignID = campaign["id"] as? String else { throw BenchError("no campaign: \(campaign)") }
        let startStarted = ContinuousClock.now
        _ = try await call(.POST, "\(api)/api/v1/campaigns/\(campaignID)/start", timeout: 900)
        let startSeconds = Self.seconds(ContinuousClock.now - startStarted)
        print(String(format: "campaigns: started (contacts laid out) in %.1f s", startSeconds))

        var logger = Logger(label: "loadgen.campaigns")
        logger.logLevel = .error
        let topic = CallTopics.defaults.originate
        let watcher = try KafkaConsumer(
            configuration: KafkaConfiguration(bootstrapServers: bootstrapServers, clientID: "bench-watch"),
            groupID: "bench-campaign-watch", topics: [topic], logger: logger)
        func published() async throws -> Int {
            try await watcher.groupProgress(on: topic, timeout: Duration.seconds(10)).reduce(0) { $0 + Int($1.end) }
        }
        let before = try await published()

        let environment = [
            "DATABASE_URL": databaseUrl, "KAFKA_BOOTSTRAP_SERVERS": bootstrapServers, "SCHEDULER_ID": "bench",
            "SCHEDULER_HOST": "127.0.0.1", "SCHEDULER_PORT": "0", "LOG_LEVEL": "warning", "LOG_FORMAT": "json",
        ].merging(
            // The scheduler's tunables of the bench's own environment (CAMPAIGN_*, KAFKA_PROP_*) apply.
            ProcessInfo.processInfo.environment.filter {
                $0.key.hasPrefix("CAMPAIGN_") || $0.key.hasPrefix("KAFKA_PROP_")
            }
        ) { _, tunable in tunable }
        let process = try await ChildProcess.start(
            executable: scheduler, arguments: ["serve"], environment: environment, output: .standardError)
        defer { process.killSynchronously() }
        // The clock starts at the first command on the topic: the scheduler's start-up is not dispatch.
        let firstDeadline = ContinuousClock.now + .seconds(60)
        var first = before
        while first == before {
            guard process.isRunning else {
                throw BenchError("the scheduler \(process.termination.map { "\($0)" } ?? "exited")")
            }
            guard ContinuousClock.now < firstDeadline else { throw BenchError("the scheduler dispatched nothing") }
            try await Task.sleep(for: .milliseconds(100))
            first = try await published()
        }
        // A second later: the campaign's token bucket starts full (a fifth of a second of calls), a burst that is
        // not the pace.
        try await Task.sleep(for: .seconds(1))
        first = try await published()
        let pid = process.processIdentifier
        let cpuBefore = ProcessProbe.cpuSeconds(pid) ?? 0
        let measureStarted = ContinuousClock.now
        try await Task.sleep(for: .milliseconds(Int64(duration * 1000)))
        let last = try await published()
        let measured = Self.seconds(ContinuousClock.now - measureStarted)
        let cpu = (ProcessProbe.cpuSeconds(pid) ?? cpuBefore) - cpuBefore
        process.send(SIGTERM)
        await process.waitForExit()

        let dispatched = last - first
        let result = Result(
            contacts: contacts, imported: imported, refused: refused, uploadBytes: uploadBytes,
            importSeconds: importSeconds, gatewayImportCpuSeconds: gatewayCPU, startSeconds: startSeconds, rate: rate,
            dispatched: dispatched, dispatchSeconds: measured, dispatchPerSecond: Double(dispatched) / measured,
            schedulerCpuMillisecondsPerCall: dispatched > 0 ? cpu / Double(dispatched) * 1000 : nil,
            schedulerCores: cpu / measured)
        print(
            String(
                format: "campaigns: %d calls dispatched in %.1f s (%.1f/s at %.0f/s asked), scheduler %.3f ms CPU per "
                    + "call (%.2f cores)",
                dispatched, measured, result.dispatchPerSecond, rate, result.schedulerCpuMillisecondsPerCall ?? .nan,
                result.schedulerCores))
        try writeJSON(result, to: out)
    }

    /// North American exchanges: 200-999 without the N11 service codes.
    static let exchanges = (200...999).filter { $0 % 100 != 11 }

    /// `phone,name` rows of distinct valid North American numbers spread over the area codes.
    static func contactList(count: Int) -> [UInt8] {
        var csv = Array("phone,name\n".utf8)
        csv.reserveCapacity(count * 26)
        for index in 0..<count {
            let area = areaCodes[index % areaCodes.count]
            let rest = index / areaCodes.count
            let exchange = exchanges[(rest / 10_000) % exchanges.count]
            let line = rest % 10_000
            csv += Array("+1\(area)\(exchange)\(String(format: "%04d", line)),Contact \(index)\n".utf8)
        }
        return csv
    }

    private func call(
        _ method: HTTPMethod, _ url: String, json: [String: Any]? = nil, body: ByteBuffer? = nil,
        contentType: String? = nil, timeout: Int64 = 60
    ) async throws -> [String: Any] {
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: json)))
        } else if let body {
            request.headers.add(name: "Content-Type", value: contentType ?? "application/octet-stream")
            request.body = .bytes(body)
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(timeout))
        let data = Data(buffer: try await response.body.collect(upTo: 16 << 20))
        guard (200..<300).contains(Int(response.status.code)) else {
            throw BenchError(
                "\(method.rawValue) \(url): \(response.status.code) \(String(decoding: data, as: UTF8.self))")
        }
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
