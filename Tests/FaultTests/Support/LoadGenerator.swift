import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import Synchronization

/// A simulator number (`+1 555 01 OC AA HH`, docs/ari-simulator.md) and what a call to it ends as.
struct NumberProfile: Sendable {
    /// The number sent as `to`.
    var number: String
    /// `timeout_seconds` of the request.
    var timeoutSeconds: Int
    /// The terminal status the call ends in when nothing goes wrong.
    var expected: String
    /// Whether the callee answers.
    var answers: Bool
    /// How often it is drawn, relative to the other profiles of the mix.
    var weight: Int

    /// Short calls that answer quickly and hang up after 0.5–2 s, some ringing ones, busy, rejected and unanswered.
    static let standardMix: [NumberProfile] = [
        NumberProfile(number: "+155501000301", timeoutSeconds: 10, expected: "completed", answers: true, weight: 30),
        NumberProfile(number: "+155501000002", timeoutSeconds: 10, expected: "completed", answers: true, weight: 20),
        NumberProfile(number: "+155501000502", timeoutSeconds: 10, expected: "completed", answers: true, weight: 15),
        NumberProfile(number: "+155501010500", timeoutSeconds: 10, expected: "busy", answers: false, weight: 10),
        NumberProfile(number: "+155501060300", timeoutSeconds: 10, expected: "rejected", answers: false, weight: 5),
        NumberProfile(number: "+155501050000", timeoutSeconds: 5, expected: "no_answer", answers: false, weight: 10),
        NumberProfile(number: "+155501000201", timeoutSeconds: 10, expected: "completed", answers: true, weight: 10),
    ]

    /// The standard mix plus calls that stay up 8 s, so that a worker told to stop has calls live to drain.
    static let drainMix: [NumberProfile] =
        standardMix + [
            NumberProfile(number: "+155501000108", timeoutSeconds: 10, expected: "completed", answers: true, weight: 30)
        ]
}

/// What one HTTP attempt of `POST /api/v1/calls` got.
enum Answer: Sendable, Hashable {
    /// 202 (or 200 for a replayed idempotent request) with the call id.
    case accepted(callID: String)
    /// 503: the gateway refused it (Kafka or PostgreSQL unavailable).
    case unavailable
    /// No connection could be made (the gateway process is down).
    case noConnection
    /// The connection was made but no answer came (the gateway died mid-request).
    case noResponse
    /// Anything else: a failure of the suite.
    case unexpected(status: Int, body: String)

    var isRefusal: Bool {
        switch self {
        case .unavailable, .noConnection, .noResponse: true
        default: false
        }
    }
}

/// One call request of the load, with every attempt (keyed requests are retried after a refusal, as a careful
/// client does; the retry has the same `Idempotency-Key`, hence the same call id).
struct LoadRequest: Sendable {
    var serial: Int
    var profile: NumberProfile
    var idempotencyKey: String?
    var attempts: [Answer] = []
    /// How long the slowest attempt waited for its answer, in seconds.
    var slowest = 0.0

    /// The call id of the accepted attempt.
    var callID: String? {
        for attempt in attempts {
            if case .accepted(let id) = attempt { return id }
        }
        return nil
    }
}

/// Sends call requests at a steady rate (open loop: a slow answer does not slow the load) until stopped.
final class LoadGenerator: Sendable {
    private let apiURL: String
    private let token: String
    private let client: HTTPClient
    private let rate: Double
    private let phase: String
    private let mix: [NumberProfile]
    private let runID: String
    private let stopped = Mutex(false)

    init(apiURL: String, token: String, client: HTTPClient, rate: Double, phase: String, mix: [NumberProfile]) {
        self.apiURL = apiURL
        self.token = token
        self.client = client
        self.rate = rate
        self.phase = phase
        self.mix = mix
        runID = String(UUID().uuidString.prefix(8)).lowercased()
    }

    /// Asks the load to stop; requests being retried finish their attempts.
    func stop() {
        stopped.withLock { $0 = true }
    }

    /// Sends requests until ``stop()``; returns every request with its attempts.
    func run() async -> [LoadRequest] {
        let interval = Duration.seconds(1 / rate)
        let totalWeight = mix.reduce(0) { $0 + $1.weight }
        var generator = SystemRandomNumberGenerator()
        return await withTaskGroup(of: LoadRequest.self) { group in
            var next = ContinuousClock.now
            var serial = 0
            while !stopped.withLock({ $0 }) {
                serial += 1
                var pick = Int.random(in: 0..<totalWeight, using: &generator)
                let profile =
                    mix.first {
                        pick -= $0.weight; return pick < 0
                    } ?? mix[0]
                // Half the requests carry an Idempotency-Key: those take the keyed path (PostgreSQL) and are retried.
                let key = serial % 2 == 0 ? "fault-\(runID)-\(serial)" : nil
                let request = LoadRequest(serial: serial, profile: profile, idempotencyKey: key)
                group.addTask { await self.send(request) }
                next += interval
                try? await Task.sleep(until: next, clock: .continuous)
            }
            var done: [LoadRequest] = []
            for await request in group { done.append(request) }
            return done.sorted { $0.serial < $1.serial }
        }
    }

    private func send(_ request: LoadRequest) async -> LoadRequest {
        var request = request
        let body: [String: Any] = [
            "to": request.profile.number,
            "timeout_seconds": request.profile.timeoutSeconds,
            "metadata": ["fault": phase, "serial": request.serial, "run": runID],
        ]
        let bytes = (try? JSONSerialization.data(withJSONObject: body)) ?? Data()
        let maximumAttempts = request.idempotencyKey == nil ? 1 : 4
        for attempt in 1...maximumAttempts {
            let started = ContinuousClock.now
            let answer = await attemptOnce(bytes, key: request.idempotencyKey)
            let waited = ContinuousClock.now - started
            request.slowest = max(
                request.slowest, Double(waited.components.seconds) + Double(waited.components.attoseconds) / 1e18)
            request.attempts.append(answer)
            guard answer.isRefusal, attempt < maximumAttempts else { break }
            try? await Task.sleep(for: .seconds(1))
        }
        return request
    }

    private func attemptOnce(_ body: Data, key: String?) async -> Answer {
        var request = HTTPClientRequest(url: "\(apiURL)/api/v1/calls")
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.headers.add(name: "Content-Type", value: "application/json")
        if let key { request.headers.add(name: "Idempotency-Key", value: key) }
        request.body = .bytes(ByteBuffer(data: body))
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: .seconds(20))
        } catch {
            return Self.classify(error)
        }
        let collected: ByteBuffer
        do {
            collected = try await response.body.collect(upTo: 1 << 20)
        } catch {
            return .noResponse
        }
        let text = String(buffer: collected)
        switch response.status.code {
        case 202, 200:
            guard let object = try? JSONSerialization.jsonObject(with: Data(buffer: collected)) as? [String: Any],
                let id = object["id"] as? String
            else { return .unexpected(status: Int(response.status.code), body: text) }
            return .accepted(callID: id)
        case 503:
            return .unavailable
        default:
            return .unexpected(status: Int(response.status.code), body: String(text.prefix(300)))
        }
    }

    /// A refused or timed-out connection is `noConnection`; a connection lost after the request went out is
    /// `noResponse` (the gateway may have published the command before it died).
    static func classify(_ error: any Error) -> Answer {
        let text = String(describing: error).lowercased()
        if text.contains("refused") || text.contains("connecttimeout") || text.contains("nioconnectionerror")
            || text.contains("connect(")
        {
            return .noConnection
        }
        return .noResponse
    }
}
