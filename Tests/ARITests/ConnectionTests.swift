import ARI
import ARISimulator
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

/// The events WebSocket: reconnect after a drop, one WebSocket per application, credentials.
@Suite struct ConnectionTests {
    @Test func reconnectsAfterADroppedWebSocketWithinTheBackoffBound() async throws {
        try await withSimulator { harness in
            let application = uniqueName()
            var configuration = harness.configuration(application: application)
            configuration.reconnectBackoff = .init(initial: .milliseconds(200), max: .seconds(2))
            let events = try await EventRecorder.connected(configuration)
            defer { events.stop() }
            let client = harness.client(application: application)
            let id = uniqueName("call")
            _ = try await client.originate(
                .init(channelID: id, endpoint: "PJSIP/155501000000@carrier", app: application)
            )
            try await events.waitForEvents("StasisStart") { events in
                events.contains { if case .stasisStart = $0 { true } else { false } }
            }
            let dropped = ContinuousClock.now
            harness.simulator.dropWebSockets(application: application)
            try await events.waitForState("reconnected") { $0.contains(.reconnected) }
            let gap = dropped.duration(to: .now)
            // The first retry waits at most the initial bound (200 ms); connecting on a loaded machine adds
            // a little. Well under the next bounds (400, 800 ms...) shows the first attempt succeeded.
            #expect(gap < .seconds(3), "reconnected after \(gap)")
            let states = events.connectionStates
            #expect(states.first == .connecting)
            #expect(states.contains(.connected))
            let disconnected = states.firstIndex { if case .disconnected = $0 { true } else { false } }
            let reconnected = states.firstIndex(of: .reconnected)
            #expect(disconnected != nil && reconnected != nil && disconnected! < reconnected!)
            // The call survived the gap, and its later events arrive on the new socket.
            #expect(try await client.channel(id: id).state == "Up")
            try await client.hangup(channelID: id)
            let all = try await events.waitForDestroyed(id)
            #expect(all.last.map(signature) == "Destroyed(16)")
        }
    }

    @Test func eventsOfTheGapAreLost() async throws {
        try await withSimulator { harness in
            let application = uniqueName()
            let client = harness.client(application: application)
            var configuration = harness.configuration(application: application)
            configuration.reconnectBackoff = .init(initial: .seconds(1), max: .seconds(1))
            let events = try await EventRecorder.connected(configuration)
            defer { events.stop() }
            harness.simulator.dropWebSockets()
            try await events.waitForState("disconnected") { states in
                states.contains { if case .disconnected = $0 { true } else { false } }
            }
            let id = uniqueName("call")
            // The application has no WebSocket during the gap: the answered call cannot enter Stasis.
            _ = try await client.originate(
                .init(channelID: id, endpoint: "PJSIP/155501020000@carrier", app: application)
            )
            try await eventually("busy call gone") { harness.simulator.liveChannelCount == 0 }
            try await events.waitForState("reconnected") { $0.contains(.reconnected) }
            #expect(events.events(for: id).isEmpty)
        }
    }

    @Test func aSecondWebSocketReplacesTheFirst() async throws {
        try await withSimulator { harness in
            let application = uniqueName()
            let first = try await EventRecorder.connected(harness.configuration(application: application))
            defer { first.stop() }
            let second = try await EventRecorder.connected(harness.configuration(application: application))
            defer { second.stop() }
            try await first.waitForEvents("ApplicationReplaced") { events in
                events.contains {
                    if case .applicationReplaced(let e) = $0 { e.application == application } else { false }
                }
            }
            let id = uniqueName("call")
            _ = try await harness.client(application: application).originate(
                .init(channelID: id, endpoint: "PJSIP/155501020000@carrier", app: application)
            )
            try await second.waitForDestroyed(id)
            #expect(first.events.map(signature) == ["ApplicationReplaced"])
            // The replaced socket stays open but silent: no disconnection reported.
            #expect(!first.connectionStates.contains { if case .disconnected = $0 { true } else { false } })
            #expect(harness.simulator.webSocketCount == 2)
        }
    }

    @Test func badCredentialsAreUnauthorized() async throws {
        try await withSimulator { harness in
            let application = uniqueName()
            let client = harness.client(application: application, password: "wrong")
            await #expect(throws: ARIError.unauthorized) { try await client.asteriskInfo() }
            await #expect(throws: ARIError.unauthorized) {
                try await client.originate(.init(channelID: uniqueName(), endpoint: "PJSIP/1@c", app: application))
            }
            #expect(harness.simulator.totalOriginates == 0)

            let rest = try await httpRequest(.GET, harness.baseURL + "/asterisk/info", headers: [])
            #expect(rest.status == 401)
            #expect(rest.headers.first(name: "WWW-Authenticate") == #"Basic realm="Asterisk REST Interface""#)
            #expect(try JSONValue.parse(rest.body)["message"]?.stringValue == "Authentication required")
            let apiKey = try await httpRequest(
                .GET,
                harness.baseURL + "/asterisk/info?api_key=dialer:dialer-secret",
                headers: []
            )
            #expect(apiKey.status == 200)

            let upgrade = try await Self.rawUpgrade(
                baseURL: harness.baseURL,
                path: "/ari/events?app=\(application)&api_key=dialer:wrong"
            )
            #expect(upgrade.hasPrefix("HTTP/1.1 401"), "\(upgrade)")
            #expect(upgrade.lowercased().contains(#"www-authenticate: basic realm="asterisk rest interface""#))
            let accepted = try await Self.rawUpgrade(
                baseURL: harness.baseURL,
                path: "/ari/events?app=\(application)&api_key=dialer:dialer-secret"
            )
            #expect(accepted.hasPrefix("HTTP/1.1 101"), "\(accepted)")

            let events = EventRecorder(
                configuration: harness.configuration(application: application, password: "wrong")
            )
            defer { events.stop() }
            try await events.waitForState("unauthorized") { $0.contains(.disconnected(reason: "unauthorized")) }
            #expect(!events.connectionStates.contains(.connected))
        }
    }

    @Test func asteriskInfoAndPing() async throws {
        try await withSimulator { harness in
            let client = harness.client(application: uniqueName())
            let info = try await client.asteriskInfo()
            #expect(info.system?.version == "22.10.1")
            #expect(info.system?.entityID == "02:fc:00:00:00:01")
            #expect(ARITimestamp.parse(info.status?.startupTime ?? "") != nil)
            #expect(info.rawJSON.contains("\"build\""))
            #expect(try await client.ping() == "02:fc:00:00:00:01")
        }
    }

    /// Sends a WebSocket upgrade request over a plain TCP connection and returns the response head.
    static func rawUpgrade(baseURL: String, path: String) async throws -> String {
        let authority = baseURL.replacingOccurrences(of: "http://", with: "").split(separator: "/")[0]
        let parts = authority.split(separator: ":")
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: String(parts[0]), port: Int(parts[1]) ?? 80) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            let request =
                "GET \(path) HTTP/1.1\r\nHost: \(authority)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            try await outbound.write(ByteBuffer(string: request))
            var received = ""
            for try await chunk in inbound {
                received += String(buffer: chunk)
                if received.contains("\r\n\r\n") { break }
            }
            return received
        }
    }
}
