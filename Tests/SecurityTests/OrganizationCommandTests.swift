import CallDomain
import CallStore
import Foundation
import TestSupport
import Testing

/// `api-gateway create-org` and `create-user --org`: how a platform operator opens an organization and its first admin.
@Suite(.timeLimit(.minutes(3)))
struct OrganizationCommandTests {
    @Test("create-org then create-user --org puts the user in that organization; mistakes exit 65 with a message")
    func organizationAndItsFirstAdminFromTheCommandLine() async throws {
        try await TestDatabase.withStore { store, databaseURL in
            var environment = ProcessInfo.processInfo.environment
            environment["DATABASE_URL"] = databaseURL
            let name = "cli-org-\(UInt32.random(in: 0 ... .max))"

            let created = try await GatewayBinary.run(
                ["create-org", "--name", name, "--max-live-calls", "20", "--max-calls-per-second", "2.5"],
                environment: environment, timeout: .seconds(60))
            #expect(created.status == 0, "\(created.output)")
            let organization = try #require(try await store.organization(named: name))
            #expect(organization.limits == OrganizationLimits(maxLiveCalls: 20, maxCallsPerSecond: 2.5))
            #expect(created.output.contains("created organization \(name) id \(organization.id)"))

            let again = try await GatewayBinary.run(
                ["create-org", "--name", name], environment: environment, timeout: .seconds(60))
            #expect(again.status == 65)
            #expect(again.output.contains("exists"))
            let invalid = try await GatewayBinary.run(
                ["create-org", "--name", "two words"], environment: environment, timeout: .seconds(60))
            #expect(invalid.status == 65)

            let username = "first-admin-\(UInt32.random(in: 0 ... .max))"
            let user = try await GatewayBinary.run(
                ["create-user", "--username", username, "--role", "admin", "--org", name],
                environment: environment, input: "a-long-enough-passphrase\n", timeout: .seconds(60))
            #expect(user.status == 0, "\(user.output)")
            let stored = try #require(try await store.user(named: username))
            #expect(stored.organizationID == organization.id)
            #expect(!stored.platformOperator)
            let audit = try await store.auditEvents(in: organization.id, limit: 10, before: nil)
            #expect(audit.map(\.action) == ["user.created", "organization.created"])
            #expect(audit.allSatisfy { $0.actor == "cli" })

            let unknown = try await GatewayBinary.run(
                ["create-user", "--username", "x-\(username)", "--role", "viewer", "--org", "no-such-org"],
                environment: environment, input: "a-long-enough-passphrase\n", timeout: .seconds(60))
            #expect(unknown.status == 65)
            #expect(unknown.output.contains("no organization named no-such-org"))

            let platform = try await GatewayBinary.run(
                ["create-user", "--username", "p-\(username)", "--role", "admin", "--platform-operator"],
                environment: environment, input: "a-long-enough-passphrase\n", timeout: .seconds(60))
            #expect(platform.status == 0, "\(platform.output)")
            #expect(try await store.user(named: "p-\(username)")?.platformOperator == true)
            #expect(try await store.user(named: "p-\(username)")?.organizationID == .default)
        }
    }
}
