import CallDomain
import CallStore
import CampaignScheduler
import Campaigns
import EmbeddedKafka
import Foundation
import PostgresNIO
import Synchronization
import TestSupport
import Testing

/// The scheduler against real PostgreSQL and the embedded Kafka broker, with a stand-in for the dialer workers that
/// ends each call as its number says.
@Suite(.timeLimit(.minutes(4)))
struct SchedulerTests {
    static let allDay: CallingWindows = {
        let day = try! LocalTimeRange("00:00", "23:59")
        return try! CallingWindows(Dictionary(uniqueKeysWithValues: Weekday.allCases.map { ($0, [day]) }))
    }()

    @Test(
        "the scheduler's clock decides: nothing before the window opens (08:00 in New York, the morning clocks go forward), a number put on the do-not-call list meanwhile is never dialed, busy numbers are retried after their wait; the campaign completes"
    )
    func windowsRetriesAndDoNotCall() async throws {
        try await SchedulerEnvironment.run { environment in
            // 07:30 EDT on 2026-03-08.
            let clock = ManualClock(WireCoding.parseTimestamp("2026-03-08T11:30:00Z")!)
            let detection = try MachineDetection(mode: .detectMessageEnd, onMachine: .continue)
            let campaign = try await environment.startCampaign(
                count: 10, rate: 100, live: 5, windows: .standard, at: clock.now(), machineDetection: detection,
                record: true)
            try await environment.withScheduler(environment.configuration(), clock: clock) {
                try await Task.sleep(for: .seconds(2))
                #expect(environment.workers.dials.isEmpty, "nothing is dialed before the window opens")
                #expect(
                    try await environment.store.addDoNotCall(
                        ["+12125550003"], campaign: nil, reason: "asked", in: environment.organization,
                        by: SchedulerEnvironment.actor) == 1)
                clock.advance(by: 30 * 60)
                // Every first attempt ends; the busy ones wait a second of the scheduler's clock.
                try await eventually("the first attempts") {
                    let contacts = try await environment.contacts(of: campaign)
                    return contacts.allSatisfy { $0.state == "done" || ($0.state == "pending" && $0.attempts == 1) }
                        && contacts.filter { $0.state == "pending" }.count == 2
                }
                try await Task.sleep(for: .seconds(1))
                #expect(environment.workers.dials.count == 9, "the retries wait for the clock")
                #expect(
                    environment.workers.dials.allSatisfy { $0.machineDetection == detection },
                    "every call carries the campaign's answering machine detection")
                #expect(environment.workers.dials.allSatisfy { $0.record }, "and its recording setting")
                clock.advance(by: 2)
                try await eventually("the campaign completed") {
                    try await environment.store.campaign(id: campaign.id, in: environment.organization)?.state
                        == .completed
                }
            }
            try await environment.verify(campaign, doNotCall: ["+12125550003"], maxLive: 5)
        }
    }

    @Test(
        "SIGKILL of a scheduler mid-campaign: another takes the campaign over and every contact is attempted exactly as the rules say (none twice, none skipped)"
    )
    func killMidCampaign() async throws {
        try await SchedulerEnvironment.run(ringTime: .milliseconds(200)) { environment in
            let campaign = try await environment.startCampaign(
                count: 300, rate: 40, live: 15, windows: Self.allDay, at: Date())
            let processEnvironment = [
                "DATABASE_URL": environment.databaseURL,
                "KAFKA_BOOTSTRAP_SERVERS": environment.kafka.bootstrapServers,
                "KAFKA_TOPIC_ORIGINATE": environment.topics.originate,
                "KAFKA_TOPIC_STATUS": environment.topics.status,
                "KAFKA_PROP_SESSION_TIMEOUT_MS": "6000",
                "KAFKA_PROP_HEARTBEAT_INTERVAL_MS": "500",
                "CAMPAIGN_LEASE_SECONDS": "3",
                "CAMPAIGN_RENEW_MS": "500",
                "CAMPAIGN_TICK_MS": "20",
                "SCHEDULER_HOST": "127.0.0.1",
                "SCHEDULER_PORT": "0",
                "LOG_LEVEL": "info",
            ]
            let first = try await ServiceProcess(
                executable: "campaign-scheduler", idVariable: "SCHEDULER_ID", id: unique("scheduler-a"),
                environment: processEnvironment)
            do {
                try await eventually("calls dialed by the first scheduler") { environment.workers.dials.count >= 60 }
            } catch {
                first.kill()
                Issue.record("the first scheduler's log:\n\(first.log.suffix(4000))")
                throw error
            }
            first.kill()
            let killedAt = environment.workers.dials.count
            let second = try await ServiceProcess(
                executable: "campaign-scheduler", idVariable: "SCHEDULER_ID", id: unique("scheduler-b"),
                environment: processEnvironment)
            defer { second.kill() }
            do {
                try await eventually("the campaign completed", timeout: .seconds(120)) {
                    try await environment.store.campaign(id: campaign.id, in: environment.organization)?.state
                        == .completed
                }
            } catch {
                Issue.record("first:\n\(first.log.suffix(3000))\nsecond:\n\(second.log.suffix(3000))")
                throw error
            }
            await second.terminate()
            #expect(killedAt < 300 + 60, "the kill came mid-campaign")
            #expect(second.log.contains("campaign taken"))
            try await environment.verify(campaign, doNotCall: [], maxLive: 15)
        }
    }
}

extension SchedulerEnvironment {
    /// Checks that every contact came to what the rules say (those on `doNotCall` never dialed), each attempt dialed
    /// once and one at a time per contact, and never more than `maxLive` calls at once.
    func verify(_ campaign: Campaign, doNotCall: Set<String>, maxLive: Int) async throws {
        let contacts = try await contacts(of: campaign)
        let dials = workers.dials
        let byContact = Dictionary(grouping: dials, by: \.contactID)
        for contact in contacts {
            let attempts = (byContact[contact.contactID.uuidString.lowercased()] ?? []).sorted {
                $0.attempt < $1.attempt
            }
            #expect(contact.state == "done", "\(contact.phone)")
            if doNotCall.contains(contact.phone) {
                #expect(contact.disposition == "do_not_call" && attempts.isEmpty, "\(contact.phone)")
                continue
            }
            let expected = DialOutcomes.expected(for: contact.phone)
            #expect(contact.attempts == expected.attempts, "\(contact.phone) attempts")
            #expect(contact.disposition == expected.disposition, "\(contact.phone) disposition")
            // Skipped or doubled attempts show here: exactly attempts 1...n, each call id dialed once.
            #expect(attempts.map(\.attempt) == Array(1...expected.attempts), "\(contact.phone) dials")
            // Never two at once: an attempt is dialed after the previous one ended.
            for (previous, next) in zip(attempts, attempts.dropFirst()) {
                #expect((previous.endedAt ?? .now) <= next.receivedAt, "\(contact.phone) overlapping attempts")
            }
        }
        // Calls in flight at once, as the stand-in saw them.
        var edges: [(ContinuousClock.Instant, Int)] = []
        for dial in dials {
            edges.append((dial.receivedAt, 1))
            edges.append((dial.endedAt ?? .now, -1))
        }
        var live = 0
        var peak = 0
        for (_, change) in edges.sorted(by: { $0.0 < $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }) {
            live += change
            peak = max(peak, live)
        }
        #expect(peak <= maxLive, "\(peak) calls at once")
    }
}
