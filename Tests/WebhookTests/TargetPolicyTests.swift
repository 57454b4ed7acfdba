import Testing
import Webhooks

/// The SSRF defence's address classification and URL checks (the dispatcher applies the same policy to the address
/// it connects to; `WebhookDispatcherTests` covers that with real connections).
@Suite struct TargetPolicyTests {
    @Test(
        "loopback, private, shared, link-local, metadata, multicast and reserved addresses are not public",
        arguments: [
            "127.0.0.1", "127.255.255.254", "10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1",
            "169.254.169.254",
            "169.254.0.1", "100.64.0.1", "100.127.255.255", "0.0.0.0", "224.0.0.1", "255.255.255.255", "192.0.2.1",
            "198.18.0.1", "::", "::1", "fc00::1", "fd00:ec2::254", "fe80::1", "ff02::1", "::ffff:127.0.0.1",
            "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "2002:7f00:1::", "2001:db8::1", "::127.0.0.1",
        ])
    func forbidden(_ text: String) throws {
        let address = try #require(IPAddress(text))
        #expect(!address.isPublic)
        #expect(!WebhookTargetPolicy.production.permits(address))
        #expect(WebhookTargetPolicy.allowPrivate.permits(address))
    }

    @Test(
        "public addresses are allowed",
        arguments: ["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2606:4700::1111"])
    func allowed(_ text: String) throws {
        #expect(try #require(IPAddress(text)).isPublic)
    }

    @Test("production URLs: https to a public host, no credentials or fragment")
    func productionURLs() throws {
        let url = try WebhookURL("https://hooks.example.com:8443/calls?tenant=7", policy: .production)
        #expect(url.host == "hooks.example.com" && url.port == 8443 && url.target == "/calls?tenant=7" && url.isSecure)
        #expect(try WebhookURL("https://hooks.example.com", policy: .production).target == "/")
        let refused: [(String, WebhookURL.Problem)] = [
            ("http://hooks.example.com/x", .notHTTPS),
            ("https://127.0.0.1/x", .forbiddenAddress("127.0.0.1")),
            ("https://[::1]/x", .forbiddenAddress("::1")),
            ("https://169.254.169.254/latest/meta-data", .forbiddenAddress("169.254.169.254")),
            ("https://localhost/x", .forbiddenAddress("localhost")),
            ("https://metadata.google.internal/x", .forbiddenAddress("metadata.google.internal")),
        ]
        for (text, problem) in refused {
            #expect(throws: problem, "\(text)") { try WebhookURL(text, policy: .production) }
        }
        for text in [
            "ftp://hooks.example.com/", "https://user:pass@hooks.example.com/", "https://hooks.example.com/#x",
            "/relative", "https://", "https://hooks.example.com/ x",
            "https://hooks.example.com/" + String(repeating: "a", count: 2048),
        ] {
            #expect(throws: (any Error).self, "\(text)") { try WebhookURL(text, policy: .production) }
        }
    }

    @Test("with private targets allowed (development), http and loopback are accepted")
    func developmentURLs() throws {
        let url = try WebhookURL("http://127.0.0.1:9000/hooks", policy: .allowPrivate)
        #expect(url.host == "127.0.0.1" && url.port == 9000 && !url.isSecure)
        _ = try WebhookURL("http://localhost/hooks", policy: .allowPrivate)
    }
}
