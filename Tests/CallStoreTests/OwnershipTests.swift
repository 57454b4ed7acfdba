import CallDomain
import CallStore
import Foundation
import Logging
import PostgresNIO
import TestSupport
import Testing

/// One owner per call: owner epochs, heartbeats, takeovers and the fenced writes, against a real PostgreSQL.
@Suite struct OwnershipTests {
    @Test("a claim raises the owner epoch; a takeover raises it again only from the epoch it saw")
    func takeoverIsConditionalOnTheEpoch() async throws {
        try await TestDatabase.withStore { store, _ in
            let command = try CallStoreTests.command()
            guard case .won(let dispatched) = try await store.claim(command, nodeID: "n1", workerID: "a") else {
                Issue.record("claim lost")
                return
            }
            #expect(dispatched.ownerEpoch == 1)
            #expect(try await store.call(id: command.callID)?.ownerEpoch == 1)

            #expect(try await store.takeOver(command.callID, expectedEpoch: 0, nodeID: "n1", workerID: "b") == nil)
            let taken = try #require(
                try await store.takeOver(command.callID, expectedEpoch: 1, nodeID: "n1", workerID: "b"))
            #expect(taken.ownerEpoch == 2)
            #expect(taken.workerID == "b")
            // Two takers that saw the same epoch: one wins.
            #expect(try await store.takeOver(command.callID, expectedEpoch: 1, nodeID: "n1", workerID: "c") == nil)
        }
    }

    @Test("the history refuses an event of an owner the call was taken from, and applies the new owner's")
    func staleOwnerEventsAreRefused() async throws {
        try await TestDatabase.withStore { store, _ in
            let command = try CallStoreTests.command()
            _ = try await store.claim(command, nodeID: "n1", workerID: "a")
            var ringing = CallStoreTests.event(command.callID, 2, .ringing, from: .dispatched)
            ringing.ownerEpoch = 1
            #expect(try await store.apply(ringing) == .applied)
            _ = try #require(try await store.takeOver(command.callID, expectedEpoch: 1, nodeID: "n1", workerID: "b"))

            var staleEnd = CallStoreTests.event(command.callID, 3, .busy, from: .ringing)
            staleEnd.ownerEpoch = 1
            #expect(try await store.apply(staleEnd) == .staleOwner(epoch: 1))
            var end = CallStoreTests.event(command.callID, 8, .noAnswer, from: .ringing)
            end.ownerEpoch = 2
            end.workerID = "b"
            #expect(try await store.apply(end) == .applied)
            let record = try #require(try await store.call(id: command.callID))
            #expect(record.status == .noAnswer)
            #expect(record.timeline.map(\.seq) == [0, 1, 2, 8], "the stale owner's event left no timeline row")
            // An ended call is no one's to take over.
            #expect(try await store.takeOver(command.callID, expectedEpoch: 2, nodeID: "n1", workerID: "c") == nil)
        }
    }

    @Test("abandoned calls: live calls of the node whose owner has no recent heartbeat, never one's own")
    func abandonedCallsFollowHeartbeats() async throws {
        try await TestDatabase.withStore { store, _ in
            var byWorker: [String: CallID] = [:]
            for (worker, node) in [("alive", "n1"), ("dead", "n1"), ("ghost", "n1"), ("me", "n1"), ("other", "n2")] {
                let command = try CallStoreTests.command()
                _ = try await store.claim(command, nodeID: node, workerID: worker)
                byWorker[worker] = command.callID
            }
            for worker in ["alive", "dead", "me", "other"] {
                try await store.heartbeat(workerID: worker, nodeID: worker == "other" ? "n2" : "n1")
            }
            try await store.client.query(
                "UPDATE dialer_workers SET heartbeat_at = now() - interval '1 hour' WHERE worker_id IN ('dead', 'other')"
            )
            let abandoned = try await store.abandonedCalls(
                nodeID: "n1", ownerTimeout: .seconds(30), excludingWorker: "me", limit: 100)
            #expect(Set(abandoned.map(\.id)) == [byWorker["dead"]!, byWorker["ghost"]!])

            // A takeover that names the owner timeout refuses an owner whose heartbeat came back meanwhile.
            try await store.heartbeat(workerID: "dead", nodeID: "n1")
            #expect(
                try await store.takeOver(
                    byWorker["dead"]!, expectedEpoch: 1, nodeID: "n1", workerID: "me", ownerTimeout: .seconds(30))
                    == nil)
            let ghost = try #require(
                try await store.takeOver(
                    byWorker["ghost"]!, expectedEpoch: 1, nodeID: "n1", workerID: "me", ownerTimeout: .seconds(30)))
            #expect(ghost.workerID == "me")
        }
    }

    @Test("the originate mark is a fenced write, and a call taken over before it is known never dialed")
    func originateMarkIsFenced() async throws {
        try await TestDatabase.withStore { store, _ in
            let command = OriginateCommand(
                callID: .generate(), requestedAt: Date(timeIntervalSince1970: 1_800_000_000),
                expiresAt: Date(timeIntervalSince1970: 1_800_000_300), to: try DialTarget("+15550100002"),
                callerID: try CallerID(name: "Support", number: "+15550100999"),
                dialplan: try DialplanTarget(context: "agents", extension: "s", priority: 2), timeoutSeconds: 25,
                variables: try ChannelVariables(["CAMPAIGN": "spring"]),
                metadata: try ClientMetadata(["crm": .string("x")]), requestedBy: "tester", requestID: "req-1")
            _ = try await store.claim(command, nodeID: "n1", workerID: "a")
            let claimed = try #require(try await store.call(id: command.callID))
            #expect(claimed.originateSentAt == nil)
            #expect(claimed.originateCommand == command, "a new owner dials exactly what was asked")

            let taken = try #require(
                try await store.takeOver(command.callID, expectedEpoch: 1, nodeID: "n1", workerID: "b"))
            #expect(taken.originateSentAt == nil, "taken over before the mark: never dialed")
            #expect(try await store.markOriginating(command.callID, epoch: 1) == false, "the old owner is fenced")
            #expect(try await store.markOriginating(command.callID, epoch: 2))
            #expect(try await store.call(id: command.callID)?.originateSentAt != nil)
        }
    }

    @Test("migration 2 on a database with calls: existing rows get epoch 0 and stay claimable")
    func migrationKeepsExistingRows() async throws {
        try await TestDatabase.withDatabase(migratedBelow: 2) { client in
            let queued = CallID.generate()
            let live = CallID.generate()
            try await client.query(
                """
                INSERT INTO calls (id, status, seq, to_number, created_at, expires_at)
                VALUES (\(queued.uuid), 'queued', 0, '+15550100003', now(), now() + interval '5 minutes'),
                    (\(live.uuid), 'answered', 3, '+15550100004', now(), now() + interval '5 minutes')
                """)
            let applied = try await Migrator(client: client, logger: Logger(label: "t")).migrate()
            #expect(applied.first == 2)
            let migrated = CallStore(client: client, logger: Logger(label: "t"))
            #expect(try await migrated.call(id: live)?.ownerEpoch == 0)
            #expect(try await migrated.call(id: live)?.status == .answered)
            let command = try CallStoreTests.command(queued, to: "+15550100003")
            guard case .won(let event) = try await migrated.claim(command, nodeID: "n1", workerID: "a") else {
                Issue.record("the migrated queued call could not be claimed")
                return
            }
            #expect(event.ownerEpoch == 1)
        }
    }
}

@Suite struct OrganizationStoreTests {
    @Test("migration 3 on a database with users and calls: all of them land in the default organization")
    func existingRowsMoveToTheDefaultOrganization() async throws {
        try await TestDatabase.withDatabase(migratedBelow: 3) { client in
            let userID = UUID()
            let queued = CallID.generate()
            let ended = CallID.generate()
            try await client.query(
                """
                INSERT INTO users (id, username, password_hash, role)
                VALUES (\(userID), 'legacy-admin', '$2b$12$hash', 'admin')
                """)
            try await client.query(
                """
                INSERT INTO calls (id, status, seq, to_number, created_at, expires_at)
                VALUES (\(queued.uuid), 'queued', 0, '+15550100003', now(), now() + interval '5 minutes'),
                    (\(ended.uuid), 'completed', 5, '+15550100004', now(), now() + interval '5 minutes')
                """)

            let applied = try await Migrator(client: client, logger: Logger(label: "t")).migrate()
            // 3, and the migrations after it.
            #expect(applied.first == 3 && applied == Array(3...applied.count + 2))
            let migrated = CallStore(client: client, logger: Logger(label: "t"))
            let user = try #require(try await migrated.user(id: userID))
            #expect(user.organizationID == .default)
            #expect(!user.platformOperator)
            #expect(try await migrated.call(id: ended, in: .default)?.status == .completed)
            #expect(try await migrated.call(id: ended, in: .generate()) == nil)
            let page = try await migrated.listCalls(in: .default, filter: CallFilter(), limit: 10, cursor: nil)
            #expect(Set(page.calls.map(\.id)) == [queued, ended])
            #expect(try await migrated.organization(named: "default")?.id == .default)
            // The migrated queued call is still claimed once, and its events carry the organization.
            let command = try CallStoreTests.command(queued, to: "+15550100003")
            guard case .won(let event) = try await migrated.claim(command, nodeID: "n1", workerID: "a") else {
                Issue.record("the migrated queued call could not be claimed")
                return
            }
            #expect(event.organizationID == .default)
        }
    }

    @Test("the store scopes calls, users, keys and audit entries by organization")
    func storeQueriesAreScoped() async throws {
        try await TestDatabase.withStore { store, _ in
            let actor = AuditActor(name: "test")
            let acme = try await store.createOrganization(name: "acme-\(UInt32.random(in: 0 ... .max))", by: actor)
            await #expect(throws: StoreError.duplicateOrganization) {
                try await store.createOrganization(name: acme.name, by: actor)
            }
            var command = try CallStoreTests.command(.generate(), to: "+15550100005")
            command.organizationID = acme.id
            try await store.recordQueued([command])
            #expect(try await store.call(id: command.callID, in: acme.id)?.organizationID == acme.id)
            #expect(try await store.call(id: command.callID, in: .default) == nil)
            #expect(try await store.organization(ofCall: command.callID) == acme.id)
            #expect(try await store.organization(ofCall: .generate()) == nil)
            let page = try await store.listCalls(in: .default, filter: CallFilter(), limit: 10, cursor: nil)
            #expect(!page.calls.contains { $0.id == command.callID })

            let user = try await store.createUser(
                username: "acme-\(UInt32.random(in: 0 ... .max))", passwordHash: "x", role: .viewer,
                organization: acme.id, by: actor)
            #expect(try await store.updateUser(id: user.id, in: .default, disabled: true, role: nil, by: actor) == nil)
            #expect(try await store.deleteUser(id: user.id, in: .default, by: actor) == false)
            #expect(try await store.users(in: .default).contains { $0.id == user.id } == false)
            #expect(try await store.user(id: user.id)?.disabled == false)

            let key = try await store.createAPIKey(
                NewAPIKey(
                    organizationID: acme.id, name: "k", lookupID: "0123456789abcdef", keyHash: Data(count: 32),
                    scopes: [.callsRead], createdBy: user.id, expiresAt: nil),
                by: actor)
            #expect(try await store.revokeAPIKey(id: key.id, in: .default, by: actor) == nil)
            #expect(try await store.apiKey(id: key.id, in: .default) == nil)
            #expect(try await store.apiKeys(in: .default).isEmpty)
            #expect(try await store.apiKey(lookupID: "0123456789abcdef")?.revokedAt == nil)
            #expect(try await store.revokeAPIKey(id: key.id, in: acme.id, by: actor)?.revokedAt != nil)

            #expect(try await store.auditEvents(in: .default, limit: 100, before: nil).isEmpty)
            let actions = try await store.auditEvents(in: acme.id, limit: 100, before: nil).map(\.action)
            #expect(actions == ["api_key.revoked", "api_key.created", "user.created", "organization.created"])
        }
    }

    @Test("a claim past the organization's live-call limit is deferred and changes nothing; it wins once a call ends")
    func liveCallLimitDefersClaims() async throws {
        try await TestDatabase.withStore { store, _ in
            let organization = try await store.createOrganization(
                name: "live-\(UInt32.random(in: 0 ... .max))", limits: OrganizationLimits(maxLiveCalls: 1),
                by: AuditActor(name: "test"))
            var first = try CallStoreTests.command(.generate(), to: "+15550100006")
            first.organizationID = organization.id
            var second = try CallStoreTests.command(.generate(), to: "+15550100007")
            second.organizationID = organization.id
            guard case .won(let dispatched) = try await store.claim(first, nodeID: "n1", workerID: "a") else {
                Issue.record("the first claim lost")
                return
            }
            let deferred = try await store.claim(second, nodeID: "n1", workerID: "a")
            #expect(deferred == .deferred(.liveCalls, retryAfter: CallStore.liveLimitRetry))
            #expect(try await store.call(id: second.callID) == nil, "a deferred claim leaves nothing behind")
            #expect(try await store.liveCallCount(in: organization.id) == 1)
            // Another organization is not affected.
            guard case .won = try await store.claim(try CallStoreTests.command(), nodeID: "n1", workerID: "a") else {
                Issue.record("the default organization's claim was held back")
                return
            }
            let ended = CallStatusEvent(
                callID: first.callID, seq: 2, status: .failed, previousStatus: .dispatched, occurredAt: Date(),
                failureReason: .originateRefused, ownerEpoch: dispatched.ownerEpoch)
            #expect(try await store.apply(ended) == .applied)
            guard case .won = try await store.claim(second, nodeID: "n1", workerID: "a") else {
                Issue.record("the claim was still held back after the live call ended")
                return
            }
        }
    }

    @Test("claims of an organization are paced at its calls per second, by PostgreSQL's clock")
    func callsPerSecondPaceClaims() async throws {
        try await TestDatabase.withStore { store, _ in
            let organization = try await store.createOrganization(
                name: "cps-\(UInt32.random(in: 0 ... .max))", limits: OrganizationLimits(maxCallsPerSecond: 2),
                by: AuditActor(name: "test"))
            func command() throws -> OriginateCommand {
                var command = try CallStoreTests.command(.generate(), to: "+15550100008")
                command.organizationID = organization.id
                return command
            }
            guard case .won = try await store.claim(try command(), nodeID: "n1", workerID: "a") else {
                Issue.record("the first claim was held back")
                return
            }
            let next = try command()
            guard
                case .deferred(.callsPerSecond, let retryAfter) = try await store.claim(
                    next, nodeID: "n1", workerID: "a")
            else {
                Issue.record("a second claim within half a second was not held back")
                return
            }
            #expect(retryAfter > .milliseconds(300) && retryAfter <= .milliseconds(500))
            try await Task.sleep(for: retryAfter + .milliseconds(20))
            guard case .won = try await store.claim(next, nodeID: "n1", workerID: "a") else {
                Issue.record("the claim was held back after the delay it was given")
                return
            }
            // Removing the limit lets claims through at once.
            _ = try await store.setLimits(.none, of: organization.id, by: AuditActor(name: "test"))
            for _ in 0..<3 {
                guard case .won = try await store.claim(try command(), nodeID: "n1", workerID: "a") else {
                    Issue.record("a claim was held back without limits")
                    return
                }
            }
            let actions = try await store.auditEvents(in: organization.id, limit: 5, before: nil).map(\.action)
            #expect(actions.first == "organization.limits_changed")
        }
    }
}
