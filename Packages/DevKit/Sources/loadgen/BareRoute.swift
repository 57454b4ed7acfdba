import ArgumentParser
import Hummingbird
import Logging
import NIOCore

/// `loadgen bare-route`: the gateway benchmark's yardstick, a bare Hummingbird 2 application with one route and no
/// middleware: `POST /calls` reads the body and answers 202 with a JSON body the size and shape of the gateway's
/// answer. It runs as its own process so that its CPU is measured apart, like the gateway's.
struct BareRouteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bare-route",
        abstract: "Serve a bare Hummingbird route (POST /calls: read the body, answer 202 JSON) until stopped."
    )

    @Option(help: "The address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "The port to listen on.")
    var port: Int

    @Option(help: "The largest request body read.")
    var maxBodyBytes = 65_536

    /// A 202 body shaped like the gateway's call resource, so both answers put the same bytes on the wire.
    static let answer = ByteBuffer(
        string: #"{"id":"0192a6e8-5f4c-7cc1-9d2e-3a1f6b7c8d90","status":"queued","to":"+155501140010","#
            + #""requested_at":"2026-12-07T12:00:00.000Z","expires_at":"2026-12-07T12:05:00.000Z","#
            + #""request_id":"b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6","#
            + #""links":{"self":"/api/v1/calls/0192a6e8-5f4c-7cc1-9d2e-3a1f6b7c8d90","#
            + #""events":"/api/v1/calls/0192a6e8-5f4c-7cc1-9d2e-3a1f6b7c8d90/events"}}"#)

    func run() async throws {
        let router = Router()
        let limit = maxBodyBytes
        router.post("calls") { request, _ -> Response in
            _ = try await request.body.collect(upTo: limit)
            return Response(
                status: .accepted, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: Self.answer))
        }
        var logger = Logger(label: "bare-route")
        logger.logLevel = .warning
        let application = Application(
            router: router, configuration: .init(address: .hostname(host, port: port)), logger: logger)
        try await application.runService()
    }
}
