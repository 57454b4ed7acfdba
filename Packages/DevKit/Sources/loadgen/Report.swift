import ArgumentParser
import Foundation

/// `loadgen report`: gathers the scenarios' JSON files of one run into one results file (with the machine, the
/// revision and the date) and prints the table: every figure next to its baseline from the same run.
struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Merge a run's scenario files into one JSON file and print the table."
    )

    @Option(
        help:
            "The run's directory (gateway.json, e2e.json, memory.json, kafka.json, history.json, webhooks.json, campaigns.json)."
    )
    var dir: String

    @Option(help: "The git revision measured.")
    var revision: String

    @Option(help: "quick or full.")
    var mode: String = "full"

    @Option(help: "The scenarios that ran (a missing file of another one is not a failure).")
    var scenarios: String = "gateway,e2e,memory,kafka,history,webhooks,campaigns"

    @Option(help: "Write the merged results here.")
    var out: String

    @Option(help: "Also write the table (Markdown) here.")
    var markdown: String?

    /// The merged results file.
    struct Results: Codable, Sendable {
        var date: String
        var revision: String
        var mode: String
        var machine: MachineInfo
        var gateway: GatewayBench.Result?
        var endToEnd: EndToEndBench.Result?
        var memory: MemoryBench.Result?
        var kafka: KafkaBench.Result?
        var history: HistoryBench.Result?
        var webhooks: WebhookBench.Result?
        var campaigns: CampaignBench.Result?
        /// Scenarios that did not produce figures, with what they printed last.
        var failures: [String: String]
    }

    func run() async throws {
        var failures: [String: String] = [:]
        let wanted = Set(scenarios.split(separator: ",").map(String.init))
        func load<Value: Decodable>(_ name: String, _ type: Value.Type) -> Value? {
            guard wanted.contains(name) else { return nil }
            let path = "\(dir)/\(name).json"
            guard FileManager.default.fileExists(atPath: path) else {
                let log = (try? String(contentsOfFile: "\(dir)/\(name).log", encoding: .utf8)) ?? "no output"
                failures[name] = String(log.suffix(2000))
                return nil
            }
            do {
                return try readJSON(type, from: path)
            } catch {
                failures[name] = "unreadable results: \(error)"
                return nil
            }
        }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        let results = Results(
            date: formatter.string(from: Date()), revision: revision, mode: mode, machine: MachineInfo.current(),
            gateway: load("gateway", GatewayBench.Result.self), endToEnd: load("e2e", EndToEndBench.Result.self),
            memory: load("memory", MemoryBench.Result.self), kafka: load("kafka", KafkaBench.Result.self),
            history: load("history", HistoryBench.Result.self), webhooks: load("webhooks", WebhookBench.Result.self),
            campaigns: load("campaigns", CampaignBench.Result.self), failures: failures)
        try writeJSON(results, to: out)
        let (table, missed) = Self.table(results)
        print(table)
        if let markdown { try Data(table.utf8).write(to: URL(fileURLWithPath: markdown)) }
        guard missed.isEmpty else {
            FileHandle.standardError.write(Data("bench: goals missed: \(missed.joined(separator: "; "))\n".utf8))
            throw ExitCode(1)
        }
    }

    // MARK: - The table

    /// The table, and the goals this run missed (a scenario without figures counts as missed).
    static func table(_ results: Results) -> (text: String, missed: [String]) {
        var rows: [[String]] = []
        var missed: [String] = []
        func row(_ cells: String...) { rows.append(cells) }
        /// A row measured against a goal: the goal cell says whether it was met (unknown when a figure is missing).
        func goal(_ met: Bool?, _ cells: String...) {
            var cells = cells
            let verdict = met.map { $0 ? "met" : "**missed**" } ?? "**no figure**"
            if met != true { missed.append("\(cells[0]): \(cells[1]) (goal \(cells[cells.count - 1]))") }
            cells[cells.count - 1] += " (\(verdict))"
            rows.append(cells)
        }

        if let gateway = results.gateway {
            let levels = Array(Set(gateway.closedLoop.map(\.concurrency))).sorted()
            func run(_ route: String, _ level: Int) -> GatewayBench.ClosedLoopRun? {
                gateway.closedLoop.first { $0.route == route && $0.concurrency == level }
            }
            func best(_ route: String) -> Double? {
                gateway.closedLoop.filter { $0.route == route }.map(\.requestsPerSecond).max()
            }
            for level in levels {
                let (api, bare, base) = (run("api", level), run("bare", level), run("baseline", level))
                row(
                    "1 gateway", "POST /api/v1/calls, wrk c=\(level): req/s", rate(api?.requestsPerSecond),
                    "bare route \(rate(bare?.requestsPerSecond)); in-gateway baseline \(rate(base?.requestsPerSecond))",
                    ratio(api?.requestsPerSecond, bare?.requestsPerSecond), "")
                row(
                    "1 gateway", "c=\(level): p50 / p99 / p99.9 ms", latency(api?.latencyMs),
                    "bare \(latency(bare?.latencyMs)); baseline \(latency(base?.latencyMs))", "", "")
                row(
                    "1 gateway", "c=\(level): server CPU µs per request; cores used by other processes",
                    "\(microsecondsPerRequest(api)); \(number(others(api?.cores), digits: 2))",
                    "bare \(microsecondsPerRequest(bare)); baseline \(microsecondsPerRequest(base))", "", "")
            }
            let (apiBest, bareBest) = (best("api"), best("bare"))
            goal(
                apiBest.flatMap { api in bareBest.map { api >= 0.7 * $0 } },
                "1 gateway", "best req/s over the levels: POST /api/v1/calls vs the bare route", rate(apiBest),
                rate(bareBest), ratio(apiBest, bareBest), "≥ 70%")
            let api = gateway.halfLoad["api"]
            let bare = gateway.halfLoad["bare"]
            goal(
                api?.latencyMs.p99.map { $0 <= 5 },
                "1 gateway", "open loop at half the best rate (\(rate(api?.offeredRate))/s): p50 / p99 / p99.9 ms",
                latency(api?.latencyMs), "bare \(latency(bare?.latencyMs)) at \(rate(bare?.offeredRate))/s", "",
                "p99 ≤ 5 ms")
        }
        if let e2e = results.endToEnd {
            for run in e2e.rates {
                let offered = rate(run.offeredRate)
                row(
                    "2 end to end", "\(offered)/s offered for \(Int(run.durationSeconds)) s: completed calls/s",
                    rate(run.completedPerSecond), "\(offered) offered", ratio(run.completedPerSecond, run.offeredRate),
                    "")
                row(
                    "2 end to end", "\(offered)/s: 202 → originate p50 / p99 ms",
                    pair(run.acceptToOriginateMs.p50, run.acceptToOriginateMs.p99),
                    "gateway 202 itself: \(pair(run.http.latencyMs.p50, run.http.latencyMs.p99))", "", "p99 ≤ 50 ms")
                row(
                    "2 end to end", "\(offered)/s: ARI event → history row p50 / p99 ms",
                    pair(run.eventToRowLagMs.p50, run.eventToRowLagMs.p99), "", "", "")
                goal(
                    run.lost.map { $0 == 0 && run.dialedTwice == 0 && run.stuck == 0 },
                    "2 end to end", "\(offered)/s: lost / dialed twice / stuck (of \(run.accepted))",
                    "\(run.lost.map(String.init) ?? "n/a") / \(run.dialedTwice) / \(run.stuck)",
                    run.drained
                        ? "all ended \(number(run.drainSeconds, digits: 1)) s after the last 202"
                        : run.backlog > 0 ? "\(grouped(run.backlog)) still queued at the drain timeout" : run.drainEnd,
                    "", "all 0")
            }
            // Only where the pipeline kept up: during a backlog, completions lag the work done.
            let keptUp = e2e.rates.filter {
                $0.drained && $0.completedPerSecond >= 0.9 * $0.offeredRate && $0.lost == 0
            }
            for run in keptUp {
                row(
                    "2 end to end", "\(rate(run.offeredRate))/s: CPU ms per completed call",
                    cpuPerCall(run.cores, perSecond: run.completedPerSecond),
                    String(
                        format: "machine: %.2f of %d cores busy, %.2f by other processes", run.cores["machine"] ?? 0,
                        results.machine.cores, others(run.cores) ?? 0),
                    "", "")
            }
            let sustained = keptUp.max { $0.completedPerSecond < $1.completedPerSecond }
            goal(
                (sustained?.completedPerSecond).map { $0 >= 1000 },
                "2 end to end", "highest rate sustained (all drained, 0 lost): completed calls/s",
                rate(sustained?.completedPerSecond), "", "", "≥ 1,000/s")
            let projectMs = sustained.map { projectCPUMilliseconds($0.cores, perSecond: $0.completedPerSecond) }
            goal(
                projectMs.map { $0 <= 2 },
                "2 end to end", "at that rate: CPU ms per call summed over the project's processes",
                number(projectMs),
                "gateway + workers; with PostgreSQL, broker and simulator: "
                    + number(sustained.map { allCPUMilliseconds($0.cores, perSecond: $0.completedPerSecond) }),
                "", "≤ 2 ms")
            if !e2e.skippedRates.isEmpty {
                row(
                    "2 end to end", "not run (the previous rate left a backlog)",
                    e2e.skippedRates.map { rate($0) }.joined(separator: ", "), "", "", "")
            }
        }
        if let memory = results.memory {
            let levels = memory.levels.map { "\(megabytes($0.rssBytes)) @ \(grouped($0.liveCalls))" }
            let atTenThousand = memory.levels.first { $0.liveCalls >= 10_000 }
            goal(
                atTenThousand.map { $0.rssBytes <= 100_000_000 },
                "3 memory", "worker RSS at N live answered calls", levels.joined(separator: ", "), "", "",
                "≤ 100 MB at 10,000")
            row(
                "3 memory", "per live call",
                memory.bytesPerLiveCall.map { String(format: "%.1f KB", $0 / 1000) } ?? "–",
                "", "", "")
        }
        if let gateway = results.gateway {
            row(
                "3 memory", "gateway RSS idle / at peak load",
                "\(megabytes(gateway.gatewayRssIdleBytes)) / \(megabytes(gateway.gatewayRssPeakBytes))", "", "", "")
        }
        if let kafka = results.kafka {
            if let produce = kafka.produce {
                row(
                    "4 Kafka", "acknowledged produce msg/s, send() / send(batch)",
                    "\(rate(produce.sendPerSecond)) / \(rate(produce.batchPerSecond))",
                    "\(rate(produce.kcatPerSecond)) (kcat -P)",
                    "\(ratio(produce.sendPerSecond, produce.kcatPerSecond)) / "
                        + ratio(produce.batchPerSecond, produce.kcatPerSecond), "")
            }
            row(
                "4 Kafka", "consume msg/s (all partitions assigned, from the beginning)",
                rate(kafka.consumeWrapperPerSecond), "\(rate(kafka.consumeKcatPerSecond)) (kcat -C)",
                ratio(kafka.consumeWrapperPerSecond, kafka.consumeKcatPerSecond), "")
        }
        if let history = results.history {
            row(
                "5 history", "status events/s, CallStore.apply, batches of \(history.batch)",
                rate(history.applyPerSecond), "\(rate(history.copyBatchedPerSecond)) (COPY, same batches)",
                ratio(history.applyPerSecond, history.copyBatchedPerSecond), "")
            row(
                "5 history", "COPY of all rows in one statement (ceiling)", rate(history.copySinglePerSecond), "", "",
                "fsync=\(history.fsync), synchronous_commit=\(history.synchronousCommit)")
        }
        if let webhooks = results.webhooks {
            goal(
                webhooks.healthyLatencyMs.p99.map { $0 < 1000 },
                "6 webhooks",
                "\(Int(webhooks.rate))/s events, one endpoint dead: healthy delivery p50 / p99 / max ms",
                "\(number(webhooks.healthyLatencyMs.p50)) / \(number(webhooks.healthyLatencyMs.p99)) / "
                    + number(webhooks.healthyLatencyMs.max),
                "", "", "p99 < 1000")
            row(
                "6 webhooks", "healthy delivered / events (verified), dead endpoint attempts, dispatcher cores",
                "\(webhooks.healthyDelivered) / \(webhooks.events) (\(webhooks.healthyVerified))",
                "\(webhooks.deadAttempts) dead attempts", "", String(format: "%.2f cores", webhooks.dispatcherCores))
        }
        if let campaigns = results.campaigns {
            goal(
                campaigns.contacts >= 1_000_000 ? campaigns.importSeconds <= 60 : nil,
                "7 campaigns",
                "\(grouped(campaigns.contacts))-row contact list: upload and import seconds (contacts / refused)",
                String(format: "%.1f", campaigns.importSeconds),
                "\(grouped(campaigns.imported)) / \(grouped(campaigns.refused))"
                    + (campaigns.gatewayImportCpuSeconds.map { String(format: ", gateway CPU %.1f s", $0) } ?? ""),
                "", "≤ 60 s (1,000,000 rows)")
            row(
                "7 campaigns", "start (contacts laid out), seconds", String(format: "%.1f", campaigns.startSeconds),
                "", "", "")
            goal(
                campaigns.dispatchPerSecond >= min(500, campaigns.rate) * 0.99,
                "7 campaigns", "dispatch calls/s at max_calls_per_second \(number(campaigns.rate))",
                String(format: "%.1f", campaigns.dispatchPerSecond),
                "\(grouped(campaigns.dispatched)) calls in \(String(format: "%.1f", campaigns.dispatchSeconds)) s",
                ratio(campaigns.dispatchPerSecond, campaigns.rate), "≥ 500/s")
            goal(
                campaigns.schedulerCpuMillisecondsPerCall.map { $0 <= 0.5 },
                "7 campaigns", "scheduler CPU ms per dispatched call",
                campaigns.schedulerCpuMillisecondsPerCall.map { String(format: "%.3f", $0) } ?? "–",
                String(format: "%.2f cores", campaigns.schedulerCores), "", "≤ 0.5 ms")
        }
        for (name, text) in results.failures.sorted(by: { $0.key < $1.key }) {
            let last = text.split(separator: "\n").last.map(String.init) ?? ""
            goal(false, "–", "\(name): no figures", String(last.prefix(100)), "", "", "figures")
        }

        let machine = results.machine
        var output = """
            Benchmarks (\(results.mode)): \(results.date), revision \(results.revision), \(machine.cores) cores \
            (\(machine.cpuModel)), \(megabytes(machine.memoryBytes)) memory, Linux \(machine.kernel), \
            load average before \(machine.loadAverage)

            | scenario | measure | figure | baseline (same run) | ratio | goal |
            |---|---|---|---|---|---|

            """
        for cells in rows { output += "| " + cells.joined(separator: " | ") + " |\n" }
        return (output, missed)
    }

    /// CPU milliseconds per call, by component: workers summed, devstack = embedded broker + ARI simulator.
    static func cpuPerCall(_ cores: [String: Double], perSecond: Double) -> String {
        var groups: [(String, Double)] = []
        for (label, value) in [
            ("gateway", cores["gateway"]), ("workers", workerCores(cores)), ("broker+simulator", cores["devstack"]),
            ("PostgreSQL", cores["postgres"]), ("load generator", cores["loadgen"]),
        ] {
            if let value, value > 0 { groups.append((label, value / perSecond * 1000)) }
        }
        return groups.map { "\($0.0) " + String(format: "%.2f", $0.1) }.joined(separator: ", ")
    }

    /// The workers' cores, summed (`worker-1`, `worker-2`, …).
    static func workerCores(_ cores: [String: Double]) -> Double {
        cores.filter { $0.key.hasPrefix("worker") }.values.reduce(0, +)
    }

    /// CPU milliseconds per call of the project's own processes: the gateway and the workers.
    static func projectCPUMilliseconds(_ cores: [String: Double], perSecond: Double) -> Double {
        ((cores["gateway"] ?? 0) + workerCores(cores)) / perSecond * 1000
    }

    /// CPU milliseconds per call of every metered process but the load generator.
    static func allCPUMilliseconds(_ cores: [String: Double], perSecond: Double) -> Double {
        cores.filter { $0.key != "machine" && $0.key != "loadgen" }.values.reduce(0, +) / perSecond * 1000
    }

    /// Cores the machine spent outside the metered processes (other users of a shared machine, the kernel's
    /// softirq work not charged to a process).
    static func others(_ cores: [String: Double]?) -> Double? {
        guard let cores, let machine = cores["machine"] else { return nil }
        return max(0, machine - cores.filter { $0.key != "machine" }.values.reduce(0, +))
    }

    static func microsecondsPerRequest(_ run: GatewayBench.ClosedLoopRun?) -> String {
        guard let run, run.requestsPerSecond > 0, let cores = run.cores["server"] else { return "–" }
        return String(format: "%.0f", cores / run.requestsPerSecond * 1e6)
    }

    static func rate(_ value: Double?) -> String {
        guard let value, value.isFinite else { return "–" }
        return grouped(Int(value.rounded()))
    }

    static func grouped(_ value: Int) -> String {
        let digits = String(abs(value))
        var output = ""
        for (index, character) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { output.append(",") }
            output.append(character)
        }
        return (value < 0 ? "-" : "") + output
    }

    static func ratio(_ part: Double?, _ whole: Double?) -> String {
        guard let part, let whole, whole > 0 else { return "–" }
        return String(format: "%.0f%%", part / whole * 100)
    }

    static func number(_ value: Double?, digits: Int = 2) -> String {
        guard let value, value.isFinite else { return "–" }
        if value >= 100 { return String(format: "%.0f", value) }
        return String(format: "%.\(digits)f", value)
    }

    static func pair(_ first: Double?, _ second: Double?) -> String {
        "\(number(first, digits: 1)) / \(number(second, digits: 1))"
    }

    static func latency(_ summary: LatencySummary?) -> String {
        guard let summary else { return "–" }
        return "\(number(summary.p50)) / \(number(summary.p99)) / \(number(summary.p999))"
    }

    static func megabytes(_ bytes: Int) -> String {
        bytes >= 10_000_000_000
            ? String(format: "%.1f GB", Double(bytes) / 1e9) : String(format: "%.0f MB", Double(bytes) / 1e6)
    }
}
