import CallDomain
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// JSON answers in the wire conventions (snake_case, RFC 3339 timestamps with milliseconds, sorted keys).
enum JSONResponse {
    static func make(
        _ value: some Encodable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]
    ) throws -> Response {
        let bytes = try WireCoding.encode(value)
        var headers = headers
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
