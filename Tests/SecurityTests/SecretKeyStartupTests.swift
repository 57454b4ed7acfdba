import Foundation
import TestSupport
import Testing

/// The gateway executable refuses to start without a strong `SECRET_KEY`: it exits with EX_CONFIG (78) and a message
/// that names the variable but never repeats its value, before it listens on any port.
@Suite struct SecretKeyStartupTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var secret: String?
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "missing", secret: nil),
        Case(name: "empty", secret: ""),
        Case(name: "31 bytes", secret: "k3Y-31-bytes-long-xxxxxxxxxxxxx"),
        Case(name: "placeholder", secret: "change-me"),
        Case(name: "long placeholder", secret: "replace-with-at-least-32-random-bytes-of-secret"),
        Case(name: "one repeated character", secret: String(repeating: "a", count: 64)),
    ]

    @Test(arguments: cases)
    func theGatewayRefusesToStart(_ example: Case) async throws {
        let port = try DevStackProcess.freePort()
        var environment = ProcessInfo.processInfo.environment
        environment["SECRET_KEY"] = example.secret
        environment["DATABASE_URL"] = "postgres://postgres@127.0.0.1:1/postgres"
        environment["KAFKA_BOOTSTRAP_SERVERS"] = "127.0.0.1:1"
        environment["HOST"] = "127.0.0.1"
        environment["PORT"] = "\(port)"
        let run = try await GatewayBinary.run(["serve"], environment: environment, timeout: .seconds(60))
        #expect(run.status == 78, "exit status \(run.status): \(run.output)")
        #expect(run.output.contains("SECRET_KEY"), "the message names the variable: \(run.output)")
        if let secret = example.secret, secret.count > 3 {
            #expect(!run.output.contains(secret), "the message repeats the secret")
        }
        #expect(!run.output.contains("starting"), "it must stop before serving: \(run.output)")
        #expect(try !GatewayBinary.isListening(port: port))
    }

    @Test func aStrongKeyPassesTheCheckAndTheNextProblemIsNamed() async throws {
        // Same set-up with a strong key: the secret check passes and start-up goes on to the next variable, which
        // proves that the refusals above are the key's.
        var environment = ProcessInfo.processInfo.environment
        environment["SECRET_KEY"] = "9c1f0e7a4b2d48c6a1e3f5b7d9c0e2f4a6b8c0d2e4f6a8b0"
        environment.removeValue(forKey: "DATABASE_URL")
        environment["KAFKA_BOOTSTRAP_SERVERS"] = "127.0.0.1:1"
        let run = try await GatewayBinary.run(["serve"], environment: environment, timeout: .seconds(60))
        #expect(run.status == 78)
        #expect(run.output.contains("DATABASE_URL"), "\(run.output)")
        #expect(!run.output.contains("SECRET_KEY"), "\(run.output)")
    }
}
