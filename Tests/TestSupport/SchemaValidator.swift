import Foundation

/// Where the repository is, found from this source file's path (tests run from any directory).
public enum Repository {
    /// The repository root.
    public static let root: URL = {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }()

    /// A path inside the repository.
    public static func path(_ relative: String) -> String {
        root.appendingPathComponent(relative).path
    }
}

/// Validates JSON documents against the repository's JSON Schemas with Python's `jsonschema` (a validator nobody
/// here wrote), through `scripts/validate_json.py`.
public enum SchemaValidator {
    /// One line per document: `nil` when valid, else the validator's message.
    public static func validate(_ documents: [[UInt8]], against schema: String) throws -> [String?] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", Repository.path("scripts/validate_json.py"), Repository.path("schemas/\(schema)"),
        ]
        let input = Pipe()
        let output = Pipe()
        let errors = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        var payload = Data()
        for document in documents {
            // One document per line: JSON text has no raw newlines outside strings, and strings escape them.
            payload.append(contentsOf: document)
            payload.append(0x0A)
        }
        input.fileHandleForWriting.write(payload)
        try input.fileHandleForWriting.close()
        let result = output.fileHandleForReading.readDataToEndOfFile()
        let stderr = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let lines = String(decoding: result, as: UTF8.self).split(separator: "\n").map(String.init)
        guard lines.count == documents.count else {
            throw TestEnvironmentError(
                "schema validator failed (is python3-jsonschema installed?): \(String(decoding: stderr, as: UTF8.self))"
            )
        }
        return lines.map { $0 == "ok" ? nil : $0 }
    }
}
