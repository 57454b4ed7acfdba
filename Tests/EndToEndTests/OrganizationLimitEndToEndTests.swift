import CallDomain
import CallStore
import Foundation
import TestSupport
import Testing

/// An organization's limits with separate processes: two gateways and two workers (`devstack up --gateways 2`).
@Suite(.serialized, .timeLimit(.minutes(5))) struct OrganizationLimitEndToEndTests {
    @Test("two gateways, two workers: an organization's live calls and calls per second stay within its limits")
    func limitsHoldAcrossGatewaysAndWorkers() async throws {
        try await TestDatabase.withStore { store, databaseURL in
            let status = try await DevStackProcess.run(databaseURL: databaseURL, workers: 2, gateways: 2) { stack in
                try await Self.exercise(stack: stack, store: store)
            }
            #expect(status == 0)
        }
    }

    static func exercise(stack: DevStackProcess, store: CallStore) async throws {
        #expect(stack.apiURLs.count == 2)
        let gateways = stack.apiURLs.map { APIClient(baseURL: $0) }
        // devstack's admin is a platform operator of the default organization: it limits its own organization.
        let token = try await gateways[0].token(username: "admin", password: stack.adminPassword)
        func setLimits(_ json: String) async throws {
            let answer = try await gateways[1].request(
                "PATCH", "/api/v1/organizations/\(OrganizationID.default)", token: token, body: Data(json.utf8))
            #expect(answer.status == 200, "\(String(decoding: answer.body, as: UTF8.self))")
            // Gateways re-read limits within 2 s.
            try await Task.sleep(for: .milliseconds(2100))
        }

        // Calls per second: 2, and 12 calls held 1 s sent at once through both gateways; they are all accepted and
        // dialed at the organization's pace, whichever worker takes them.
        try await setLimits(#"{"max_calls_per_second":2,"max_live_calls":null}"#)
        let paced = try await place(12, number: "+155501000001", through: gateways, token: token, store: store)
        #expect(paced.refusals == 0)
        let times = paced.records.compactMap(\.dispatchedAt).sorted()
        let span = try #require(times.last).timeIntervalSince(try #require(times.first))
        let rate = Double(times.count - 1) / span
        #expect(rate <= 2 * 1.1, "\(rate) calls per second")
        #expect(rate >= 2 * 0.7, "the pace was the limit's: \(rate) calls per second")

        // Live calls: 2, and calls held 3 s: beyond two in progress the gateways answer 429, and no more than two
        // are ever up.
        try await setLimits(#"{"max_calls_per_second":null,"max_live_calls":2}"#)
        var held: [CallID] = []
        for gateway in gateways {
            let answer = try await gateway.request(
                "POST", "/api/v1/calls", token: token, body: Data(#"{"to":"+155501000003"}"#.utf8))
            #expect(answer.status == 202)
            let id = try #require(try answer.json()["id"] as? String)
            held.append(try #require(CallID(id)))
        }
        for callID in held {
            _ = try await eventually(timeout: .seconds(30)) {
                try await store.call(id: callID).flatMap { $0.status == .answered ? true : nil }
            }
        }
        try await Task.sleep(for: .milliseconds(300))  // past the gateways' cached count
        for gateway in gateways {
            let refused = try await gateway.request(
                "POST", "/api/v1/calls", token: token, body: Data(#"{"to":"+155501000003"}"#.utf8))
            #expect(refused.status == 429, "two calls are up: the limit")
            #expect(
                try refused.json()["type"] as? String
                    == "https://outbound-dialer.example/problems/organization-call-limit")
        }
        // More calls, sent again while refused: never more than two up at once.
        let capped = try await place(4, number: "+155501000003", through: gateways, token: token, store: store)
        var records = capped.records
        for callID in held {
            records.append(
                try await eventually(timeout: .seconds(30)) {
                    try await store.call(id: callID).flatMap { $0.status.isTerminal ? $0 : nil }
                })
        }
        #expect(records.allSatisfy { $0.status == .completed })
        #expect(Self.peakLive(records) <= 2, "peak of \(Self.peakLive(records)) live calls")
    }

    /// Places `count` calls alternately through `gateways`, sending a call refused at the live-call limit (429)
    /// again after a pause, as a client would; returns them once ended, and how many requests were refused.
    static func place(
        _ count: Int, number: String, through gateways: [APIClient], token: String, store: CallStore
    ) async throws -> (records: [CallRecord], refusals: Int) {
        var callIDs: [String] = []
        var refusals = 0
        let started = ContinuousClock.now
        while callIDs.count < count, ContinuousClock.now - started < .seconds(90) {
            let response = try await gateways[callIDs.count % gateways.count].request(
                "POST", "/api/v1/calls", token: token, body: Data(#"{"to":"\#(number)"}"#.utf8))
            switch response.status {
            case 202:
                callIDs.append(try #require(try response.json()["id"] as? String))
            case 429:
                refusals += 1
                #expect(
                    try response.json()["type"] as? String
                        == "https://outbound-dialer.example/problems/organization-call-limit")
                try await Task.sleep(for: .milliseconds(300))
            default:
                throw TestEnvironmentError(
                    "unexpected answer \(response.status): \(String(decoding: response.body, as: UTF8.self))")
            }
        }
        #expect(callIDs.count == count)
        var records: [CallRecord] = []
        for id in callIDs {
            let callID = try #require(CallID(id))
            let record: CallRecord
            do {
                record = try await eventually(timeout: .seconds(90)) {
                    try await store.call(id: callID).flatMap { $0.status.isTerminal ? $0 : nil }
                }
            } catch {
                // Where the call stopped, for the report.
                let stuck = try await store.call(id: callID)
                let timeline = stuck?.timeline.map { "\($0.seq) \($0.status.rawValue) \($0.workerID ?? "-")" } ?? []
                throw TestEnvironmentError(
                    "call \(id) not ended within 90 s: \(stuck?.status.rawValue ?? "not recorded"), worker "
                        + "\(stuck?.workerID ?? "none"), epoch \(stuck?.ownerEpoch ?? -1), timeline \(timeline)")
            }
            #expect(record.status == .completed, "\(id): \(record.status) \(record.detail ?? "")")
            #expect(record.timeline.filter { $0.status == .dispatched }.count == 1)
            records.append(record)
        }
        return (records, refusals)
    }

    /// The most calls up at once, from the history's own times (dispatched to ended: never longer than the limit's
    /// view, which counts a call until its end is recorded).
    static func peakLive(_ records: [CallRecord]) -> Int {
        var changes: [(Date, Int)] = []
        for record in records {
            guard let dispatched = record.dispatchedAt, let ended = record.endedAt else { continue }
            changes.append((dispatched, 1))
            changes.append((ended, -1))
        }
        var live = 0
        var peak = 0
        for (_, change) in changes.sorted(by: { $0.0 < $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }) {
            live += change
            peak = max(peak, live)
        }
        return peak
    }
}
