import CallStore
import DevStack
import EmbeddedKafka
import Foundation
import Logging
import TestSupport

/// One `api-gateway serve` process for one test: its own PostgreSQL database, its own embedded Kafka cluster in this
/// process, a free loopback port, JSON logs in a file, and an admin user created with the executable's
/// `create-user`.
final class GatewayProcess: @unchecked Sendable {
    // @unchecked: the Process is only touched by the test that owns this value, never concurrently.
    /// `http://127.0.0.1:<port>`.
    let baseURL: String
    /// The port.
    let port: Int
    /// The history store of the gateway's database.
    let store: CallStore
    /// The embedded cluster the gateway publishes to.
    let cluster: EmbeddedKafkaCluster
    /// The signing key it was given.
    let secretKey: String
    /// The admin's password.
    let adminPassword: String
    /// The file its standard output and error go to.
    let logFile: URL
    private let process: ChildProcess

    private init(
        baseURL: String, port: Int, store: CallStore, cluster: EmbeddedKafkaCluster, secretKey: String,
        adminPassword: String, logFile: URL, process: ChildProcess
    ) {
        self.baseURL = baseURL
        self.port = port
        self.store = store
        self.cluster = cluster
        self.secretKey = secretKey
        self.adminPassword = adminPassword
        self.logFile = logFile
        self.process = process
    }

    /// The process id (for its resident memory).
    var pid: Int32 { process.processIdentifier }

    /// Whether it still runs.
    var isRunning: Bool { process.isRunning }

    /// The log lines written so far.
    var logText: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }

    /// Resident memory in bytes (`VmRSS` of `/proc/<pid>/status`).
    var residentBytes: Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return 0 }
        return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
    }

    /// Runs `body` against a fresh gateway; `environment` overrides the defaults.
    static func with(
        environment overrides: [String: String] = [:], _ body: @Sendable (GatewayProcess) async throws -> Void
    ) async throws {
        try await TestDatabase.withStore { store, databaseURL in
            let cluster = try EmbeddedKafkaCluster(
                brokers: 1, topics: ProjectTopics.withPartitions(2), logger: Logger(label: "security-tests"))
            defer { cluster.shutdown() }
            let port = try DevStackProcess.freePort()
            let secretKey = (0..<48).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
            let adminPassword = "admin-\(UUID().uuidString)"
            var environment = ProcessInfo.processInfo.environment
            for key in environment.keys where key.hasPrefix("KAFKA_") { environment.removeValue(forKey: key) }
            environment.merge(
                [
                    "SECRET_KEY": secretKey, "DATABASE_URL": databaseURL,
                    "KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrapServers, "HOST": "127.0.0.1", "PORT": "\(port)",
                    "LOG_FORMAT": "json", "LOG_LEVEL": "debug", "ALLOWED_CONTEXTS": "outbound",
                    "INSTANCE_ID": "security-\(port)",
                ], uniquingKeysWith: { _, new in new })
            environment.merge(overrides) { _, new in new }
            let created = try await GatewayBinary.run(
                ["create-user", "--username", "admin", "--role", "admin"], environment: environment,
                input: adminPassword + "\n", timeout: .seconds(120))
            guard created.status == 0 else { throw TestEnvironmentError("create-user failed: \(created.output)") }

            let logFile = FileManager.default.temporaryDirectory.appendingPathComponent("gateway-\(port).log")
            _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)
            defer { try? FileManager.default.removeItem(at: logFile) }
            let process = try await ChildProcess.start(
                executable: GatewayBinary.executable.path, arguments: ["serve"], environment: environment,
                output: .file(logFile.path))
            let gateway = GatewayProcess(
                baseURL: "http://127.0.0.1:\(port)", port: port, store: store, cluster: cluster, secretKey: secretKey,
                adminPassword: adminPassword, logFile: logFile, process: process)
            do {
                try await gateway.waitUntilReady()
                try await body(gateway)
            } catch {
                let running = gateway.isRunning
                await gateway.stop()
                let tail = gateway.logText.split(separator: "\n").suffix(40).joined(separator: "\n")
                print("api-gateway (\(running ? "running" : "exited")) last log lines:\n\(tail)")
                throw error
            }
            await gateway.stop()
        }
    }

    private func waitUntilReady() async throws {
        let api = APIClient(baseURL: baseURL)
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline {
            guard process.isRunning else { throw TestEnvironmentError("api-gateway exited: \(logText)") }
            if let response = try? await api.request("GET", "/ready"), response.status == 200 { return }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw TestEnvironmentError("api-gateway did not become ready: \(logText)")
    }

    /// SIGTERM, then SIGKILL after 20 s.
    func stop() async {
        guard process.isRunning else { return }
        await process.stop(grace: .seconds(20))
    }
}
