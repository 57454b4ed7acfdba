import ArgumentParser
import DevStack
import Foundation

/// `loadgen gateway`: `POST /api/v1/calls` (JWT, validation, Kafka acknowledgement) against a bare Hummingbird 2
/// route in its own process (`loadgen bare-route`: read the body, answer 202 JSON, no middleware), and against the
/// baseline route inside the gateway (`POST /bench/baseline/calls`: the gateway's middleware and the same 202 body,
/// nothing else), closed loop with wrk at fixed concurrency levels, then open loop at half of each route's best
/// rate. The bare route is the yardstick; the in-gateway baseline shows what the middleware costs.
struct GatewayBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "The gateway's POST /api/v1/calls versus a bare route (wrk closed loop, then open loop)."
    )

    @Option(help: "The gateway's base URL (http://127.0.0.1:PORT); it must run with BENCH_BASELINE_ROUTE=true.")
    var url: String

    @Option(help: "A bearer token of a user with the operator role.")
    var token: String

    @Option(help: "The gateway's process id (CPU and memory).")
    var gatewayPid: Int32

    @Option(help: "The Kafka broker's process id (CPU).")
    var brokerPid: Int32?

    @Option(help: "The bare route's base URL (loadgen bare-route).")
    var bareUrl: String

    @Option(help: "The bare route's process id (CPU).")
    var barePid: Int32

    @Option(help: "Concurrency levels for wrk.")
    var concurrency: String = "16,64,256"

    @Option(help: "Seconds per wrk run.")
    var duration: Int = 10

    @Option(help: "Seconds of each open-loop run at half load.")
    var halfDuration: Double = 15

    @Option(help: "wrk threads.")
    var wrkThreads: Int = 1

    @Option(help: "The wrk Lua script (bench/wrk/post-calls.lua).")
    var wrkScript: String

    @Option(help: "The number every request dials.")
    var to: String = "+155501140010"

    @Option(help: "Write the figures as JSON to this file.")
    var out: String

    struct Route: Codable, Sendable {
        var name: String
        /// The serving process's base URL and path.
        var url: String
        var pid: Int32
    }

    var routes: [Route] {
        [
            Route(name: "bare", url: bareUrl + "/calls", pid: barePid),
            Route(name: "baseline", url: url + "/bench/baseline/calls", pid: gatewayPid),
            Route(name: "api", url: url + "/api/v1/calls", pid: gatewayPid),
        ]
    }

    /// One wrk run.
    struct ClosedLoopRun: Codable, Sendable {
        var route: String
        var concurrency: Int
        var requestsPerSecond: Double
        var requests: Int
        var latencyMs: LatencySummary
        /// Socket errors plus answers with a status of 400 or more.
        var errors: Int
        /// Cores used during the run, by process (`server`: the process serving the route, `broker`, `wrk`,
        /// `machine`).
        var cores: [String: Double]
    }

    /// The results file.
    struct Result: Codable, Sendable {
        var closedLoop: [ClosedLoopRun]
        var halfLoad: [String: OpenLoopSummary]
        var halfLoadCores: [String: [String: Double]]
        var gatewayRssIdleBytes: Int
        var gatewayRssPeakBytes: Int
        var durationSeconds: Int
        var halfDurationSeconds: Double
        var wrkThreads: Int
        var body: String
    }

    func run() async throws {
        let levels = try parseList(concurrency, as: Int.self)
        let body = #"{"to":"\#(to)"}"#
        let idle = ProcessProbe.residentBytes(gatewayPid) ?? 0
        let sampler = PeakRSSSampler(pid: gatewayPid)
        progress("gateway: warming up the \(routes.count) routes")
        for route in routes {
            _ = try await runWrk(route: route, connections: 16, seconds: 2, body: body)
        }
        var runs: [ClosedLoopRun] = []
        for level in levels {
            for route in routes {
                var meter = CPUMeter(processes: processes(serving: route))
                meter.start()
                var run = try await runWrk(route: route, connections: level, seconds: duration, body: body)
                var cores = meter.stop()
                cores["wrk"] = run.cores["wrk"]
                run.cores = cores
                progress(
                    "gateway: \(route.name) c=\(level): "
                        + String(
                            format: "%.0f req/s, p99 %.2f ms, %d errors", run.requestsPerSecond,
                            run.latencyMs.p99 ?? .nan, run.errors))
                runs.append(run)
            }
        }
        var halfLoad: [String: OpenLoopSummary] = [:]
        var halfLoadCores: [String: [String: Double]] = [:]
        for route in routes {
            let best = runs.filter { $0.route == route.name }.map(\.requestsPerSecond).max() ?? 0
            guard best > 0 else { continue }
            let rate = (best / 2).rounded()
            let plan = try OpenLoopPlan(
                url: route.url,
                headers: [("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")],
                body: Array(body.utf8), rate: rate, duration: .milliseconds(Int64(halfDuration * 1000)))
            var meter = CPUMeter(processes: processes(serving: route))
            meter.start()
            let before = ProcessProbe.ownCPUSeconds()
            let result = try await OpenLoopGenerator.run(plan)
            halfLoadCores[route.name] = meter.stop()
            let summary = OpenLoopSummary(
                result: result, rate: rate, cpuSeconds: ProcessProbe.ownCPUSeconds() - before)
            progress("gateway: \(route.name) half load: \(summary.line)")
            halfLoad[route.name] = summary
        }
        let peak = max(sampler.stop(), ProcessProbe.peakResidentBytes(gatewayPid) ?? 0)
        try writeJSON(
            Result(
                closedLoop: runs, halfLoad: halfLoad, halfLoadCores: halfLoadCores, gatewayRssIdleBytes: idle,
                gatewayRssPeakBytes: peak, durationSeconds: duration, halfDurationSeconds: halfDuration,
                wrkThreads: wrkThreads, body: body),
            to: out)
    }

    private func processes(serving route: Route) -> [(name: String, pid: Int32)] {
        [("server", route.pid)] + (brokerPid.map { [("broker", $0)] } ?? [])
    }

    /// Runs wrk under bash so that bash's `times` reports wrk's CPU time once it has exited.
    private func runWrk(route: Route, connections: Int, seconds: Int, body: String) async throws -> ClosedLoopRun {
        let threads = min(wrkThreads, connections)
        let command =
            "wrk -t\(threads) -c\(connections) -d\(seconds)s --timeout 10s -s '\(wrkScript)' '\(route.url)'; "
            + "status=$?; times; exit $status"
        var environment = ProcessInfo.processInfo.environment
        environment["BENCH_TOKEN"] = token
        environment["BENCH_BODY"] = body
        let start = ContinuousClock.now
        let run = try await ChildProcess.run(
            executable: "/bin/bash", arguments: ["-c", command], environment: environment)
        let wall = (ContinuousClock.now - start).seconds
        let text = run.output + "\n" + run.errors
        guard run.termination == .exited(0),
            let line = text.split(separator: "\n").last(where: { $0.hasPrefix("{\"requests\"") }),
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        else { throw BenchError("wrk failed on \(route.url):\n\(text)") }
        func number(_ key: String) -> Double { (object[key] as? NSNumber)?.doubleValue ?? 0 }
        let latency = object["latency_us"] as? [String: Any] ?? [:]
        func ms(_ key: String) -> Double? { (latency[key] as? NSNumber).map { $0.doubleValue / 1000 } }
        let requests = Int(number("requests"))
        let durationSeconds = number("duration_us") / 1e6
        return ClosedLoopRun(
            route: route.name, concurrency: connections,
            requestsPerSecond: durationSeconds > 0 ? Double(requests) / durationSeconds : 0, requests: requests,
            latencyMs: LatencySummary(
                count: requests, p50: ms("p50"), p90: ms("p90"), p99: ms("p99"), p999: ms("p999"), max: ms("max"),
                mean: ms("mean")),
            errors: Int(number("errors")),
            cores: ["wrk": Self.childCPUSeconds(text) / wall])
    }

    /// The children's line of bash's `times` (`0m1.234s 0m0.567s`), in seconds.
    static func childCPUSeconds(_ text: String) -> Double {
        guard let line = text.split(separator: "\n").last else { return 0 }
        return line.split(separator: " ").reduce(0) { total, field in
            let parts = field.dropLast().split(separator: "m")
            guard parts.count == 2, let minutes = Double(parts[0]), let seconds = Double(parts[1]) else { return total }
            return total + minutes * 60 + seconds
        }
    }
}
