import DevStack
import Foundation

/// `devstack up` as a child process of a test: the gateway, the workers and PostgreSQL as separate processes, the
/// way `make run` starts them.
public final class DevStackProcess: @unchecked Sendable {
    // @unchecked: the Process is only touched from the test that owns this value, never concurrently.
    /// The gateway's base URL, e.g. `http://127.0.0.1:8123` (the first one's, with several).
    public let apiURL: String
    /// Every gateway's base URL.
    public let apiURLs: [String]
    /// The embedded broker's bootstrap servers.
    public let bootstrapServers: String
    /// The Kafka control endpoint (brokers up/down).
    public let kafkaControlURL: String
    /// The ARI base URL the workers use (the simulator's unless `ARI_HTTP_URL` was given).
    public let ariURL: String
    /// The admin's password.
    public let adminPassword: String
    /// The state directory: the children's logs under `logs/`, devstack's own output in `devstack.out`/`.err`.
    public let stateDirectory: URL
    private let process: ChildProcess

    /// The devstack executable built by `make test` (`swift build --product devstack`).
    public static var executable: URL {
        Repository.root.appendingPathComponent(".build/debug/devstack")
    }

    private init(
        apiURL: String, apiURLs: [String], bootstrapServers: String, kafkaControlURL: String, ariURL: String,
        adminPassword: String, stateDirectory: URL, process: ChildProcess
    ) {
        self.apiURL = apiURL
        self.apiURLs = apiURLs
        self.bootstrapServers = bootstrapServers
        self.kafkaControlURL = kafkaControlURL
        self.ariURL = ariURL
        self.adminPassword = adminPassword
        self.stateDirectory = stateDirectory
        self.process = process
    }

    /// Starts the stack on `databaseURL` and waits until it prints that it is ready.
    public static func start(
        databaseURL: String, workers: Int = 2, gateways: Int = 1, extraEnvironment: [String: String] = [:]
    )
        async throws -> DevStackProcess
    {
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw TestEnvironmentError("\(executable.path) is missing: run the tests with `make test`")
        }
        let stateDirectory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "devstack-test-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: stateDirectory, withIntermediateDirectories: true)
        // Further gateways listen on the next ports: pick a port whose successors are free too.
        var port = try Self.freePort()
        while gateways > 1, !(1..<gateways).allSatisfy({ Self.isFree(port + $0) }) { port = try Self.freePort() }
        let password = "e2e-\(UUID().uuidString.prefix(12))"
        let arguments = [
            "up", "--state-dir", stateDirectory.path, "--gateway-port", "\(port)", "--workers", "\(workers)",
            "--gateways", "\(gateways)", "--partitions", "4",
        ]
        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] = databaseURL
        environment["ADMIN_PASSWORD"] = password
        environment.removeValue(forKey: "ARI_HTTP_URL")
        environment.merge(extraEnvironment) { _, new in new }
        // Files rather than a pipe: nobody reads a pipe after the banner, and a full one would block devstack; the
        // files are also the evidence when the stack itself fails (``postMortem``).
        let outURL = stateDirectory.appendingPathComponent("devstack.out")
        let errURL = stateDirectory.appendingPathComponent("devstack.err")
        let process = try await ChildProcess.start(
            executable: executable.path, arguments: arguments, environment: environment,
            output: .files(output: outURL.path, error: errURL.path))

        var banner = ""
        let deadline = ContinuousClock.now + .seconds(180)
        while !banner.contains("Try it"), ContinuousClock.now < deadline, process.isRunning {
            try await Task.sleep(for: .milliseconds(100))
            banner = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
        }
        guard banner.contains("ready:") else {
            process.send(SIGTERM)
            let errors = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
            throw TestEnvironmentError("devstack up did not become ready:\n\(banner)\n\(errors.suffix(4000))")
        }
        func field(_ label: String) -> String {
            banner.split(separator: "\n").first { $0.trimmingCharacters(in: .whitespaces).hasPrefix(label) }
                .map {
                    String($0.trimmingCharacters(in: .whitespaces).dropFirst(label.count)).trimmingCharacters(
                        in: .whitespaces)
                }
                .map { String($0.split(separator: " ").first ?? "") } ?? ""
        }
        let control = banner.range(of: "control: ").map { String(banner[$0.upperBound...].prefix { $0 != ")" }) } ?? ""
        return DevStackProcess(
            apiURL: "http://127.0.0.1:\(port)", apiURLs: (0..<gateways).map { "http://127.0.0.1:\(port + $0)" },
            bootstrapServers: field("Kafka"), kafkaControlURL: control,
            ariURL: field("ARI"), adminPassword: password, stateDirectory: stateDirectory, process: process)
    }

    /// Starts the stack, runs `body` against it and stops it (also when `body` throws); returns devstack's exit
    /// status, which is 0 when every child stopped cleanly.
    public static func run(
        databaseURL: String, workers: Int = 2, gateways: Int = 1, extraEnvironment: [String: String] = [:],
        _ body: (DevStackProcess) async throws -> Void
    ) async throws -> Int32 {
        let stack = try await start(
            databaseURL: databaseURL, workers: workers, gateways: gateways, extraEnvironment: extraEnvironment)
        do {
            try await body(stack)
        } catch {
            // The evidence stays: the children's warnings and errors are printed, their logs kept.
            _ = try? await stack.stop(keepingState: true)
            print("devstack state and logs kept in \(stack.stateDirectory.path)\n\(stack.childProblems)")
            throw error
        }
        return try await stack.stop()
    }

    /// The last warnings and errors each child logged, for a failed test's report.
    public var childProblems: String {
        let logs = stateDirectory.appendingPathComponent("logs")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: logs.path))?.sorted() ?? []
        return names.map { name in
            let text = (try? String(contentsOf: logs.appendingPathComponent(name), encoding: .utf8)) ?? ""
            let problems = text.split(separator: "\n").filter {
                $0.contains("\"warning\"") || $0.contains("\"error\"") || $0.contains(" warning ")
                    || $0.contains(" error ")
            }
            return "\(name): \(problems.count) warnings and errors, the last ones:\n"
                + problems.suffix(15).map { "  " + $0.prefix(400) }.joined(separator: "\n")
        }.joined(separator: "\n")
    }

    /// Whether `devstack` itself still runs.
    public var isRunning: Bool { process.isRunning }

    /// How devstack ended, with the end of what it printed (for a stack that died under a fault).
    public var postMortem: String {
        func tail(_ name: String, _ count: Int) -> Substring {
            ((try? String(contentsOf: stateDirectory.appendingPathComponent(name), encoding: .utf8)) ?? "").suffix(
                count)
        }
        let status =
            process.termination.map { "\($0)" } ?? "running"
        return "devstack \(status)\nstdout:\n\(tail("devstack.out", 3000))\nstderr:\n\(tail("devstack.err", 6000))"
    }

    /// The process ids of the stack's children (the gateway, the workers, PostgreSQL's postmaster if private).
    public var childProcessIDs: [Int32] {
        Self.children(of: process.processIdentifier)
    }

    /// Sends SIGTERM and waits for the stack to exit; returns its exit status.
    /// - Parameter keepingState: leave the state directory (logs, devstack's output) for a post-mortem.
    @discardableResult
    public func stop(timeout: TimeInterval = 60, keepingState: Bool = false) async throws -> Int32 {
        process.send(SIGTERM)
        guard let termination = await process.waitForExit(timeout: .seconds(timeout)) else {
            process.send(SIGKILL)
            throw TestEnvironmentError("devstack did not stop within \(timeout) s")
        }
        if !keepingState { try? FileManager.default.removeItem(at: stateDirectory) }
        return termination.status
    }

    /// Whether a process id is alive.
    public static func isAlive(_ pid: Int32) -> Bool {
        kill(pid, 0) == 0 || errno == EPERM
    }

    static func children(of parent: Int32) -> [Int32] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap(Int32.init).filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && Int32(fields[1]) == parent
        }
    }

    /// A free loopback port.
    public static func freePort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        let port = Int(UInt16(bigEndian: address.sin_port))
        guard port > 0 else { throw TestEnvironmentError("no free port") }
        return port
    }

    /// Whether nothing listens on `port` on loopback now (it may be taken the next moment).
    static func isFree(_ port: Int) -> Bool {
        guard port < 65536 else { return false }
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        } == 0
    }
}
