import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOFileSystem
import NIOHTTP1
import Recordings
import ServiceSupport
import TestSupport
import Testing

/// The recording stores against what they talk to: a directory, and a real S3-protocol server (moto's).
@Suite struct RecordingStoreTests {
    /// AWS's own example of a signed S3 request (the "GET Object" example of the Signature Version 4 documentation:
    /// bucket examplebucket, object test.txt, first 10 bytes, 2013-05-24 00:00:00 UTC).
    @Test("the signature of AWS's documented GET Object example")
    func documentedSignature() throws {
        let signer = S3Signer(
            accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            region: "us-east-1")
        let date = Date(timeIntervalSince1970: 1_369_353_600)
        let authorization = signer.authorization(
            method: "GET", path: "/test.txt", query: [],
            headers: [
                ("Host", "examplebucket.s3.amazonaws.com"), ("Range", "bytes=0-9"),
                ("x-amz-content-sha256", S3Signer.emptyPayloadHash), ("x-amz-date", "20130524T000000Z"),
            ],
            payloadHash: S3Signer.emptyPayloadHash, date: date)
        #expect(
            authorization
                == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
                + "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
                + "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    }

    @Test("keys are relative paths of safe segments")
    func keys() throws {
        #expect(try RecordingKey("00000000-0000-4000-8000-000000000001/2026/12/07/a.wav").value.hasSuffix("a.wav"))
        for bad in ["", "/abs.wav", "a/../b.wav", "a//b.wav", "./a.wav", "a b.wav", "a/b.wav?x", "é.wav", "a/"] {
            #expect(throws: RecordingStoreError.self, "\(bad)") { try RecordingKey(bad) }
        }
    }

    /// A file of `count` bytes in a fresh temporary directory.
    static func withFile<Result>(
        bytes count: Int, _ body: (FilePath, [UInt8]) async throws -> Result
    ) async throws
        -> Result
    {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("store-test-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let bytes = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let url = directory.appendingPathComponent("upload.wav")
        try Data(bytes).write(to: url)
        return try await body(FilePath(url.path), bytes)
    }

    static func sha256(_ bytes: [UInt8]) -> String {
        SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    }

    static func read(_ store: any RecordingStore, _ key: RecordingKey) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        try await store.read(key: key) { chunk in bytes += chunk.readableBytesView }
        return bytes
    }

    /// Put, read back, replace, delete, delete again, read a missing key: the same for every store.
    static func exercise(_ store: any RecordingStore) async throws {
        let key = try RecordingKey("org/2026/12/07/\(UUID().uuidString.lowercased()).wav")
        try await withFile(bytes: 700_000) { file, bytes in
            try await store.put(key: key, file: file, sha256: Self.sha256(bytes))
            #expect(try await read(store, key) == bytes)
        }
        try await withFile(bytes: 1_000) { file, bytes in
            try await store.put(key: key, file: file, sha256: Self.sha256(bytes))
            #expect(try await read(store, key) == bytes, "a second put replaces the first")
        }
        try await store.delete(key: key)
        try await store.delete(key: key)
        await #expect(throws: RecordingStoreError.notFound(key.value)) { try await read(store, key) }
    }

    @Test("the local store: put, read, replace, delete (idempotent), missing")
    func localStore() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("local-store-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        try await Self.exercise(LocalDirectoryRecordingStore(root: FilePath(directory.path)))
    }

    @Test("the S3 store against moto's S3 server: put, read, replace, delete (idempotent), missing; prefix honoured")
    func s3Store() async throws {
        try await MotoServer.with { endpoint in
            let bucket = "recordings-\(UInt32.random(in: 0...UInt32.max))"
            // The bucket is the operator's to create; here with a plain request (moto does not check credentials).
            var create = HTTPClientRequest(url: "\(endpoint)/\(bucket)")
            create.method = .PUT
            let created = try await HTTPClient.shared.execute(create, timeout: .seconds(30))
            #expect(created.status == .ok)
            let location = S3Location(
                endpoint: endpoint, bucket: bucket, region: "us-east-1", accessKeyID: "test-key",
                secretAccessKey: "test-secret", prefix: "calls/")
            let store = S3RecordingStore(location: location)
            try await Self.exercise(store)

            // The object is where the prefix says, with the uploaded bytes (read with a request made here, not by the
            // store; moto refuses anonymous reads of a private object).
            let key = try RecordingKey("org/one.wav")
            try await Self.withFile(bytes: 4_096) { file, bytes in
                try await store.put(key: key, file: file, sha256: Self.sha256(bytes))
                let path = "/\(bucket)/calls/org/one.wav"
                let host = String(endpoint.dropFirst("http://".count))
                let now = Date()
                let headers = [
                    ("host", host), ("x-amz-content-sha256", S3Signer.emptyPayloadHash),
                    ("x-amz-date", S3Signer.timestamp(now)),
                ]
                var request = HTTPClientRequest(url: endpoint + path)
                for (name, value) in headers { request.headers.add(name: name, value: value) }
                request.headers.add(
                    name: "Authorization",
                    value: S3Signer(accessKeyID: "test-key", secretAccessKey: "test-secret", region: "us-east-1")
                        .authorization(
                            method: "GET", path: path, query: [], headers: headers,
                            payloadHash: S3Signer.emptyPayloadHash, date: now))
                let plain = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
                #expect(plain.status == .ok)
                #expect(Array(try await plain.body.collect(upTo: 1 << 20).readableBytesView) == bytes)
            }
        }
    }

    @Test("RECORDING_STORE: local by default, s3 with its settings checked")
    func configuration() throws {
        let local = try RecordingStoreConfiguration.fromEnvironment(EnvironmentReader(["RECORDING_DIR": "/srv/rec"]))
        #expect(local.backend == .localDirectory(FilePath("/srv/rec")))
        #expect(throws: ConfigurationError.self) {
            try RecordingStoreConfiguration.fromEnvironment(EnvironmentReader(["RECORDING_DIR": "relative/dir"]))
        }
        let s3Environment = [
            "RECORDING_STORE": "s3", "RECORDING_S3_ENDPOINT": "https://s3.eu-west-1.amazonaws.com",
            "RECORDING_S3_BUCKET": "acme-recordings", "RECORDING_S3_ACCESS_KEY_ID": "AKIA",
            "RECORDING_S3_SECRET_ACCESS_KEY": "secret", "RECORDING_S3_REGION": "eu-west-1",
            "RECORDING_S3_PREFIX": "dialer",
        ]
        let s3 = try RecordingStoreConfiguration.fromEnvironment(EnvironmentReader(s3Environment))
        guard case .s3(let location) = s3.backend else {
            Issue.record("not an S3 store: \(s3)")
            return
        }
        #expect(location.bucket == "acme-recordings" && location.region == "eu-west-1" && location.prefix == "dialer/")
        #expect(!s3.description.contains("secret"))
        for (variable, value) in [
            ("RECORDING_S3_ENDPOINT", "s3.amazonaws.com"), ("RECORDING_S3_BUCKET", "Bad_Bucket"),
            ("RECORDING_S3_PREFIX", "../up"), ("RECORDING_STORE", "ftp"),
        ] {
            var environment = s3Environment
            environment[variable] = value
            #expect(throws: ConfigurationError.self, "\(variable)=\(value)") {
                try RecordingStoreConfiguration.fromEnvironment(EnvironmentReader(environment))
            }
        }
        var missing = s3Environment
        missing["RECORDING_S3_SECRET_ACCESS_KEY"] = nil
        #expect(throws: ConfigurationError.self) {
            try RecordingStoreConfiguration.fromEnvironment(EnvironmentReader(missing))
        }
    }
}
