import AsyncHTTPClient
import CallDomain
import DevStack
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// One Server-Sent Event.
public struct SSEEvent: Sendable, Hashable {
    /// `id:`.
    public var id: String?
    /// `event:`.
    public var event: String?
    /// `data:` lines joined by newlines.
    public var data: String
}

/// A small client of the gateway's REST API for end-to-end tests (a real HTTP client over TCP).
public struct APIClient: Sendable {
    /// The gateway's base URL.
    public let baseURL: String
    let client: HTTPClient

    /// A client of `baseURL`.
    public init(baseURL: String, client: HTTPClient = .shared) {
        self.baseURL = baseURL
        self.client = client
    }

    /// A response: status, headers and body.
    public struct Response: Sendable {
        /// HTTP status code.
        public var status: Int
        /// Headers.
        public var headers: HTTPHeaders
        /// Body bytes.
        public var body: Data

        /// The body as a JSON object.
        public func json() throws -> [String: Any] {
            guard let object = try JSONSerialization.jsonObject(with: body) as? [String: Any] else {
                throw TestEnvironmentError("not a JSON object: \(String(decoding: body, as: UTF8.self))")
            }
            return object
        }
    }

    /// Sends a request; `body` is sent as is with `contentType`.
    public func request(
        _ method: String, _ path: String, token: String? = nil, body: Data? = nil,
        contentType: String = "application/json", headers extra: [(String, String)] = []
    ) async throws -> Response {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = HTTPMethod(rawValue: method)
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(ByteBuffer(data: body))
        }
        for (name, value) in extra { request.headers.add(name: name, value: value) }
        let response = try await client.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 16 << 20)
        return Response(status: Int(response.status.code), headers: response.headers, body: Data(buffer: bytes))
    }

    /// Logs in with the OAuth2 password form; returns the access token.
    public func token(username: String, password: String) async throws -> String {
        let form =
            "username=\(username)&password=\(password.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? password)"
        let response = try await request(
            "POST", "/api/v1/auth/token", body: Data(form.utf8), contentType: "application/x-www-form-urlencoded")
        guard response.status == 200, let token = try response.json()["access_token"] as? String else {
            throw TestEnvironmentError(
                "login failed: \(response.status) \(String(decoding: response.body, as: UTF8.self))")
        }
        return token
    }

    /// Places a call; returns its id (requires a 202).
    public func placeCall(
        token: String, body: [String: JSONValue], idempotencyKey: String? = nil
    ) async throws -> String {
        let response = try await request(
            "POST", "/api/v1/calls", token: token, body: Data(try WireCoding.encode(body)),
            headers: idempotencyKey.map { [("Idempotency-Key", $0)] } ?? [])
        guard response.status == 202, let id = try response.json()["id"] as? String else {
            throw TestEnvironmentError(
                "POST /calls: \(response.status) \(String(decoding: response.body, as: UTF8.self))")
        }
        return id
    }

    /// Follows a call's SSE stream from its first event (`Last-Event-ID: 0`) until a terminal status arrives.
    public func followUntilTerminal(token: String, callID: String, timeout: Duration) async throws -> [SSEEvent] {
        var request = HTTPClientRequest(url: "\(baseURL)/api/v1/calls/\(callID)/events")
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.headers.add(name: "Accept", value: "text/event-stream")
        request.headers.add(name: "Last-Event-ID", value: "0")
        let response = try await client.execute(request, timeout: .seconds(Int64(timeout.components.seconds)))
        guard response.status == .ok else { throw TestEnvironmentError("SSE: \(response.status)") }
        var buffer = ""
        var events: [SSEEvent] = []
        for try await chunk in response.body {
            buffer += String(buffer: chunk)
            while let range = buffer.range(of: "\n\n") {
                let block = String(buffer[..<range.lowerBound])
                buffer.removeSubrange(..<range.upperBound)
                var event = SSEEvent(id: nil, event: nil, data: "")
                var data: [String] = []
                for line in block.split(separator: "\n", omittingEmptySubsequences: false) {
                    if line.hasPrefix(":") { continue }
                    let parts = line.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
                    let value = parts.count > 1 ? String(parts[1].drop(while: { $0 == " " })) : ""
                    switch parts.first {
                    case "id": event.id = value
                    case "event": event.event = value
                    case "data": data.append(value)
                    default: break
                    }
                }
                guard !data.isEmpty else { continue }
                event.data = data.joined(separator: "\n")
                events.append(event)
                if let status = try? WireCoding.decode(CallStatusEvent.self, from: Array(event.data.utf8)).status,
                    status.isTerminal
                {
                    return events
                }
            }
        }
        throw TestEnvironmentError("SSE stream ended before a terminal status: \(events.map(\.data))")
    }
}

/// One record read by kcat.
public struct KcatRecord: Sendable {
    /// The key as text.
    public var key: String
    /// The value as text.
    public var payload: String
    /// Headers in order.
    public var headers: [(String, String)]
    /// Partition and offset.
    public var partition: Int
    /// Offset in the partition.
    public var offset: Int

    /// The last value of a header.
    public func header(_ name: String) -> String? { headers.last { $0.0 == name }?.1 }
}

/// kcat (Debian's `kcat`), a Kafka client nobody here wrote, reading or writing a topic.
public enum Kcat {
    /// Every record of `topic` from the beginning to the current end.
    public static func consumeAll(bootstrap: String, topic: String) async throws -> [KcatRecord] {
        let run = try await ChildProcess.run(
            executable: ChildProcess.resolve("kcat"),
            arguments: ["-b", bootstrap, "-t", topic, "-C", "-o", "beginning", "-e", "-q", "-J"])
        guard run.termination == .exited(0) else {
            throw TestEnvironmentError("kcat \(run.termination): \(run.errors)")
        }
        return try run.output.split(separator: "\n").map { line in
            guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw TestEnvironmentError("kcat printed \(line)")
            }
            let flat = object["headers"] as? [String] ?? []
            let headers = stride(from: 0, to: flat.count - 1, by: 2).map { (flat[$0], flat[$0 + 1]) }
            return KcatRecord(
                key: object["key"] as? String ?? "", payload: object["payload"] as? String ?? "", headers: headers,
                partition: object["partition"] as? Int ?? -1, offset: object["offset"] as? Int ?? -1)
        }
    }
}
