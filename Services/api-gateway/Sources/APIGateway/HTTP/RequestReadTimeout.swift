import NIOCore
import NIOHTTPTypes

/// Closes a connection whose client takes longer than the read timeout to send a request's body, counted from its
/// head: a client trickling one byte per second would otherwise hold its connection (and the task reading the body)
/// forever.
///
/// Hummingbird's idle timeout covers the rest: a head that never completes (its parts are only decoded once it is
/// whole) and an idle keep-alive connection. Every new body byte counts as activity for that timeout, hence this
/// handler. Responses being written (event streams) are not affected: the deadline ends with the request's end.
final class RequestReadTimeoutHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    private let timeout: TimeAmount
    private var deadline: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            deadline?.cancel()
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            deadline = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
                loopBound.value.close(promise: nil)
            }
        case .body:
            break
        case .end:
            deadline?.cancel()
            deadline = nil
        }
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }
}
