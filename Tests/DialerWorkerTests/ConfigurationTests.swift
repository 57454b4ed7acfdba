import ARI
import CallDomain
import DialerWorker
import Foundation
import ServiceSupport
import Testing

/// Start-up configuration: defaults, and a refusal naming the variable for every bad value.
@Suite("Configuration")
struct ConfigurationTests {
    static let minimal: [String: String] = [
        "NODE_ID": "pbx-1",
        "ARI_HTTP_URL": "http://127.0.0.1:8088/ari",
        "ARI_USERNAME": "dialer",
        "ARI_PASSWORD": "secret",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/calls",
    ]

    private func configuration(_ overrides: [String: String] = [:]) throws -> WorkerConfiguration {
        try WorkerConfiguration.fromEnvironment(EnvironmentReader(Self.minimal.merging(overrides) { _, new in new }))
    }

    @Test("defaults")
    func defaults() throws {
        let configuration = try configuration()
        #expect(configuration.nodeID == "pbx-1")
        #expect(configuration.ari.application.hasPrefix("dialer-pbx-1-"))
        #expect(try configuration.endpointTemplate.endpoint(for: DialTarget("+15550100")) == "PJSIP/+15550100@carrier")
        #expect(configuration.defaultDialplan.context == "default")
        #expect(configuration.defaultDialplan.extension == "s")
        #expect(configuration.defaultDialplan.priority == 1)
        #expect(configuration.defaultCallerID == nil)
        #expect(configuration.maxConcurrentCalls == 100)
        #expect(configuration.maxCallsPerSecond == 10)
        #expect(configuration.topics == .defaults)
        #expect(configuration.dialerGroupID == "dialer-workers")
        #expect(configuration.historyGroupID == "call-history")
        #expect(configuration.port == 8081)
        #expect(configuration.drainTimeout == .seconds(30))
        #expect(configuration.stuckMargin == .seconds(60))
        #expect(configuration.historyBatchSize == 500)
        #expect(!configuration.workerID.isEmpty)
    }

    @Test("each process gets its own ARI application by default")
    func uniqueApplication() throws {
        #expect(try configuration().ari.application != configuration().ari.application)
        #expect(try configuration(["ARI_APP": "dialer-a"]).ari.application == "dialer-a")
    }

    @Test("default caller id forms")
    func callerID() throws {
        #expect(try configuration(["DEFAULT_CALLER_ID": "5551000"]).defaultCallerID?.ariValue == "5551000")
        #expect(
            try configuration(["DEFAULT_CALLER_ID": "Sales <+5551000>"]).defaultCallerID?.ariValue
                == "\"Sales\" <+5551000>")
        #expect(
            try configuration(["DEFAULT_CALLER_ID": "\"Sales Team\" <5551000>"]).defaultCallerID?.ariValue
                == "\"Sales Team\" <5551000>")
    }

    @Test(
        "a bad value names its variable",
        arguments: [
            ("NODE_ID", nil),
            ("NODE_ID", "pbx 1"),
            ("ARI_HTTP_URL", "ftp://pbx/ari"),
            ("ARI_USERNAME", nil),
            ("ARI_PASSWORD", nil),
            ("ARI_APP", "dialer/1"),
            ("ENDPOINT_TEMPLATE", "PJSIP/carrier"),
            ("ENDPOINT_TEMPLATE", "PJSIP/{to}@carrier&PJSIP/{to}@other"),
            ("ENDPOINT_TEMPLATE", "PJSIP/{to}@carrier,30"),
            ("ENDPOINT_TEMPLATE", "{to}"),
            ("DEFAULT_CONTEXT", "agents@evil"),
            ("DEFAULT_EXTENSION", "s,1"),
            ("DEFAULT_PRIORITY", "0"),
            ("DEFAULT_CALLER_ID", "\"Evil\r\nX: y\" <1>"),
            ("MAX_CONCURRENT_CALLS", "0"),
            ("MAX_CALLS_PER_SECOND", "fast"),
            ("KAFKA_BOOTSTRAP_SERVERS", nil),
            ("DATABASE_URL", "mysql://db/calls"),
            ("WORKER_PORT", "70000"),
            ("DRAIN_TIMEOUT_SECONDS", "-1"),
            ("HISTORY_BATCH_SIZE", "0"),
        ] as [(String, String?)]
    )
    func refused(_ variable: String, _ value: String?) throws {
        var environment = Self.minimal
        environment[variable] = value
        do {
            _ = try WorkerConfiguration.fromEnvironment(EnvironmentReader(environment))
            Issue.record("\(variable)=\(value ?? "<unset>") was accepted")
        } catch let error as ConfigurationError {
            #expect(error.variable == variable)
            #expect(error.description.contains(variable))
        }
    }
}
