import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

/// Answers every HTTP request: `/ari/...` as Asterisk's ARI does, `/__sim/...` for fault control.
struct SimulatorResponder: HTTPResponder {
    typealias Context = SimulatorRequestContext

    let simulator: ARISimulator

    func respond(to request: Request, context: SimulatorRequestContext) async throws -> Response {
        let path = request.uri.path
        if path == "/ari" || path.hasPrefix("/ari/") {
            return try await self.respondARI(to: request, context: context)
        }
        if path.hasPrefix("/__sim/") {
            return try await AdminEndpoints(simulator: self.simulator).respond(to: request, context: context)
        }
        return Response(status: .notFound)
    }

    // MARK: - ARI

    private func respondARI(to request: Request, context: SimulatorRequestContext) async throws -> Response {
        let query = QueryString.parse(request.uri.query)
        guard self.simulator.isAuthorized(request, query: query) else {
            var headers = Self.jsonHeaders
            headers[.wwwAuthenticate] = #"Basic realm="Asterisk REST Interface""#
            return Self.json(.unauthorized, JSONText.message("Authentication required"), headers: headers)
        }
        await self.simulator.applyRequestFaults()
        let booting = self.simulator.state.withLock { state in
            guard state.isBooting(now: .now) else { return false }
            state.counters.notBootedRefusals += 1
            return true
        }
        if booting {
            return Self.json(.serviceUnavailable, JSONText.message("Asterisk not booted"))
        }
        let segments = request.uri.path.split(separator: "/", omittingEmptySubsequences: true)
            .dropFirst()
            .map { QueryString.decodePath($0) }
        let method = request.method
        switch segments.count {
        case 1 where segments[0] == "channels":
            if method == .get { return self.listChannels() }
            if method == .post { return try await self.originate(request, query: query, channelID: nil) }
        case 1 where segments[0] == "applications":
            if method == .get { return self.listApplications() }
        case 1 where segments[0] == "events":
            // A plain GET (no WebSocket upgrade), or an upgrade without `app`.
            if method == .get {
                return Self.json(.badRequest, JSONText.message("Missing required parameter app or WebSocket upgrade"))
            }
        case 2 where segments[0] == "asterisk" && segments[1] == "info":
            if method == .get { return self.asteriskInfo() }
        case 2 where segments[0] == "asterisk" && segments[1] == "ping":
            if method == .get { return self.ping() }
        case 2 where segments[0] == "channels":
            switch method {
            case .get: return self.getChannel(segments[1])
            case .post: return try await self.originate(request, query: query, channelID: segments[1])
            case .delete: return self.hangup(segments[1], query: query)
            default: break
            }
        case 2 where segments[0] == "applications":
            if method == .get { return self.getApplication(segments[1]) }
        case 3 where segments[0] == "channels" && segments[2] == "continue":
            if method == .post { return self.continueInDialplan(segments[1], query: query) }
        case 3 where segments[0] == "channels" && segments[2] == "variable":
            if method == .get { return self.getVariable(segments[1], query: query) }
        case 3 where segments[0] == "applications" && segments[2] == "subscription":
            if method == .post { return self.subscribe(segments[1], query: query) }
        case 3 where segments[0] == "channels" && segments[2] == "snoop":
            if method == .post { return self.snoop(segments[1], snoopID: nil, query: query) }
        case 4 where segments[0] == "channels" && segments[2] == "snoop":
            if method == .post { return self.snoop(segments[1], snoopID: segments[3], query: query) }
        case 3 where segments[0] == "channels" && segments[2] == "record":
            if method == .post { return self.record(segments[1], query: query) }
        case 2...4 where segments[0] == "recordings":
            if let response = self.recordings(segments, method: method) { return response }
        default:
            return Self.json(.notFound, JSONText.message("Resource not found"))
        }
        if Self.knownPath(segments) {
            return Self.json(.methodNotAllowed, JSONText.message("Invalid method"))
        }
        return Self.json(.notFound, JSONText.message("Resource not found"))
    }

    private static func knownPath(_ segments: [String]) -> Bool {
        switch (segments.count, segments.first) {
        case (1, "channels"), (1, "applications"), (1, "events"), (2, "channels"), (2, "applications"),
            (2, "asterisk"), (3, "channels"), (3, "applications"), (4, "channels"), (2, "recordings"),
            (3, "recordings"), (4, "recordings"):
            true
        default:
            false
        }
    }

    private func asteriskInfo() -> Response {
        let configuration = self.simulator.simulatorConfiguration
        var output = "{\"build\":{\"os\":\"Linux\",\"kernel\":\"simulated\",\"machine\":\"x86_64\","
        output.append("\"options\":\"\",\"date\":\"\",\"user\":\"simulator\"},\"system\":{")
        JSONText.appendField("version", configuration.asteriskVersion, to: &output)
        output.append(",")
        JSONText.appendField("entity_id", configuration.asteriskID, to: &output)
        output.append("},\"config\":{\"name\":\"ari-simulator\",\"default_language\":\"en\",")
        output.append("\"setid\":{\"user\":\"\",\"group\":\"\"}},\"status\":{")
        JSONText.appendField("startup_time", Self.startupTime, to: &output)
        output.append(",")
        JSONText.appendField("last_reload_time", Self.startupTime, to: &output)
        output.append("}}")
        return Self.json(.ok, output)
    }

    private static let startupTime = AsteriskClock.now()

    private func ping() -> Response {
        var output = "{\"ping\":\"pong\","
        JSONText.appendField("timestamp", AsteriskClock.now(), to: &output)
        output.append(",")
        JSONText.appendField("asterisk_id", self.simulator.simulatorConfiguration.asteriskID, to: &output)
        output.append("}")
        return Self.json(.ok, output)
    }

    // MARK: - Channels

    private func listChannels() -> Response {
        let snapshots = self.simulator.state.withLock { $0.allSnapshots() }
        return Self.json(.ok, "[" + snapshots.joined(separator: ",") + "]")
    }

    private func getChannel(_ id: String) -> Response {
        guard let snapshot = self.simulator.state.withLock({ $0.snapshot(of: id) }) else {
            return Self.json(.notFound, JSONText.message("Channel not found"))
        }
        return Self.json(.ok, snapshot)
    }

    private func originate(_ request: Request, query: [String: String], channelID: String?) async throws -> Response {
        var request = request
        let body = try await request.collectBody(upTo: 1 << 20)
        var parameters = OriginateParameters(
            endpoint: query["endpoint"],
            app: query["app"],
            appArgs: query["appArgs"],
            context: query["context"],
            extension: query["extension"],
            priority: query["priority"].map { Int($0) ?? 0 },
            callerID: query["callerId"],
            timeout: query["timeout"].map { Int($0) ?? 0 },
            channelID: channelID ?? query["channelId"],
            otherChannelID: query["otherChannelId"]
        )
        if body.readableBytes > 0 {
            if let error = Self.applyBody(body, to: &parameters, pathChannelID: channelID) {
                // Bad bodies are still originate requests: count them like Asterisk's 400s.
                self.simulator.state.withLock { state in
                    state.counters.totalOriginates += 1
                    if let id = parameters.channelID {
                        state.counters.originatesByChannelID[id, default: 0] += 1
                        state.counters.endpointsByChannelID[id, default: []].append(parameters.endpoint ?? "")
                    }
                }
                return error
            }
        }
        let decision = self.simulator.state.withLock { $0.originate(parameters, now: .now) }
        switch decision {
        case .refused(let status, let body):
            return Self.json(HTTPResponse.Status(code: status), body)
        case .created(let json, let callID, let startAfterResponse, let flush):
            if startAfterResponse {
                let buffer = ByteBuffer(string: json)
                let simulator = self.simulator
                return Response(
                    status: .ok,
                    headers: Self.jsonHeaders,
                    body: ResponseBody(contentLength: buffer.readableBytes) { writer in
                        defer { simulator.startCall(callID) }
                        try await writer.write(buffer)
                        try await writer.finish(nil)
                    }
                )
            }
            await self.simulator.waitForFlush(flush)
            return Self.json(.ok, json)
        }
    }

    /// Reads originate parameters from a JSON body (Asterisk accepts every query parameter there too, and
    /// `variables` only there). Returns an error response for a body ARI rejects.
    private static func applyBody(
        _ body: ByteBuffer,
        to parameters: inout OriginateParameters,
        pathChannelID: String?
    ) -> Response? {
        guard
            let object = try? JSONSerialization.jsonObject(
                with: Data(body.readableBytesView),
                options: [.fragmentsAllowed]
            )
        else {
            return Self.json(.badRequest, JSONText.message("Error parsing request body"))
        }
        guard let fields = object as? [String: Any] else { return nil }
        func text(_ key: String) -> String? {
            if let string = fields[key] as? String { return string }
            if let number = fields[key] as? NSNumber { return number.stringValue }
            return nil
        }
        func integer(_ key: String) -> Int? {
            if let number = fields[key] as? NSNumber { return number.intValue }
            if let string = fields[key] as? String { return Int(string) ?? 0 }
            return nil
        }
        parameters.endpoint = text("endpoint") ?? parameters.endpoint
        parameters.app = text("app") ?? parameters.app
        parameters.appArgs = text("appArgs") ?? parameters.appArgs
        parameters.context = text("context") ?? parameters.context
        parameters.extension = text("extension") ?? parameters.extension
        parameters.priority = integer("priority") ?? parameters.priority
        parameters.callerID = text("callerId") ?? parameters.callerID
        parameters.timeout = integer("timeout") ?? parameters.timeout
        if pathChannelID == nil { parameters.channelID = text("channelId") ?? parameters.channelID }
        parameters.otherChannelID = text("otherChannelId") ?? parameters.otherChannelID
        if let variables = fields["variables"] as? [String: Any] {
            for name in variables.keys.sorted() {
                if let value = variables[name] as? String {
                    parameters.variables.append((name, value, false))
                } else if let entry = variables[name] as? [String: Any], let value = entry["value"] as? String {
                    let reportEvents = (entry["report_events"] as? NSNumber)?.boolValue ?? false
                    parameters.variables.append((name, value, reportEvents))
                } else {
                    return Self.json(
                        .badRequest,
                        JSONText.message(
                            "Each value in 'variables' must be a string or an object with 'value' and optional "
                                + "'report_events'"
                        )
                    )
                }
            }
        }
        return nil
    }

    private func hangup(_ id: String, query: [String: String]) -> Response {
        let reason = query["reason"].flatMap { $0.isEmpty ? nil : $0 }
        let reasonCode = query["reason_code"].flatMap { $0.isEmpty ? nil : $0 }
        let cause: Int
        if self.simulator.state.withLock({ $0.snoops[id] != nil }) {
            let simulator = self.simulator
            return Response(
                status: .noContent,
                body: ResponseBody(contentLength: 0) { writer in
                    defer { simulator.state.withLock { $0.endSnoop(id, cause: 16) } }
                    try await writer.finish(nil)
                })
        }
        let exists = self.simulator.state.withLock { $0.callID(owning: id) != nil }
        guard exists else { return Self.json(.notFound, JSONText.message("Channel not found")) }
        if reason != nil, reasonCode != nil {
            return Self.json(.badRequest, JSONText.message("The reason and reason_code can't both be specified"))
        }
        if let reasonCode {
            guard let code = Int(reasonCode) else {
                return Self.json(.badRequest, JSONText.message("Invalid reason for hangup reason code provided"))
            }
            cause = code
        } else if let reason {
            guard let code = HangupCause.cause(forReason: reason) else {
                return Self.json(.badRequest, JSONText.message("Invalid reason for hangup reason provided"))
            }
            cause = code
        } else {
            cause = 16
        }
        let simulator = self.simulator
        // The 204 goes out first; the hangup events follow (C02).
        return Response(
            status: .noContent,
            body: ResponseBody(contentLength: 0) { writer in
                defer {
                    simulator.state.withLock { state in
                        if let callID = state.callID(owning: id) { state.hangup(callID, cause: cause) }
                    }
                }
                try await writer.finish(nil)
            }
        )
    }

    private func continueInDialplan(_ id: String, query: [String: String]) -> Response {
        let decision = self.simulator.state.withLock { $0.checkContinue(id) }
        switch decision {
        case .notFound:
            return Self.json(.notFound, JSONText.message("Channel not found"))
        case .notInStasis:
            return Self.json(.conflict, JSONText.message("Channel not in Stasis application"))
        case .invalidState:
            return Self.json(.preconditionFailed, JSONText.message("Channel in invalid state"))
        case .continued:
            let simulator = self.simulator
            let priority = query["priority"].map { Int($0) ?? 0 }
            return Response(
                status: .noContent,
                body: ResponseBody(contentLength: 0) { writer in
                    defer {
                        simulator.state.withLock {
                            $0.continueCall(
                                id,
                                context: query["context"],
                                exten: query["extension"],
                                priority: priority
                            )
                        }
                    }
                    try await writer.finish(nil)
                }
            )
        }
    }

    private func getVariable(_ id: String, query: [String: String]) -> Response {
        guard let name = query["variable"], !name.isEmpty else {
            return Self.json(.badRequest, JSONText.message("Variable name is required"))
        }
        switch self.simulator.state.withLock({ $0.variable(name, channelID: id) }) {
        case .none:
            return Self.json(.notFound, JSONText.message("Provided channel was not found"))
        case .some(.none):
            return Self.json(.notFound, JSONText.message("Provided variable was not found"))
        case .some(.some(let value)):
            var output = "{"
            JSONText.appendField("value", value, to: &output)
            output.append("}")
            return Self.json(.ok, output)
        }
    }

    // MARK: - Applications

    private func listApplications() -> Response {
        let applications = self.simulator.state.withLock { state in
            state.applicationNames().map { state.applicationJSON($0) }
        }
        return Self.json(.ok, "[" + applications.joined(separator: ",") + "]")
    }

    private func getApplication(_ name: String) -> Response {
        let json = self.simulator.state.withLock { state in
            state.applicationExists(name) ? state.applicationJSON(name) : nil
        }
        guard let json else { return Self.json(.notFound, JSONText.message("Application not found")) }
        return Self.json(.ok, json)
    }

    private func subscribe(_ name: String, query: [String: String]) -> Response {
        guard let sources = query["eventSource"], !sources.isEmpty else {
            return Self.json(.badRequest, JSONText.message("Missing parameter eventSource"))
        }
        return self.simulator.state.withLock { state in
            guard state.applicationExists(name) else {
                return Self.json(.notFound, JSONText.message("Application not found"))
            }
            let list = sources.split(separator: ",").map(String.init)
            for source in list {
                guard let colon = source.firstIndex(of: ":") else {
                    return Self.json(.badRequest, JSONText.message("Invalid event source URI scheme"))
                }
                let scheme = source[..<colon]
                guard ["channel", "bridge", "endpoint", "deviceState"].contains(scheme) else {
                    return Self.json(.badRequest, JSONText.message("Invalid event source URI scheme"))
                }
                let target = String(source[source.index(after: colon)...])
                guard scheme == "channel", state.callID(owning: target) != nil else {
                    return Self.json(.unprocessableContent, JSONText.message("Event source does not exist"))
                }
            }
            for source in list {
                _ = state.subscribe(application: name, channelID: String(source.drop { $0 != ":" }.dropFirst()))
            }
            return Self.json(.ok, state.applicationJSON(name))
        }
    }

    // MARK: - Responses

    static let jsonHeaders: HTTPFields = [
        .contentType: "application/json",
        .cacheControl: "no-cache, no-store",
    ]

    static func json(_ status: HTTPResponse.Status, _ body: String, headers: HTTPFields = jsonHeaders) -> Response {
        Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }
}
