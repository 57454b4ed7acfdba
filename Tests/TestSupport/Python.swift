import Foundation

/// Runs the repository's Python checks (validators nobody here wrote: jsonschema, openapi-spec-validator).
public enum Python {
    /// Runs `python3 ARGUMENTS...`; returns its exit status and its standard output and error, interleaved.
    public static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
