import Foundation
import TestSupport

/// The real Asterisk 22.10.1 recordings in `Tests/Fixtures/ari-captures` (or `ARI_CAPTURES_DIR`).
struct Capture {
    struct HTTPExchange {
        var method: String
        var url: String
        var status: Int
        var body: JSONValue?
    }

    var scenario: String
    var root: JSONValue

    static func all() throws -> [Capture] {
        let directory = TestFixtures.ariCaptures
        return try FileManager.default.contentsOfDirectory(atPath: directory)
            .filter { $0.hasSuffix(".json") }
            .sorted()
            .map { try Self.load(directory + "/" + $0) }
    }

    static func named(_ scenario: String) throws -> Capture {
        try Self.load(TestFixtures.ariCaptures + "/" + scenario + ".json")
    }

    private static func load(_ path: String) throws -> Capture {
        let root = try JSONValue.parse(try String(contentsOfFile: path, encoding: .utf8))
        return Capture(scenario: root["scenario"]?.stringValue ?? path, root: root)
    }

    private var timeline: [JSONValue] { self.root["timeline"]?.arrayValue ?? [] }

    /// Events received on one of the capture's WebSockets, with their JSON text re-serialised.
    func events(on webSocket: String? = nil) -> [JSONValue] {
        self.timeline.compactMap { entry in
            guard entry["kind"]?.stringValue == "ws_event" else { return nil }
            if let webSocket, entry["ws"]?.stringValue != webSocket { return nil }
            return entry["event"]
        }
    }

    var httpExchanges: [HTTPExchange] {
        self.timeline.compactMap { entry in
            guard entry["kind"]?.stringValue == "http" else { return nil }
            return HTTPExchange(
                method: entry["method"]?.stringValue ?? "",
                url: entry["url"]?.stringValue ?? "",
                status: entry["status"]?.intValue ?? 0,
                body: entry["body"]
            )
        }
    }
}
