import Foundation

/// Files the tests read, kept in the repository under `Tests/Fixtures` so that a clone alone runs every test.
/// `Tests/Fixtures/README.md` says where each folder came from.
public enum TestFixtures {
    /// The official Asterisk 22.10.1 ARI description (Swagger 1.2 JSON); `ARI_SPEC_DIR` points elsewhere.
    public static var ariSpec: String { directory("ari-spec", override: "ARI_SPEC_DIR") }

    /// What a real Asterisk 22.10.1 sent and answered, one file per scenario; `ARI_CAPTURES_DIR` points elsewhere.
    public static var ariCaptures: String { directory("ari-captures", override: "ARI_CAPTURES_DIR") }

    /// Call resources as `JSONEncoder` wrote them with the wire conventions, which the gateway's own JSON writer must
    /// reproduce.
    public static var callResources: String { directory("call-resource", override: "CALL_RESOURCE_FIXTURES_DIR") }

    private static func directory(_ name: String, override variable: String) -> String {
        if let override = ProcessInfo.processInfo.environment[variable], !override.isEmpty {
            return override
        }
        // <repo>/Tests/TestSupport/TestFixtures.swift → <repo>/Tests/Fixtures/<name>
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures").appendingPathComponent(name).path
    }
}
