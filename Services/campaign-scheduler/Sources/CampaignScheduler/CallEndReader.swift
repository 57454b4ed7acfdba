import CallDomain
import CallMessaging
import CallStore
import Campaigns
import Kafka
import Logging
import Metrics
import OperationsHTTP
import ServiceLifecycle
import ServiceSupport

/// Reads `calls.status.v1` in the schedulers' consumer group and applies the ends of campaign calls to their
/// contacts (the retry rules decide what comes next) before committing the offsets: an end is never lost, and one
/// read twice changes nothing the second time. Other calls' events cost a lookup by call id.
struct CallEndReader: Service {
    let consumer: KafkaConsumer
    let store: CallStore
    let clock: any CampaignClock
    let batchSize: Int
    let databaseTimeout: Duration
    let readiness: ConsumerReadiness
    let metrics: SchedulerMetrics
    let logger: Logger

    func run() async throws {
        try await BatchedConsumption(consumer: consumer, batchSize: batchSize).run(
            running: { readiness.setConsumerRunning($0) }, handle: apply)
    }

    /// Stores the batch's call ends, retrying while PostgreSQL is away; `false` if abandoned at shutdown.
    @Sendable private func apply(_ batch: [KafkaMessage]) async -> Bool {
        var ends: [CallStore.CampaignCallEnd] = []
        for message in batch {
            // Undecodable events are the history writer's to dead-letter; they end no campaign call here.
            guard let event = try? CallMessageDecoder.status(message).0,
                let outcome = CampaignOutcome(
                    status: event.status, failureReason: event.failureReason, answeredBy: event.answeredBy)
            else { continue }
            ends.append(CallStore.CampaignCallEnd(callID: event.callID, outcome: outcome))
        }
        guard !ends.isEmpty else { return true }
        var delay = Duration.milliseconds(100)
        while true {
            do {
                let applied = try await withTimeout(databaseTimeout) { [store, clock, ends] in
                    try await store.recordCampaignCallEnds(ends, at: clock.now())
                }
                metrics.callEnds.increment(by: applied)
                return true
            } catch {
                if Task.isCancelled { return false }
                logger.warning(
                    "campaign call ends not stored; retrying",
                    metadata: ["error": "\(String(reflecting: error))", "batch.size": "\(batch.count)"])
                guard (try? await Task.sleep(for: delay)) != nil else { return false }
                delay = min(delay * 2, .seconds(2))
            }
        }
    }
}
