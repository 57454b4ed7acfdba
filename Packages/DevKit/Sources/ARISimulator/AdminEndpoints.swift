import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

/// Fault controls and counters over HTTP, under `/__sim/` (not under `/ari`, no credentials), for the
/// standalone simulator and for tests in other processes. Only loopback clients are served.
///
/// | request | effect |
/// |---|---|
/// | `POST /__sim/drop-websockets[?app=NAME]` | close events WebSockets abruptly (1006) |
/// | `POST /__sim/restart[?boot_seconds=S]` | Asterisk restarts: channels gone, sockets closed (1006), then REST |
/// | | answers 503 "Asterisk not booted" for S seconds (default 3) while WebSockets are accepted |
/// | `POST /__sim/refuse-originates?count=N[&status=503]` | refuse the next N originates |
/// | `POST /__sim/refuse-originates?seconds=S[&status=503]` | refuse originates for S seconds |
/// | `POST /__sim/latency?ms=N` | delay REST responses by N ms (0 to stop) |
/// | `POST /__sim/unresponsive?enabled=true|false` | hang REST requests / release them |
/// | `POST /__sim/reset` | clear every fault |
/// | `POST /__sim/reset-counters` | clear the counters |
/// | `POST /__sim/hangup?channel=ID[&cause=16]` | the network side hangs up a live channel |
/// | `GET /__sim/stats` | `{"total_originates", "accepted_originates", "live_channels", "websockets", ...}` |
/// | `GET /__sim/originates?channel=ID` | `{"channel_id", "originates", "accepted"}` |
/// | `GET /__sim/originate-log` | every channel id originated since the last counter reset, with its counts and the |
/// | | wall-clock arrival of its first originate: `{"originates": [{"channel_id", "originates", "accepted", |
/// | | "first_at", "endpoints"}]}` (`first_at` in seconds since 1970, for benchmarks that time the way to the |
/// | | node; `endpoints`: the endpoint of each originate, in order, for tests of what a worker dials) |
struct AdminEndpoints {
    let simulator: ARISimulator

    func respond(to request: Request, context: SimulatorRequestContext) async throws -> Response {
        guard Self.isLoopback(context.channel.remoteAddress) else {
            return SimulatorResponder.json(.forbidden, JSONText.message("admin endpoints are loopback only"))
        }
        let query = QueryString.parse(request.uri.query)
        let action = String(request.uri.path.dropFirst("/__sim/".count))
        switch (request.method, action) {
        case (.post, "drop-websockets"):
            self.simulator.dropWebSockets(application: query["app"])
        case (.post, "restart"):
            let seconds = query["boot_seconds"].map { Double($0) } ?? 3
            guard let seconds, seconds >= 0, seconds <= 600 else {
                return Self.badRequest("boot_seconds must be 0...600")
            }
            self.simulator.restart(bootWindow: .milliseconds(Int64(seconds * 1000)))
        case (.post, "refuse-originates"):
            let status = query["status"].flatMap { Int($0) } ?? 503
            guard (400...599).contains(status) else { return Self.badRequest("status must be 400...599") }
            if let count = query["count"].flatMap({ Int($0) }) {
                self.simulator.refuseOriginates(count: count, status: status)
            } else if let seconds = query["seconds"].flatMap({ Double($0) }) {
                self.simulator.refuseOriginates(for: .milliseconds(Int64(seconds * 1000)), status: status)
            } else {
                return Self.badRequest("count or seconds is required")
            }
        case (.post, "latency"):
            guard let milliseconds = query["ms"].flatMap({ Int64($0) }) else {
                return Self.badRequest("ms is required")
            }
            self.simulator.setLatency(.milliseconds(milliseconds))
        case (.post, "unresponsive"):
            self.simulator.setUnresponsive(query["enabled"].map { $0 == "true" || $0 == "1" } ?? true)
        case (.post, "reset"):
            self.simulator.resetFaults()
        case (.post, "reset-counters"):
            self.simulator.resetCounters()
        case (.post, "hangup"):
            guard let channel = query["channel"] else { return Self.badRequest("channel is required") }
            let cause = query["cause"].flatMap { Int($0) } ?? 16
            guard self.simulator.hangUpFromNetwork(channelID: channel, cause: cause) else {
                return SimulatorResponder.json(.notFound, JSONText.message("Channel not found"))
            }
        case (.get, "stats"):
            return SimulatorResponder.json(.ok, self.stats())
        case (.get, "originates"):
            guard let channel = query["channel"] else { return Self.badRequest("channel is required") }
            var output = "{"
            JSONText.appendField("channel_id", channel, to: &output)
            output.append(",\"originates\":\(self.simulator.originateCount(channelID: channel))")
            output.append(",\"accepted\":\(self.simulator.acceptedOriginateCount(channelID: channel))}")
            return SimulatorResponder.json(.ok, output)
        case (.get, "originate-log"):
            return SimulatorResponder.json(.ok, self.originateLog())
        default:
            return SimulatorResponder.json(.notFound, JSONText.message("unknown admin action"))
        }
        return Response(status: .noContent)
    }

    private func stats() -> String {
        self.simulator.state.withLock { state in
            let faults = state.faults
            return """
                {"total_originates":\(state.counters.totalOriginates),\
                "accepted_originates":\(state.counters.acceptedOriginates),\
                "early_event_originates":\(state.counters.earlyEventOriginates),\
                "live_channels":\(state.calls.count),\
                "websockets":\(state.connections.count),\
                "restarts":\(state.counters.restarts),\
                "not_booted_refusals":\(state.counters.notBootedRefusals),\
                "booting":\(state.isBooting(now: .now)),\
                "refuse_next":\(faults.refuseNext),\
                "latency_ms":\(faults.latency.milliseconds),\
                "unresponsive":\(faults.unresponsive)}
                """
        }
    }

    private func originateLog() -> String {
        let counters = self.simulator.state.withLock { $0.counters }
        var output = "{\"originates\":["
        output.reserveCapacity(counters.originatesByChannelID.count * 120)
        var first = true
        for (channel, count) in counters.originatesByChannelID {
            if !first { output.append(",") }
            first = false
            output.append("{")
            JSONText.appendField("channel_id", channel, to: &output)
            output.append(",\"originates\":\(count),\"accepted\":\(counters.acceptedByChannelID[channel] ?? 0)")
            if let arrival = counters.firstOriginateAt[channel] {
                output.append(",\"first_at\":\(arrival)")
            }
            output.append(",\"endpoints\":[")
            for (index, endpoint) in (counters.endpointsByChannelID[channel] ?? []).enumerated() {
                if index > 0 { output.append(",") }
                JSONText.appendString(endpoint, to: &output)
            }
            output.append("]")
            output.append("}")
        }
        output.append("]}")
        return output
    }

    private static func badRequest(_ text: String) -> Response {
        SimulatorResponder.json(.badRequest, JSONText.message(text))
    }

    private static func isLoopback(_ address: SocketAddress?) -> Bool {
        guard let ip = address?.ipAddress else { return false }
        return ip.hasPrefix("127.") || ip == "::1" || ip.hasPrefix("::ffff:127.")
    }
}
