import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOFileSystem
import NIOHTTP1

/// Where recordings go in S3-compatible object storage (AWS S3, MinIO, Ceph RGW, ...): path-style addressing,
/// `<endpoint>/<bucket>/<prefix><key>`, signed with AWS Signature Version 4.
public struct S3Location: Sendable, Hashable, CustomStringConvertible {
    /// `scheme://host[:port]`, e.g. `https://s3.eu-west-1.amazonaws.com` or `http://127.0.0.1:9000`.
    public var endpoint: String
    /// The bucket (it must exist).
    public var bucket: String
    /// The signing region (`us-east-1` for most S3-compatible servers).
    public var region: String
    /// The access key id.
    public var accessKeyID: String
    /// The secret access key (never printed).
    public var secretAccessKey: String
    /// Prepended to every key, e.g. `recordings/`.
    public var prefix: String

    /// A location; see the properties.
    public init(
        endpoint: String, bucket: String, region: String, accessKeyID: String, secretAccessKey: String,
        prefix: String = ""
    ) {
        self.endpoint = endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint
        self.bucket = bucket
        self.region = region
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.prefix = prefix
    }

    public var description: String { "s3 \(endpoint)/\(bucket)/\(prefix) (\(region))" }
}

/// Recordings as objects in S3-compatible storage.
///
/// A file goes up in one `PUT` streamed from disk, with its SHA-256 as `x-amz-content-sha256`, so the server refuses
/// a body that arrived damaged; a read streams the object's body; a delete of a missing object succeeds, as S3's does.
public struct S3RecordingStore: RecordingStore {
    public let location: S3Location
    let httpClient: HTTPClient
    let signer: S3Signer
    let timeout: Duration

    /// A store at `location`, using `httpClient` (the process-wide shared one by default).
    public init(location: S3Location, httpClient: HTTPClient = .shared, timeout: Duration = .seconds(300)) {
        self.location = location
        self.httpClient = httpClient
        self.signer = S3Signer(
            accessKeyID: location.accessKeyID, secretAccessKey: location.secretAccessKey, region: location.region)
        self.timeout = timeout
    }

    public func put(key: RecordingKey, file: FilePath, sha256: String) async throws {
        // The worker hashed the file as it downloaded it: that hash signs the upload, and S3 checks the body by it.
        guard let info = try await FileSystem.shared.info(forFileAt: file) else {
            throw RecordingStoreError.notFound(file.string)
        }
        let size = info.size
        let payloadHash = sha256
        try await FileSystem.shared.withFileHandle(forReadingAt: file) { input in
            var upload = request(.PUT, key: key, payloadHash: payloadHash)
            upload.headers.add(name: "Content-Length", value: String(size))
            upload.body = .stream(input.readChunks(in: ..., chunkLength: .kibibytes(256)), length: .known(size))
            let response = try await httpClient.execute(upload, timeout: TimeAmount(timeout))
            try await Self.expectSuccess(response, key: key)
        }
    }

    public func read(key: RecordingKey, into receive: (ByteBuffer) async throws -> Void) async throws {
        let request = request(.GET, key: key, payloadHash: S3Signer.emptyPayloadHash)
        let response = try await httpClient.execute(request, timeout: TimeAmount(timeout))
        if response.status == .notFound { throw RecordingStoreError.notFound(key.value) }
        try await Self.expectSuccess(response, key: key, drain: false)
        for try await chunk in response.body { try await receive(chunk) }
    }

    public func delete(key: RecordingKey) async throws {
        let request = request(.DELETE, key: key, payloadHash: S3Signer.emptyPayloadHash)
        let response = try await httpClient.execute(request, timeout: TimeAmount(timeout))
        if response.status == .notFound { return }
        try await Self.expectSuccess(response, key: key)
    }

    /// A signed request for the object of `key`.
    func request(
        _ method: HTTPMethod, key: RecordingKey, payloadHash: String, extra: [(String, String)] = [],
        date: Date = Date()
    ) -> HTTPClientRequest {
        let path = "/" + S3Signer.encodePath(location.bucket) + "/" + S3Signer.encodePath(location.prefix + key.value)
        let host = Self.hostHeader(of: location.endpoint)
        let amzDate = S3Signer.timestamp(date)
        var headers: [(String, String)] = [
            ("host", host), ("x-amz-content-sha256", payloadHash), ("x-amz-date", amzDate),
        ]
        headers += extra
        let authorization = signer.authorization(
            method: method.rawValue, path: path, query: [], headers: headers, payloadHash: payloadHash, date: date)
        var request = HTTPClientRequest(url: location.endpoint + path)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.headers.add(name: "Authorization", value: authorization)
        return request
    }

    /// `host[:port]` of the endpoint, as the `Host` header carries it (and the signature covers it).
    static func hostHeader(of endpoint: String) -> String {
        guard let components = URLComponents(string: endpoint), let host = components.host else { return endpoint }
        if let port = components.port { return "\(host):\(port)" }
        return host
    }

    static func expectSuccess(_ response: HTTPClientResponse, key: RecordingKey, drain: Bool = true) async throws {
        if (200..<300).contains(response.status.code) {
            if drain { _ = try await response.body.collect(upTo: 1 << 20) }
            return
        }
        let body = (try? await response.body.collect(upTo: 64 * 1024)).map { String(buffer: $0) } ?? ""
        throw S3StoreError(status: Int(response.status.code), key: key.value, body: body)
    }
}

/// An S3 request the server refused.
public struct S3StoreError: Error, CustomStringConvertible {
    public var status: Int
    public var key: String
    public var body: String

    public var description: String {
        "the object store answered \(status) for \(key): \(body.prefix(500))"
    }
}

/// AWS Signature Version 4 for S3 requests (the `Authorization` header form).
public struct S3Signer: Sendable {
    let accessKeyID: String
    let secretAccessKey: String
    let region: String
    let service = "s3"

    /// A signer for one set of credentials in `region`.
    public init(accessKeyID: String, secretAccessKey: String, region: String) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.region = region
    }

    /// SHA-256 of an empty body.
    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    /// The `Authorization` header of a request. `path` is already percent-encoded; `headers` are every header to
    /// sign, `host`, `x-amz-date` and `x-amz-content-sha256` among them.
    public func authorization(
        method: String, path: String, query: [(String, String)], headers: [(String, String)], payloadHash: String,
        date: Date
    ) -> String {
        let canonicalHeaders = headers.map { ($0.0.lowercased(), Self.trim($0.1)) }.sorted { $0.0 < $1.0 }
        let signedHeaders = canonicalHeaders.map(\.0).joined(separator: ";")
        let canonicalQuery = query.map { (Self.encode($0.0), Self.encode($0.1)) }.sorted { ($0.0, $0.1) < ($1.0, $1.1) }
            .map { "\($0.0)=\($0.1)" }.joined(separator: "&")
        let canonicalRequest = [
            method, path, canonicalQuery,
            canonicalHeaders.map { "\($0.0):\($0.1)\n" }.joined(), signedHeaders, payloadHash,
        ].joined(separator: "\n")
        let amzDate = Self.timestamp(date)
        let day = String(amzDate.prefix(8))
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = [
            "AWS4-HMAC-SHA256", amzDate, scope, Self.hex(SHA256.hash(data: Data(canonicalRequest.utf8))),
        ].joined(separator: "\n")
        var key = SymmetricKey(data: Data("AWS4\(secretAccessKey)".utf8))
        for part in [day, region, service, "aws4_request"] {
            key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Data(part.utf8), using: key)))
        }
        let signature = Self.hex(HMAC<SHA256>.authenticationCode(for: Data(stringToSign.utf8), using: key))
        return
            "AWS4-HMAC-SHA256 Credential=\(accessKeyID)/\(scope),SignedHeaders=\(signedHeaders),Signature=\(signature)"
    }

    /// `yyyyMMdd'T'HHmmss'Z'` in UTC (`x-amz-date`).
    public static func timestamp(_ date: Date) -> String {
        var time = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&time, &parts)
        return String(
            format: "%04d%02d%02dT%02d%02d%02dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
            Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
    }

    /// RFC 3986 percent-encoding of everything but the unreserved characters.
    static func encode(_ text: String) -> String {
        var output = ""
        for byte in text.utf8 {
            switch byte {
            case 0x41...0x5A, 0x61...0x7A, 0x30...0x39, 0x2D, 0x2E, 0x5F, 0x7E:
                output.append(Character(Unicode.Scalar(byte)))
            default:
                output += String(format: "%%%02X", byte)
            }
        }
        return output
    }

    /// A path's segments encoded, its slashes kept (S3 encodes object keys once).
    static func encodePath(_ path: String) -> String {
        path.split(separator: "/", omittingEmptySubsequences: false).map { encode(String($0)) }.joined(separator: "/")
    }

    static func trim(_ value: String) -> String {
        value.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
    }

    static func hex<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        bytes.map { String(format: "%02x", $0) }.joined()
    }
}
