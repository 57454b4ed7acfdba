import CallDomain
import CallStore
import DevStack
import Foundation
import TestSupport
import Testing
import Webhooks

@testable import WebhookDispatcher

/// The SSRF defence at attempt time, with real connections: the address connected to is checked, whatever the URL
/// looked like when it was registered.
@Suite(.timeLimit(.minutes(3)))
struct TargetPolicyTests {
    @Test("a name that resolves to loopback at attempt time (DNS rebinding) is refused before connecting")
    func rebinding() async throws {
        try await DispatcherTestEnvironment.run { environment in
            try await environment.withReceiver { receiver, url in
                let port = try #require(URLComponents(string: url)?.port)
                // Public-looking at registration (the API takes it: it is a name, not an address).
                let registered = "https://hooks.rebind.test:\(port)/x"
                _ = try WebhookURL(registered, policy: .production)
                let (organization, endpoint, _) = try await environment.subscribe(url: registered)
                let rebinding: WebhookSender.Resolver = { _, _ in [IPAddress("127.0.0.1")!] }
                let configuration = environment.configuration { $0.targetPolicy = .production }
                try await environment.withDispatcher(configuration, resolver: rebinding) {
                    _ = try await environment.publish(
                        CallID.generate(), seq: 1, .dispatched, previous: .queued, organization: organization)
                    try await eventually("the refused attempt") {
                        try await environment.deliveries(of: endpoint).first?.attempts == 1
                    }
                    let delivery = try #require(try await environment.deliveries(of: endpoint).first)
                    let (_, attempts) = try await environment.delivery(delivery)
                    #expect(attempts.first?.responseStatus == nil)
                    #expect(attempts.first?.error?.contains("forbidden addresses (127.0.0.1)") == true, "\(attempts)")
                    #expect(receiver.deliveries.isEmpty)
                    // Refused attempts are not the endpoint's failures: they do not open its circuit for others.
                    #expect(try await environment.endpoint(endpoint).consecutiveFailures == 0)
                }
            }
        }
    }

    @Test(
        "the system resolver's answer is checked too: localhost, private and metadata addresses are refused",
        arguments: ["localhost", "127.0.0.1", "10.1.2.3", "169.254.169.254", "[::1]", "[::ffff:127.0.0.1]"])
    func resolvedAddressesChecked(_ host: String) async throws {
        try await DispatcherTestEnvironment.run { environment in
            try await environment.withReceiver { receiver, url in
                let port = try #require(URLComponents(string: url)?.port)
                // The URL is accepted here only to reach the sender: its production policy must refuse the address.
                let target = try WebhookURL("http://\(host):\(port)/x", policy: .allowPrivate)
                let sender = try WebhookSender(policy: .production, timeout: .seconds(5))
                let result = await sender.send(to: target, headers: [], body: Array("{}".utf8))
                guard case .failure(.refused(let why)) = result else {
                    Issue.record("expected a refusal, got \(result)")
                    return
                }
                #expect(why.contains("forbidden"))
                #expect(receiver.deliveries.isEmpty)
            }
        }
    }

    @Test("a metadata or loopback URL stored before the policy changed is refused at the attempt")
    func storedForbiddenURL() async throws {
        try await DispatcherTestEnvironment.run { environment in
            let (organization, endpoint, _) = try await environment.subscribe(url: "https://169.254.169.254/latest")
            try await environment.withDispatcher(environment.configuration { $0.targetPolicy = .production }) {
                _ = try await environment.publish(
                    CallID.generate(), seq: 1, .dispatched, previous: .queued, organization: organization)
                try await eventually("the refused attempt") {
                    try await environment.deliveries(of: endpoint).first?.attempts == 1
                }
                let delivery = try #require(try await environment.deliveries(of: endpoint).first)
                #expect(
                    delivery.lastError?.contains("169.254.169.254") == true, "\(String(describing: delivery.lastError))"
                )
                #expect(delivery.state == .pending && delivery.lastStatus == nil)
            }
        }
    }

    @Test("redirects are not followed: a 3xx is a failed attempt, and its target gets nothing")
    func redirectsNotFollowed() async throws {
        try await DispatcherTestEnvironment.run { environment in
            try await environment.withReceiver { target, targetURL in
                let redirect: @Sendable (WebhookReceiver.Delivery) -> WebhookReceiver.Answer = { _ in
                    .init(status: 307, headers: ["Location": targetURL + "/stolen"])
                }
                try await environment.withReceiver(respond: redirect) { redirector, url in
                    let (organization, endpoint, secret) = try await environment.subscribe(url: url)
                    redirector.setSecrets([secret])
                    try await environment.withDispatcher(environment.configuration()) {
                        _ = try await environment.publish(
                            CallID.generate(), seq: 1, .dispatched, previous: .queued, organization: organization)
                        try await eventually("the failed attempt") {
                            try await environment.deliveries(of: endpoint).first?.attempts == 1
                        }
                        let delivery = try #require(try await environment.deliveries(of: endpoint).first)
                        #expect(delivery.lastStatus == 307 && delivery.state == .pending)
                        #expect(delivery.lastError?.contains("redirects are not followed") == true)
                        #expect(target.deliveries.isEmpty)
                    }
                }
            }
        }
    }
}
