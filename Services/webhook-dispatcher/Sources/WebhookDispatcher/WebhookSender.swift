import CallDomain
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import ServiceSupport
import Synchronization
import Webhooks

/// Sends one signed webhook request and reports the answer's status, defending against server-side request forgery.
///
/// The host name is resolved here, every address is checked against the target policy, and the connection is made
/// to a checked address, never to the name: a name that resolves to a public address when the endpoint is
/// registered and to an internal one later (DNS rebinding) reaches nothing internal. The peer address of the
/// connection is checked again once connected. Redirects are not followed (a 3xx is a failed attempt), and the
/// whole attempt (resolution, connection, TLS, answer) is bounded by `timeout`.
public struct WebhookSender: Sendable {
    /// Resolves a host name to its addresses (`getaddrinfo` by default; tests inject rebinding resolvers).
    public typealias Resolver = @Sendable (_ host: String, _ port: Int) async throws -> [IPAddress]

    let policy: WebhookTargetPolicy
    let timeout: Duration
    let resolver: Resolver
    let group: any EventLoopGroup
    let tls: NIOSSLContext
    let pool: WebhookConnectionPool

    /// Creates a sender.
    ///
    /// - Parameters:
    ///   - policy: which addresses an attempt may connect to.
    ///   - timeout: the bound of a whole attempt (15 s in production).
    ///   - resolver: host name resolution; the system resolver when `nil`.
    public init(
        policy: WebhookTargetPolicy, timeout: Duration, resolver: Resolver? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) throws {
        self.policy = policy
        self.timeout = timeout
        self.resolver = resolver ?? Self.systemResolve
        self.group = group
        self.tls = try NIOSSLContext(configuration: .makeClientConfiguration())
        self.pool = WebhookConnectionPool(maxIdlePerTarget: 32, idleTimeout: .seconds(20))
    }

    /// Closes the kept-alive connections (when the dispatcher stops).
    public func closeIdleConnections() {
        pool.closeAll()
    }

    /// What came back.
    public struct Answer: Sendable, Hashable {
        /// The HTTP status.
        public var status: Int
        /// The receiver's `Retry-After`, if it sent one in seconds or as an HTTP date.
        public var retryAfter: Duration?
    }

    /// Why no answer came.
    public enum Failure: Error, Sendable, Hashable, CustomStringConvertible {
        /// The policy forbids every address of the host (or the URL itself).
        case refused(String)
        /// Resolution, connection, TLS or the exchange failed, or the timeout passed.
        case unreachable(String)

        public var description: String {
            switch self {
            case .refused(let why), .unreachable(let why): why
            }
        }
    }

    /// POSTs `body` to `url` with `headers` and returns the status of the answer.
    public func send(to url: WebhookURL, headers: [(String, String)], body: [UInt8]) async -> Result<Answer, Failure> {
        let deadline =
            NIODeadline.now()
            + TimeAmount.nanoseconds(
                Int64(timeout.components.seconds) * 1_000_000_000
                    + timeout.components.attoseconds / 1_000_000_000)
        let head = requestHead(url: url, headers: headers, bodyCount: body.count)
        // A kept-alive connection goes first. One the receiver closed meanwhile fails before any answer: the request
        // then goes on a new connection (at least once; the `webhook-id` lets the receiver drop a repeat).
        if let reused = pool.take(.init(url)) {
            do {
                return .success(
                    try await request(on: reused, target: .init(url), head: head, body: body, deadline: deadline))
            } catch ConnectionClosed.beforeAnswer {
                reused.channel.close(promise: nil)
            } catch let error as ExchangeError {
                switch error {
                case .connect(let why), .exchange(let why): return .failure(.unreachable(why))
                }
            } catch {
                return .failure(.unreachable("\(error)"))
            }
        }
        let addresses: [IPAddress]
        if let literal = IPAddress(url.host) {
            addresses = [literal]
        } else {
            do {
                addresses = try await withTimeout(timeout) { [resolver] in try await resolver(url.host, url.port) }
            } catch {
                return .failure(.unreachable("could not resolve \(url.host): \(error)"))
            }
        }
        let permitted = addresses.filter(policy.permits)
        guard !permitted.isEmpty else {
            let listed = addresses.map(\.description).joined(separator: ", ")
            return .failure(
                .refused(
                    addresses.isEmpty
                        ? "\(url.host) has no address"
                        : "\(url.host) resolves only to forbidden addresses (\(listed))"))
        }
        var lastError = "no address could be reached"
        for address in permitted {
            guard NIODeadline.now() < deadline else { break }
            do {
                let answer = try await exchange(with: address, url: url, head: head, body: body, deadline: deadline)
                return .success(answer)
            } catch let failure as Failure {
                return .failure(failure)
            } catch let error as ExchangeError {
                switch error {
                case .connect(let why): lastError = why  // try the next address
                case .exchange(let why): return .failure(.unreachable(why))
                }
            } catch {
                return .failure(.unreachable("\(error)"))
            }
        }
        return .failure(.unreachable(lastError))
    }

    private enum ExchangeError: Error {
        /// Not connected: another address may do.
        case connect(String)
        /// Connected, then failed: the request may have reached the receiver.
        case exchange(String)
    }

    /// The request's head: `Host` as the URL says, whatever address is connected to.
    private func requestHead(url: WebhookURL, headers: [(String, String)], bodyCount: Int) -> HTTPRequestHead {
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: url.target)
        let defaultPort = url.isSecure ? 443 : 80
        let hostHeader = url.host.contains(":") ? "[\(url.host)]" : url.host
        head.headers.add(name: "Host", value: url.port == defaultPort ? hostHeader : "\(hostHeader):\(url.port)")
        head.headers.add(name: "User-Agent", value: "outbound-dialer-webhooks/1")
        head.headers.add(name: "Content-Type", value: "application/json")
        head.headers.add(name: "Content-Length", value: String(bodyCount))
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        return head
    }

    /// The request on a new connection to `address`.
    private func exchange(
        with address: IPAddress, url: WebhookURL, head: HTTPRequestHead, body: [UInt8], deadline: NIODeadline
    ) async throws -> Answer {
        let connection = try await connect(to: address, url: url, deadline: deadline)
        do {
            return try await request(on: connection, target: .init(url), head: head, body: body, deadline: deadline)
        } catch ConnectionClosed.beforeAnswer(let why) {
            throw ExchangeError.exchange(why)
        }
    }

    /// A new connection to a checked address, its peer checked again once connected.
    private func connect(
        to address: IPAddress, url: WebhookURL, deadline: NIODeadline
    ) async throws
        -> WebhookConnection
    {
        let socketAddress: SocketAddress
        do {
            socketAddress = try SocketAddress(ipAddress: address.description, port: url.port)
        } catch {
            throw ExchangeError.connect("bad address \(address): \(error)")
        }
        let remaining = deadline - NIODeadline.now()
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(remaining)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connect(to: socketAddress).get()
        } catch {
            throw ExchangeError.connect("could not connect to \(address) port \(url.port): \(error)")
        }
        // Defence in depth: what the kernel says the peer is, not what was asked for.
        let peer = channel.remoteAddress?.ipAddress.flatMap(IPAddress.init)
        guard let peer, policy.permits(peer) else {
            channel.close(promise: nil)
            throw Failure.refused("connected peer \(peer?.description ?? "?") is a forbidden address")
        }
        let serverName = IPAddress(url.host) == nil ? url.host : nil
        let tls = self.tls
        do {
            let collector = try await channel.eventLoop.submit {
                let pipeline = channel.pipeline.syncOperations
                if url.isSecure {
                    try pipeline.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverName))
                }
                try pipeline.addHTTPClientHandlers()
                let collector = ResponseCollector()
                try pipeline.addHandler(collector)
                return NIOLoopBound(collector, eventLoop: channel.eventLoop)
            }.get()
            return WebhookConnection(channel: channel, collector: collector)
        } catch {
            channel.close(promise: nil)
            throw ExchangeError.exchange("could not set up the connection: \(error)")
        }
    }

    /// One request and its answer on `connection`, which goes back to the pool if the answer allows it.
    private func request(
        on connection: WebhookConnection, target: WebhookConnectionPool.Target, head: HTTPRequestHead,
        body: [UInt8], deadline: NIODeadline
    ) async throws -> Answer {
        let channel = connection.channel
        let promise = channel.eventLoop.makePromise(of: ResponseCollector.Response.self)
        let timeout = self.timeout
        let timer = channel.eventLoop.scheduleTask(deadline: deadline) {
            promise.fail(ExchangeError.exchange("no answer within \(timeout)"))
            channel.close(promise: nil)
        }
        defer { timer.cancel() }
        channel.eventLoop.execute {
            connection.collector.value.expect(promise)
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil)
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        }
        let response: ResponseCollector.Response
        do {
            response = try await promise.futureResult.get()
        } catch let error as ConnectionClosed {
            throw error
        } catch let error as ExchangeError {
            throw error
        } catch {
            channel.close(promise: nil)
            throw ExchangeError.exchange("\(error)")
        }
        if response.reusable {
            pool.put(connection, for: target)
        } else {
            channel.close(promise: nil)
        }
        return Answer(
            status: Int(response.head.status.code),
            retryAfter: response.head.headers.first(name: "Retry-After").flatMap(Self.parseRetryAfter))
    }

    /// `Retry-After` as seconds or an HTTP date (RFC 9110); `nil` when it is neither.
    static func parseRetryAfter(_ value: String) -> Duration? {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        if let seconds = Int(trimmed), seconds >= 0 { return .seconds(seconds) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: trimmed) else { return nil }
        return .seconds(max(0, Int(date.timeIntervalSinceNow.rounded(.up))))
    }

    /// `getaddrinfo` on a thread of NIO's blocking pool.
    @Sendable static func systemResolve(host: String, port: Int) async throws -> [IPAddress] {
        try await NIOThreadPool.singleton.runIfActive {
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            hints.ai_family = AF_UNSPEC
            var result: UnsafeMutablePointer<addrinfo>?
            let status = getaddrinfo(host, String(port), &hints, &result)
            guard status == 0 else {
                throw Failure.unreachable(String(cString: gai_strerror(status)))
            }
            defer { freeaddrinfo(result) }
            var addresses: [IPAddress] = []
            var cursor = result
            while let entry = cursor?.pointee {
                if entry.ai_family == AF_INET, let raw = entry.ai_addr {
                    let bytes = raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { pointer in
                        withUnsafeBytes(of: pointer.pointee.sin_addr) { Array($0) }
                    }
                    if let address = IPAddress(bytes: bytes), !addresses.contains(address) { addresses.append(address) }
                } else if entry.ai_family == AF_INET6, let raw = entry.ai_addr {
                    let bytes = raw.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                        withUnsafeBytes(of: pointer.pointee.sin6_addr) { Array($0) }
                    }
                    if let address = IPAddress(bytes: bytes), !addresses.contains(address) { addresses.append(address) }
                }
                cursor = entry.ai_next
            }
            return addresses
        }
    }
}

/// A connection to a receiver, with the handler that collects its answers.
struct WebhookConnection: Sendable {
    let channel: any Channel
    let collector: NIOLoopBound<ResponseCollector>
}

/// The connection closed or failed before any part of the answer came: on a kept-alive connection, the receiver
/// most likely closed it while idle.
enum ConnectionClosed: Error {
    case beforeAnswer(String)
}

/// Idle keep-alive connections per receiver (scheme, host, port), reused by later attempts: a busy endpoint pays
/// its TCP and TLS set-up once per connection rather than once per delivery. A connection is used by one attempt at
/// a time, and is kept only while idle for less than `idleTimeout` and open (a receiver may close it any time).
/// Reuse does not weaken the address checks: a kept connection was made to a checked address and its peer checked.
final class WebhookConnectionPool: Sendable {
    /// Whom a connection reaches.
    struct Target: Hashable, Sendable {
        var secure: Bool
        var host: String
        var port: Int

        init(_ url: WebhookURL) {
            secure = url.isSecure
            host = url.host
            port = url.port
        }
    }

    private struct Idle {
        var connection: WebhookConnection
        var since: NIODeadline
    }

    private let maxIdlePerTarget: Int
    private let idleTimeout: TimeAmount
    private let idle = Mutex<[Target: [Idle]]>([:])

    init(maxIdlePerTarget: Int, idleTimeout: TimeAmount) {
        self.maxIdlePerTarget = maxIdlePerTarget
        self.idleTimeout = idleTimeout
    }

    /// The most recently used open connection to `target`, if one is idle; connections idle too long are closed.
    func take(_ target: Target) -> WebhookConnection? {
        let now = NIODeadline.now()
        let (found, expired) = idle.withLock { idle -> (WebhookConnection?, [WebhookConnection]) in
            var expired: [WebhookConnection] = []
            var found: WebhookConnection?
            while var list = idle[target], let last = list.popLast() {
                idle[target] = list.isEmpty ? nil : list
                if now - last.since < idleTimeout && last.connection.channel.isActive {
                    found = last.connection
                    break
                }
                expired.append(last.connection)
            }
            return (found, expired)
        }
        for connection in expired { connection.channel.close(promise: nil) }
        return found
    }

    /// Keeps `connection` for the next attempt to `target` (closes it when enough are kept).
    func put(_ connection: WebhookConnection, for target: Target) {
        let kept = idle.withLock { idle -> Bool in
            guard idle[target, default: []].count < maxIdlePerTarget else { return false }
            idle[target, default: []].append(Idle(connection: connection, since: .now()))
            return true
        }
        if !kept { connection.channel.close(promise: nil) }
    }

    /// Closes every idle connection.
    func closeAll() {
        let all = idle.withLock { idle in
            defer { idle = [:] }
            return idle.values.flatMap { $0 }
        }
        for entry in all { entry.connection.channel.close(promise: nil) }
    }
}

/// Collects each answer: its head (the status is what an attempt needs) and, to keep the connection usable, its
/// body, read and dropped up to 64 KiB (a longer one closes the connection instead).
final class ResponseCollector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart

    /// An answer, and whether its connection may carry the next request.
    struct Response: Sendable {
        var head: HTTPResponseHead
        var reusable: Bool
    }

    static let bodyLimit = 64 * 1024

    private var promise: EventLoopPromise<Response>?
    private var head: HTTPResponseHead?
    private var bodyBytes = 0
    private var active = true

    /// The next answer completes `promise` (at once with an error if the connection has closed already).
    func expect(_ promise: EventLoopPromise<Response>) {
        guard active else {
            promise.fail(ConnectionClosed.beforeAnswer("the connection was closed"))
            return
        }
        self.promise = promise
        head = nil
        bodyBytes = 0
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let promise else {
            // Nothing was asked: a receiver talking out of turn cannot be trusted with the next request.
            context.close(promise: nil)
            return
        }
        switch unwrapInboundIn(data) {
        case .head(let head):
            // 1xx answers are interim; the final answer follows.
            if head.status.code >= 200 { self.head = head }
        case .body(let buffer):
            bodyBytes += buffer.readableBytes
            if bodyBytes > Self.bodyLimit, let head {
                self.promise = nil
                promise.succeed(Response(head: head, reusable: false))
                context.close(promise: nil)
            }
        case .end:
            // The end of an interim answer has no final head yet.
            guard let head else { return }
            self.promise = nil
            promise.succeed(Response(head: head, reusable: head.isKeepAlive))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        active = false
        if let promise {
            self.promise = nil
            promise.fail(
                head == nil && bodyBytes == 0
                    ? ConnectionClosed.beforeAnswer("the connection closed before an answer") : ChannelError.eof)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let promise {
            self.promise = nil
            promise.fail(head == nil && bodyBytes == 0 ? ConnectionClosed.beforeAnswer("\(error)") : error)
        }
        context.close(promise: nil)
    }
}
