import CallDomain
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// An error answered as `application/problem+json` (RFC 9457).
///
/// Every error a client can see has a stable `type` URI per kind, so a client branches on `type`, never on the
/// human `detail`. Validation problems list every rejected field in `errors`.
public struct Problem: Error, HTTPResponseError, Sendable {
    /// The kind of problem; its raw value is the last segment of the `type` URI.
    public enum Kind: String, Sendable, CaseIterable {
        /// 422: fields of the request are invalid (`errors` lists each).
        case validation
        /// 400: the body is not JSON (or not an object), a cursor or header is unusable.
        case malformedRequest = "malformed-request"
        /// 415: the body has a content type the endpoint does not take.
        case unsupportedMediaType = "unsupported-media-type"
        /// 413: the body exceeds `MAX_BODY_BYTES`.
        case payloadTooLarge = "payload-too-large"
        /// 401: no valid bearer token (missing, malformed, expired, wrong issuer or audience, user disabled).
        case unauthenticated
        /// 401: the token endpoint refused the username and password.
        case invalidCredentials = "invalid-credentials"
        /// 403: the caller's role or key scopes do not allow the action.
        case forbidden
        /// 404: no such route, or no such call, user or key in the caller's organization.
        case notFound = "not-found"
        /// 405: the route exists but not with this method.
        case methodNotAllowed = "method-not-allowed"
        /// 409: a hangup for a call that already ended.
        case callEnded = "call-ended"
        /// 409: an `Idempotency-Key` reused with a different request.
        case idempotencyConflict = "idempotency-conflict"
        /// 409: a user with that name exists.
        case usernameTaken = "username-taken"
        /// 409: an organization with that name exists.
        case organizationNameTaken = "organization-name-taken"
        /// 409: another conflict with the current state (an admin locking themselves out).
        case conflict
        /// 429: too many requests; see `Retry-After`.
        case rateLimited = "rate-limited"
        /// 429: the caller's organization has `max_live_calls` calls in progress; see `Retry-After`.
        case organizationCallLimit = "organization-call-limit"
        /// 503: Kafka did not acknowledge the command in time; nothing was accepted. See `Retry-After`.
        case kafkaUnavailable = "kafka-unavailable"
        /// 503: PostgreSQL is unavailable. See `Retry-After`.
        case databaseUnavailable = "database-unavailable"
        /// 503: `/ready` found a dependency unreachable.
        case notReady = "not-ready"
        /// 500: a bug; the cause is logged under the request id.
        case internalError = "internal-error"

        /// The HTTP status of this kind.
        public var status: HTTPResponse.Status {
            switch self {
            case .validation: .unprocessableContent
            case .malformedRequest: .badRequest
            case .unsupportedMediaType: .unsupportedMediaType
            case .payloadTooLarge: .contentTooLarge
            case .unauthenticated, .invalidCredentials: .unauthorized
            case .forbidden: .forbidden
            case .notFound: .notFound
            case .methodNotAllowed: .methodNotAllowed
            case .callEnded, .idempotencyConflict, .usernameTaken, .organizationNameTaken, .conflict: .conflict
            case .rateLimited, .organizationCallLimit: .tooManyRequests
            case .kafkaUnavailable, .databaseUnavailable, .notReady: .serviceUnavailable
            case .internalError: .internalServerError
            }
        }

        /// The short, stable summary (`title`).
        public var title: String {
            switch self {
            case .validation: "The request has invalid fields"
            case .malformedRequest: "The request could not be read"
            case .unsupportedMediaType: "Unsupported content type"
            case .payloadTooLarge: "The request body is too large"
            case .unauthenticated: "Authentication required"
            case .invalidCredentials: "Invalid username or password"
            case .forbidden: "Not allowed"
            case .notFound: "Not found"
            case .methodNotAllowed: "Method not allowed"
            case .callEnded: "The call has already ended"
            case .idempotencyConflict: "Idempotency key reused with a different request"
            case .usernameTaken: "The username is taken"
            case .organizationNameTaken: "The organization name is taken"
            case .conflict: "Conflict"
            case .rateLimited: "Too many requests"
            case .organizationCallLimit: "The organization is at its limit of live calls"
            case .kafkaUnavailable: "The message broker did not accept the command in time"
            case .databaseUnavailable: "The database is unavailable"
            case .notReady: "Not ready"
            case .internalError: "Internal error"
            }
        }

        /// The `type` URI.
        public var typeURI: String { Problem.typeBase + rawValue }
    }

    /// The prefix of every problem `type` URI.
    public static let typeBase = "https://outbound-dialer.example/problems/"

    /// The kind.
    public var kind: Kind
    /// What happened, for humans.
    public var detail: String
    /// Per-field errors (validation only).
    public var errors: [FieldError]
    /// Extra response headers (`Retry-After`, `WWW-Authenticate`, `Allow`).
    public var headers: HTTPFields

    /// Creates a problem.
    public init(_ kind: Kind, detail: String, errors: [FieldError] = [], headers: HTTPFields = [:]) {
        self.kind = kind
        self.detail = detail
        self.errors = errors
        self.headers = headers
    }

    /// The HTTP status.
    public var status: HTTPResponse.Status { kind.status }

    /// A 422 listing every rejected field.
    public static func validation(_ errors: [FieldError]) -> Problem {
        let count = errors.count
        return Problem(
            .validation, detail: count == 1 ? "1 field is invalid" : "\(count) fields are invalid", errors: errors)
    }

    /// A 422 for one field.
    public static func validation(field: String, message: String) -> Problem {
        validation([FieldError(field: field, message: message)])
    }

    /// A 401 with the `WWW-Authenticate` challenge of RFC 6750.
    public static func unauthenticated(_ detail: String, tokenPresented: Bool) -> Problem {
        let challenge =
            tokenPresented
            ? "Bearer realm=\"outbound-dialer\", error=\"invalid_token\"" : "Bearer realm=\"outbound-dialer\""
        return Problem(.unauthenticated, detail: detail, headers: [.wwwAuthenticate: challenge])
    }

    /// A problem with a `Retry-After` header (seconds).
    public static func retryLater(_ kind: Kind, detail: String, after seconds: Int) -> Problem {
        Problem(kind, detail: detail, headers: [.retryAfter: String(max(1, seconds))])
    }

    /// The JSON body.
    struct Body: Encodable {
        var type: String
        var title: String
        var status: Int
        var detail: String
        var instance: String?
        var errors: [FieldError]?
        var requestID: String?

        enum CodingKeys: String, CodingKey {
            case type, title, status, detail, instance, errors
            case requestID = "request_id"
        }
    }

    /// The encoded response body.
    func body(instance: String?, requestID: String?) -> Body {
        Body(
            type: kind.typeURI, title: kind.title, status: Int(kind.status.code), detail: detail, instance: instance,
            errors: kind == .validation ? errors : (errors.isEmpty ? nil : errors), requestID: requestID)
    }

    /// Renders the problem; the request id comes from the gateway context when there is one.
    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let requestID = (context as? any GatewayContextProtocol)?.requestID
        return try makeResponse(instance: request.uri.path, requestID: requestID)
    }

    /// Renders the problem outside of a request context.
    func makeResponse(instance: String?, requestID: String?) throws -> Response {
        let data = try JSONEncoder.problem.encode(body(instance: instance, requestID: requestID))
        var headers = headers
        headers[.contentType] = "application/problem+json"
        headers[.cacheControl] = "no-store"
        return Response(status: kind.status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

extension JSONEncoder {
    /// Sorted keys and unescaped slashes, so problem bodies are stable and URIs readable.
    static var problem: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}
