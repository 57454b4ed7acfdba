import Foundation
import HTTPTypes
import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization
import Webhooks

/// A small webhook receiver for development and tests: it takes every POST, checks its Standard Webhooks
/// signature against the secrets it was given, reports it, and answers what its `respond` rule says (204 by
/// default). `devstack up` runs one and prints each verified delivery; tests script answers (500, 410, delays) and
/// collect what arrived.
public final class WebhookReceiver: Service, Sendable {
    /// One request as received.
    public struct Delivery: Sendable, Hashable {
        /// `webhook-id`.
        public var id: String
        /// `webhook-timestamp`.
        public var timestamp: String
        /// `webhook-signature`.
        public var signature: String
        /// The body.
        public var body: [UInt8]
        /// The request path.
        public var path: String
        /// Whether a signature matched one of the receiver's secrets within the timestamp tolerance.
        public var verified: Bool
        /// When it arrived.
        public var receivedAt: Date

        /// The body parsed (`type`, `timestamp`, `data`).
        public var json: [String: Any]? {
            (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
        }
    }

    /// What to answer: a status, optional extra headers, and a delay before answering.
    public struct Answer: Sendable {
        /// The HTTP status.
        public var status: Int
        /// Extra headers (`Retry-After`, `Location`...).
        public var headers: [String: String]
        /// How long to wait before answering.
        public var delay: Duration

        /// Creates an answer.
        public init(status: Int, headers: [String: String] = [:], delay: Duration = .zero) {
            self.status = status
            self.headers = headers
            self.delay = delay
        }
    }

    private let secrets = Mutex<[WebhookSecret]>([])
    private let received = Mutex<[Delivery]>([])
    private let port = Mutex<Int?>(nil)
    private let requestedPort: Int
    private let host: String
    private let respond: @Sendable (Delivery) -> Answer
    private let onDelivery: @Sendable (Delivery) -> Void
    private let clock: @Sendable () -> Date
    private let logger: Logger

    /// Creates a receiver on `host:port` (0 picks a free port).
    ///
    /// - Parameters:
    ///   - respond: the answer to each delivery (204 when not given).
    ///   - onDelivery: called for each delivery, verified or not.
    ///   - clock: the verifier's now (tests that move the dispatcher's clock move this one with it).
    public init(
        host: String = "127.0.0.1", port: Int = 0,
        respond: @escaping @Sendable (Delivery) -> Answer = { _ in Answer(status: 204) },
        onDelivery: @escaping @Sendable (Delivery) -> Void = { _ in },
        clock: @escaping @Sendable () -> Date = { Date() },
        logger: Logger
    ) {
        self.host = host
        self.requestedPort = port
        self.respond = respond
        self.onDelivery = onDelivery
        self.clock = clock
        self.logger = logger
    }

    /// The secrets signatures are checked against (a rotation adds one).
    public func setSecrets(_ secrets: [WebhookSecret]) {
        self.secrets.withLock { $0 = secrets }
    }

    /// Every delivery so far, in arrival order.
    public var deliveries: [Delivery] { received.withLock { $0 } }

    /// The base URL once the receiver listens.
    public var baseURL: String {
        get async throws {
            for _ in 0..<400 {
                if let port = port.withLock({ $0 }) { return "http://\(host):\(port)" }
                try await Task.sleep(for: .milliseconds(25))
            }
            throw DevStackError("the webhook receiver did not start listening")
        }
    }

    public func run() async throws {
        let router = Router()
        let handle: @Sendable (Request, BasicRequestContext) async throws -> Response = { request, _ in
            var body = try await request.body.collect(upTo: 1 << 20)
            let bytes = body.readBytes(length: body.readableBytes) ?? []
            let header = { (name: String) in HTTPField.Name(name).flatMap { request.headers[$0] } }
            let delivery = self.check(
                id: header(WebhookSignature.Header.id), timestamp: header(WebhookSignature.Header.timestamp),
                signature: header(WebhookSignature.Header.signature), body: bytes, path: request.uri.path)
            self.received.withLock { $0.append(delivery) }
            self.onDelivery(delivery)
            let answer = self.respond(delivery)
            if answer.delay > .zero { try? await Task.sleep(for: answer.delay) }
            var headers = HTTPFields()
            for (name, value) in answer.headers {
                if let field = HTTPField.Name(name) { headers[field] = value }
            }
            return Response(status: .init(code: answer.status), headers: headers)
        }
        // `**` needs at least one path component: the root is routed on its own.
        router.post("/", use: handle)
        router.post("**", use: handle)
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(host, port: requestedPort), serverName: "webhook-receiver"),
            onServerRunning: { channel in
                let bound = channel.localAddress?.port
                self.port.withLock { $0 = bound }
            },
            logger: logger)
        // `run()`, not `runService()`: the latter stops on SIGTERM by itself, before the group that owns the receiver
        // asks it to.
        try await app.run()
    }

    private func check(id: String?, timestamp: String?, signature: String?, body: [UInt8], path: String) -> Delivery {
        let secrets = self.secrets.withLock { $0 }
        let verified: Bool
        do {
            try WebhookSignature.verify(
                id: id, timestamp: timestamp, signatures: signature, body: body, secrets: secrets, now: clock())
            verified = true
        } catch {
            verified = false
        }
        return Delivery(
            id: id ?? "", timestamp: timestamp ?? "", signature: signature ?? "", body: body, path: path,
            verified: verified, receivedAt: Date())
    }
}
