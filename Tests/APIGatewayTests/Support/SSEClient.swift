import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// One Server-Sent Events frame.
struct SSEFrame: Sendable, Equatable {
    var id: String?
    var event: String?
    var data: String
}

/// A minimal SSE client over AsyncHTTPClient: connects, then yields frames (comment lines are counted, not
/// yielded) until the stream ends or the client is closed.
final class SSEConnection: @unchecked Sendable {
    // @unchecked: only the test task that opened the connection uses it, sequentially.
    let status: HTTPResponseStatus
    let headers: HTTPHeaders
    private var iterator: HTTPClientResponse.Body.AsyncIterator
    private var buffer = ""
    private(set) var comments = 0
    private let client: HTTPClient

    private init(client: HTTPClient, response: HTTPClientResponse) {
        self.client = client
        status = response.status
        headers = response.headers
        iterator = response.body.makeAsyncIterator()
    }

    /// Opens `path` with a bearer token (and `Last-Event-ID` when given).
    static func open(
        port: Int, path: String, token: String?, lastEventID: String? = nil
    ) async throws
        -> SSEConnection
    {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.headers.add(name: "Accept", value: "text/event-stream")
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let lastEventID { request.headers.add(name: "Last-Event-ID", value: lastEventID) }
        do {
            let response = try await client.execute(request, deadline: .now() + .seconds(600))
            return SSEConnection(client: client, response: response)
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    /// The next frame with data; `nil` when the stream ended.
    func next() async throws -> SSEFrame? {
        while true {
            if let range = buffer.range(of: "\n\n") {
                let block = String(buffer[..<range.lowerBound])
                buffer.removeSubrange(..<range.upperBound)
                var frame = SSEFrame(id: nil, event: nil, data: "")
                var hasData = false
                for line in block.split(separator: "\n", omittingEmptySubsequences: false) {
                    if line.hasPrefix(":") {
                        comments += 1
                    } else if line.hasPrefix("id: ") {
                        frame.id = String(line.dropFirst(4))
                    } else if line.hasPrefix("event: ") {
                        frame.event = String(line.dropFirst(7))
                    } else if line.hasPrefix("data: ") {
                        frame.data += String(line.dropFirst(6))
                        hasData = true
                    }
                }
                if hasData { return frame }
                continue
            }
            guard let chunk = try await iterator.next() else { return nil }
            buffer += String(buffer: chunk)
        }
    }

    /// The next `count` frames (fails if the stream ends first).
    func next(_ count: Int) async throws -> [SSEFrame] {
        var frames: [SSEFrame] = []
        while frames.count < count {
            guard let frame = try await next() else { throw StreamEnded(received: frames.count) }
            frames.append(frame)
        }
        return frames
    }

    /// Waits for a heartbeat comment (returns when one more arrives than were seen).
    func nextHeartbeat() async throws {
        let seen = comments
        while comments <= seen {
            if let range = buffer.range(of: "\n\n") {
                let block = String(buffer[..<range.lowerBound])
                if block.hasPrefix(":") {
                    buffer.removeSubrange(..<range.upperBound)
                    comments += block.split(separator: "\n").filter { $0.hasPrefix(":") }.count
                    continue
                }
                _ = try await next()
                continue
            }
            guard let chunk = try await iterator.next() else { throw StreamEnded(received: 0) }
            buffer += String(buffer: chunk)
        }
    }

    /// Closes the connection.
    func close() async {
        try? await client.shutdown()
    }

    struct StreamEnded: Error {
        var received: Int
    }
}
