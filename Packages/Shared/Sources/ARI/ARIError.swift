/// What can go wrong talking to ARI, mapped from HTTP status codes so callers can decide without parsing text.
public enum ARIError: Error, Sendable, Equatable {
    /// 400: invalid parameters (bad endpoint, bad variables, id too long, bad hangup reason).
    case invalidRequest(String)
    /// 404: unknown channel or application (a channel that is already gone answers 404).
    case notFound(String)
    /// 409: channel id already in use by a live channel, or the channel is not in a Stasis application.
    case conflict(String)
    /// 412: the channel is in a state that does not allow the operation (e.g. `continue` while ringing).
    case preconditionFailed(String)
    /// 401: bad credentials.
    case unauthorized
    /// 5xx: Asterisk (or a proxy in front of it) failed; an unknown channel technology answers 500.
    case server(status: Int, message: String)
    /// The request never got an answer: connection refused, reset, or the request timeout passed.
    case transport(String)
    /// Any other status, or a body that could not be decoded.
    case unexpectedResponse(status: Int, body: String)
}

extension ARIError: CustomStringConvertible {
    /// A one-line description for logs.
    public var description: String {
        switch self {
        case .invalidRequest(let message): "ARI 400: \(message)"
        case .notFound(let message): "ARI 404: \(message)"
        case .conflict(let message): "ARI 409: \(message)"
        case .preconditionFailed(let message): "ARI 412: \(message)"
        case .unauthorized: "ARI 401: unauthorized"
        case .server(let status, let message): "ARI \(status): \(message)"
        case .transport(let message): "ARI transport error: \(message)"
        case .unexpectedResponse(let status, let body): "ARI unexpected response \(status): \(body)"
        }
    }
}
