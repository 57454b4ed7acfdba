import Foundation
import TestSupport

/// `devstack up` for the fault suite, as `DevStackProcess` starts it but with its standard output and error kept in
/// files of its state directory: when the stack itself fails under a fault, what it printed is the evidence.
final class SuiteStack: @unchecked Sendable {
    // @unchecked: the Process is only touched by the suite's single test, never concurrently.
    /// The gateway's base URL.
    let apiURL: String
    /// The embedded broker's bootstrap servers.
    let bootstrapServers: String
    /// The Kafka control endpoint (brokers up/down).
    let kafkaControlURL: String
    /// The ARI base URL the workers use (the simulator's).
    let ariURL: String
    /// The admin's password.
    let adminPassword: String
    /// The state directory (children's logs under `logs/`, devstack's own output in `devstack.out`/`.err`).
    let stateDirectory: URL
    private let process: Process

    private init(
        apiURL: String, bootstrapServers: String, kafkaControlURL: String, ariURL: String, adminPassword: String,
        stateDirectory: URL, process: Process
    ) {
        self.apiURL = apiURL
        self.bootstrapServers = bootstrapServers
        self.kafkaControlURL = kafkaControlURL
        self.ariURL = ariURL
        self.adminPassword = adminPassword
        self.stateDirectory = stateDirectory
        self.process = process
    }

    /// Starts the stack on `databaseURL` and waits until it prints its banner.
    static func start(
        databaseURL: String, workers: Int, environment extra: [String: String]
    ) async throws
        -> SuiteStack
    {
        let executable = DevStackProcess.executable
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw TestEnvironmentError("\(executable.path) is missing: run the suite with `make test-faults`")
        }
        let stateDirectory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "fault-stack-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: stateDirectory, withIntermediateDirectories: true)
        let port = try DevStackProcess.freePort()
        let password = "faults-\(UUID().uuidString.prefix(12))"
        let outURL = stateDirectory.appendingPathComponent("devstack.out")
        let errURL = stateDirectory.appendingPathComponent("devstack.err")
        for url in [outURL, errURL] { _ = FileManager.default.createFile(atPath: url.path, contents: nil) }
        let process = Process()
        process.executableURL = executable
        process.arguments = [
            "up", "--state-dir", stateDirectory.path, "--gateway-port", "\(port)", "--workers", "\(workers)",
            "--partitions", "4",
        ]
        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] = databaseURL
        environment["ADMIN_PASSWORD"] = password
        environment.removeValue(forKey: "ARI_HTTP_URL")
        environment.merge(extra) { _, new in new }
        process.environment = environment
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        process.standardInput = FileHandle.nullDevice
        try process.run()

        var banner = ""
        let deadline = ContinuousClock.now + .seconds(180)
        while !banner.contains("Try it"), ContinuousClock.now < deadline, process.isRunning {
            try await Task.sleep(for: .milliseconds(100))
            banner = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
        }
        guard banner.contains("ready:") else {
            process.terminate()
            let errors = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
            throw TestEnvironmentError("devstack up did not become ready:\n\(banner)\n\(errors.suffix(4000))")
        }
        func field(_ label: String) -> String {
            banner.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
                .first { $0.hasPrefix(label) }
                .map { String($0.dropFirst(label.count)).trimmingCharacters(in: .whitespaces) }
                .map { String($0.split(separator: " ").first ?? "") } ?? ""
        }
        let control = banner.range(of: "control: ").map { String(banner[$0.upperBound...].prefix { $0 != ")" }) } ?? ""
        return SuiteStack(
            apiURL: "http://127.0.0.1:\(port)", bootstrapServers: field("Kafka"), kafkaControlURL: control,
            ariURL: field("ARI"), adminPassword: password, stateDirectory: stateDirectory, process: process)
    }

    /// Whether `devstack` itself still runs.
    var isRunning: Bool { process.isRunning }

    /// How devstack ended, with the end of what it printed (for a stack that died under a fault).
    var postMortem: String {
        let out =
            (try? String(contentsOf: stateDirectory.appendingPathComponent("devstack.out"), encoding: .utf8)) ?? ""
        let err =
            (try? String(contentsOf: stateDirectory.appendingPathComponent("devstack.err"), encoding: .utf8)) ?? ""
        let status =
            process.isRunning ? "running" : "exited \(process.terminationStatus) (\(process.terminationReason))"
        return "devstack \(status)\nstdout:\n\(out.suffix(3000))\nstderr:\n\(err.suffix(6000))"
    }

    /// The process ids of the stack's children (the gateway and the workers).
    var childProcessIDs: [Int32] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        let parent = process.processIdentifier
        return entries.compactMap(Int32.init).filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && Int32(fields[1]) == parent
        }
    }

    /// Sends SIGTERM and waits for the stack to exit (SIGKILL after `timeout`); returns its exit status.
    @discardableResult
    func stop(timeout: Duration = .seconds(90)) async throws -> Int32 {
        if process.isRunning { process.terminate() }
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            throw TestEnvironmentError("devstack did not stop within \(timeout)")
        }
        try? FileManager.default.removeItem(at: stateDirectory)
        return process.terminationStatus
    }
}
