import CallDomain
import CallStore
import Foundation
import HTTPTypes
import Logging

/// Refuses new calls of an organization that has `max_live_calls` calls being dialed or up (429
/// `organization-call-limit`), so that a client learns at once instead of queueing calls that would only wait.
///
/// The workers enforce the limit itself, in the claim (calls accepted past it stay queued until a live call ends);
/// this is the clear answer at the door. Limits are re-read every `limitsTTL` and live counts every `countTTL`,
/// so the hot path of an organization without a limit costs no database read most of the time, and every gateway
/// reads the same PostgreSQL rows.
struct LiveCallLimit: Sendable {
    let repository: any OrganizationRepository
    let limits = ExpiringCache<OrganizationID, OrganizationLimits, ContinuousClock.Instant>(capacity: 10_000)
    let counts = ExpiringCache<OrganizationID, Int, ContinuousClock.Instant>(capacity: 10_000)
    var limitsTTL: Duration = .seconds(2)
    var countTTL: Duration = .milliseconds(250)

    /// Throws the 429 when the organization is at its limit.
    func check(_ organization: OrganizationID, logger: Logger) async throws {
        let now = ContinuousClock.now
        let maxLive: Int?
        do {
            if let known = limits.value(for: organization, now: now) {
                maxLive = known.maxLiveCalls
            } else {
                let read = try await repository.organization(id: organization)?.limits ?? .none
                limits.insert(read, for: organization, until: now + limitsTTL, now: now)
                maxLive = read.maxLiveCalls
            }
            guard let maxLive else { return }
            let live: Int
            if let known = counts.value(for: organization, now: now) {
                live = known
            } else {
                live = try await repository.liveCallCount(in: organization)
                counts.insert(live, for: organization, until: now + countTTL, now: now)
            }
            guard live >= maxLive else { return }
            throw Problem(
                .organizationCallLimit,
                detail: "your organization has \(live) calls in progress, its limit (max_live_calls \(maxLive)); "
                    + "retry when some have ended",
                headers: [.retryAfter: "1"])
        } catch let problem as Problem {
            throw problem
        } catch {
            logger.error("organization limits unreadable", metadata: ["error": .string(String(describing: error))])
            throw Problem.retryLater(.databaseUnavailable, detail: "cannot check your organization's limits", after: 2)
        }
    }
}
