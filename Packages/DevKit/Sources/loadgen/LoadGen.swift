import ArgumentParser
import Foundation

/// `loadgen`: the benchmark tools behind `make bench` (see scripts/bench.sh): an open-loop HTTP load generator and
/// one subcommand per scenario, each writing its raw figures as JSON, and `report`, which prints the table.
/// Benchmarks report; they never fail on a number.
@main
struct LoadGen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loadgen",
        abstract: "Benchmark tools: open-loop HTTP load and the scenarios of make bench.",
        subcommands: [
            OpenLoopCommand.self, GatewayBench.self, EndToEndBench.self, MemoryBench.self, HistoryBench.self,
            KafkaBench.self, WebhookBench.self, CampaignBench.self, BareRouteCommand.self, ReportCommand.self,
        ]
    )
}

/// `loadgen open-loop`: POSTs one body to one URL at a fixed rate and prints the latency percentiles.
struct OpenLoopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "open-loop",
        abstract: "POST at a fixed rate, independent of the answers; latency counts from when a request was due."
    )

    @Option(help: "Target URL (http://host:port/path).")
    var url: String

    @Option(help: "Requests per second.")
    var rate: Double

    @Option(help: "Seconds to send for.")
    var duration: Double = 10

    @Option(name: .customLong("header"), help: "A header as 'Name: value' (repeatable).")
    var headers: [String] = []

    @Option(help: "Request body.")
    var body: String = "{}"

    @Option(help: "The most connections to open.")
    var maxConnections: Int = 512

    @Option(help: "Write the figures as JSON to this file.")
    var out: String?

    func run() async throws {
        let plan = try OpenLoopPlan(
            url: url, headers: try headers.map(Self.header), body: Array(body.utf8), rate: rate,
            duration: .milliseconds(Int64(duration * 1000)))
        var limited = plan
        limited.maxConnections = maxConnections
        let before = ProcessProbe.ownCPUSeconds()
        let result = try await OpenLoopGenerator.run(limited)
        let summary = OpenLoopSummary(result: result, rate: rate, cpuSeconds: ProcessProbe.ownCPUSeconds() - before)
        print(summary.line)
        if let out { try writeJSON(summary, to: out) }
    }

    static func header(_ text: String) throws -> (String, String) {
        guard let colon = text.firstIndex(of: ":") else { throw BenchError("a header is 'Name: value': \(text)") }
        return (
            String(text[..<colon]).trimmingCharacters(in: .whitespaces),
            String(text[text.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
        )
    }
}

/// An open-loop run, as stored in the results.
struct OpenLoopSummary: Codable, Sendable {
    var offeredRate: Double
    var achievedRate: Double
    var sent: Int
    var failures: Int
    var statusCounts: [String: Int]
    var latencyMs: LatencySummary
    var peakConnections: Int
    /// CPU the generator itself used, in cores.
    var generatorCores: Double

    init(result: OpenLoopResult, rate: Double, cpuSeconds: Double) {
        offeredRate = rate
        achievedRate = result.elapsed > 0 ? Double(result.latencies.count) / result.elapsed : 0
        sent = result.sent
        failures = result.failures
        statusCounts = Dictionary(uniqueKeysWithValues: result.statusCounts.map { ("\($0.key)", $0.value) })
        latencyMs = LatencySummary(milliseconds: result.latencies)
        peakConnections = result.peakConnections
        generatorCores = result.elapsed > 0 ? cpuSeconds / result.elapsed : 0
    }

    var line: String {
        String(
            format: "offered %.0f/s achieved %.0f/s, p50 %.2f ms p99 %.2f ms p99.9 %.2f ms, %d failures, statuses ",
            offeredRate, achievedRate, latencyMs.p50 ?? .nan, latencyMs.p99 ?? .nan, latencyMs.p999 ?? .nan, failures)
            + statusCounts.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: " ")
    }
}
