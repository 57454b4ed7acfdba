// swift-tools-version:6.1
import PackageDescription

/// Micro-benchmarks of the hot pieces of the call pipeline (wire JSON, validation, the state machine):
/// `make bench-micro`. A package of its own, so that neither `make test` nor the services' builds compile them.
///
/// google/swift-benchmark rather than ordo-one's package-benchmark: package-benchmark 1.38.1 needs
/// ordo-one/swift-runtime-interposer on Linux with Swift 6.3, which the machine's package copies do not have, so it
/// cannot be resolved here.
let package = Package(
    name: "MicroBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "../Shared"),
        .package(url: "https://github.com/google/swift-benchmark.git", from: "0.1.2"),
    ],
    targets: [
        .executableTarget(
            name: "call-domain-bench",
            dependencies: [
                .product(name: "Benchmark", package: "swift-benchmark"),
                .product(name: "CallDomain", package: "Shared"),
            ],
            swiftSettings: [.enableUpcomingFeature("ExistentialAny"), .enableUpcomingFeature("MemberImportVisibility")]
        )
    ]
)
