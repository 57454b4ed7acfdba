import ARI
import CallDomain
import CallStore
import Foundation
import Kafka
import NIOFileSystem
import Recordings
import ServiceSupport

/// Everything a dialer worker process needs to know, read once at start-up from the environment.
///
/// Every value is validated here, so a misconfigured worker refuses to start with a message naming the variable
/// instead of failing on its first call.
public struct WorkerConfiguration: Sendable {
    /// The Asterisk node this worker dials through (`NODE_ID`); recorded on every call it claims.
    public var nodeID: String
    /// This process (`WORKER_ID`, default `<hostname>-<pid>`); recorded on every call it claims. A worker restarted
    /// with the same id adopts the live calls its predecessor left.
    public var workerID: String
    /// ARI connection settings; `application` is `ARI_APP`.
    public var ari: ARIConfiguration
    /// How the dial endpoint is built from the number (`ENDPOINT_TEMPLATE`).
    public var endpointTemplate: EndpointTemplate
    /// Where an answered call goes when its command names no dialplan target.
    public var defaultDialplan: DialplanTarget
    /// Where an answered call goes for answering machine detection (`AMD_CONTEXT`, default `dialer-amd`, at `s`):
    /// the node's dial plan runs `AMD()` there and returns the channel to this worker's application.
    public var machineDetectionDialplan: DialplanTarget
    /// Where a call answered by a machine goes when its request says `on_machine: continue` (`MACHINE_CONTEXT`,
    /// default `dialer-machine`, at `s`).
    public var machineDialplan: DialplanTarget
    /// The caller id presented when the command has none (`DEFAULT_CALLER_ID`); Asterisk's default when `nil`.
    public var defaultCallerID: CallerID?
    /// The most calls this worker keeps live at once (`MAX_CONCURRENT_CALLS`).
    public var maxConcurrentCalls: Int
    /// The most originates per second (`MAX_CALLS_PER_SECOND`).
    public var maxCallsPerSecond: Double
    /// The most commands being claimed and originated at once (`MAX_ORIGINATES_IN_FLIGHT`).
    public var maxOriginatesInFlight: Int
    /// The most commands held back by their organization's limits at once (`MAX_DEFERRED_CALLS`); beyond it new
    /// commands wait in Kafka.
    public var maxDeferredCalls: Int
    /// Kafka connection settings (`KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_CLIENT_ID`, `KAFKA_PROP_*`).
    public var kafka: KafkaConfiguration
    /// Topic names (`KAFKA_TOPIC_ORIGINATE`, `KAFKA_TOPIC_CONTROL`, `KAFKA_TOPIC_STATUS`).
    public var topics: CallTopics
    /// The dialers' consumer group (`KAFKA_DIALER_GROUP`, default `dialer-workers`).
    public var dialerGroupID: String
    /// The history writers' consumer group (`KAFKA_HISTORY_GROUP`, default `call-history`).
    public var historyGroupID: String
    /// How long a status publication may wait for the brokers' acknowledgement (`KAFKA_DELIVERY_TIMEOUT_SECONDS`).
    public var kafkaDeliveryTimeout: Duration
    /// PostgreSQL (`DATABASE_URL`).
    public var databaseURL: String
    /// Pool size of the PostgreSQL client (`DATABASE_MAX_CONNECTIONS`).
    public var databaseMaxConnections: Int
    /// How long one PostgreSQL operation of the dialer may take before PostgreSQL counts as unreachable
    /// (`DATABASE_TIMEOUT_SECONDS`).
    public var databaseTimeout: Duration
    /// Address of the operations HTTP server (`WORKER_HOST`, default `0.0.0.0`).
    public var host: String
    /// Port of the operations HTTP server (`WORKER_PORT`, default 8081; 0 picks a free port).
    public var port: Int
    /// How long a shutdown keeps tracking live calls before leaving them to a successor (`DRAIN_TIMEOUT_SECONDS`).
    public var drainTimeout: Duration
    /// How long a call whose channel has vanished waits for a late `ChannelDestroyed` before it is ended with the
    /// best-known outcome (`RECONCILE_GRACE_SECONDS`).
    public var reconcileGrace: Duration
    /// How often live calls are compared with the node's channels (`RECONCILE_INTERVAL_SECONDS`).
    public var reconcileInterval: Duration
    /// How long a restarted worker waits for the history to hold its previous process's last status events before it
    /// adopts that process's live calls as PostgreSQL shows them (`STUCK_MARGIN_SECONDS`). Keep it above the Kafka
    /// session timeout: a killed worker's partitions of the history group move only once its session expires.
    public var stuckMargin: Duration
    /// The most messages the history writer stores in one transaction (`HISTORY_BATCH_SIZE`).
    public var historyBatchSize: Int
    /// How many times an originate that a booted node failed without creating a channel (a 5xx other than
    /// `503 Asterisk not booted`, or no answer) is sent in all (`ORIGINATE_MAX_ATTEMPTS`). Waiting for a node to
    /// boot is not an attempt: that wait is bounded by the call's time to live.
    public var originateMaxAttempts: Int
    /// How long a worker's heartbeat may be silent before the other workers of its node take its live calls over
    /// (`OWNER_TIMEOUT_SECONDS`). The worker itself stops acting for its calls (originates, status events) once half
    /// of it has passed since its last heartbeat was sent, so it has stopped before anyone takes over.
    public var ownerTimeout: Duration
    /// Call recording (`RECORDING_*`).
    public var recording: RecordingConfiguration

    /// Creates a configuration from explicit values (tests); ``fromEnvironment(_:)`` is the usual way.
    public init(
        nodeID: String,
        workerID: String,
        ari: ARIConfiguration,
        endpointTemplate: EndpointTemplate,
        defaultDialplan: DialplanTarget,
        machineDetectionDialplan: DialplanTarget = Self.dialplan(context: "dialer-amd"),
        machineDialplan: DialplanTarget = Self.dialplan(context: "dialer-machine"),
        defaultCallerID: CallerID? = nil,
        maxConcurrentCalls: Int = 100,
        maxCallsPerSecond: Double = 10,
        maxOriginatesInFlight: Int = 16,
        maxDeferredCalls: Int = 1000,
        kafka: KafkaConfiguration,
        topics: CallTopics = .defaults,
        dialerGroupID: String = "dialer-workers",
        historyGroupID: String = "call-history",
        kafkaDeliveryTimeout: Duration = .seconds(30),
        databaseURL: String,
        databaseMaxConnections: Int = 10,
        databaseTimeout: Duration = .seconds(5),
        host: String = "0.0.0.0",
        port: Int = 8081,
        drainTimeout: Duration = .seconds(30),
        reconcileGrace: Duration = .seconds(2),
        reconcileInterval: Duration = .seconds(10),
        stuckMargin: Duration = .seconds(60),
        historyBatchSize: Int = 500,
        originateMaxAttempts: Int = 6,
        ownerTimeout: Duration = .seconds(20),
        recording: RecordingConfiguration? = nil
    ) {
        self.nodeID = nodeID
        self.workerID = workerID
        self.ari = ari
        self.endpointTemplate = endpointTemplate
        self.defaultDialplan = defaultDialplan
        self.machineDetectionDialplan = machineDetectionDialplan
        self.machineDialplan = machineDialplan
        self.defaultCallerID = defaultCallerID
        self.maxConcurrentCalls = maxConcurrentCalls
        self.maxCallsPerSecond = maxCallsPerSecond
        self.maxOriginatesInFlight = maxOriginatesInFlight
        self.maxDeferredCalls = maxDeferredCalls
        self.kafka = kafka
        self.topics = topics
        self.dialerGroupID = dialerGroupID
        self.historyGroupID = historyGroupID
        self.kafkaDeliveryTimeout = kafkaDeliveryTimeout
        self.databaseURL = databaseURL
        self.databaseMaxConnections = databaseMaxConnections
        self.databaseTimeout = databaseTimeout
        self.host = host
        self.port = port
        self.drainTimeout = drainTimeout
        self.reconcileGrace = reconcileGrace
        self.reconcileInterval = reconcileInterval
        self.stuckMargin = stuckMargin
        self.historyBatchSize = historyBatchSize
        self.originateMaxAttempts = originateMaxAttempts
        self.ownerTimeout = ownerTimeout
        self.recording =
            recording
            ?? RecordingConfiguration(
                store: RecordingStoreConfiguration(
                    directory: RecordingConfiguration.defaultSpoolDirectory().appending("store")))
    }

    /// Reads and validates the configuration.
    ///
    /// - Throws: `ConfigurationError` naming the first variable that is missing or wrong.
    public static func fromEnvironment(
        _ environment: EnvironmentReader = EnvironmentReader()
    ) throws
        -> WorkerConfiguration
    {
        let nodeID = try environment.required("NODE_ID")
        try requireName(nodeID, variable: "NODE_ID")
        let workerID = environment.raw("WORKER_ID") ?? defaultWorkerID()
        try requireName(workerID, variable: "WORKER_ID", maxLength: 128)

        let ariURL = try environment.required("ARI_HTTP_URL")
        guard let components = URLComponents(string: ariURL), ["http", "https"].contains(components.scheme ?? ""),
            components.host?.isEmpty == false
        else {
            throw ConfigurationError(
                variable: "ARI_HTTP_URL", message: "must be an http(s) URL such as http://pbx:8088/ari")
        }
        let application = environment.raw("ARI_APP") ?? defaultApplication(nodeID: nodeID)
        try requireName(application, variable: "ARI_APP", maxLength: 128)
        let requestTimeout = try environment.double("ARI_REQUEST_TIMEOUT_SECONDS", default: 5, range: 0.1...120)
        let ari = ARIConfiguration(
            baseURL: ariURL,
            username: try environment.required("ARI_USERNAME"),
            password: try environment.required("ARI_PASSWORD"),
            application: application,
            requestTimeout: .milliseconds(Int64(requestTimeout * 1000))
        )

        let template = try EndpointTemplate(environment.string("ENDPOINT_TEMPLATE", default: "PJSIP/{to}@carrier"))
        let context = environment.string("DEFAULT_CONTEXT", default: "default")
        let exten = environment.string("DEFAULT_EXTENSION", default: "s")
        let priority = try environment.int("DEFAULT_PRIORITY", default: 1, range: 1...99_999)
        do throws(FieldError) {
            try DialplanTarget.validateContextSyntax(context, field: "DEFAULT_CONTEXT")
            try DialplanTarget.validateExtension(exten, field: "DEFAULT_EXTENSION")
        } catch {
            throw ConfigurationError(variable: error.field, message: error.message)
        }
        let defaultDialplan: DialplanTarget
        do {
            defaultDialplan = try DialplanTarget(context: context, extension: exten, priority: priority)
        } catch {
            throw ConfigurationError(variable: "DEFAULT_CONTEXT", message: "is not a valid dialplan target")
        }
        let defaultCallerID = try environment.raw("DEFAULT_CALLER_ID").map(parseCallerID)
        func contextTarget(_ variable: String, default fallback: String) throws -> DialplanTarget {
            let context = environment.string(variable, default: fallback)
            do throws(FieldError) {
                try DialplanTarget.validateContextSyntax(context, field: variable)
            } catch {
                throw ConfigurationError(variable: error.field, message: error.message)
            }
            return Self.dialplan(context: context)
        }

        let kafka = try environment.kafkaConfiguration()
        let databaseURL = try environment.databaseURL()

        func seconds(_ name: String, _ fallback: Double, _ range: ClosedRange<Double>) throws -> Duration {
            .milliseconds(Int64(try environment.double(name, default: fallback, range: range) * 1000))
        }
        return WorkerConfiguration(
            nodeID: nodeID,
            workerID: workerID,
            ari: ari,
            endpointTemplate: template,
            defaultDialplan: defaultDialplan,
            machineDetectionDialplan: try contextTarget("AMD_CONTEXT", default: "dialer-amd"),
            machineDialplan: try contextTarget("MACHINE_CONTEXT", default: "dialer-machine"),
            defaultCallerID: defaultCallerID,
            maxConcurrentCalls: try environment.int("MAX_CONCURRENT_CALLS", default: 100, range: 1...100_000),
            maxCallsPerSecond: try environment.double("MAX_CALLS_PER_SECOND", default: 10, range: 0.01...100_000),
            maxOriginatesInFlight: try environment.int("MAX_ORIGINATES_IN_FLIGHT", default: 16, range: 1...1024),
            maxDeferredCalls: try environment.int("MAX_DEFERRED_CALLS", default: 1000, range: 1...1_000_000),
            kafka: kafka,
            topics: CallTopics.fromEnvironment(environment.values),
            dialerGroupID: environment.string("KAFKA_DIALER_GROUP", default: "dialer-workers"),
            historyGroupID: environment.string("KAFKA_HISTORY_GROUP", default: "call-history"),
            kafkaDeliveryTimeout: try seconds("KAFKA_DELIVERY_TIMEOUT_SECONDS", 30, 1...600),
            databaseURL: databaseURL,
            databaseMaxConnections: try environment.int("DATABASE_MAX_CONNECTIONS", default: 10, range: 2...200),
            databaseTimeout: try seconds("DATABASE_TIMEOUT_SECONDS", 5, 0.1...600),
            host: environment.string("WORKER_HOST", default: "0.0.0.0"),
            port: try environment.int("WORKER_PORT", default: 8081, range: 0...65_535),
            drainTimeout: try seconds("DRAIN_TIMEOUT_SECONDS", 30, 0...86_400),
            reconcileGrace: try seconds("RECONCILE_GRACE_SECONDS", 2, 0...600),
            reconcileInterval: try seconds("RECONCILE_INTERVAL_SECONDS", 10, 0.1...3600),
            stuckMargin: try seconds("STUCK_MARGIN_SECONDS", 60, 0...86_400),
            historyBatchSize: try environment.int("HISTORY_BATCH_SIZE", default: 500, range: 1...10_000),
            originateMaxAttempts: try environment.int("ORIGINATE_MAX_ATTEMPTS", default: 6, range: 1...100),
            ownerTimeout: try seconds("OWNER_TIMEOUT_SECONDS", 20, 2...3600),
            recording: try RecordingConfiguration.fromEnvironment(environment)
        )
    }

    /// Extension `s`, priority 1 of a context whose name was validated.
    public static func dialplan(context: String) -> DialplanTarget {
        guard let target = try? DialplanTarget(context: context, extension: "s", priority: 1) else {
            preconditionFailure("dialplan context \(context) was not validated")
        }
        return target
    }

    /// `<hostname>-<pid>`: unique per process, and stable across restarts in a container whose process is pid 1.
    public static func defaultWorkerID() -> String {
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "worker"
        let cleaned = String(host.unicodeScalars.map { isNameScalar($0) ? Character($0) : "-" })
        return "\(cleaned.isEmpty ? "worker" : cleaned)-\(ProcessInfo.processInfo.processIdentifier)"
    }

    /// `dialer-<NODE_ID>-<random>`: Asterisk allows one WebSocket per application, so every process needs its own.
    public static func defaultApplication(nodeID: String) -> String {
        let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        return "dialer-\(nodeID)-\(suffix)"
    }

    private static func isNameScalar(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, 0x2D, 0x2E, 0x5F: true
        default: false
        }
    }

    /// Ids and names end up in URLs, logs and ARI application names: ASCII letters, digits, `.`, `-`, `_`.
    private static func requireName(_ value: String, variable: String, maxLength: Int = 64) throws {
        guard value.utf8.count <= maxLength, value.unicodeScalars.allSatisfy(isNameScalar) else {
            throw ConfigurationError(
                variable: variable,
                message: "must be 1 to \(maxLength) ASCII letters, digits, '.', '-' or '_'")
        }
    }

    /// Accepts `5551000`, `Sales <5551000>` and `"Sales" <5551000>`.
    static func parseCallerID(_ text: String) throws -> CallerID {
        var name: String?
        var number = text
        if let open = text.lastIndex(of: "<"), text.hasSuffix(">") {
            number = String(text[text.index(after: open)..<text.index(before: text.endIndex)])
            var namePart = text[..<open].trimmingCharacters(in: .whitespaces)
            if namePart.hasPrefix("\""), namePart.hasSuffix("\""), namePart.count >= 2 {
                namePart = String(namePart.dropFirst().dropLast())
            }
            name = namePart.isEmpty ? nil : namePart
        }
        do {
            return try CallerID(name: name, number: number, fieldPrefix: "DEFAULT_CALLER_ID")
        } catch {
            throw ConfigurationError(
                variable: "DEFAULT_CALLER_ID",
                message: error.errors.map(\.message).joined(separator: "; ")
                    + " (expected NUMBER, NAME <NUMBER> or \"NAME\" <NUMBER>)")
        }
    }
}

/// The dial endpoint pattern, e.g. `PJSIP/{to}@carrier`: the worker substitutes the validated number for `{to}`.
///
/// The number is the only client-controlled part of the endpoint; the rest is the operator's, and is still checked
/// for the characters that would add a second leg or options to a dial string.
public struct EndpointTemplate: Sendable, Hashable, CustomStringConvertible {
    /// The placeholder replaced by the number.
    public static let placeholder = "{to}"
    /// The template as configured.
    public let template: String

    /// Validates a template: exactly one `{to}`, a technology prefix (`TECH/`), no `&`, `,`, whitespace or controls.
    public init(_ template: String) throws {
        let occurrences = template.components(separatedBy: Self.placeholder).count - 1
        guard occurrences == 1 else {
            throw ConfigurationError(variable: "ENDPOINT_TEMPLATE", message: "must contain {to} exactly once")
        }
        guard let slash = template.firstIndex(of: "/"), slash > template.startIndex,
            let placeholder = template.range(of: Self.placeholder), slash < placeholder.lowerBound
        else {
            throw ConfigurationError(
                variable: "ENDPOINT_TEMPLATE", message: "must start with a channel technology, e.g. PJSIP/{to}@carrier")
        }
        let forbidden = template.unicodeScalars.contains { scalar in
            scalar.value < 0x21 || scalar.value == 0x7F || scalar == "&" || scalar == "," || scalar == "\""
                || !scalar.isASCII
        }
        guard !forbidden else {
            throw ConfigurationError(
                variable: "ENDPOINT_TEMPLATE",
                message: "must not contain '&', ',', quotes, spaces, control or non-ASCII characters")
        }
        self.template = template
    }

    /// The endpoint dialing `target`.
    public func endpoint(for target: DialTarget) -> String {
        template.replacingOccurrences(of: Self.placeholder, with: target.value)
    }

    public var description: String { template }
}
