import CallDomain
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

extension HTTPField.Name {
    /// `X-Request-ID`.
    static let requestID = HTTPField.Name("X-Request-ID")!
    /// `Idempotency-Key`.
    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!
    /// `Idempotent-Replayed`: set on answers that return an earlier call for a repeated key.
    static let idempotentReplayed = HTTPField.Name("Idempotent-Replayed")!
    /// `Last-Event-ID`.
    static let lastEventID = HTTPField.Name("Last-Event-ID")!
    /// `X-Forwarded-For`.
    static let forwardedFor = HTTPField.Name("X-Forwarded-For")!
}

extension StringProtocol where SubSequence == Substring {
    /// The text without the spaces and tabs around it (HTTP's optional whitespace). Not Foundation's
    /// `trimmingCharacters(in:)`, which bridges to `NSString` and back: with a bearer token it was 8% of a call
    /// request's CPU in a profile of the gateway.
    var trimmingHTTPWhitespace: Substring {
        let isWhitespace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = firstIndex(where: { !isWhitespace($0) }), let last = lastIndex(where: { !isWhitespace($0) })
        else { return self[endIndex...] }
        return self[first...last]
    }
}

/// What the request-id middleware accepts from clients: 1 to 128 printable ASCII characters, no spaces.
enum RequestIDPolicy {
    static func accept(_ value: String?) -> String? {
        guard let value, !value.isEmpty, value.utf8.count <= 128,
            value.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
        else { return nil }
        return value
    }
}

// MARK: - Observation

/// The outermost middleware: request id, problem+json for every error, access log and request metrics.
///
/// It sits outside everything else so that the access log and the metrics see the final status, including errors
/// thrown by other middleware and 404s for unknown routes, and so that no error leaves as an empty 500.
struct ObservationMiddleware: RouterMiddleware {
    typealias Context = GatewayRequestContext

    let metrics: GatewayMetrics
    let trustForwardedFor: Bool
    let accessLogger: Logger

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        var context = context
        let requestID = RequestIDPolicy.accept(request.headers[.requestID]) ?? TraceContext.newRequestID()
        context.requestID = requestID
        if trustForwardedFor, let forwarded = request.headers[.forwardedFor] {
            let first = forwarded.split(separator: ",").first.map { String($0.trimmingHTTPWhitespace) }
            if let first, !first.isEmpty, first.utf8.count <= 64 { context.clientAddress = first }
        }
        context.logger[metadataKey: "request.id"] = .string(requestID)
        context.logger[metadataKey: "hb.request.id"] = nil
        let start = ContinuousClock.now
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            response = Self.problemResponse(for: error, request: request, requestID: requestID, logger: context.logger)
        }
        response.headers[.requestID] = requestID
        let elapsed = ContinuousClock.now - start
        let route = context.endpointPath ?? "NotFound"
        let status = Int(response.status.code)
        let nanoseconds = elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000
        metrics.recordRequest(
            route: route, method: request.method.rawValue, status: status, nanoseconds: nanoseconds)
        var log = accessLogger
        log[metadataKey: "request.id"] = .string(requestID)
        // Only the path: query strings may carry phone numbers, and headers may carry credentials.
        var metadata: Logger.Metadata = [
            "http.method": .string(request.method.rawValue),
            "http.path": .string(String(request.uri.path.prefix(256))),
            "http.route": .string(route),
            "http.status": .stringConvertible(status),
            "http.duration_ms": .string(Self.milliseconds(nanoseconds)),
            "client.address": .string(context.clientAddress),
        ]
        context.annotations.metadata(into: &metadata)
        log.info("request", metadata: metadata)
        return response
    }

    /// `12.34`: milliseconds with two decimals, without `String(format:)` (a `vfprintf` per request).
    static func milliseconds(_ nanoseconds: Int64) -> String {
        let hundredths = (max(0, nanoseconds) + 5_000) / 10_000
        let fraction = hundredths % 100
        return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }

    /// Every error becomes problem+json: our own `Problem`s as they are, Hummingbird's errors by status, anything
    /// else a 500 whose cause is logged but not shown.
    static func problemResponse(
        for error: any Error, request: Request, requestID: String, logger: Logger
    )
        -> Response
    {
        let problem: Problem
        switch error {
        case let error as Problem:
            problem = error
        case let error as any HTTPResponseError:
            problem = Problem.from(status: error.status, detail: (error as? HTTPError)?.body)
        default:
            logger.error("unhandled error", metadata: ["error": .string(String(describing: error))])
            problem = Problem(.internalError, detail: "an unexpected error occurred; quote the request id")
        }
        if let response = try? problem.makeResponse(instance: request.uri.path, requestID: requestID) {
            return response
        }
        return Response(status: .internalServerError)
    }
}

extension Problem {
    /// Maps a bare HTTP status (from Hummingbird or NIO) to the closest problem kind.
    static func from(status: HTTPResponse.Status, detail: String?) -> Problem {
        switch status {
        case .notFound: return Problem(.notFound, detail: detail ?? "no such resource")
        case .contentTooLarge: return Problem(.payloadTooLarge, detail: detail ?? "the request body is too large")
        case .methodNotAllowed: return Problem(.methodNotAllowed, detail: detail ?? "method not allowed")
        case .unsupportedMediaType: return Problem(.unsupportedMediaType, detail: detail ?? "unsupported media type")
        case .unauthorized: return .unauthenticated(detail ?? "authentication required", tokenPresented: false)
        case .forbidden: return Problem(.forbidden, detail: detail ?? "forbidden")
        case .tooManyRequests: return Problem(.rateLimited, detail: detail ?? "too many requests")
        case .serviceUnavailable: return Problem(.notReady, detail: detail ?? "service unavailable")
        default:
            if status.kind == .clientError {
                return Problem(.malformedRequest, detail: detail ?? status.reasonPhrase)
            }
            return Problem(.internalError, detail: "an unexpected error occurred; quote the request id")
        }
    }
}

// MARK: - CORS

/// CORS from `ALLOWED_ORIGINS`: a listed origin is echoed (with `Vary: Origin`), `*` allows any origin without
/// credentials, and an unlisted origin gets no CORS headers (the browser then blocks the response).
struct CORSMiddleware: RouterMiddleware {
    typealias Context = GatewayRequestContext

    let allowedOrigins: Set<String>
    let allowAny: Bool
    let allowCredentials: Bool

    init(origins: [String], allowCredentials: Bool) {
        allowAny = origins.contains("*")
        allowedOrigins = Set(origins.filter { $0 != "*" })
        self.allowCredentials = allowCredentials && !allowAny
    }

    static let allowHeaders = "Authorization, Content-Type, Accept, Idempotency-Key, X-Request-ID, Last-Event-ID"
    static let exposeHeaders = "Location, Retry-After, X-Request-ID, Idempotent-Replayed"
    static let allowMethods = "GET, POST, PATCH, DELETE, OPTIONS"

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard let origin = request.headers[.origin], let allowed = allowedValue(for: origin) else {
            return try await next(request, context)
        }
        if request.method == .options, request.headers[.accessControlRequestMethod] != nil {
            var headers: HTTPFields = [
                .accessControlAllowOrigin: allowed,
                .accessControlAllowMethods: Self.allowMethods,
                .accessControlAllowHeaders: Self.allowHeaders,
                .accessControlMaxAge: "600",
            ]
            if allowed != "*" { headers[.vary] = "Origin" }
            if allowCredentials { headers[.accessControlAllowCredentials] = "true" }
            return Response(status: .noContent, headers: headers)
        }
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            response = ObservationMiddleware.problemResponse(
                for: error, request: request, requestID: context.requestID, logger: context.logger)
        }
        response.headers[.accessControlAllowOrigin] = allowed
        response.headers[.accessControlExposeHeaders] = Self.exposeHeaders
        if allowed != "*" { response.headers[values: .vary].append("Origin") }
        if allowCredentials { response.headers[.accessControlAllowCredentials] = "true" }
        return response
    }

    private func allowedValue(for origin: String) -> String? {
        if allowedOrigins.contains(origin) { return origin }
        return allowAny ? "*" : nil
    }
}

// MARK: - Body limit

/// Refuses a body whose declared length exceeds `MAX_BODY_BYTES` before reading it (413); handlers that read a
/// body stop at the same limit when no length was declared.
struct BodyLimitMiddleware: RouterMiddleware {
    typealias Context = GatewayRequestContext

    let maxBytes: Int
    /// The larger limit of an upload route (`POST` to a path it knows), if the path is one; its handler counts what
    /// it reads.
    var uploadLimit: @Sendable (String) -> Int? = { _ in nil }

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        if let length = request.headers[.contentLength] {
            guard let bytes = Int(length), bytes >= 0 else {
                throw Problem(.malformedRequest, detail: "Content-Length is not a number")
            }
            let limit = request.method == .post ? uploadLimit(request.uri.path) ?? maxBytes : maxBytes
            if bytes > limit {
                throw Problem(.payloadTooLarge, detail: "the body may be at most \(limit) bytes")
            }
        }
        return try await next(request, context)
    }
}

// MARK: - Reading bodies

extension Request {
    /// The body, at most `limit` bytes (413 beyond).
    func collectBody(limit: Int) async throws -> ByteBuffer {
        do {
            return try await body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw Problem(.payloadTooLarge, detail: "the body may be at most \(limit) bytes")
        }
    }

    /// The media type of the body, lower-cased, without parameters; `nil` when none is given (or only blanks).
    var mediaType: String? {
        guard let value = headers[.contentType] else { return nil }
        // On the bytes: Foundation's `trimmingCharacters(in:)` showed in the profile of every call request.
        let bytes = value.utf8.prefix { $0 != UInt8(ascii: ";") }
        let isBlank: (UInt8) -> Bool = { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
        guard let first = bytes.firstIndex(where: { !isBlank($0) }) else { return nil }
        let last = bytes.lastIndex(where: { !isBlank($0) })!
        return String(decoding: bytes[first...last], as: UTF8.self).lowercased()
    }

    /// Requires a JSON body (`application/json` or `application/*+json`); 415 otherwise.
    func requireJSONContentType() throws {
        guard let type = mediaType else {
            throw Problem(.unsupportedMediaType, detail: "send the body as application/json")
        }
        if type == "application/json" || (type.hasPrefix("application/") && type.hasSuffix("+json")) { return }
        throw Problem(.unsupportedMediaType, detail: "send the body as application/json, not \(type)")
    }
}
