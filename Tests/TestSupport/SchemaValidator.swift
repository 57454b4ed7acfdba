import DevStack
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
    public static func validate(_ documents: [[UInt8]], against schema: String) async throws -> [String?] {
        var payload: [UInt8] = []
        for document in documents {
            // One document per line: JSON text has no raw newlines outside strings, and strings escape them.
            payload += document
            payload.append(0x0A)
        }
        let run = try await ChildProcess.run(
            executable: ChildProcess.resolve("python3"),
            arguments: [Repository.path("scripts/validate_json.py"), Repository.path("schemas/\(schema)")],
            input: payload)
        let lines = run.output.split(separator: "\n").map(String.init)
        guard lines.count == documents.count else {
            throw TestEnvironmentError("schema validator failed (is python3-jsonschema installed?): \(run.errors)")
        }
        return lines.map { $0 == "ok" ? nil : $0 }
    }
}
