import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOWebSocket
import Synchronization
@_spi(WSInternal) import WSCore

/// The server's connections: HTTP/1.1 with a WebSocket upgrade on `/ari/events`.
///
/// Hummingbird's own upgrade channel answers any declined upgrade with a bare 400; Asterisk answers a
/// WebSocket upgrade with bad credentials like any other request, `401` with `WWW-Authenticate`. Here a
/// declined upgrade is served by the regular responder, which produces exactly that.
struct ARIServerChannel: ServerChildChannel, HTTPChannelHandler {
    enum UpgradeResult: Sendable {
        case webSocket(NIOAsyncChannel<WebSocketFrame, WebSocketFrame>)
        case http(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
    }

    struct Value: ServerChildChannelValue {
        let upgradeResult: EventLoopFuture<UpgradeResult>
        let channel: any Channel
    }

    let responder: Responder
    let simulator: ARISimulator

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let simulator = self.simulator
        simulator.connectionOpened(channel)
        return channel.eventLoop.makeCompletedFuture {
            let upgrader = NIOTypedWebSocketServerUpgrader<UpgradeResult>(
                maxFrameSize: 1 << 20,
                shouldUpgrade: { channel, head in
                    // Registering before the 101 goes out: an originate sent as soon as the client sees the
                    // socket open must find the application.
                    channel.eventLoop.makeSucceededFuture(
                        simulator.acceptEventsWebSocket(head: head, channel: channel) ? HTTPHeaders() : nil
                    )
                },
                upgradePipelineHandler: { channel, _ in
                    channel.eventLoop.makeCompletedFuture {
                        .webSocket(
                            try NIOAsyncChannel<WebSocketFrame, WebSocketFrame>(
                                wrappingChannelSynchronously: channel,
                                configuration: .init(isOutboundHalfClosureEnabled: true)
                            )
                        )
                    }
                }
            )
            let upgradeConfiguration = NIOTypedHTTPServerUpgradeConfiguration<UpgradeResult>(
                upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
                        try channel.pipeline.syncOperations.addHandler(
                            HTTPConnectionStateHandler(idleTimeout: nil, logger: logger)
                        )
                        return .http(
                            try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                                wrappingChannelSynchronously: channel,
                                configuration: .init(isOutboundHalfClosureEnabled: true)
                            )
                        )
                    }
                }
            )
            var configuration = NIOUpgradableHTTPServerPipelineConfiguration<UpgradeResult>(
                upgradeConfiguration: upgradeConfiguration
            )
            configuration.enablePipelining = false
            configuration.enableErrorHandling = false
            configuration.enableResponseHeaderValidation = false
            let result = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(
                configuration: configuration
            )
            return Value(upgradeResult: result, channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.upgradeResult.get() {
            case .http(let asyncChannel):
                if let declined = self.simulator.takeDeclinedUpgrade(asyncChannel.channel) {
                    await Self.answerDeclinedUpgrade(asyncChannel, declined, serverName: self.simulator.serverName)
                } else {
                    await self.handleHTTP(asyncChannel: asyncChannel, logger: logger)
                }
            case .webSocket(let asyncChannel):
                await self.simulator.serveEventsWebSocket(asyncChannel, logger: logger)
            }
        } catch {
            logger.debug("connection setup failed", metadata: ["error": "\(error)"])
        }
    }
}

extension ARIServerChannel {
    /// NIO's upgrade handler does not hand a declined upgrade request back to the HTTP pipeline (only what
    /// follows its head), so the answer Asterisk gives is written here: 401 with `WWW-Authenticate` for bad
    /// credentials, then the connection closes.
    static func answerDeclinedUpgrade(
        _ asyncChannel: NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>,
        _ declined: DeclinedUpgrade,
        serverName: String
    ) async {
        var headers: HTTPFields = [
            .server: serverName,
            .contentType: "application/json",
            .cacheControl: "no-cache, no-store",
            .connection: "close",
        ]
        if declined.status == 401 {
            headers[.wwwAuthenticate] = #"Basic realm="Asterisk REST Interface""#
        }
        let body = ByteBuffer(string: JSONText.message(declined.message))
        headers[.contentLength] = String(body.readableBytes)
        try? await asyncChannel.executeThenClose { _, outbound in
            try await outbound.write(
                contentsOf: [
                    .head(HTTPResponse(status: .init(code: declined.status), headerFields: headers)),
                    .body(body),
                    .end(nil),
                ]
            )
        }
    }
}

/// Why an upgrade was declined, and what to answer.
struct DeclinedUpgrade: Sendable {
    let status: Int
    let message: String
}

/// The context WSCore hands to the events handler.
struct EventsWebSocketContext: WebSocketContext {
    let logger: Logger
}

extension ARISimulator {
    /// Decides a WebSocket upgrade of `/ari/events` and registers the application's socket.
    func acceptEventsWebSocket(head: HTTPRequestHead, channel: any Channel) -> Bool {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        let query = QueryString.parse(head.uri.split(separator: "?", maxSplits: 1).dropFirst().first.map(String.init))
        func decline(_ status: Int, _ message: String) -> Bool {
            let key = ObjectIdentifier(channel)
            self.declinedUpgrades.withLock { $0[key] = DeclinedUpgrade(status: status, message: message) }
            channel.closeFuture.whenComplete { [weak self] _ in
                _ = self?.declinedUpgrades.withLock { $0.removeValue(forKey: key) }
            }
            return false
        }
        guard path.hasPrefix("/ari/") else { return decline(404, "Not Found") }
        guard self.isAuthorized(authorization: head.headers.first(name: "Authorization"), query: query) else {
            return decline(401, "Authentication required")
        }
        guard path == "/ari/events" || path == "/ari/events/" else { return decline(404, "Resource not found") }
        guard let application = query["app"], !application.isEmpty else {
            return decline(400, "Missing param app")
        }
        let (stream, continuation) = AsyncStream.makeStream(of: OutboundItem.self)
        let connectionID = self.state.withLock {
            $0.connect(application: application, outbound: continuation) {
                channel.close(mode: .all, promise: nil)
            }
        }
        self.pendingConnections.withLock {
            $0[ObjectIdentifier(channel)] = PendingConnection(
                id: connectionID,
                application: application,
                stream: stream,
                outbound: continuation
            )
        }
        // However the connection ends (a failed upgrade included), the application loses this socket.
        channel.closeFuture.whenComplete { [weak self] _ in
            self?.state.withLock { $0.disconnect(connectionID) }
            _ = self?.pendingConnections.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) }
            continuation.finish()
        }
        return true
    }

    /// The answer owed to a declined upgrade on `channel`, if any.
    func takeDeclinedUpgrade(_ channel: any Channel) -> DeclinedUpgrade? {
        self.declinedUpgrades.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    var serverName: String { "Asterisk/\(self.simulatorConfiguration.asteriskVersion)" }

    /// Serves one events WebSocket: writes the queued events in order, reads (and ignores) what the client
    /// sends; pings are answered by WSCore.
    func serveEventsWebSocket(_ asyncChannel: NIOAsyncChannel<WebSocketFrame, WebSocketFrame>, logger: Logger) async {
        guard
            let connection = self.pendingConnections.withLock({
                $0.removeValue(forKey: ObjectIdentifier(asyncChannel.channel))
            })
        else {
            try? await asyncChannel.channel.close()
            return
        }
        let simulator = self
        _ = try? await WebSocketHandler.handle(
            type: .server,
            configuration: .init(
                extensions: [],
                autoPing: .disabled,
                closeTimeout: .seconds(2),
                validateUTF8: false,
                maxFrameSize: 1 << 20
            ),
            asyncChannel: asyncChannel,
            context: EventsWebSocketContext(logger: logger)
        ) { inbound, outbound, _ in
            await simulator.pump(connection, inbound: inbound, outbound: outbound)
        }
        self.state.withLock { $0.disconnect(connection.id) }
        connection.outbound.finish()
    }

    private func pump(
        _ connection: PendingConnection,
        inbound: WebSocketInboundStream,
        outbound: WebSocketOutboundWriter
    ) async {
        let stream = connection.stream
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                do {
                    for try await _ in inbound {}
                } catch {}
                return true
            }
            group.addTask {
                var failed = false
                for await item in stream {
                    switch item {
                    case .text(let text):
                        guard !failed else { continue }
                        do {
                            try await outbound.write(.text(text))
                        } catch {
                            failed = true
                        }
                    case .flushed(let done):
                        done()
                    }
                }
                return false
            }
            // When the client goes away, stop queuing and let the writer drain (flush callbacks must run);
            // when the writer stops (the socket was dropped), stop reading.
            if let readerEnded = await group.next(), readerEnded {
                self.state.withLock { $0.disconnect(connection.id) }
                connection.outbound.finish()
                _ = await group.next()
            } else {
                group.cancelAll()
            }
        }
    }
}

/// A registered events WebSocket waiting for its handler.
struct PendingConnection: Sendable {
    let id: Int
    let application: String
    let stream: AsyncStream<OutboundItem>
    let outbound: AsyncStream<OutboundItem>.Continuation
}
