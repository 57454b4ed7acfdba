import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// Control-plane HTTP of the dev kit (readiness, the API's setup calls, the simulator's admin endpoints) with the
/// shared AsyncHTTPClient: a handful of requests, never on a measured path (load has its own NIO clients).
public enum ControlHTTP {
    /// Runs a request; returns the status code and the body.
    public static func request(
        _ method: HTTPMethod, _ url: String, token: String? = nil, body: String? = nil, contentType: String? = nil,
        timeout: TimeAmount = .seconds(30)
    ) async throws -> (status: Int, body: Data) {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let contentType { request.headers.add(name: "Content-Type", value: contentType) }
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.shared.execute(request, timeout: timeout)
        } catch {
            throw DevStackError("\(method.rawValue) \(url) failed: \(error)")
        }
        let bytes = try await response.body.collect(upTo: 64 << 20)
        return (Int(response.status.code), Data(buffer: bytes))
    }

    /// A request whose answer must be 2xx JSON.
    public static func json(
        _ url: String, method: HTTPMethod = .GET, token: String? = nil, body: String? = nil, contentType: String? = nil
    ) async throws -> Any {
        let data = try await successful(method, url, token: token, body: body, contentType: contentType)
        guard let object = try? JSONSerialization.jsonObject(with: data) else {
            throw DevStackError("\(method.rawValue) \(url): not JSON: \(String(decoding: data, as: UTF8.self))")
        }
        return object
    }

    /// A POST that must succeed (2xx).
    public static func post(_ url: String) async throws {
        _ = try await successful(.POST, url)
    }

    /// The body of a request whose answer must be 2xx.
    private static func successful(
        _ method: HTTPMethod, _ url: String, token: String? = nil, body: String? = nil, contentType: String? = nil
    ) async throws -> Data {
        let (status, data) = try await request(method, url, token: token, body: body, contentType: contentType)
        guard (200..<300).contains(status) else {
            throw DevStackError("\(method.rawValue) \(url): \(status) \(String(decoding: data, as: UTF8.self))")
        }
        return data
    }
}
