import DevStack
import Foundation

/// Runs the repository's Python checks (validators nobody here wrote: jsonschema, openapi-spec-validator).
public enum Python {
    /// Runs `python3 ARGUMENTS...`; returns its exit status and what it wrote (standard output, then error).
    public static func run(_ arguments: [String]) async throws -> (status: Int32, output: String) {
        let run = try await ChildProcess.run(executable: ChildProcess.resolve("python3"), arguments: arguments)
        return (run.termination.status, run.output + run.errors)
    }
}
