import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing
import Webhooks

@testable import WebhookDispatcher

@Suite("kept-alive connections to receivers")
struct ConnectionReuseTests {
    @Test("attempts to one receiver share a kept-alive connection")
    func reusesConnection() async throws {
        let receiver = try await CountingReceiver(closeOnRequest: { _ in false })
        defer { receiver.close() }
        let sender = try WebhookSender(policy: .allowPrivate, timeout: .seconds(15))
        defer { sender.closeIdleConnections() }
        let url = try WebhookURL(receiver.url, policy: .allowPrivate)
        for _ in 0..<20 {
            let answer = try await sender.send(to: url, headers: [], body: Array("{}".utf8)).get()
            #expect(answer.status == 204)
        }
        #expect(receiver.connections.count == 1)
        #expect(receiver.answered.count == 20)
    }

    @Test("a kept-alive connection the receiver closed is replaced: the attempt goes on a new one and arrives once")
    func staleConnectionRetried() async throws {
        // Each connection answers its first request and drops the next one unanswered, as a receiver that closes
        // idle connections does when a request crosses its close.
        let receiver = try await CountingReceiver(closeOnRequest: { $0 > 1 })
        defer { receiver.close() }
        let sender = try WebhookSender(policy: .allowPrivate, timeout: .seconds(15))
        defer { sender.closeIdleConnections() }
        let url = try WebhookURL(receiver.url, policy: .allowPrivate)
        for _ in 0..<10 {
            let answer = try await sender.send(to: url, headers: [], body: Array("{}".utf8)).get()
            #expect(answer.status == 204)
        }
        #expect(receiver.answered.count == 10)
        #expect(receiver.connections.count == 10)
    }
}

/// A plain HTTP/1.1 receiver on loopback that counts its connections and the requests it answered (204, kept
/// alive), and closes a connection without answering when `closeOnRequest(n)` says so for its n-th request.
final class CountingReceiver: Sendable {
    final class Counter: Sendable {
        private let value = Atomic<Int>(0)
        func increment() { value.add(1, ordering: .relaxed) }
        var count: Int { value.load(ordering: .relaxed) }
    }

    let connections = Counter()
    let answered = Counter()
    private let channel: any Channel

    init(closeOnRequest: @escaping @Sendable (Int) -> Bool) async throws {
        let connections = self.connections
        let answered = self.answered
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { child in
                connections.increment()
                return child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.configureHTTPServerPipeline()
                    try child.pipeline.syncOperations.addHandler(
                        Answerer(closeOnRequest: closeOnRequest, answered: answered))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    var url: String { "http://127.0.0.1:\(channel.localAddress?.port ?? 0)/hooks" }

    func close() {
        channel.close(promise: nil)
    }

    private final class Answerer: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        let closeOnRequest: @Sendable (Int) -> Bool
        let answered: Counter
        var requests = 0
        var closing = false

        init(closeOnRequest: @escaping @Sendable (Int) -> Bool, answered: Counter) {
            self.closeOnRequest = closeOnRequest
            self.answered = answered
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head:
                requests += 1
                if closeOnRequest(requests) {
                    closing = true
                    context.close(promise: nil)
                }
            case .body:
                break
            case .end:
                guard !closing else { return }
                answered.increment()
                var headers = HTTPHeaders()
                headers.add(name: "Content-Length", value: "0")
                context.write(
                    wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .noContent, headers: headers))),
                    promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}
