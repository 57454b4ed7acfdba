import AsyncHTTPClient
import DevStack
import Foundation
import NIOCore
import NIOHTTP1
import TestSupport
import Testing

/// The built `dialer-worker` executable running as a separate process, for tests where process death matters.
final class WorkerProcessHandle: Sendable {
    let workerID: String
    let port: Int
    let logPath: String
    private let process: ChildProcess

    /// `.build/debug/dialer-worker` (built by `swift build` / `make test` before the tests run).
    static var executable: String {
        Repository.path(".build/debug/dialer-worker")
    }

    /// Starts the worker with `environment` (nothing inherited but what is given).
    init(workerID: String, port: Int, environment: [String: String]) async throws {
        guard FileManager.default.isExecutableFile(atPath: Self.executable) else {
            throw TestEnvironmentError("\(Self.executable) is missing: build the package first (swift build)")
        }
        self.workerID = workerID
        self.port = port
        logPath = FileManager.default.temporaryDirectory.appendingPathComponent("\(workerID).log").path
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process = try await ChildProcess.start(
            executable: Self.executable, arguments: ["serve"], environment: environment, output: .file(logPath))
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    /// Kills the process at once (no shutdown at all).
    func kill() {
        process.killSynchronously()
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit status.
    @discardableResult
    func terminate() async -> Int32 {
        process.send(SIGTERM)
        return await waitForExit()
    }

    /// Waits for the process to exit on its own; returns its exit status.
    func waitForExit() async -> Int32 {
        await process.waitForExit().status
    }

    /// What the process wrote (JSON log lines).
    var log: String {
        (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    }

    /// `GET http://127.0.0.1:<port><path>`: status and body, or `nil` when nothing answers.
    func get(_ path: String) async -> (status: Int, body: String)? {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = .GET
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
            let body = try await response.body.collect(upTo: 1 << 22)
            return (Int(response.status.code), String(buffer: body))
        } catch {
            return nil
        }
    }

    /// Waits until `/ready` answers 200.
    func waitUntilReady(timeout: Duration = .seconds(90)) async throws {
        try await eventually(timeout: timeout, "worker process \(workerID) ready") {
            if let termination = process.termination {
                throw TestEnvironmentError("worker \(workerID) \(termination): \(log.suffix(4000))")
            }
            return await get("/ready")?.status == 200
        }
    }
}
