import ARI
import Logging
import ServiceLifecycle
import ServiceSupport
import UnixSignals

/// The `dialer-worker serve` process: logging and metrics bootstrap, configuration, the service group.
public enum WorkerProcess {
    /// Runs the worker until SIGTERM or SIGINT, then shuts it down gracefully.
    ///
    /// - Throws: `ConfigurationError` naming the variable when the environment is wrong (start-up stops), or the
    ///   error of a service that failed.
    public static func serve(environment: EnvironmentReader = EnvironmentReader()) async throws {
        try LoggingSetup.bootstrap(service: "dialer-worker", environment: environment)
        let logger = Logger(label: "dialer-worker")
        let configuration: WorkerConfiguration
        do {
            configuration = try WorkerConfiguration.fromEnvironment(environment)
        } catch {
            logger.critical("refusing to start", metadata: ["error": "\(error)"])
            throw error
        }
        let registry = MetricsSetup.bootstrap()
        let tracing = try TracingSetup.bootstrap(
            service: "dialer-worker",
            resourceAttributes: ["node.id": configuration.nodeID, "worker.id": configuration.workerID],
            environment: environment)
        let services = try buildServiceGroup(
            configuration: configuration,
            logger: logger,
            renderMetrics: { MetricsSetup.render(registry) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            leadingServices: tracing
        )
        logger.info(
            "dialer worker starting",
            metadata: [
                "node.id": "\(configuration.nodeID)", "worker.id": "\(configuration.workerID)",
                "ari.app": "\(configuration.ari.application)", "ari.url": "\(configuration.ari.baseURL)",
                "worker.port": "\(configuration.port)",
            ])
        try await services.group.run()
        logger.info("dialer worker stopped")
    }
}
