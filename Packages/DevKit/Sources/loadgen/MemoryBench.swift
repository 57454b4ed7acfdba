import ArgumentParser
import DevStack
import Foundation
import NIOHTTP1

/// `loadgen memory`: a worker's resident memory with increasing numbers of live answered calls (the simulator holds
/// them up until hung up), and the cost per live call.
struct MemoryBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memory",
        abstract: "Worker RSS with 0, 1,000, 10,000... live answered calls."
    )

    @Option(help: "The gateway's base URL.")
    var url: String

    @Option(help: "A bearer token of a user with the operator role.")
    var token: String

    @Option(help: "The ARI simulator's URL.")
    var ariUrl: String

    @Option(help: "The worker's process id (the stack must run exactly one worker).")
    var workerPid: Int32

    @Option(help: "The worker's operations URL (http://127.0.0.1:PORT), for its live-call count.")
    var workerUrl: String?

    @Option(help: "Live-call levels to measure at.")
    var levels: String = "0,1000,10000"

    @Option(help: "Calls per second while filling up.")
    var rate: Double = 500

    @Option(help: "The number every call dials (default: answers at once and stays up until hung up).")
    var to: String = "+155501000000"

    @Option(help: "Seconds to let the worker settle at each level before reading its RSS.")
    var settle: Double = 3

    @Option(help: "Write the figures as JSON to this file.")
    var out: String

    struct Level: Codable, Sendable {
        var target: Int
        /// Live calls the worker tracked when measured (its `/ready`), else the simulator's live channels.
        var liveCalls: Int
        var simulatorLiveChannels: Int
        var rssBytes: Int
        /// Seconds it took from starting to place this level's calls to having them all live.
        var fillSeconds: Double
    }

    struct Result: Codable, Sendable {
        var levels: [Level]
        /// (RSS at the highest level - RSS at the lowest) / (difference of live calls).
        var bytesPerLiveCall: Double?
        var rate: Double
        var to: String
    }

    func run() async throws {
        let targets = try parseList(levels, as: Int.self).sorted()
        let simulator = SimulatorAdmin(ariURL: ariUrl)
        var placed = 0
        var measured: [Level] = []
        for target in targets {
            let start = ContinuousClock.now
            let missing = target - placed
            if missing > 0 {
                progress("memory: placing \(missing) held calls at \(Int(rate))/s")
                let plan = try OpenLoopPlan(
                    url: url + "/api/v1/calls",
                    headers: [("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")],
                    body: Array(#"{"to":"\#(to)"}"#.utf8), rate: rate,
                    duration: .milliseconds(Int64(Double(missing) / rate * 1000)))
                let result = try await OpenLoopGenerator.run(plan)
                placed += result.statusCounts[202] ?? 0
            }
            let deadline = ContinuousClock.now + .seconds(max(60, Int64(Double(target) / 50)))
            var live = try await liveCalls(simulator)
            while live.worker < placed, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(500))
                live = try await liveCalls(simulator)
            }
            let filled = (ContinuousClock.now - start).seconds
            try await Task.sleep(for: .milliseconds(Int64(settle * 1000)))
            live = try await liveCalls(simulator)
            let rss = ProcessProbe.residentBytes(workerPid) ?? 0
            progress("memory: \(live.worker) live calls: worker RSS \(rss / 1_048_576) MiB")
            measured.append(
                Level(
                    target: target, liveCalls: live.worker, simulatorLiveChannels: live.simulator, rssBytes: rss,
                    fillSeconds: filled))
        }
        var perCall: Double?
        if let low = measured.first, let high = measured.last, high.liveCalls > low.liveCalls {
            perCall = Double(high.rssBytes - low.rssBytes) / Double(high.liveCalls - low.liveCalls)
        }
        try writeJSON(Result(levels: measured, bytesPerLiveCall: perCall, rate: rate, to: to), to: out)
    }

    /// The worker's tracked calls (its `/ready` report) and the simulator's live channels.
    private func liveCalls(_ simulator: SimulatorAdmin) async throws -> (worker: Int, simulator: Int) {
        let channels = (try await simulator.stats()["live_channels"] as? Int) ?? 0
        guard let workerUrl else { return (channels, channels) }
        let (_, body) = try await ControlHTTP.request(.GET, workerUrl + "/ready")
        let report = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any]
        return ((report?["live_calls"] as? Int) ?? channels, channels)
    }
}
