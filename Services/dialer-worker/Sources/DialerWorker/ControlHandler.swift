import ARI
import CallDomain
import CallMessaging
import CallStore
import Foundation
import Kafka
import Logging
import ServiceLifecycle

/// Acts on `calls.control.v1`: every worker reads every hangup and cancel (a fan-out reader, no group).
///
/// - A hangup or cancel of a call this worker owns hangs its channel up (`DELETE /channels/{id}`), recorded as our
///   hangup, so the call ends `canceled` if unanswered and `completed` if answered. A call still being claimed or
///   originated is hung up as soon as its originate returns (or never originated if the claim is not done yet).
/// - A cancel (or a hangup) of a call nobody dials yet moves it `queued → canceled` in PostgreSQL with a
///   conditional update: exactly one worker wins and publishes the `canceled` event, and the claim of a later
///   originate command for the call fails, so it is never dialed.
final class ControlHandler: Service {
    private let reader: KafkaFanOutReader
    private let context: WorkerContext
    private let logger: Logger
    /// Control commands handled at once (each may wait for PostgreSQL); the reader waits beyond that.
    private let maximumConcurrency = 256

    init(reader: KafkaFanOutReader, context: WorkerContext) {
        self.reader = reader
        self.context = context
        var logger = context.logger
        logger[metadataKey: "component"] = "control"
        self.logger = logger
    }

    func run() async throws {
        let reader = self.reader
        let readiness = context.readiness
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await reader.run()
            }
            group.addTask {
                if (try? await reader.waitUntilReady()) != nil {
                    readiness.setControlReaderReady(true)
                }
            }
            // The messages end when the reader stops (graceful shutdown, or a fatal error that run() rethrows).
            defer { readiness.setControlReaderReady(false) }
            try await consumeMessages()
            try await group.waitForAll()
        }
    }

    private func consumeMessages() async throws {
        let (finished, finishedContinuation) = AsyncStream<Void>.makeStream()
        var finishedIterator = finished.makeAsyncIterator()
        try await withThrowingDiscardingTaskGroup { handlers in
            var running = 0
            for try await message in reader.messages {
                if running >= maximumConcurrency {
                    _ = await finishedIterator.next()
                    running -= 1
                }
                running += 1
                handlers.addTask {
                    await self.handle(message)
                    finishedContinuation.yield()
                }
            }
        }
    }

    private func handle(_ message: KafkaMessage) async {
        let command: ControlCommand
        let attributes: CloudEventAttributes
        do {
            (command, attributes) = try CallMessageDecoder.control(message)
        } catch {
            logger.error(
                "undecodable control message skipped",
                metadata: [
                    "kafka.partition": "\(message.partition)", "kafka.offset": "\(message.offset)",
                    "message.key": "\(message.keyString ?? "")", "error": "\(error)",
                ])
            return
        }
        // Every worker reads every control command; each one's handling is a span of the hangup request's trace.
        await MessageTracing.processing(message, event: attributes, callID: command.callID) { traceParent in
            await handle(command, traceParent: traceParent)
        }
    }

    private func handle(_ command: ControlCommand, traceParent: String?) async {
        let callID = command.callID
        let logger = context.logger(for: callID, traceParent: traceParent)
        let (disposition, actions) = context.tracker.requestHangup(callID)
        for case .hangup(_, let channelID) in actions {
            await Self.hangUp(channelID: channelID, ari: context.ari, logger: logger)
        }
        switch disposition {
        case .hangingUp:
            logger.info("hangup requested for a live call", metadata: ["control.type": "\(command.eventType)"])
        case .deferred:
            logger.info(
                "hangup requested while the call is being placed; it is hung up once the originate returns",
                metadata: ["control.type": "\(command.eventType)"])
            await cancelIfQueued(callID, traceParent: traceParent, createIfUnknown: false, logger: logger)
        case .notTracked:
            if case .cancel = command {
                await cancelIfQueued(callID, traceParent: traceParent, createIfUnknown: true, logger: logger)
            } else {
                await cancelIfQueued(callID, traceParent: traceParent, createIfUnknown: false, logger: logger)
            }
        }
    }

    /// Moves a queued call to `canceled` and publishes the event if this worker won the conditional update.
    ///
    /// A cancel can overtake its call's originate command on the way to the history writer; with
    /// `createIfUnknown` the call's row is created `canceled` from the cancel itself, so the command, when it
    /// arrives, finds the call canceled and is never dialed.
    private func cancelIfQueued(_ callID: CallID, traceParent: String?, createIfUnknown: Bool, logger: Logger) async {
        let configuration = context.configuration
        let store = context.store
        guard
            let (result, retried) = await context.withDatabaseRetries(
                "cancel", logger: logger,
                {
                    try await store.cancelQueued(
                        callID: callID, nodeID: configuration.nodeID, workerID: configuration.workerID, at: Date())
                })
        else { return }
        switch result {
        case .changed(let event):
            logger.info("queued call canceled; it will never be dialed")
            _ = await context.publishUntilAcknowledged(event, traceParent: traceParent)
        case .notQueued(.canceled) where retried:
            // An attempt that timed out may have been the one that canceled the call: publish its event then.
            guard
                let record = await context.withDatabaseRetry(
                    "check cancel", logger: logger, { try await store.call(id: callID) }),
                let record, record.seq == 1, record.workerID == configuration.workerID,
                let entry = record.timeline.first(where: { $0.seq == 1 && $0.status == .canceled })
            else { return }
            let event = CallStatusEvent(
                eventID: entry.eventID, callID: callID, seq: 1, status: .canceled, previousStatus: .queued,
                occurredAt: entry.occurredAt, nodeID: record.nodeID, workerID: record.workerID, to: record.to,
                detail: entry.detail, endedAt: record.endedAt,
                metadata: (try? ClientMetadata(record.metadata)) ?? .empty, organizationID: record.organizationID)
            logger.info("queued call canceled (confirmed after a retry); it will never be dialed")
            _ = await context.publishUntilAcknowledged(event, traceParent: traceParent)
        case .notQueued(let status):
            logger.debug("cancel ignored: the call is not queued", metadata: ["call.status": "\(status.rawValue)"])
        case .unknown:
            guard createIfUnknown else { return }
            let now = Date()
            let event = CallStatusEvent(
                callID: callID, seq: 1, status: .canceled, previousStatus: .queued, occurredAt: now,
                nodeID: configuration.nodeID, workerID: configuration.workerID,
                detail: "canceled before dialing", endedAt: now)
            guard
                let applied = await context.withDatabaseRetry(
                    "cancel unknown call", logger: logger, { try await store.apply([event]).first })
            else { return }
            if applied == ApplyResult.applied {
                logger.info("call canceled before its command was recorded; it will never be dialed")
                _ = await context.publishUntilAcknowledged(event, traceParent: traceParent)
            }
        }
    }

    /// `DELETE /channels/{id}`; a channel already gone (404) is fine: its `ChannelDestroyed` ends the call.
    static func hangUp(channelID: String, ari: any NodeClient, logger: Logger) async {
        do {
            try await ari.hangup(channelID: channelID, reason: nil)
        } catch ARIError.notFound {
            logger.debug("hangup: the channel is already gone")
        } catch {
            logger.warning("hangup failed", metadata: ["error": "\(error)"])
        }
    }
}
