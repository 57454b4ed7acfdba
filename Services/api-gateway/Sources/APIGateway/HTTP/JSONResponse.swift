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
        respond(try WireCoding.encode(value), status: status, headers: headers)
    }

    /// A value that writes its own JSON text (the call answers).
    static func make(
        _ value: some JSONTextWritable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]
    ) throws -> Response {
        respond(try value.jsonBytes(), status: status, headers: headers)
    }

    private static func respond(_ json: [UInt8], status: HTTPResponse.Status, headers: HTTPFields) -> Response {
        var headers = headers
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: json)))
    }
}
