import ARI
import CallDomain
import CallStore
import Crypto
import Foundation
import Logging
import Metrics
import NIOCore
import NIOFileSystem
import Recordings
import ServiceLifecycle
import ServiceSupport

/// The recordings of this node's calls, as the recorder uses them (``CallStore`` in production).
protocol RecordingRepository: Sendable {
    func beginRecording(
        callID: CallID, organization: OrganizationID, nodeID: String, name: String, format: String, at now: Date
    ) async throws -> CallRecording?
    func recordingStarted(callID: CallID, at now: Date) async throws
    @discardableResult
    func recordingFinished(callID: CallID, durationSeconds: Int?, at now: Date) async throws -> Bool
    func recordingFailed(callID: CallID, detail: String, at now: Date) async throws
    func recordingStored(callID: CallID, key: String, sizeBytes: Int64, sha256: String, at now: Date) async throws
    func recording(of callID: CallID, in organization: OrganizationID) async throws -> CallRecording?
    func unsettledRecordings(on nodeID: String, quietFor: Duration, limit: Int) async throws -> [CallRecording]
    func expireRecordings(storedBefore cutoff: Date, limit: Int) async throws -> [CallRecording]
    func call(id: CallID) async throws -> CallRecord?
}

extension CallStore: RecordingRepository {}

/// The node's recording operations, as the recorder uses them (``ARIClient`` in production).
protocol RecordingNode: Sendable {
    func snoop(
        channelID: String, snoopID: String, spy: ARIClient.SnoopDirection, application: String, arguments: String
    ) async throws -> ARIChannel
    func record(
        channelID: String, name: String, format: String, maxDurationSeconds: Int, ifExists: String, beep: Bool
    ) async throws -> ARILiveRecording
    func liveRecording(name: String) async throws -> ARILiveRecording
    func storedRecording(name: String) async throws -> ARIStoredRecording
    func storedRecordingFile(
        name: String, timeout: Duration, receive: (ByteBuffer) async throws -> Void
    ) async throws
    func deleteStoredRecording(name: String) async throws
    func hangup(channelID: String, reason: String?) async throws
}

extension ARIClient: RecordingNode {}

/// Records answered calls that asked for it and brings each file home: from the node, where Asterisk writes it, to
/// the recording store, and only then off the node.
///
/// The call itself runs in the dial plan, out of Stasis, where ARI cannot record it; so a snoop channel that hears
/// both directions is put into this worker's application and recorded instead, under the call id as the recording
/// name. It ends when the call does, and Asterisk finishes the recording (`RecordingFinished`).
///
/// Every step is in PostgreSQL (``RecordingStatus``) before the next, so a worker that dies anywhere loses nothing:
/// the next worker of the node finds the recording unsettled and finishes it (``sweep()``).
final class Recorder: Service {
    /// The `appArgs` a snoop channel enters the application with.
    static let snoopArgument = "dialer-recording"
    /// Appended to the call id to make its snoop channel's id.
    static let snoopSuffix = "-recording"

    struct Settings: Sendable {
        var application: String
        var nodeID: String
        var format: String
        var maxDurationSeconds: Int
        /// Where files are downloaded before they go to the store.
        var spoolDirectory: FilePath
        /// How often unsettled recordings and expired ones are looked for.
        var sweepInterval: Duration
        /// How long an unsettled recording must have been quiet before the sweep takes it (its events may be on the
        /// way).
        var settleTime: Duration
        /// How long stored recordings are kept; `nil` for ever.
        var retention: Duration?
        /// How long one download from the node may take.
        var downloadTimeout: Duration
    }

    enum Work: Sendable {
        /// `traceParent`: the call's trace, where the snoop and record requests are recorded.
        case start(callID: CallID, channelID: String, organizationID: OrganizationID, traceParent: String?)
        case event(ARIEvent)
    }

    let settings: Settings
    let repository: any RecordingRepository
    let node: any RecordingNode
    let store: any RecordingStore
    let logger: Logger
    private let work: AsyncStream<Work>
    private let workContinuation: AsyncStream<Work>.Continuation
    private let stored = Counter(label: "dialer_recordings_total", dimensions: [("outcome", "stored")])
    private let failed = Counter(label: "dialer_recordings_total", dimensions: [("outcome", "failed")])
    private let expired = Counter(label: "dialer_recordings_expired_total")

    init(
        settings: Settings, repository: any RecordingRepository, node: any RecordingNode, store: any RecordingStore,
        logger: Logger
    ) {
        self.settings = settings
        self.repository = repository
        self.node = node
        self.store = store
        var logger = logger
        logger[metadataKey: "component"] = "recorder"
        self.logger = logger
        (work, workContinuation) = AsyncStream.makeStream(of: Work.self)
    }

    // MARK: - Entry points

    /// Asks for the answered call to be recorded (once; a second request for the call is ignored).
    func start(_ callID: CallID, channelID: String, organizationID: OrganizationID, traceParent: String? = nil) {
        workContinuation.yield(
            .start(callID: callID, channelID: channelID, organizationID: organizationID, traceParent: traceParent))
    }

    /// Whether an ARI event is the recorder's: a snoop channel entering the application, or a recording event.
    static func handles(_ event: ARIEvent) -> Bool {
        switch event {
        case .recording: true
        case .stasisStart(let start): start.args.first == snoopArgument
        default: false
        }
    }

    /// Hands over one of the recorder's events (see ``handles(_:)``), in the order they arrived.
    func take(_ event: ARIEvent) {
        workContinuation.yield(.event(event))
    }

    // MARK: - Lifecycle

    func run() async throws {
        try? await FileSystem.shared.createDirectory(at: settings.spoolDirectory, withIntermediateDirectories: true)
        let continuation = workContinuation
        await withDiscardingTaskGroup { group in
            group.addTask { await cancelWhenGracefulShutdown { await self.sweepRegularly() } }
            // The recorder is stopped after the dialer (it comes first in the service group), so it sees the ends of
            // the calls the dialer drains; transfers under way then complete. One cut short by cancellation is
            // finished by the next start of a worker of this node.
            await withGracefulShutdownHandler {
                for await item in self.work {
                    switch item {
                    case .start(let callID, let channelID, let organizationID, let traceParent):
                        group.addTask {
                            await TraceSpans.withParent(traceParent) {
                                await self.begin(callID, channelID: channelID, organizationID: organizationID)
                            }
                        }
                    case .event(let event):
                        // Handled in arrival order (a recording's `Started` before its `Finished`); only the
                        // transfer after `Finished` runs apart.
                        if let callID = await self.handle(event) {
                            group.addTask { await self.bringHome(callID) }
                        }
                    }
                }
            } onGracefulShutdown: {
                continuation.finish()
            }
        }
    }

    // MARK: - Starting

    /// Registers the recording, then puts a snoop channel on the call; the recording itself starts when the snoop
    /// channel is in the application (its `StasisStart`).
    func begin(_ callID: CallID, channelID: String, organizationID: OrganizationID) async {
        let logger = self.logger(for: callID)
        do {
            guard
                try await repository.beginRecording(
                    callID: callID, organization: organizationID, nodeID: settings.nodeID, name: callID.description,
                    format: settings.format, at: Date()) != nil
            else {
                logger.debug("the call's recording was already started")
                return
            }
        } catch {
            logger.error("could not register the recording; the call is not recorded", metadata: ["error": "\(error)"])
            return
        }
        do {
            _ = try await node.snoop(
                channelID: channelID, snoopID: Self.snoopID(of: callID), spy: .both,
                application: settings.application, arguments: Self.snoopArgument)
        } catch ARIError.notFound {
            await fail(callID, "the call ended before its recording started", logger: logger)
        } catch {
            await fail(callID, "the node refused the snoop channel: \(error)", logger: logger)
        }
    }

    /// A recorder's event: the snoop channel is in the application (start recording it), or a recording moved on.
    /// Returns the call whose recording just finished, to bring home.
    func handle(_ event: ARIEvent) async -> CallID? {
        switch event {
        case .stasisStart(let start):
            guard let callID = Self.callID(ofSnoop: start.channel.id) else { return nil }
            await record(callID, snoopID: start.channel.id)
            return nil
        case .recording(let recording):
            guard let callID = CallID(recording.recording.name) else { return nil }
            let logger = self.logger(for: callID)
            do {
                switch recording.kind {
                case .started:
                    try await repository.recordingStarted(callID: callID, at: recording.timestamp)
                    return nil
                case .finished:
                    let moved = try await repository.recordingFinished(
                        callID: callID, durationSeconds: recording.recording.duration, at: recording.timestamp)
                    logger.debug(
                        "recording finished on the node",
                        metadata: ["recording.duration_seconds": "\(recording.recording.duration ?? -1)"])
                    return moved ? callID : nil
                case .failed:
                    let cause = recording.recording.cause.map { ": \($0)" } ?? ""
                    await fail(callID, "the node could not record the call\(cause)", logger: logger)
                    return nil
                }
            } catch {
                // The sweep reads the state from the node once the call has ended.
                logger.warning("could not record the recording's progress", metadata: ["error": "\(error)"])
                return nil
            }
        default:
            return nil
        }
    }

    private func record(_ callID: CallID, snoopID: String) async {
        let logger = self.logger(for: callID)
        do {
            _ = try await node.record(
                channelID: snoopID, name: callID.description, format: settings.format,
                maxDurationSeconds: settings.maxDurationSeconds, ifExists: "overwrite", beep: false)
        } catch {
            await fail(callID, "the node did not start the recording: \(error)", logger: logger)
            try? await node.hangup(channelID: snoopID, reason: nil)
        }
    }

    // MARK: - Bringing the file home

    /// Downloads the finished recording from the node (hashing it on the way), puts it in the store, records where,
    /// and only then deletes it from the node. A transfer that fails is left `finished` for the sweep to retry; a
    /// node that has no such recording makes it `failed`.
    func bringHome(_ callID: CallID) async {
        let logger = self.logger(for: callID)
        let name = callID.description
        let spool = settings.spoolDirectory.appending("\(name).\(settings.format).partial")
        do {
            guard let call = try await repository.call(id: callID), let organization = call.organizationID else {
                await fail(callID, "the recorded call is not in the history", logger: logger)
                return
            }
            var hasher = SHA256()
            var size: Int64 = 0
            let timeout = settings.downloadTimeout
            try await FileSystem.shared.withFileHandle(
                forWritingAt: spool, options: .newFile(replaceExisting: true)
            ) { file in
                var writer = file.bufferedWriter()
                try await node.storedRecordingFile(name: name, timeout: timeout) { chunk in
                    hasher.update(data: chunk.readableBytesView)
                    size += Int64(chunk.readableBytes)
                    try await writer.write(contentsOf: chunk)
                }
                try await writer.flush()
            }
            let digest = WireCoding.hex(hasher.finalize())
            let key = try Self.key(
                for: callID, organization: organization, createdAt: call.createdAt, format: settings.format)
            try await store.put(key: key, file: spool, sha256: digest)
            try await repository.recordingStored(
                callID: callID, key: key.value, sizeBytes: size, sha256: digest, at: Date())
            stored.increment()
            logger.info(
                "recording stored", metadata: ["recording.key": "\(key)", "recording.size_bytes": "\(size)"])
            _ = try? await FileSystem.shared.removeItem(at: spool, recursively: false)
            await deleteFromNode(name, logger: logger)
        } catch ARIError.notFound {
            _ = try? await FileSystem.shared.removeItem(at: spool, recursively: false)
            await fail(callID, "the node has no file for the finished recording", logger: logger)
        } catch {
            _ = try? await FileSystem.shared.removeItem(at: spool, recursively: false)
            logger.warning(
                "could not bring the recording home; retried by the next sweep", metadata: ["error": "\(error)"])
        }
    }

    /// Deletes a stored recording from the node, a few times if the node does not answer: it is safe in the store,
    /// and a copy left behind only takes the node's disk.
    private func deleteFromNode(_ name: String, logger: Logger) async {
        var delay = Duration.milliseconds(200)
        for attempt in 1...5 {
            do {
                try await node.deleteStoredRecording(name: name)
                return
            } catch ARIError.notFound {
                return
            } catch {
                if attempt == 5 {
                    logger.error(
                        "the stored recording could not be deleted from the node; delete it there by hand",
                        metadata: ["recording.name": "\(name)", "error": "\(error)"])
                    return
                }
                guard (try? await Task.sleep(for: delay)) != nil else { return }
                delay *= 2
            }
        }
    }

    private func fail(_ callID: CallID, _ detail: String, logger: Logger) async {
        logger.warning("call recording failed", metadata: ["recording.detail": "\(detail)"])
        failed.increment()
        do {
            try await repository.recordingFailed(callID: callID, detail: detail, at: Date())
        } catch {
            logger.error("could not record the recording's failure", metadata: ["error": "\(error)"])
        }
    }

    // MARK: - Sweeps

    private func sweepRegularly() async {
        while !Task.isCancelled {
            await sweep()
            guard (try? await Task.sleep(for: settings.sweepInterval)) != nil else { return }
        }
    }

    /// Finishes what a worker of this node left (stopped, killed, or its events lost): a finished recording is
    /// brought home; one still starting or recording whose call has ended is looked up on the node (stored: brought
    /// home; gone: failed). Then removes recordings past the retention period from the store.
    func sweep() async {
        do {
            let unsettled = try await repository.unsettledRecordings(
                on: settings.nodeID, quietFor: settings.settleTime, limit: 100)
            for recording in unsettled {
                if Task.isCancelled { return }
                await settle(recording)
            }
        } catch {
            logger.warning("could not look for unsettled recordings", metadata: ["error": "\(error)"])
        }
        guard let retention = settings.retention else { return }
        do {
            let cutoff = Date().addingTimeInterval(-Double(retention.components.seconds))
            for recording in try await repository.expireRecordings(storedBefore: cutoff, limit: 100) {
                guard let text = recording.storageKey, let key = try? RecordingKey(text) else { continue }
                try await store.delete(key: key)
                expired.increment()
                logger(for: recording.callID).info(
                    "recording deleted at the end of its retention period", metadata: ["recording.key": "\(key)"])
            }
        } catch {
            logger.warning("could not remove expired recordings", metadata: ["error": "\(error)"])
        }
    }

    private func settle(_ recording: CallRecording) async {
        let logger = self.logger(for: recording.callID)
        switch recording.status {
        case .finished:
            await bringHome(recording.callID)
        case .starting, .recording:
            // A live call's recording still runs; its events will come.
            guard recording.callStatus.isTerminal else { return }
            do {
                _ = try await node.storedRecording(name: recording.name)
                try await repository.recordingFinished(callID: recording.callID, durationSeconds: nil, at: Date())
                await bringHome(recording.callID)
            } catch ARIError.notFound {
                if (try? await node.liveRecording(name: recording.name)) != nil { return }
                await fail(recording.callID, "the node has no recording of the call", logger: logger)
            } catch {
                logger.warning("could not look the recording up on the node", metadata: ["error": "\(error)"])
            }
        case .stored, .failed, .deleted:
            return
        }
    }

    // MARK: - Names

    /// The id of a call's snoop channel.
    static func snoopID(of callID: CallID) -> String { callID.description + snoopSuffix }

    /// The call of a snoop channel id; `nil` for any other channel.
    static func callID(ofSnoop channelID: String) -> CallID? {
        guard channelID.hasSuffix(snoopSuffix) else { return nil }
        return CallID(String(channelID.dropLast(snoopSuffix.count)))
    }

    /// `<organization>/<yyyy>/<mm>/<dd>/<call id>.<format>`, by the call's creation day (UTC): an organization's
    /// recordings can be listed, exported or erased by prefix.
    static func key(
        for callID: CallID, organization: OrganizationID, createdAt: Date, format: String
    ) throws -> RecordingKey {
        let day = Calendar(identifier: .gregorian).dateComponents(in: TimeZone(identifier: "UTC")!, from: createdAt)
        let date = String(format: "%04d/%02d/%02d", day.year ?? 1970, day.month ?? 1, day.day ?? 1)
        return try RecordingKey("\(organization.uuid.uuidString.lowercased())/\(date)/\(callID).\(format)")
    }

    private func logger(for callID: CallID) -> Logger {
        var logger = self.logger
        logger[metadataKey: "call.id"] = "\(callID)"
        return logger
    }
}
