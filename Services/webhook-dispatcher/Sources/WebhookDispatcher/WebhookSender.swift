import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import ServiceSupport
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
                let answer = try await exchange(
                    with: address, url: url, headers: headers, body: body, deadline: deadline)
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

    private func exchange(
        with address: IPAddress, url: WebhookURL, headers: [(String, String)], body: [UInt8], deadline: NIODeadline
    ) async throws -> Answer {
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
        let promise = channel.eventLoop.makePromise(of: HTTPResponseHead.self)
        let serverName = IPAddress(url.host) == nil ? url.host : nil
        let tls = self.tls
        do {
            try await channel.eventLoop.submit {
                let pipeline = channel.pipeline.syncOperations
                if url.isSecure {
                    try pipeline.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverName))
                }
                try pipeline.addHTTPClientHandlers()
                try pipeline.addHandler(ResponseHeadCollector(promise: promise))
            }.get()
        } catch {
            channel.close(promise: nil)
            throw ExchangeError.exchange("could not set up the connection: \(error)")
        }
        let timer = channel.eventLoop.scheduleTask(deadline: deadline) {
            promise.fail(ExchangeError.exchange("no answer within \(timeout)"))
            channel.close(promise: nil)
        }
        defer {
            timer.cancel()
            channel.close(promise: nil)
        }
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: url.target)
        let defaultPort = url.isSecure ? 443 : 80
        let hostHeader = url.host.contains(":") ? "[\(url.host)]" : url.host
        head.headers.add(name: "Host", value: url.port == defaultPort ? hostHeader : "\(hostHeader):\(url.port)")
        head.headers.add(name: "User-Agent", value: "outbound-dialer-webhooks/1")
        head.headers.add(name: "Content-Type", value: "application/json")
        head.headers.add(name: "Content-Length", value: String(body.count))
        head.headers.add(name: "Connection", value: "close")
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        let response: HTTPResponseHead
        do {
            response = try await promise.futureResult.get()
        } catch let error as ExchangeError {
            throw error
        } catch {
            throw ExchangeError.exchange("\(error)")
        }
        return Answer(
            status: Int(response.status.code),
            retryAfter: response.headers.first(name: "Retry-After").flatMap(Self.parseRetryAfter))
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

/// Completes with the response head: the status is all an attempt needs, so the connection closes without reading
/// the body.
private final class ResponseHeadCollector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let promise: EventLoopPromise<HTTPResponseHead>

    init(promise: EventLoopPromise<HTTPResponseHead>) {
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data) {
            // 1xx answers are interim; the final answer follows.
            guard head.status.code >= 200 else { return }
            promise.succeed(head)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(ChannelError.eof)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.close(promise: nil)
    }
}
