// swift-tools-version:6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

/// The outbound calling platform: the two services and their tests.
/// Shared contracts and adapters live in `Packages/Shared`; the dev kit in `Packages/DevKit`.
let package = Package(
    name: "OutboundDialer",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "api-gateway", targets: ["api-gateway"]),
        .executable(name: "dialer-worker", targets: ["dialer-worker"]),
        .executable(name: "webhook-dispatcher", targets: ["webhook-dispatcher"]),
        .executable(name: "campaign-scheduler", targets: ["campaign-scheduler"]),
    ],
    dependencies: [
        .package(path: "Packages/Shared"),
        .package(path: "Packages/DevKit"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", from: "2.5.0"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.7.1"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
    ],
    targets: [
        // MARK: - api-gateway
        .target(
            name: "APIGateway",
            dependencies: [
                .product(name: "Campaigns", package: "Shared"),
                .product(name: "CallDomain", package: "Shared"),
                .product(name: "Webhooks", package: "Shared"),
                .product(name: "CallStore", package: "Shared"),
                .product(name: "Recordings", package: "Shared"),
                .product(name: "CallMessaging", package: "Shared"),
                .product(name: "Kafka", package: "Shared"),
                .product(name: "ServiceSupport", package: "Shared"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
            ],
            path: "Services/api-gateway/Sources/APIGateway",
            // The API contract, compiled into the binary: a deployed gateway has no resource bundle to lose.
            resources: [.embedInCode("Docs/openapi.yaml")],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "api-gateway",
            dependencies: [
                "APIGateway",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Services/api-gateway/Sources/api-gateway",
            swiftSettings: swiftSettings
        ),
        // MARK: - dialer-worker
        .target(
            name: "DialerWorker",
            dependencies: [
                .product(name: "OperationsHTTP", package: "Shared"),
                .product(name: "CallDomain", package: "Shared"),
                .product(name: "CallStore", package: "Shared"),
                .product(name: "CallMessaging", package: "Shared"),
                .product(name: "Kafka", package: "Shared"),
                .product(name: "ARI", package: "Shared"),
                .product(name: "ServiceSupport", package: "Shared"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Recordings", package: "Shared"),
                .product(name: "_NIOFileSystem", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Services/dialer-worker/Sources/DialerWorker",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "dialer-worker",
            dependencies: [
                "DialerWorker",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Services/dialer-worker/Sources/dialer-worker",
            swiftSettings: swiftSettings
        ),
        // MARK: - campaign-scheduler
        .target(
            name: "CampaignScheduler",
            dependencies: [
                .product(name: "OperationsHTTP", package: "Shared"),
                .product(name: "CallDomain", package: "Shared"),
                .product(name: "CallStore", package: "Shared"),
                .product(name: "CallMessaging", package: "Shared"),
                .product(name: "Campaigns", package: "Shared"),
                .product(name: "Kafka", package: "Shared"),
                .product(name: "ServiceSupport", package: "Shared"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            path: "Services/campaign-scheduler/Sources/CampaignScheduler",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "campaign-scheduler",
            dependencies: [
                "CampaignScheduler",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Services/campaign-scheduler/Sources/campaign-scheduler",
            swiftSettings: swiftSettings
        ),
        // MARK: - webhook-dispatcher
        .target(
            name: "WebhookDispatcher",
            dependencies: [
                .product(name: "OperationsHTTP", package: "Shared"),
                .product(name: "CallDomain", package: "Shared"),
                .product(name: "CallStore", package: "Shared"),
                .product(name: "CallMessaging", package: "Shared"),
                .product(name: "Kafka", package: "Shared"),
                .product(name: "ServiceSupport", package: "Shared"),
                .product(name: "Webhooks", package: "Shared"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            path: "Services/webhook-dispatcher/Sources/WebhookDispatcher",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "webhook-dispatcher",
            dependencies: [
                "WebhookDispatcher",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Services/webhook-dispatcher/Sources/webhook-dispatcher",
            swiftSettings: swiftSettings
        ),
        // MARK: - Tests
        .target(
            name: "TestSupport",
            dependencies: [
                .product(name: "CallStore", package: "Shared"),
                .product(name: "Kafka", package: "Shared"),
                .product(name: "EmbeddedKafka", package: "DevKit"),
                .product(name: "ARISimulator", package: "DevKit"),
                .product(name: "DevStack", package: "DevKit"),
                .product(name: "CallDomain", package: "Shared"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
            ],
            path: "Tests/TestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RecordingsTests",
            dependencies: [
                "TestSupport",
                .product(name: "ServiceSupport", package: "Shared"),
                .product(name: "Recordings", package: "Shared"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "_NIOFileSystem", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CallDomainTests",
            dependencies: [
                "TestSupport",
                .product(name: "CallDomain", package: "Shared"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "WebhookTests",
            dependencies: [
                "TestSupport",
                .product(name: "CallDomain", package: "Shared"),
                .product(name: "Webhooks", package: "Shared"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CampaignSchedulerTests",
            dependencies: [
                "TestSupport",
                "CampaignScheduler",
                .product(name: "CallDomain", package: "Shared"),
                .product(name: "CallStore", package: "Shared"),
                .product(name: "CallMessaging", package: "Shared"),
                .product(name: "Campaigns", package: "Shared"),
                .product(name: "Kafka", package: "Shared"),
                .product(name: "EmbeddedKafka", package: "DevKit"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CampaignTests",
            dependencies: [
                .product(name: "CallDomain", package: "Shared"),
                .product(name: "Campaigns", package: "Shared"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CallStoreTests",
            dependencies: [
                "TestSupport",
                .product(name: "CallDomain", package: "Shared"),
                .product(name: "CallStore", package: "Shared"),
                .product(name: "Campaigns", package: "Shared"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "KafkaTests",
            dependencies: [
                "TestSupport",
                .product(name: "Kafka", package: "Shared"),
                .product(name: "EmbeddedKafka", package: "DevKit"),
                .product(name: "DevStack", package: "DevKit"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ARITests",
            dependencies: [
                "TestSupport",
                .product(name: "ARI", package: "Shared"),
                .product(name: "ARISimulator", package: "DevKit"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "DialerWorkerTests",
            dependencies: [
                .product(name: "ServiceSupport", package: "Shared"),
                "TestSupport",
                "DialerWorker",
                .product(name: "CallDomain", package: "Shared"),
                .product(name: "CallStore", package: "Shared"),
                .product(name: "CallMessaging", package: "Shared"),
                .product(name: "Kafka", package: "Shared"),
                .product(name: "ARI", package: "Shared"),
                .product(name: "EmbeddedKafka", package: "DevKit"),
                .product(name: "ARISimulator", package: "DevKit"),
                .product(name: "DevStack", package: "DevKit"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Recordings", package: "Shared"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "TestSupport",
                .product(name: "CallDomain", package: "Shared"),
                .product(name: "CallStore", package: "Shared"),
                .product(name: "ServiceSupport", package: "Shared"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "APIGatewayTests",
            dependencies: [
                .product(name: "Webhooks", package: "Shared"),
                "TestSupport",
                "APIGateway",
                .product(name: "CallDomain", package: "Shared"),
                .product(name: "CallStore", package: "Shared"),
                .product(name: "CallMessaging", package: "Shared"),
                .product(name: "Kafka", package: "Shared"),
                .product(name: "EmbeddedKafka", package: "DevKit"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "WebhookDispatcherTests",
            dependencies: [
                "TestSupport",
                "WebhookDispatcher",
                .product(name: "CallDomain", package: "Shared"),
                .product(name: "CallStore", package: "Shared"),
                .product(name: "CallMessaging", package: "Shared"),
                .product(name: "Kafka", package: "Shared"),
                .product(name: "Webhooks", package: "Shared"),
                .product(name: "EmbeddedKafka", package: "DevKit"),
                .product(name: "DevStack", package: "DevKit"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // Faults under load with the real processes; `make test-faults` runs it, `make test` skips it.
        .testTarget(
            name: "FaultTests",
            dependencies: [
                "TestSupport",
                .product(name: "DevStack", package: "DevKit"),
                .product(name: "CallDomain", package: "Shared"),
                .product(name: "CallStore", package: "Shared"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // Hostile input and security checks against the real processes (part of `make test`).
        .testTarget(
            name: "SecurityTests",
            dependencies: [
                "TestSupport",
                .product(name: "DevStack", package: "DevKit"),
                .product(name: "CallDomain", package: "Shared"),
                .product(name: "CallStore", package: "Shared"),
                .product(name: "Kafka", package: "Shared"),
                .product(name: "CallMessaging", package: "Shared"),
                .product(name: "EmbeddedKafka", package: "DevKit"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
