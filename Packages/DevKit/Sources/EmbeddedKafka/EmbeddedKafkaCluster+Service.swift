import ServiceLifecycle

extension EmbeddedKafkaCluster: Service {
    /// Keeps the cluster up until graceful shutdown or cancellation, then shuts it down, so a dev-stack
    /// `ServiceGroup` stops it after the services that use it (services stop in reverse order).
    public func run() async throws {
        try? await gracefulShutdown()
        shutdown()
    }
}
