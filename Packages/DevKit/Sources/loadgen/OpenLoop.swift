import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// What an open-loop run sends: one request, repeated at a fixed rate.
struct OpenLoopPlan: Sendable {
    var host: String
    var port: Int
    var path: String
    var headers: [(String, String)]
    var body: [UInt8]
    /// Requests per second, whatever the responses do.
    var rate: Double
    var duration: Duration
    /// Connections opened before the clock starts (so connection set-up does not count as latency).
    var initialConnections: Int = 16
    /// The most connections the generator opens; a request due while all are busy waits for one (and its wait
    /// counts in its latency).
    var maxConnections: Int = 512
    /// Keep the `Location` header of every 2xx answer with the wall-clock time it arrived.
    var recordLocations = false
    /// How long to wait for the last answers after the last request was sent.
    var grace: Duration = .seconds(30)

    /// A plan for `url` (`http://host:port/path`).
    init(url: String, headers: [(String, String)], body: [UInt8], rate: Double, duration: Duration) throws {
        guard let components = URLComponents(string: url), components.scheme == "http", let host = components.host
        else { throw BenchError("not an http URL: \(url)") }
        self.host = host
        self.port = components.port ?? 80
        self.path = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
        self.headers = headers
        self.body = body
        self.rate = rate
        self.duration = duration
    }
}

/// A 2xx answer's `Location` and when it arrived.
struct RecordedLocation: Sendable {
    var location: String
    /// Seconds since 1970.
    var at: Double
}

/// What an open-loop run measured.
struct OpenLoopResult: Sendable {
    /// Latency of every answered request in milliseconds, from the moment it was due (not when it could be sent:
    /// a generator that falls behind does not hide the server's slowness; see "coordinated omission").
    var latencies: [Double]
    var statusCounts: [Int: Int]
    /// Requests that got no answer (connection refused or closed, timeout).
    var failures: Int
    var sent: Int
    /// Seconds from the first due request to the last answer.
    var elapsed: Double
    var locations: [RecordedLocation]
    /// The most connections open at once.
    var peakConnections: Int
}

/// An open-loop HTTP/1.1 load generator: requests are due at fixed intervals (`1 / rate`) from the start,
/// independent of the answers, spread over keep-alive connections (one request at a time each, as browsers and
/// API clients do). Everything runs on one event loop thread, so the generator uses little CPU.
enum OpenLoopGenerator {
    static func run(_ plan: OpenLoopPlan) async throws -> OpenLoopResult {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        return try await withCheckedThrowingContinuation { continuation in
            loop.execute {
                let run = OpenLoopRun(plan: plan, loop: loop) { result in continuation.resume(with: result) }
                run.start()
            }
        }
    }
}

/// One run's state. Confined to its event loop: every method runs there.
private final class OpenLoopRun {
    private let plan: OpenLoopPlan
    private let loop: any EventLoop
    private let completion: (Result<OpenLoopResult, any Error>) -> Void
    private let head: HTTPRequestHead
    private let body: ByteBuffer
    private let total: Int
    private let intervalNanoseconds: Double

    private var startDeadline = NIODeadline.now()
    private var sent = 0
    private var answered = 0
    private var failures = 0
    private var idle: [ConnectionHandler] = []
    private var open = 0
    private var opening = 0
    private var peakConnections = 0
    private var waiting: [Int] = []
    private var waitingHead = 0
    private var latencies: [Double] = []
    private var statusCounts: [Int: Int] = [:]
    private var locations: [RecordedLocation] = []
    private var lastAnswer = NIODeadline.now()
    private var finished = false
    private var started = false
    private var connectFailures = 0

    init(plan: OpenLoopPlan, loop: any EventLoop, completion: @escaping (Result<OpenLoopResult, any Error>) -> Void) {
        self.plan = plan
        self.loop = loop
        self.completion = completion
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "\(plan.host):\(plan.port)")
        for (name, value) in plan.headers { headers.add(name: name, value: value) }
        headers.add(name: "Content-Length", value: "\(plan.body.count)")
        head = HTTPRequestHead(version: .http1_1, method: .POST, uri: plan.path, headers: headers)
        body = ByteBuffer(bytes: plan.body)
        total = max(1, Int((plan.rate * plan.duration.seconds).rounded()))
        intervalNanoseconds = 1e9 / plan.rate
        latencies.reserveCapacity(total)
        waiting.reserveCapacity(1024)
    }

    // MARK: Phases

    /// Opens the initial connections, then starts the clock.
    func start() {
        for _ in 0..<min(plan.initialConnections, plan.maxConnections) { connect() }
        waitForInitialConnections(deadline: .now() + .seconds(10))
    }

    private func waitForInitialConnections(deadline: NIODeadline) {
        if open + connectFailures >= min(plan.initialConnections, plan.maxConnections) || NIODeadline.now() > deadline {
            guard open > 0 else {
                finish(.failure(BenchError("could not connect to \(plan.host):\(plan.port)")))
                return
            }
            started = true
            startDeadline = .now()
            tick()
            return
        }
        loop.assumeIsolated().scheduleTask(in: .milliseconds(5)) { self.waitForInitialConnections(deadline: deadline) }
    }

    /// Sends every request that is due, then sleeps until the next one is.
    private func tick() {
        guard !finished else { return }
        let now = NIODeadline.now()
        let elapsed = Double((now - startDeadline).nanoseconds)
        let due = min(total, Int(elapsed / intervalNanoseconds) + 1)
        while sent < due {
            dispatch(sent)
            sent += 1
        }
        if sent < total {
            let next = startDeadline + .nanoseconds(Int64(Double(sent) * intervalNanoseconds))
            loop.assumeIsolated().scheduleTask(deadline: next) { self.tick() }
        } else {
            loop.assumeIsolated().scheduleTask(in: TimeAmount.nanoseconds(Int64(plan.grace.seconds * 1e9))) {
                self.finishIfStillRunning()
            }
            checkDone()
        }
    }

    private func dueTime(_ index: Int) -> NIODeadline {
        startDeadline + .nanoseconds(Int64(Double(index) * intervalNanoseconds))
    }

    private func dispatch(_ index: Int) {
        if let connection = idle.popLast() {
            connection.send(index: index, head: head, body: body)
            return
        }
        waiting.append(index)
        if open + opening < plan.maxConnections { connect() }
    }

    private func nextWaiting() -> Int? {
        guard waitingHead < waiting.count else { return nil }
        let index = waiting[waitingHead]
        waitingHead += 1
        if waitingHead > 4096, waitingHead * 2 > waiting.count {
            waiting.removeFirst(waitingHead)
            waitingHead = 0
        }
        return index
    }

    private func connect() {
        opening += 1
        let bound = NIOLoopBound(self, eventLoop: loop)
        ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ConnectionHandler(run: bound.value))
                }
            }
            .connect(host: plan.host, port: plan.port)
            .assumeIsolated()
            .whenFailure { _ in
                self.opening -= 1
                self.connectFailures += 1
                if self.started, self.waitingHead < self.waiting.count, self.open + self.opening == 0 {
                    self.loop.assumeIsolated().scheduleTask(in: .milliseconds(50)) { self.connect() }
                }
            }
    }

    // MARK: Connection callbacks

    func connectionReady(_ connection: ConnectionHandler) {
        opening -= 1
        open += 1
        peakConnections = max(peakConnections, open)
        connectionIdle(connection)
    }

    func connectionIdle(_ connection: ConnectionHandler) {
        if let index = nextWaiting() {
            connection.send(index: index, head: head, body: body)
        } else {
            idle.append(connection)
        }
    }

    func answered(index: Int, status: Int, location: String?, connection: ConnectionHandler) {
        let now = NIODeadline.now()
        answered += 1
        lastAnswer = now
        latencies.append(Double((now - dueTime(index)).nanoseconds) / 1e6)
        statusCounts[status, default: 0] += 1
        if plan.recordLocations, (200..<300).contains(status), let location {
            locations.append(RecordedLocation(location: location, at: wallClock()))
        }
        connectionIdle(connection)
        checkDone()
    }

    func connectionClosed(_ connection: ConnectionHandler, inFlight: Int?) {
        open -= 1
        idle.removeAll { $0 === connection }
        if inFlight != nil {
            failures += 1
            checkDone()
        }
        if !finished, waitingHead < waiting.count, open + opening < plan.maxConnections { connect() }
    }

    private func checkDone() {
        if sent == total, answered + failures == total { finish(.success(result())) }
    }

    private func finishIfStillRunning() {
        guard !finished else { return }
        failures += total - answered - failures
        finish(.success(result()))
    }

    private func result() -> OpenLoopResult {
        OpenLoopResult(
            latencies: latencies, statusCounts: statusCounts, failures: failures, sent: sent,
            elapsed: Double((lastAnswer - startDeadline).nanoseconds) / 1e9, locations: locations,
            peakConnections: peakConnections)
    }

    private func finish(_ result: Result<OpenLoopResult, any Error>) {
        guard !finished else { return }
        finished = true
        for connection in idle { connection.close() }
        idle.removeAll()
        completion(result)
    }
}

/// One keep-alive connection: sends a request, reads its answer, reports back.
private final class ConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let run: OpenLoopRun
    private var context: ChannelHandlerContext?
    private var inFlight: Int?
    private var status = 0
    private var location: String?
    private var closed = false

    init(run: OpenLoopRun) {
        self.run = run
    }

    func channelActive(context: ChannelHandlerContext) {
        self.context = context
        run.connectionReady(self)
        context.fireChannelActive()
    }

    func send(index: Int, head: HTTPRequestHead, body: ByteBuffer) {
        guard let context, !closed else { return }
        inFlight = index
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = Int(head.status.code)
            location = head.headers.first(name: "location")
        case .body:
            break
        case .end:
            guard let index = inFlight else { return }
            inFlight = nil
            run.answered(index: index, status: status, location: location, connection: self)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        guard !closed else { return }
        closed = true
        run.connectionClosed(self, inFlight: inFlight)
        inFlight = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func close() {
        guard !closed else { return }
        closed = true
        context?.close(promise: nil)
    }
}
