import CallDomain
import CallStore
import Foundation
import Logging
import PostgresNIO
import TestSupport
import Testing

/// The store against a real PostgreSQL (a fresh database per test).
@Suite struct CallStoreTests {
    static func command(
        _ id: CallID = .generate(), to: String = "+15550100001", at: Date = Date()
    ) throws
        -> OriginateCommand
    {
        OriginateCommand(
            callID: id, requestedAt: at, expiresAt: at.addingTimeInterval(300), to: try DialTarget(to),
            metadata: try ClientMetadata(["crm": .string("x")]), requestedBy: "tester")
    }

    static func event(_ id: CallID, _ seq: Int, _ status: CallStatus, from previous: CallStatus) -> CallStatusEvent {
        CallStatusEvent(
            callID: id, seq: seq, status: status, previousStatus: previous, occurredAt: Date(), nodeID: "n1",
            workerID: "w1", channelID: id.description)
    }

    @Test func migrationsAreIdempotentAndSafeWhenConcurrent() async throws {
        try await TestDatabase.withStore { store, url in
            // The suite helper already migrated once; four more concurrent runs must all find nothing to do.
            let results = try await withThrowingTaskGroup(of: [Int].self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        try await TestDatabase.withClient(url: url) { client in
                            try await Migrator(client: client, logger: Logger(label: "t")).migrate()
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.filter { !$0.isEmpty }.isEmpty)
            let bundled = try Migrator.bundledMigrations().count
            let rows = try await store.client.query("SELECT count(*) FROM schema_migrations")
            for try await count in rows.decode(Int.self) {
                #expect(count == bundled)
            }
        }
    }

    @Test func concurrentMigrationsOnAnEmptyDatabaseApplyEachVersionOnce() async throws {
        try await TestDatabase.withStore { store, _ in
            let name = "test_fresh_\(UInt32.random(in: 0 ... .max))"
            try await store.client.query("CREATE DATABASE \(unescaped: name)")
            let url = try TestDatabase.url(database: name)
            let applied = try await withThrowingTaskGroup(of: [Int].self) { group in
                for _ in 0..<3 {
                    group.addTask {
                        try await TestDatabase.withClient(url: url) { client in
                            try await Migrator(client: client, logger: Logger(label: "t")).migrate()
                        }
                    }
                }
                return try await group.reduce(into: [Int]()) { $0 += $1 }
            }
            try await store.client.query("DROP DATABASE \(unescaped: name) WITH (FORCE)")
            let versions = try Migrator.bundledMigrations().map(\.version)
            #expect(applied.sorted() == versions)
        }
    }

    @Test func usersAreCreatedFoundAndUnique() async throws {
        try await TestDatabase.withStore { store, _ in
            let actor = AuditActor(name: "test")
            let user = try await store.createUser(
                username: "alice", passwordHash: "$2b$12$hash", role: .operator, organization: .default, by: actor)
            #expect(try await store.user(named: "alice") == user)
            #expect(try await store.user(id: user.id)?.username == "alice")
            #expect(user.organizationID == .default)
            await #expect(throws: StoreError.duplicateUsername) {
                try await store.createUser(
                    username: "alice", passwordHash: "x", role: .viewer, organization: .default, by: actor)
            }
            await #expect(throws: StoreError.unknownOrganization) {
                try await store.createUser(
                    username: "bob", passwordHash: "x", role: .viewer, organization: .generate(), by: actor)
            }
            let changed = try await store.updateUser(
                id: user.id, in: .default, disabled: true, role: .admin, by: actor)
            #expect(changed?.disabled == true)
            #expect(changed?.role == .admin)
            #expect(try await store.user(named: "alice")?.disabled == true)
            #expect(try await store.user(named: "nobody") == nil)
            #expect(try await store.users(in: .default).map(\.username) == ["alice"])
            let actions = try await store.auditEvents(in: .default, limit: 10, before: nil).map(\.action)
            #expect(actions == ["user.role_changed", "user.disabled", "user.created"])
        }
    }

    @Test func concurrentClaimsHaveExactlyOneWinner() async throws {
        try await TestDatabase.withStore { store, _ in
            for _ in 0..<5 {
                let command = try Self.command()
                let results = try await withThrowingTaskGroup(of: ClaimResult.self) { group in
                    for worker in 0..<8 {
                        group.addTask { try await store.claim(command, nodeID: "n1", workerID: "w\(worker)") }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                let winners = results.filter { if case .won = $0 { true } else { false } }
                #expect(winners.count == 1)
                #expect(results.filter { $0 == .alreadyTaken(.dispatched) }.count == 7)
                let record = try #require(try await store.call(id: command.callID))
                #expect(record.status == .dispatched)
                #expect(record.timeline.map(\.status) == [.queued, .dispatched])
            }
        }
    }

    @Test func claimSkipsCanceledAndEndedCalls() async throws {
        try await TestDatabase.withStore { store, _ in
            let command = try Self.command()
            try await store.recordQueued([command])
            guard
                case .changed(let event) = try await store.cancelQueued(
                    callID: command.callID, nodeID: nil, workerID: "w")
            else { Issue.record("cancel did not win"); return }
            #expect(event.status == .canceled && event.seq == 1)
            #expect(try await store.claim(command, nodeID: "n1", workerID: "w1") == .alreadyTaken(.canceled))
            #expect(
                try await store.cancelQueued(callID: command.callID, nodeID: nil, workerID: "w")
                    == .notQueued(.canceled))
            #expect(try await store.cancelQueued(callID: .generate(), nodeID: nil, workerID: "w") == .unknown)
        }
    }

    @Test func expiredCommandsAreNeverClaimed() async throws {
        try await TestDatabase.withStore { store, _ in
            let command = try Self.command()
            guard case .changed(let event) = try await store.expireQueued(command, nodeID: "n1", workerID: "w1") else {
                Issue.record("expire did not win"); return
            }
            #expect(event.status == .expired)
            #expect(try await store.claim(command, nodeID: "n1", workerID: "w1") == .alreadyTaken(.expired))
        }
    }

    @Test func statusEventsApplyIdempotentlyAndInOrder() async throws {
        try await TestDatabase.withStore { store, _ in
            let command = try Self.command()
            guard case .won = try await store.claim(command, nodeID: "n1", workerID: "w1") else {
                Issue.record("claim lost"); return
            }
            let id = command.callID
            #expect(try await store.apply(Self.event(id, 2, .initiated, from: .dispatched)) == .applied)
            // A duplicate and an overtaken event are ignored.
            #expect(try await store.apply(Self.event(id, 2, .initiated, from: .dispatched)) == .stale)
            #expect(try await store.apply(Self.event(id, 4, .answered, from: .ringing)) == .applied)
            #expect(try await store.apply(Self.event(id, 3, .ringing, from: .initiated)) == .stale)
            // An illegal move (answered → busy) is refused.
            #expect(
                try await store.apply(Self.event(id, 5, .busy, from: .answered)) == .illegalTransition(from: .answered))
            var completed = Self.event(id, 6, .completed, from: .answered)
            completed.hangupCause = HangupCause(code: 16, text: "Normal Clearing")
            completed.endedAt = Date()
            #expect(try await store.apply(completed) == .applied)
            // A terminal status is final.
            #expect(try await store.apply(Self.event(id, 7, .failed, from: .completed)) == .alreadyTerminal(.completed))
            let record = try #require(try await store.call(id: id))
            #expect(record.status == .completed)
            #expect(record.seq == 6)
            #expect(record.hangupCause == HangupCause(code: 16, text: "Normal Clearing"))
            #expect(record.endedAt != nil)
            #expect(record.timeline.map(\.seq) == [0, 1, 2, 4, 6])
            #expect(record.timeline.map(\.status) == [.queued, .dispatched, .initiated, .answered, .completed])
        }
    }

    @Test func aBatchAppliesSeveralChangesOfOneCallInSeqOrder() async throws {
        try await TestDatabase.withStore { store, _ in
            let command = try Self.command()
            _ = try await store.claim(command, nodeID: "n1", workerID: "w1")
            let id = command.callID
            // Shuffled and duplicated, as a redelivered batch may be.
            let batch = [
                Self.event(id, 4, .busy, from: .ringing), Self.event(id, 2, .initiated, from: .dispatched),
                Self.event(id, 3, .ringing, from: .initiated), Self.event(id, 2, .initiated, from: .dispatched),
            ]
            let results = try await store.apply(batch)
            #expect(results.filter { $0 == .applied }.count == 3)
            #expect(results.filter { $0 == .stale }.count == 1)
            #expect(try await store.call(id: id)?.status == .busy)
        }
    }

    @Test func anEventBeforeItsCommandCreatesTheCallAndTheCommandFillsItIn() async throws {
        try await TestDatabase.withStore { store, _ in
            let command = try Self.command(to: "+15550109999")
            #expect(try await store.apply(Self.event(command.callID, 1, .dispatched, from: .queued)) == .applied)
            #expect(try await store.call(id: command.callID)?.to == nil)
            try await store.recordQueued([command])
            let record = try #require(try await store.call(id: command.callID))
            #expect(record.status == .dispatched)
            #expect(record.to == "+15550109999")
            #expect(record.metadata == ["crm": .string("x")])
            // Recording the same command again changes nothing.
            try await store.recordQueued([command])
            #expect(try await store.call(id: command.callID)?.status == .dispatched)
        }
    }

    @Test func paginationOverAThousandCallsMissesAndRepeatsNothing() async throws {
        try await TestDatabase.withStore { store, _ in
            let base = Date(timeIntervalSince1970: 1_790_000_000)
            var commands: [OriginateCommand] = []
            for index in 0..<1000 {
                // Groups of calls share a timestamp so the id must break ties.
                let at = base.addingTimeInterval(Double(index / 4))
                commands.append(try Self.command(to: index % 3 == 0 ? "+15550100003" : "+15550100001", at: at))
            }
            for chunk in stride(from: 0, to: commands.count, by: 250) {
                try await store.recordQueued(Array(commands[chunk..<min(chunk + 250, commands.count)]))
            }
            var seen: [CallID] = []
            var cursor: CallCursor?
            var pages = 0
            repeat {
                let page = try await store.listCalls(in: .default, filter: CallFilter(), limit: 37, cursor: cursor)
                seen += page.calls.map(\.id)
                cursor = page.nextCursor.flatMap { CallCursor(token: $0.token) }
                pages += 1
                #expect(page.calls.count <= 37)
            } while cursor != nil
            #expect(seen.count == 1000)
            #expect(Set(seen).count == 1000)
            #expect(pages == 28)
            let ordered = commands.sorted { ($0.requestedAt, $0.callID) > ($1.requestedAt, $1.callID) }.map(\.callID)
            #expect(seen == ordered)

            // Filters combine with pagination.
            var filtered: [CallID] = []
            cursor = nil
            repeat {
                let page = try await store.listCalls(
                    in: .default,
                    filter: CallFilter(status: .queued, to: "+15550100003", createdAfter: base.addingTimeInterval(10)),
                    limit: 50, cursor: cursor)
                filtered += page.calls.map(\.id)
                cursor = page.nextCursor
            } while cursor != nil
            let expected = commands.filter {
                $0.to.value == "+15550100003" && $0.requestedAt >= base.addingTimeInterval(10)
            }
            #expect(Set(filtered) == Set(expected.map(\.callID)))
            #expect(filtered.count == expected.count)
        }
    }

    @Test func cursorsAreOpaqueAndTamperProofEnough() {
        let cursor = CallCursor(createdAtMicros: 1_790_000_000_123_456, id: UUID())
        #expect(CallCursor(token: cursor.token) == cursor)
        #expect(CallCursor(token: "garbage") == nil)
        #expect(CallCursor(token: "' OR 1=1 --") == nil)
        #expect(CallCursor(token: String(repeating: "A", count: 10_000)) == nil)
    }

    @Test func idempotencyKeysBindOnce() async throws {
        try await TestDatabase.withStore { store, _ in
            let user = UUID()
            let callID = CallID.derived(userID: user, idempotencyKey: "k1")
            let results = try await withThrowingTaskGroup(of: IdempotencyReservation.self) { group in
                for _ in 0..<10 {
                    group.addTask {
                        try await store.reserveIdempotencyKey(
                            userID: user, key: "k1", fingerprint: "f1", callID: callID)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.filter { $0 == .reserved }.count == 1)
            #expect(results.filter { $0 == .existing(fingerprint: "f1", callID: callID) }.count == 9)
            try await store.releaseIdempotencyKey(userID: user, key: "k1")
            #expect(
                try await store.reserveIdempotencyKey(userID: user, key: "k1", fingerprint: "f2", callID: callID)
                    == .reserved)
        }
    }

    @Test func liveCallsOfANodeAreListed() async throws {
        try await TestDatabase.withStore { store, _ in
            let live = try Self.command()
            let ended = try Self.command()
            _ = try await store.claim(live, nodeID: "node-x", workerID: "w1")
            _ = try await store.claim(ended, nodeID: "node-x", workerID: "w1")
            _ = try await store.apply(Self.event(ended.callID, 2, .failed, from: .dispatched))
            #expect(try await store.liveCalls(nodeID: "node-x").map(\.id) == [live.callID])
            #expect(try await store.liveCalls(nodeID: "node-y").isEmpty)
        }
    }
}
