import AsyncHTTPClient
import Foundation
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import Tracing

/// REST side of ARI: originate, hang up, inspect channels, continue in the dialplan.
///
/// Every call is one HTTP request with basic auth and the configured timeout; HTTP errors become
/// ``ARIError`` cases so callers can tell "already gone" (404) from "id in use" (409) from "Asterisk is
/// down" (``ARIError/transport(_:)``) without reading text. The client holds no state besides its
/// configuration: it is safe to share between tasks.
public final class ARIClient: Sendable {
    private let configuration: ARIConfiguration
    private let httpClient: HTTPClient
    private let logger: Logger
    private let authorization: String
    private let baseURL: String
    /// The node's host, for the spans' `server.address`.
    private let serverAddress: String
    private let requestTimer: Metrics.Timer
    private let failureCounter: Counter

    /// Creates a client; `httpClient` defaults to the process-wide shared client.
    public init(configuration: ARIConfiguration, httpClient: HTTPClient = .shared, logger: Logger) {
        self.configuration = configuration
        self.httpClient = httpClient
        self.logger = logger
        let credentials = Data("\(configuration.username):\(configuration.password)".utf8).base64EncodedString()
        self.authorization = "Basic \(credentials)"
        self.baseURL = configuration.normalizedBaseURL
        self.serverAddress = URL(string: configuration.normalizedBaseURL)?.host ?? configuration.normalizedBaseURL
        self.requestTimer = Metrics.Timer(label: "ari_request_duration_seconds")
        self.failureCounter = Counter(label: "ari_request_failures_total")
    }

    // MARK: - Channels

    /// Originates a channel with the request's channel id (`POST /channels/{channelId}`).
    ///
    /// Events of the new channel may arrive on the WebSocket before this returns: register the id first.
    /// Throws ``ARIError/conflict(_:)`` when a live channel already has the id, ``ARIError/invalidRequest(_:)``
    /// for a bad endpoint or variables, ``ARIError/server(status:message:)`` for an unknown technology.
    public func originate(_ request: OriginateRequest) async throws -> ARIChannel {
        var body: ByteBuffer?
        if !request.variables.isEmpty {
            let json = try JSONEncoder().encode(["variables": request.variables])
            body = ByteBuffer(bytes: json)
        }
        let path = "/channels/" + URLEncoding.pathSegment(request.channelID)
        let (_, bytes) = try await self.send(.POST, path: path, query: request.queryItems, body: body)
        return try self.decode(ARIChannel.self, from: bytes)
    }

    /// Hangs up a channel (`DELETE /channels/{id}?reason=`).
    ///
    /// `reason` is one of ARI's names (`normal`, `busy`, `congestion`, `no_answer`, `rejected`, ...); the
    /// channel's `ChannelDestroyed.cause` will be the matching Q.850 cause. Throws ``ARIError/notFound(_:)``
    /// when the channel is already gone.
    public func hangup(channelID: String, reason: String? = nil) async throws {
        var query: [(String, String)] = []
        if let reason { query.append(("reason", reason)) }
        _ = try await self.send(.DELETE, path: "/channels/" + URLEncoding.pathSegment(channelID), query: query)
    }

    /// Hangs up a channel with an explicit Q.850 cause (`DELETE /channels/{id}?reason_code=`).
    public func hangup(channelID: String, reasonCode: Int) async throws {
        _ = try await self.send(
            .DELETE,
            path: "/channels/" + URLEncoding.pathSegment(channelID),
            query: [("reason_code", String(reasonCode))]
        )
    }

    /// Reads one channel (`GET /channels/{id}`); throws ``ARIError/notFound(_:)`` when it does not exist.
    public func channel(id: String) async throws -> ARIChannel {
        let (_, bytes) = try await self.send(.GET, path: "/channels/" + URLEncoding.pathSegment(id))
        return try self.decode(ARIChannel.self, from: bytes)
    }

    /// Lists every live channel (`GET /channels`), including the `;2` halves of Local channels.
    public func channels() async throws -> [ARIChannel] {
        let (_, bytes) = try await self.send(.GET, path: "/channels")
        return try self.decode([ARIChannel].self, from: bytes)
    }

    /// Sends a channel in Stasis to a dialplan location (`POST /channels/{id}/continue`).
    ///
    /// The application keeps receiving the channel's events after its `StasisEnd`, until `ChannelDestroyed`.
    /// Throws ``ARIError/conflict(_:)`` when the channel is not in Stasis, ``ARIError/preconditionFailed(_:)``
    /// when it is not answered yet.
    public func continueInDialplan(channelID: String, context: String, extension: String, priority: Int) async throws {
        _ = try await self.send(
            .POST,
            path: "/channels/" + URLEncoding.pathSegment(channelID) + "/continue",
            query: [("context", context), ("extension", `extension`), ("priority", String(priority))]
        )
    }

    /// Reads a channel variable (`GET /channels/{id}/variable`); `nil` when the channel has no such variable.
    ///
    /// Asterisk answers 404 both for a missing channel and a missing variable; the two are told apart by the
    /// message. Throws ``ARIError/notFound(_:)`` for a missing channel, ``ARIError/conflict(_:)`` when the channel
    /// is not in a Stasis application.
    public func variable(_ name: String, channelID: String) async throws -> String? {
        struct Variable: Decodable { var value: String }
        do {
            let (_, bytes) = try await self.send(
                .GET, path: "/channels/" + URLEncoding.pathSegment(channelID) + "/variable",
                query: [("variable", name)])
            return try self.decode(Variable.self, from: bytes).value
        } catch ARIError.notFound(let message) where message.lowercased().contains("variable") {
            return nil
        }
    }

    // MARK: - Applications and system

    /// Subscribes an application to an event source (`POST /applications/{app}/subscription`), e.g.
    /// `channel:<id>`; returns the application's subscriptions.
    @discardableResult
    public func subscribe(application: String, eventSource: String) async throws -> ARIApplication {
        let (_, bytes) = try await self.send(
            .POST,
            path: "/applications/" + URLEncoding.pathSegment(application) + "/subscription",
            query: [("eventSource", eventSource)]
        )
        return try self.decode(ARIApplication.self, from: bytes)
    }

    /// Reads an application (`GET /applications/{name}`); 404 when it has neither a WebSocket nor channels.
    public func application(name: String) async throws -> ARIApplication {
        let (_, bytes) = try await self.send(.GET, path: "/applications/" + URLEncoding.pathSegment(name))
        return try self.decode(ARIApplication.self, from: bytes)
    }

    /// Reads Asterisk's system information (`GET /asterisk/info`): version, entity id, start-up time.
    public func asteriskInfo() async throws -> ARIAsteriskInfo {
        let (_, bytes) = try await self.send(.GET, path: "/asterisk/info")
        var info = try self.decode(ARIAsteriskInfo.self, from: bytes)
        info.rawJSON = String(buffer: bytes)
        return info
    }

    /// Checks that ARI answers (`GET /asterisk/ping`); returns the Asterisk entity id.
    @discardableResult
    public func ping() async throws -> String {
        struct Ping: Decodable {
            var asteriskID: String
            enum CodingKeys: String, CodingKey { case asteriskID = "asterisk_id" }
        }
        let (_, bytes) = try await self.send(.GET, path: "/asterisk/ping")
        return try self.decode(Ping.self, from: bytes).asteriskID
    }

    // MARK: - Transport

    func send(
        _ method: HTTPMethod,
        path: String,
        query: [(String, String)] = [],
        body: ByteBuffer? = nil
    ) async throws -> (HTTPResponseStatus, ByteBuffer) {
        try await self.exchange(
            method, path: path, query: query, body: body, timeout: self.configuration.requestTimeout
        ) { status, responseBody in
            (status, try await responseBody.collect(upTo: 64 * 1024 * 1024))
        }
    }

    /// One request. A 2xx answer's body goes to `read` (which may stream it); any other answer becomes an
    /// ``ARIError``. Transport failures, including while `read` reads, are ``ARIError/transport(_:)``; an error
    /// `read` throws itself is passed on as it is.
    func exchange<Result>(
        _ method: HTTPMethod,
        path: String,
        query: [(String, String)] = [],
        body: ByteBuffer? = nil,
        timeout: Duration,
        read: (HTTPResponseStatus, HTTPClientResponse.Body) async throws -> Result
    ) async throws -> Result {
        // A client span only inside a trace (a call's work): the worker's periodic requests (reconciliation,
        // sweeps) would otherwise each start a trace of their own. With tracing off nothing sets a context.
        guard let context = ServiceContext.current else {
            return try await self.perform(
                method, path: path, query: query, body: body, timeout: timeout, span: nil, read: read)
        }
        return try await withSpan("ARI \(method.rawValue) \(Self.route(of: path))", context: context, ofKind: .client) {
            span in
            span.attributes["http.request.method"] = method.rawValue
            span.attributes["url.path"] = path
            span.attributes["server.address"] = self.serverAddress
            return try await self.perform(
                method, path: path, query: query, body: body, timeout: timeout, span: span, read: read)
        }
    }

    /// ARI's route of a request path, its ids replaced by the names the ARI description gives them
    /// (`/channels/{channelId}/continue`): a span name stays the same for every call.
    static func route(of path: String) -> String {
        let names: [Substring: String] = [
            "channels": "{channelId}", "snoop": "{snoopId}", "live": "{recordingName}", "stored": "{recordingName}",
            "applications": "{applicationName}",
        ]
        var route = ""
        var previous: Substring = ""
        for segment in path.split(separator: "/") {
            route += "/" + (names[previous] ?? String(segment))
            previous = names[previous] == nil ? segment : ""
        }
        return route
    }

    private func perform<Result>(
        _ method: HTTPMethod,
        path: String,
        query: [(String, String)],
        body: ByteBuffer?,
        timeout: Duration,
        span: (any Span)?,
        read: (HTTPResponseStatus, HTTPClientResponse.Body) async throws -> Result
    ) async throws -> Result {
        var url = self.baseURL + path
        if !query.isEmpty {
            url += "?" + query.map { "\($0.0)=\(URLEncoding.queryValue($0.1))" }.joined(separator: "&")
        }
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "Authorization", value: self.authorization)
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(body)
        }
        let started = ContinuousClock.now
        let response: HTTPClientResponse
        do {
            response = try await self.httpClient.execute(
                request, deadline: .now() + TimeAmount(timeout), logger: self.logger)
        } catch {
            throw self.transportError(error)
        }
        self.requestTimer.recordNanoseconds(ARIConfiguration.ReconnectBackoff.nanoseconds(of: .now - started))
        span?.attributes["http.response.status_code"] = Int(response.status.code)
        guard (200..<300).contains(response.status.code) else {
            let bytes: ByteBuffer
            do {
                bytes = try await response.body.collect(upTo: 64 * 1024)
            } catch {
                throw self.transportError(error)
            }
            self.failureCounter.increment()
            let error = Self.error(status: response.status, body: bytes)
            self.logger.debug(
                "ARI request failed",
                metadata: ["ari.method": "\(method.rawValue)", "ari.path": "\(path)", "ari.error": "\(error)"]
            )
            throw error
        }
        let result: Result
        do {
            result = try await read(response.status, response.body)
        } catch let error as HTTPClientError {
            throw self.transportError(error)
        } catch let error as NIOTooManyBytesError {
            throw self.transportError(error)
        }
        return result
    }

    private func transportError(_ error: any Error) -> any Error {
        if error is CancellationError { return error }
        if error is ARIError { return error }
        self.failureCounter.increment()
        return ARIError.transport(String(describing: error))
    }

    func decode<Value: Decodable>(_ type: Value.Type, from bytes: ByteBuffer) throws -> Value {
        do {
            return try JSONDecoder().decode(type, from: Data(bytes.readableBytesView))
        } catch {
            throw ARIError.unexpectedResponse(status: 200, body: String(buffer: bytes))
        }
    }

    /// Maps a non-2xx answer to an error. Asterisk puts the text in `message`, except for allocation
    /// failures (e.g. an unknown channel technology) which answer `{"error": "Allocation failed"}`.
    static func error(status: HTTPResponseStatus, body: ByteBuffer) -> ARIError {
        struct ErrorBody: Decodable {
            var message: String?
            var error: String?
        }
        let parsed = try? JSONDecoder().decode(ErrorBody.self, from: Data(body.readableBytesView))
        let message = parsed?.message ?? parsed?.error ?? String(buffer: body)
        switch status.code {
        case 400: return .invalidRequest(message)
        case 401: return .unauthorized
        case 404: return .notFound(message)
        case 409: return .conflict(message)
        case 412: return .preconditionFailed(message)
        case 500...599: return .server(status: Int(status.code), message: message)
        default: return .unexpectedResponse(status: Int(status.code), body: String(buffer: body))
        }
    }
}
