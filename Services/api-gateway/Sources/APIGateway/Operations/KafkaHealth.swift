import Foundation
import Kafka
import Logging
import Synchronization

/// Asks the Kafka cluster something, to tell whether it is reachable now.
public protocol KafkaReachabilityProbe: Sendable {
    /// Returns `nil` when the cluster answered within `timeout`, else why not.
    func probe(timeout: Duration) async -> String?
}

/// Probes by starting a throw-away fan-out reader on the status topic and waiting until it has resolved the
/// topic's partitions and end offsets: that takes a metadata request and a list-offsets request answered by the
/// partition leaders, which is what publishing needs too.
struct FanOutReaderProbe: KafkaReachabilityProbe {
    let configuration: KafkaConfiguration
    let topic: String
    let logger: Logger

    func probe(timeout: Duration) async -> String? {
        var configuration = configuration
        configuration.clientID += "-readiness"
        let reader: KafkaFanOutReader
        do {
            reader = try KafkaFanOutReader(configuration: configuration, topic: topic, start: .end, logger: logger)
        } catch {
            return "cannot create a Kafka client: \(error)"
        }
        let running = Task { try await reader.run() }
        let outcome = await Deadline.run(timeout: timeout) { try await reader.waitUntilReady() }
        // The reader stops on cancellation; it may finish a blocking metadata call first, in the background.
        running.cancel()
        switch outcome {
        case .finished(.success): return nil
        case .finished(.failure(let error)): return "Kafka: \(error)"
        case .timedOut: return "Kafka did not answer a metadata request for \(topic) within \(timeout)"
        }
    }
}

/// Whether Kafka is reachable, for `/ready`: a recent acknowledged publish says yes at no cost; otherwise a
/// probe (at most one at a time, its answer reused for a few seconds) decides.
final class KafkaHealth: Sendable {
    private struct State {
        var lastSuccess: ContinuousClock.Instant?
        var lastFailure: ContinuousClock.Instant?
        var probeResult: (at: ContinuousClock.Instant, problem: String?)?
        var probeInFlight: Task<String?, Never>?
    }

    private let probe: any KafkaReachabilityProbe
    private let producerPrepared: @Sendable () -> Bool
    private let state = Mutex(State())
    /// How long an acknowledged publish counts as proof of reachability.
    static let successValidity = Duration.seconds(10)
    /// How long a probe's answer is reused.
    static let probeValidity = Duration.seconds(3)
    /// How long a probe may take.
    static let probeTimeout = Duration.seconds(3)

    /// - Parameter producerPrepared: whether the command producer is prepared (``KafkaProducer/isPrepared``): until
    ///   it is, a request would pay for the producer's start, so the gateway is not ready.
    init(probe: any KafkaReachabilityProbe, producerPrepared: @escaping @Sendable () -> Bool = { true }) {
        self.probe = probe
        self.producerPrepared = producerPrepared
    }

    /// An acknowledged publish.
    func recordSuccess() {
        state.withLock { $0.lastSuccess = .now }
    }

    /// A publish that failed or timed out.
    func recordFailure() {
        state.withLock {
            $0.lastFailure = .now
            $0.probeResult = nil
        }
    }

    /// `nil` when Kafka is reachable and the producer prepared, else why not.
    func check() async -> String? {
        guard producerPrepared() else {
            return "the command producer is starting (topic metadata, idempotent producer id)"
        }
        let now = ContinuousClock.now
        let task: Task<String?, Never> = state.withLock { state in
            if let success = state.lastSuccess, now - success < Self.successValidity,
                state.lastFailure.map({ $0 < success }) ?? true
            {
                return Task { nil }
            }
            if let result = state.probeResult, now - result.at < Self.probeValidity {
                let problem = result.problem
                return Task { problem }
            }
            if let inFlight = state.probeInFlight { return inFlight }
            let probe = self.probe
            let task = Task { [weak self] () -> String? in
                let problem = await probe.probe(timeout: Self.probeTimeout)
                self?.state.withLock { state in
                    state.probeResult = (ContinuousClock.now, problem)
                    state.probeInFlight = nil
                }
                return problem
            }
            state.probeInFlight = task
            return task
        }
        return await task.value
    }
}
