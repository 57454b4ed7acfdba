import CallDomain
import CallMessaging
import CallStore
import Campaigns
import Foundation
import Logging
import Metrics
import ServiceLifecycle
import ServiceSupport
import Synchronization

/// Runs the campaigns this scheduler holds: takes free running campaigns through leases in PostgreSQL, renews them,
/// and every tick dispatches each one's due contacts within its pacing (calls per second, live calls), publishing
/// their originate commands.
///
/// At most once per attempt: a contact becomes `dialing` with its attempt recorded, under a call id derived from
/// (campaign, contact, attempt), before its command is published. A command whose publication failed is published
/// again (same id) until Kafka acknowledges it; a scheduler that died between recording and publishing leaves its
/// campaigns' leases to pass, and the next holder publishes every `dialing` contact's command again. A worker claims
/// a call id once, so a command published twice dials once.
final class CampaignRunner: Service, Sendable {
    /// A campaign held here.
    private struct Held {
        var campaign: Campaign
        /// Dispatch allowance (token bucket at the campaign's calls per second, at most a fifth of a second's worth).
        var tokens: Double
        var refilledAt: ContinuousClock.Instant
        /// No dispatch before this (nothing was due at the last one).
        var idleUntil: ContinuousClock.Instant
        var checkedCompletionAt: ContinuousClock.Instant
    }

    private struct State {
        var held: [UUID: Held] = [:]
        /// Commands recorded but not yet acknowledged by Kafka, by campaign.
        var unpublished: [UUID: [OriginateCommand]] = [:]
        var stopping = false
    }

    private let store: CallStore
    private let publisher: CallMessagePublisher
    private let clock: any CampaignClock
    private let configuration: SchedulerConfiguration
    private let metrics: SchedulerMetrics
    private let logger: Logger
    private let state = Mutex(State())

    init(
        store: CallStore, publisher: CallMessagePublisher, clock: any CampaignClock,
        configuration: SchedulerConfiguration, metrics: SchedulerMetrics, logger: Logger
    ) {
        self.store = store
        self.publisher = publisher
        self.clock = clock
        self.configuration = configuration
        self.metrics = metrics
        var logger = logger
        logger[metadataKey: "component"] = "campaign-runner"
        self.logger = logger
    }

    /// The campaigns held now.
    var heldCampaigns: [UUID] { state.withLock { Array($0.held.keys) } }

    func run() async throws {
        await withGracefulShutdownHandler {
            var renewedAt = ContinuousClock.now - configuration.renewInterval
            while !state.withLock({ $0.stopping }) && !Task.isCancelled {
                // Ticks keep their cadence however long a round took (a round's own time is not added to the wait).
                let tickStart = ContinuousClock.now
                if tickStart >= renewedAt + configuration.renewInterval {
                    renewedAt = tickStart
                    await renewAndTake()
                }
                await dispatchRound()
                try? await Task.sleep(until: tickStart + configuration.tick)
            }
        } onGracefulShutdown: {
            self.state.withLock { $0.stopping = true }
        }
        // What was recorded and not acknowledged stays `dialing`: the next holder publishes it again. The leases go
        // back now so that holder need not wait for them to pass.
        let held = state.withLock { $0.held.keys.map { $0 } }
        do {
            try await withTimeout(configuration.databaseTimeout) { [store, configuration] in
                try await store.releaseCampaignLeases(held, owner: configuration.schedulerID)
            }
        } catch {
            logger.warning("campaign leases not released; they pass on their own", metadata: ["error": "\(error)"])
        }
    }

    // MARK: - Leases

    private func renewAndTake() async {
        let now = clock.now()
        let held = heldCampaigns
        do {
            let renewed = try await withTimeout(configuration.databaseTimeout) { [store, configuration] in
                try await store.renewCampaignLeases(
                    held, owner: configuration.schedulerID, lease: configuration.lease, at: now)
            }
            let kept = Set(renewed.map(\.campaign.id))
            state.withLock { state in
                for id in held where !kept.contains(id) {
                    state.held[id] = nil
                    state.unpublished[id] = nil
                }
                for lease in renewed { state.held[lease.campaign.id]?.campaign = lease.campaign }
            }
            for id in held where !kept.contains(id) {
                logger.info("campaign no longer held here", metadata: ["campaign.id": "\(id)"])
            }
            let room = configuration.maxCampaigns - kept.count
            guard room > 0 else { return }
            let taken = try await withTimeout(configuration.databaseTimeout) { [store, configuration] in
                try await store.leaseCampaigns(
                    owner: configuration.schedulerID, limit: room, lease: configuration.lease, at: now)
            }
            for lease in taken {
                await take(lease.campaign, at: now)
            }
            metrics.campaignsHeld.record(state.withLock { $0.held.count })
        } catch {
            logger.warning("campaign leases not renewed", metadata: ["error": "\(error)"])
        }
    }

    /// Starts holding a campaign: the commands of its attempts in flight are published again (a previous holder
    /// may have died before publishing them; a worker dials a call id once).
    private func take(_ campaign: Campaign, at now: Date) async {
        let start = ContinuousClock.now
        var resumed: [OriginateCommand] = []
        do {
            let dialing = try await store.dialingContacts(campaign: campaign.id)
            resumed = dialing.compactMap { command(for: $0, of: campaign, at: now) }
        } catch {
            logger.warning(
                "campaign's calls in flight not read; it is taken at the next renewal",
                metadata: ["campaign.id": "\(campaign.id)", "error": "\(error)"])
            try? await store.releaseCampaignLeases([campaign.id], owner: configuration.schedulerID)
            return
        }
        state.withLock { state in
            state.held[campaign.id] = Held(
                campaign: campaign, tokens: 0, refilledAt: start, idleUntil: start, checkedCompletionAt: start)
            state.unpublished[campaign.id] = resumed
        }
        logger.info(
            "campaign taken",
            metadata: ["campaign.id": "\(campaign.id)", "calls.republished": "\(resumed.count)"])
    }

    // MARK: - Dispatch

    private func dispatchRound() async {
        let ids = heldCampaigns
        for id in ids {
            await publishPending(id)
            await dispatch(id)
        }
    }

    private func dispatch(_ id: UUID) async {
        let instant = ContinuousClock.now
        guard
            let (campaign, allowance) = state.withLock({ state -> (Campaign, Int)? in
                guard var held = state.held[id], instant >= held.idleUntil else { return nil }
                let rate = held.campaign.settings.maxCallsPerSecond
                let elapsed = (instant - held.refilledAt).timeInterval
                held.tokens = min(max(1, rate / 5), held.tokens + rate * elapsed)
                held.refilledAt = instant
                state.held[id] = held
                return (held.campaign, Int(held.tokens))
            })
        else { return }
        let now = clock.now()
        do {
            if ContinuousClock.now >= (state.withLock { $0.held[id]?.checkedCompletionAt } ?? instant) + .seconds(1) {
                state.withLock { $0.held[id]?.checkedCompletionAt = ContinuousClock.now }
                if try await store.completeCampaignIfDone(id, owner: configuration.schedulerID, at: now) {
                    logger.info("campaign completed", metadata: ["campaign.id": "\(id)"])
                    state.withLock {
                        $0.held[id] = nil
                        $0.unpublished[id] = nil
                    }
                    return
                }
            }
            if let endsAt = campaign.settings.endsAt, now >= endsAt { return }
            if let startsAt = campaign.settings.startsAt, now < startsAt { return }
            guard allowance > 0 else { return }
            let started = ContinuousClock.now
            let result = try await withTimeout(configuration.databaseTimeout) { [store, configuration] in
                try await store.dispatchDueContacts(
                    of: campaign, owner: configuration.schedulerID, limit: allowance, at: now)
            }
            metrics.dispatchDuration.record(duration: ContinuousClock.now - started)
            if result.leaseLost {
                logger.info("campaign lease lost", metadata: ["campaign.id": "\(id)"])
                state.withLock {
                    $0.held[id] = nil
                    $0.unpublished[id] = nil
                }
                return
            }
            metrics.doNotCallSkipped.increment(by: result.doNotCall)
            let commands = result.dials.compactMap { command(for: $0, of: campaign, at: now) }
            state.withLock { state in
                state.held[id]?.tokens -= Double(result.dials.count)
                if result.dials.isEmpty && result.rescheduled == 0 && result.doNotCall == 0 && !result.atLiveLimit {
                    // Nothing due: look again in a moment, not every tick.
                    state.held[id]?.idleUntil = ContinuousClock.now + .milliseconds(500)
                }
                state.unpublished[id, default: []] += commands
            }
            await publishPending(id)
        } catch {
            logger.warning("campaign dispatch failed", metadata: ["campaign.id": "\(id)", "error": "\(error)"])
        }
    }

    /// Publishes a campaign's recorded commands; those Kafka did not acknowledge stay for the next round.
    private func publishPending(_ id: UUID) async {
        let commands = state.withLock { state -> [OriginateCommand] in
            defer { state.unpublished[id] = nil }
            return state.unpublished[id] ?? []
        }
        guard !commands.isEmpty else { return }
        let failed = await withTaskGroup(of: OriginateCommand?.self) { group in
            for command in commands {
                group.addTask { [publisher] in
                    do {
                        _ = try await publisher.publish(command, traceParent: nil)
                        return nil
                    } catch {
                        return command
                    }
                }
            }
            var failed: [OriginateCommand] = []
            for await command in group {
                if let command { failed.append(command) }
            }
            return failed
        }
        metrics.callsDispatched.increment(by: commands.count - failed.count)
        if !failed.isEmpty {
            logger.warning(
                "originate commands not acknowledged; publishing them again",
                metadata: ["campaign.id": "\(id)", "commands": "\(failed.count)"])
            state.withLock { state in
                if state.held[id] != nil { state.unpublished[id, default: []] += failed }
            }
        }
    }

    /// The originate command of a contact's attempt; its custom fields and the campaign's identity go in the call's
    /// metadata.
    private func command(for dial: CampaignDial, of campaign: Campaign, at now: Date) -> OriginateCommand? {
        let target: DialTarget
        do {
            target = try DialTarget(dial.phone)
        } catch {
            // Imports store E.164 numbers only; a stored number that no longer validates is a bug, not a contact.
            logger.error(
                "campaign contact's number does not validate; its attempt stays in flight",
                metadata: ["campaign.id": "\(campaign.id)", "contact.id": "\(dial.contactID)", "error": "\(error)"])
            return nil
        }
        var values = dial.fields.mapValues { JSONValue.string($0) }
        values["campaign_id"] = .string(campaign.id.uuidString.lowercased())
        values["contact_id"] = .string(dial.contactID.uuidString.lowercased())
        values["attempt"] = .number(Double(dial.attempt))
        let metadata =
            (try? ClientMetadata(values))
            ?? (try? ClientMetadata([
                "campaign_id": .string(campaign.id.uuidString.lowercased()),
                "contact_id": .string(dial.contactID.uuidString.lowercased()),
                "attempt": .number(Double(dial.attempt)),
            ])) ?? .empty
        return OriginateCommand(
            callID: dial.callID, requestedAt: now,
            expiresAt: now.addingTimeInterval(configuration.commandTTL.timeInterval),
            to: target, callerID: campaign.settings.callerID, dialplan: campaign.settings.dialplan,
            timeoutSeconds: campaign.settings.timeoutSeconds, metadata: metadata,
            requestedBy: "campaign:\(campaign.id.uuidString.lowercased())", organizationID: campaign.organizationID,
            machineDetection: campaign.settings.machineDetection, record: campaign.settings.record)
    }
}
