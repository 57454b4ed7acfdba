import CallDomain
import CallStore
import Foundation
import Kafka
import Recordings
import ServiceSupport
import Webhooks

/// Everything the gateway reads from its environment, validated once at start-up.
///
/// A missing or bad value throws a `ConfigurationError` naming the variable, so the process stops before it
/// listens instead of failing on the first request. Secrets are never echoed in those messages.
public struct GatewayConfiguration: Sendable {
    // MARK: - Server

    /// `HOST`: the address to listen on.
    public var host: String
    /// `PORT`: the port to listen on (0 picks a free port, which tests use).
    public var port: Int
    /// `MAX_BODY_BYTES`: the largest request body accepted; larger ones get 413.
    public var maxBodyBytes: Int
    /// `CONTACT_LIST_MAX_BYTES`: the largest contact list upload (default 256 MiB, about 2.5 million rows of a
    /// typical list).
    public var contactListMaxBytes: Int
    /// `UPLOAD_DIRECTORY`: where uploads are written while they are read (default the system's temporary
    /// directory); each file is deleted once its import ends.
    public var uploadDirectory: String
    /// `RECORDING_DIR`: the recording store the workers fill and `GET /calls/{id}/recording` serves from (the same
    /// directory as the workers').
    public var recordingStore: RecordingStoreConfiguration
    /// `HTTP_READ_TIMEOUT_SECONDS`: how long a client may take to send a request (its head, then its body) and how
    /// long an idle keep-alive connection is kept; slower clients are disconnected. The default (75 s) outlasts the
    /// idle timeouts of load balancers (60 s) and HTTP client pools, so that they close idle connections first.
    public var httpReadTimeoutSeconds: Double
    /// `ALLOWED_ORIGINS`: browser origins allowed by CORS (`*` for any); empty turns CORS off.
    public var allowedOrigins: [String]
    /// `CORS_ALLOW_CREDENTIALS`: send `Access-Control-Allow-Credentials: true` (refused together with `*`).
    public var corsAllowCredentials: Bool
    /// `TRUST_X_FORWARDED_FOR`: take the client address from the first `X-Forwarded-For` entry (only behind a
    /// proxy that sets it), for the token endpoint's rate limit and the access log.
    public var trustForwardedFor: Bool
    /// `DOCS_ENABLED`: serve `/openapi.json`, `/docs` and `/redoc`.
    public var docsEnabled: Bool
    /// `BENCH_BASELINE_ROUTE`: serve `POST /bench/baseline/calls` (no auth, no validation, no Kafka) for
    /// benchmarks that measure the HTTP stack alone. Never enable it in production.
    public var benchBaselineRoute: Bool
    /// `INSTANCE_ID`: names this process in CloudEvents `source` and logs (default: the host name).
    public var instanceID: String

    // MARK: - Auth

    /// `SECRET_KEY`: the HS256 signing key (at least 32 bytes, not a known placeholder).
    public var secretKey: SecretKey
    /// `ACCESS_TOKEN_EXPIRE_MINUTES`: lifetime of an access token.
    public var accessTokenExpireMinutes: Int
    /// `JWT_ISSUER`: the `iss` of issued tokens, required on every presented token.
    public var jwtIssuer: String
    /// `JWT_AUDIENCE`: the `aud` of issued tokens, required on every presented token.
    public var jwtAudience: String
    /// `TOKEN_RATE_LIMIT`: token requests allowed per client address, as `count/seconds`.
    public var tokenRateLimit: RateLimit
    /// `BCRYPT_COST`: bcrypt cost of new password hashes (12 or more).
    public var bcryptCost: Int
    /// `USER_CACHE_SECONDS`: how long an authenticated user's record is reused before it is read again (so that a
    /// disabled or deleted user is refused within this time without a database read on every request; 0 reads
    /// it on every request).
    public var userCacheSeconds: Double

    // MARK: - Calls

    /// `DATABASE_URL`: the PostgreSQL server of users, idempotency keys and the call history.
    public var databaseURL: String
    /// `DATABASE_MAX_CONNECTIONS`: the size of the connection pool.
    public var databaseMaxConnections: Int
    /// Kafka connection (`KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_CLIENT_ID`, `KAFKA_PROP_*`).
    public var kafka: KafkaConfiguration
    /// Topic names (`KAFKA_TOPIC_ORIGINATE`, `KAFKA_TOPIC_CONTROL`, `KAFKA_TOPIC_STATUS`).
    public var topics: CallTopics
    /// `PUBLISH_TIMEOUT_SECONDS`: how long a request waits for Kafka's acknowledgement before answering 503.
    public var publishTimeoutSeconds: Double
    /// `ALLOWED_CONTEXTS`: dialplan contexts a client may send calls to (default: `DEFAULT_CONTEXT`, itself
    /// `default` when unset, like the worker's).
    public var allowedContexts: Set<String>
    /// `DEFAULT_TIMEOUT`: ring timeout in seconds when a request gives none.
    public var defaultTimeoutSeconds: Int
    /// `CALL_TTL_SECONDS`: time to live of a call command when a request gives none.
    public var callTTLSeconds: Int
    /// `WEBHOOK_ALLOW_PRIVATE_TARGETS`: whether webhook URLs (endpoints and status callbacks) may be plain http and
    /// private addresses (development; the dispatcher has the same setting and checks every attempt).
    public var webhookPolicy: WebhookTargetPolicy

    // MARK: - Live status

    /// `SSE_HEARTBEAT_SECONDS`: interval of the comment lines that keep idle event streams open.
    public var sseHeartbeatSeconds: Double
    /// `SSE_CLIENT_BUFFER`: events buffered per stream client; a client that falls further behind is disconnected.
    public var sseClientBuffer: Int

    /// The HS256 key, kept apart so it is never printed by accident.
    public struct SecretKey: Sendable, CustomStringConvertible {
        /// The key bytes (UTF-8 of the variable).
        public let bytes: [UInt8]

        /// Wraps a key that was already checked.
        public init(bytes: [UInt8]) {
            self.bytes = bytes
        }

        /// Never the key itself.
        public var description: String { "SecretKey(\(bytes.count) bytes)" }
    }

    /// A request budget: `count` requests per `seconds`.
    public struct RateLimit: Sendable, Hashable {
        /// Requests allowed in one window.
        public var count: Int
        /// The window, in seconds.
        public var seconds: Int

        /// Creates a limit.
        public init(count: Int, seconds: Int) {
            self.count = count
            self.seconds = seconds
        }
    }

    /// The placeholders of example files and tutorials, refused as `SECRET_KEY` whatever their length.
    static let placeholderSecrets: Set<String> = [
        "change-me", "changeme", "change_me", "secret", "secret-key", "secretkey", "your-secret-key",
        "replace-with-at-least-32-random-bytes-of-secret", "replace-me", "please-change-me", "development",
        "insecure", "password", "test",
    ]

    /// The smallest `SECRET_KEY` accepted: HS256 needs a key at least as long as its 32-byte output.
    public static let minimumSecretKeyBytes = 32

    /// Reads and validates every variable.
    public init(environment: EnvironmentReader = EnvironmentReader()) throws {
        let env = environment
        host = env.string("HOST", default: "0.0.0.0")
        port = try env.int("PORT", default: 8000, range: 0...65_535)
        maxBodyBytes = try env.int("MAX_BODY_BYTES", default: 65_536, range: 1_024...10_485_760)
        contactListMaxBytes = try env.int(
            "CONTACT_LIST_MAX_BYTES", default: 268_435_456, range: 1_024...10_737_418_240)
        uploadDirectory = env.string("UPLOAD_DIRECTORY", default: FileManager.default.temporaryDirectory.path)
        recordingStore = try RecordingStoreConfiguration.fromEnvironment(env)
        httpReadTimeoutSeconds = try env.double("HTTP_READ_TIMEOUT_SECONDS", default: 75, range: 1...3_600)
        allowedOrigins = env.list("ALLOWED_ORIGINS", default: [])
        webhookPolicy =
            try env.bool("WEBHOOK_ALLOW_PRIVATE_TARGETS", default: false) ? .allowPrivate : .production
        corsAllowCredentials = try env.bool("CORS_ALLOW_CREDENTIALS", default: false)
        if corsAllowCredentials && allowedOrigins.contains("*") {
            throw ConfigurationError(
                variable: "ALLOWED_ORIGINS",
                message: "must list explicit origins when CORS_ALLOW_CREDENTIALS is true ('*' with credentials is "
                    + "refused by browsers and would expose every user's session to any site)")
        }
        for origin in allowedOrigins where origin != "*" {
            guard let url = URL(string: origin), let scheme = url.scheme, ["http", "https"].contains(scheme),
                url.host != nil, url.path.isEmpty
            else {
                throw ConfigurationError(
                    variable: "ALLOWED_ORIGINS",
                    message: "must be '*' or a comma-separated list of origins like https://app.example.com")
            }
        }
        trustForwardedFor = try env.bool("TRUST_X_FORWARDED_FOR", default: false)
        docsEnabled = try env.bool("DOCS_ENABLED", default: true)
        benchBaselineRoute = try env.bool("BENCH_BASELINE_ROUTE", default: false)
        instanceID = env.string("INSTANCE_ID", default: ProcessInfo.processInfo.hostName)

        secretKey = try Self.readSecretKey(env)
        accessTokenExpireMinutes = try env.int("ACCESS_TOKEN_EXPIRE_MINUTES", default: 30, range: 1...10_080)
        jwtIssuer = env.string("JWT_ISSUER", default: "outbound-dialer")
        jwtAudience = env.string("JWT_AUDIENCE", default: "outbound-dialer-api")
        tokenRateLimit = try Self.readRateLimit(
            env, name: "TOKEN_RATE_LIMIT", default: RateLimit(count: 10, seconds: 60))
        bcryptCost = try env.int("BCRYPT_COST", default: 12, range: 12...16)
        userCacheSeconds = try env.double("USER_CACHE_SECONDS", default: 5, range: 0...300)

        databaseURL = try env.required("DATABASE_URL")
        databaseMaxConnections = try env.int("DATABASE_MAX_CONNECTIONS", default: 20, range: 1...500)
        do {
            _ = try DatabaseConfiguration.client(url: databaseURL, maximumConnections: databaseMaxConnections)
        } catch {
            throw ConfigurationError(variable: "DATABASE_URL", message: "\(error)")
        }
        kafka = try env.kafkaConfiguration()
        topics = CallTopics.fromEnvironment(env.values)
        publishTimeoutSeconds = try env.double("PUBLISH_TIMEOUT_SECONDS", default: 5, range: 0.1...120)
        let contexts = env.list("ALLOWED_CONTEXTS", default: [env.string("DEFAULT_CONTEXT", default: "default")])
        for context in contexts {
            do {
                try DialplanTarget.validateContextSyntax(context)
            } catch {
                throw ConfigurationError(
                    variable: "ALLOWED_CONTEXTS", message: "has an invalid context name: \(error.message)")
            }
        }
        allowedContexts = Set(contexts)
        defaultTimeoutSeconds = try env.int(
            "DEFAULT_TIMEOUT", default: 30,
            range: OriginateCommand.timeoutRange.lowerBound...OriginateCommand.timeoutRange.upperBound)
        callTTLSeconds = try env.int("CALL_TTL_SECONDS", default: 300, range: CallRequest.ttlRange)

        sseHeartbeatSeconds = try env.double("SSE_HEARTBEAT_SECONDS", default: 15, range: 0.05...300)
        sseClientBuffer = try env.int("SSE_CLIENT_BUFFER", default: 256, range: 8...100_000)
    }

    // MARK: - Readers

    static func readSecretKey(_ env: EnvironmentReader) throws -> SecretKey {
        // Not trimmed: a key is used byte for byte, and the raw reader would hide surrounding blanks.
        guard let value = env.values["SECRET_KEY"], !value.isEmpty else {
            throw ConfigurationError(variable: "SECRET_KEY", message: "must be set (at least 32 random bytes)")
        }
        let lowered = value.lowercased()
        let looksLikePlaceholder =
            placeholderSecrets.contains(lowered) || lowered.contains("change-me") || lowered.contains("changeme")
            || lowered.hasPrefix("replace-with") || Set(value).count == 1
        if looksLikePlaceholder {
            throw ConfigurationError(
                variable: "SECRET_KEY",
                message: "is a placeholder value; generate one, e.g. `openssl rand -base64 48`")
        }
        let bytes = Array(value.utf8)
        guard bytes.count >= minimumSecretKeyBytes else {
            throw ConfigurationError(
                variable: "SECRET_KEY",
                message: "must be at least \(minimumSecretKeyBytes) bytes long (it has \(bytes.count))")
        }
        return SecretKey(bytes: bytes)
    }

    static func readRateLimit(
        _ env: EnvironmentReader, name: String, default defaultValue: RateLimit
    ) throws
        -> RateLimit
    {
        guard let text = env.raw(name) else { return defaultValue }
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let count = Int(parts[0]), let seconds = Int(parts[1]), (1...1_000_000).contains(count),
            (1...86_400).contains(seconds)
        else {
            throw ConfigurationError(
                variable: name, message: "must look like COUNT/SECONDS, e.g. 10/60 (1-1000000 per 1-86400 s)")
        }
        return RateLimit(count: count, seconds: seconds)
    }
}
