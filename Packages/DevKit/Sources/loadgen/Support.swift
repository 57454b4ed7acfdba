import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

// MARK: - Latency summaries

/// Percentiles of a set of latencies, in milliseconds.
struct LatencySummary: Codable, Sendable {
    var count: Int
    var p50: Double?
    var p90: Double?
    var p99: Double?
    var p999: Double?
    var max: Double?
    var mean: Double?

    /// Summarizes latencies given in milliseconds (nearest-rank percentiles).
    init(milliseconds values: [Double]) {
        count = values.count
        guard !values.isEmpty else { return }
        let sorted = values.sorted()
        func rank(_ fraction: Double) -> Double {
            let index = Int((fraction * Double(sorted.count)).rounded(.up)) - 1
            return sorted[Swift.max(0, Swift.min(sorted.count - 1, index))]
        }
        p50 = rank(0.50)
        p90 = rank(0.90)
        p99 = rank(0.99)
        p999 = rank(0.999)
        max = sorted.last
        mean = sorted.reduce(0, +) / Double(sorted.count)
    }

    /// A summary taken from another tool's figures (wrk's `done()`).
    init(count: Int, p50: Double?, p90: Double?, p99: Double?, p999: Double?, max: Double?, mean: Double?) {
        self.count = count
        self.p50 = p50
        self.p90 = p90
        self.p99 = p99
        self.p999 = p999
        self.max = max
        self.mean = mean
    }
}

// MARK: - Processes (/proc)

/// What `/proc` says about one process.
enum ProcessProbe {
    /// Resident set size in bytes (`VmRSS` of `/proc/<pid>/status`), nil when the process is gone.
    static func residentBytes(_ pid: Int32) -> Int? {
        statusField(pid, "VmRSS:")
    }

    /// Peak resident set size in bytes (`VmHWM`).
    static func peakResidentBytes(_ pid: Int32) -> Int? {
        statusField(pid, "VmHWM:")
    }

    private static func statusField(_ pid: Int32, _ name: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(name) {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count >= 2, let kilobytes = Int(parts[1]) else { return nil }
            return kilobytes * 1024
        }
        return nil
    }

    /// CPU time (user + system) the process used so far, in seconds.
    static func cpuSeconds(_ pid: Int32) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        // Fields after the command name: state is field 3, utime 14, stime 15 (1-based).
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// CPU time of a process and all its descendants alive now, in seconds (e.g. PostgreSQL's postmaster and its
    /// backends).
    static func treeCPUSeconds(_ root: Int32) -> Double {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return 0 }
        var parents: [Int32: Int32] = [:]
        for entry in entries {
            guard let pid = Int32(entry),
                let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, let parent = Int32(fields[1]) { parents[pid] = parent }
        }
        func descends(_ pid: Int32) -> Bool {
            var current = pid
            for _ in 0..<64 {
                if current == root { return true }
                guard let parent = parents[current], parent > 1 else { return false }
                current = parent
            }
            return false
        }
        return parents.keys.filter(descends).compactMap(cpuSeconds).reduce(0, +)
    }

    /// CPU time of this process (every thread), in seconds.
    static func ownCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    }

    /// The whole machine's busy and total CPU time so far (`/proc/stat`), in seconds.
    static func machineCPU() -> (busy: Double, total: Double) {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") })
        else { return (0, 0) }
        let values = line.split(separator: " ").dropFirst().compactMap { Double($0) }
        guard values.count >= 5 else { return (0, 0) }
        let total = values.prefix(8).reduce(0, +)
        let idle = values[3] + values[4]
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return ((total - idle) / ticks, total / ticks)
    }
}

/// CPU used by named processes (and by the machine) over an interval, in cores (1.0 = one core busy).
struct CPUMeter {
    /// A process to meter; `tree` includes its descendants.
    struct Metered: Sendable {
        var name: String
        var pid: Int32
        var tree = false

        var cpuSeconds: Double? {
            tree ? ProcessProbe.treeCPUSeconds(pid) : ProcessProbe.cpuSeconds(pid)
        }

        /// Parses `name=pid` (`tree` marks a process tree).
        init(_ text: String, tree: Bool = false) throws {
            let parts = text.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let pid = Int32(parts[1]) else { throw BenchError("expected name=pid: \(text)") }
            self.init(name: String(parts[0]), pid: pid, tree: tree)
        }

        init(name: String, pid: Int32, tree: Bool = false) {
            self.name = name
            self.pid = pid
            self.tree = tree
        }
    }

    private let processes: [Metered]
    private var startProcesses: [String: Double] = [:]
    private var startMachine: (busy: Double, total: Double) = (0, 0)
    private var startOwn = 0.0
    private var startWall = ContinuousClock.now

    init(processes: [Metered]) {
        self.processes = processes
    }

    init(processes: [(name: String, pid: Int32)]) {
        self.processes = processes.map { Metered(name: $0.name, pid: $0.pid) }
    }

    mutating func start() {
        for process in processes { startProcesses[process.name] = process.cpuSeconds }
        startMachine = ProcessProbe.machineCPU()
        startOwn = ProcessProbe.ownCPUSeconds()
        startWall = .now
    }

    /// Cores used since `start()`: per process, by this process (`loadgen`), and by the whole machine.
    func stop() -> [String: Double] {
        let wall = (ContinuousClock.now - startWall).seconds
        guard wall > 0 else { return [:] }
        var result: [String: Double] = [:]
        for process in processes {
            if let before = startProcesses[process.name], let after = process.cpuSeconds {
                result[process.name] = (after - before) / wall
            }
        }
        result["loadgen"] = (ProcessProbe.ownCPUSeconds() - startOwn) / wall
        let machine = ProcessProbe.machineCPU()
        result["machine"] = (machine.busy - startMachine.busy) / wall
        return result
    }
}

/// Samples a process's resident set size in the background and keeps the largest value.
final class PeakRSSSampler: Sendable {
    private let peak = Mutex(0)
    private let task = Mutex<Task<Void, Never>?>(nil)

    init(pid: Int32, interval: Duration = .milliseconds(100)) {
        let sampling = Task.detached { [weak self] in
            while !Task.isCancelled, let sampler = self {
                if let rss = ProcessProbe.residentBytes(pid) { sampler.peak.withLock { $0 = max($0, rss) } }
                try? await Task.sleep(for: interval)
            }
        }
        task.withLock { $0 = sampling }
    }

    /// Stops sampling; returns the largest resident set size seen, in bytes.
    func stop() -> Int {
        task.withLock { $0?.cancel() }
        return peak.withLock { $0 }
    }
}

// MARK: - Machine

/// The machine a run was measured on.
struct MachineInfo: Codable, Sendable {
    var cores: Int
    var memoryBytes: Int
    var cpuModel: String
    var kernel: String
    var loadAverage: String

    static func current() -> MachineInfo {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model =
            cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { String($0.split(separator: ":", maxSplits: 1).last ?? "").trimmingCharacters(in: .whitespaces) }
            ?? "unknown"
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let load =
            (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?
            .split(separator: " ").prefix(3).joined(separator: " ") ?? ""
        return MachineInfo(
            cores: ProcessInfo.processInfo.activeProcessorCount,
            memoryBytes: Int(ProcessInfo.processInfo.physicalMemory),
            cpuModel: model, kernel: release, loadAverage: load)
    }
}

// MARK: - Small helpers

extension Duration {
    /// The duration in seconds, as a floating-point number.
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

/// Wall-clock time in seconds since 1970 (the time base shared with the simulator's originate log).
func wallClock() -> Double {
    Date().timeIntervalSince1970
}

/// Writes `value` as pretty, sorted JSON to `path` (creating the directory).
func writeJSON(_ value: some Encodable, to path: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    encoder.keyEncodingStrategy = .convertToSnakeCase
    let url = URL(fileURLWithPath: path)
    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    try encoder.encode(value).write(to: url)
}

/// Reads JSON written by ``writeJSON(_:to:)``.
func readJSON<Value: Decodable>(_ type: Value.Type, from path: String) throws -> Value {
    let decoder = JSONDecoder()
    decoder.keyDecodingStrategy = .convertFromSnakeCase
    return try decoder.decode(type, from: Data(contentsOf: URL(fileURLWithPath: path)))
}

/// Prints a progress line to stderr (stdout carries results).
func progress(_ text: String) {
    FileHandle.standardError.write(Data(("loadgen: " + text + "\n").utf8))
}

/// An error of the benchmark harness with a message for the person running it.
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Parses a comma-separated list of numbers (`16,64,256`).
func parseList<Number: LosslessStringConvertible>(_ text: String, as: Number.Type) throws -> [Number] {
    try text.split(separator: ",").map { part in
        guard let value = Number(String(part).trimmingCharacters(in: .whitespaces)) else {
            throw BenchError("not a number: \(part)")
        }
        return value
    }
}
