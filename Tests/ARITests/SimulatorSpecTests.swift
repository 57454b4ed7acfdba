import ARI
import ARISimulator
import Foundation
import NIOHTTP1
import Testing

/// Every REST body and every event the simulator produces, validated against the official ARI models.
@Suite struct SimulatorSpecTests {
    @Test func restResponsesMatchTheModels() async throws {
        let schema = try SpecSchema.load()
        try await withSimulator { harness in
            let application = uniqueName()
            let events = try await RawEventRecorder.connected(url: harness.eventsURL(application: application))
            defer { events.stop() }
            let base = harness.baseURL
            func check(
                _ method: HTTPMethod, _ path: String, as type: String, body: String? = nil
            ) async throws
                -> JSONValue
            {
                let response = try await httpRequest(method, base + path, body: body)
                #expect(response.status == 200, "\(method) \(path): \(response.status) \(response.body)")
                #expect(response.headers.first(name: "Content-Type") == "application/json")
                let value = try JSONValue.parse(response.body)
                let errors = schema.validate(value, as: type, path: "\(method) \(path)")
                #expect(errors.isEmpty, "\(errors)")
                return value
            }
            let id = uniqueName("call")
            let created = try await check(
                .POST,
                "/channels/\(id)?endpoint=PJSIP/155501000000@carrier&app=\(application)&appArgs=a,b"
                    + "&callerId=Sales%20%3C5551000%3E&timeout=20",
                as: "Channel",
                body: #"{"variables":{"CALL_ID":"abc","CAMPAIGN":{"value":"c-1","report_events":true}}}"#
            )
            #expect(created["id"]?.stringValue == id)
            #expect(created["state"]?.stringValue == "Down")
            #expect(created["caller"]?["name"]?.stringValue == "Sales")
            #expect(created["caller"]?["number"]?.stringValue == "5551000")
            let local = uniqueName("call")
            _ = try await check(
                .POST,
                "/channels?endpoint=Local/answer-long@dialer-test&app=\(application)&channelId=\(local)",
                as: "Channel"
            )
            try await events.waitUntil("StasisStart of both") { values in
                values.filter { $0["type"]?.stringValue == "StasisStart" }.count == 2
            }
            let fetched = try await check(.GET, "/channels/\(id)", as: "Channel")
            #expect(fetched["channelvars"]?["CAMPAIGN"]?.stringValue == "c-1")
            _ = try await check(.GET, "/channels/\(local);2", as: "Channel")
            let list = try await check(.GET, "/channels", as: "List[Channel]")
            #expect(list.arrayValue?.count == 3)
            _ = try await check(.GET, "/asterisk/info", as: "AsteriskInfo")
            _ = try await check(.GET, "/asterisk/ping", as: "AsteriskPing")
            let app = try await check(.GET, "/applications/\(application)", as: "Application")
            #expect(app["channel_ids"]?.arrayValue?.count == 3)
            _ = try await check(.GET, "/applications", as: "List[Application]")
            _ = try await check(
                .POST,
                "/applications/\(application)/subscription?eventSource=channel:\(id)",
                as: "Application"
            )
            let variable = try await check(.GET, "/channels/\(id)/variable?variable=CALL_ID", as: "Variable")
            #expect(variable["value"]?.stringValue == "abc")
            let hangup = try await httpRequest(.DELETE, base + "/channels/\(id)")
            #expect(hangup.status == 204)
            #expect(hangup.body.isEmpty)
            let continued = try await httpRequest(.POST, base + "/channels/\(local)/continue?context=agents")
            #expect(continued.status == 204)
            try await events.waitForDestroyed(id)
        }
    }

    @Test(arguments: [
        "155501000305",  // ring 300 ms, answer, 5 s... hung up by the test
        "155501010000", "155501020000", "155501030000", "155501040000", "155501060000", "155501070000",
        "155501080000", "155501090000", "155501130038", "155501010200",
    ])
    func eventsOfEveryOutcomeMatchTheModels(number: String) async throws {
        let schema = try SpecSchema.load()
        try await withSimulator { harness in
            let application = uniqueName()
            let events = try await RawEventRecorder.connected(url: harness.eventsURL(application: application))
            defer { events.stop() }
            let client = harness.client(application: application)
            for endpoint in ["PJSIP/\(number)@carrier", "Local/\(number)@dialer-test"] {
                let id = uniqueName("call")
                _ = try await client.originate(.init(channelID: id, endpoint: endpoint, app: application, appArgs: "x"))
                if number.hasPrefix("15550100") {
                    try await events.waitUntil("StasisStart") { values in
                        values.contains {
                            $0["type"]?.stringValue == "StasisStart" && $0["channel"]?["id"]?.stringValue == id
                        }
                    }
                    try await client.hangup(channelID: id)
                }
                try await events.waitForDestroyed(id)
            }
            #expect(events.texts.count > 4)
            for text in events.texts {
                let errors = schema.validateEvent(text)
                #expect(errors.isEmpty, "\(errors) in \(text)")
            }
        }
    }

    @Test func noAnswerContinueAndReplacedEventsMatchTheModels() async throws {
        let schema = try SpecSchema.load()
        try await withSimulator { harness in
            let application = uniqueName()
            let first = try await RawEventRecorder.connected(url: harness.eventsURL(application: application))
            defer { first.stop() }
            let events = try await RawEventRecorder.connected(url: harness.eventsURL(application: application))
            defer { events.stop() }
            try await first.waitUntil("ApplicationReplaced") {
                $0.contains { $0["type"]?.stringValue == "ApplicationReplaced" }
            }
            let client = harness.client(application: application)
            let silent = uniqueName("call")
            _ = try await client.originate(
                .init(channelID: silent, endpoint: "Local/155501050000@dialer-test", app: application, timeout: 1)
            )
            let kept = uniqueName("call")
            _ = try await client.originate(
                .init(channelID: kept, endpoint: "Local/155501000000@dialer-test", app: application)
            )
            try await events.waitUntil("StasisStart") { $0.contains { $0["type"]?.stringValue == "StasisStart" } }
            try await client.continueInDialplan(channelID: kept, context: "agents", extension: "s", priority: 1)
            try await events.waitUntil("dialplan after continue") { values in
                values.contains {
                    $0["type"]?.stringValue == "ChannelDialplan" && $0["channel"]?["id"]?.stringValue == kept
                }
            }
            try await client.hangup(channelID: kept, reason: "busy")
            try await events.waitForDestroyed(kept)
            try await events.waitForDestroyed(silent)
            for text in first.texts + events.texts {
                let errors = schema.validateEvent(text)
                #expect(errors.isEmpty, "\(errors) in \(text)")
            }
        }
    }

    @Test func errorBodiesAreAsteriskShaped() async throws {
        try await withSimulator { harness in
            let base = harness.baseURL
            let missing = try await httpRequest(.GET, base + "/channels/nope")
            #expect(missing.status == 404)
            #expect(try JSONValue.parse(missing.body)["message"]?.stringValue == "Channel not found")
            let unknownTech = try await httpRequest(.POST, base + "/channels?endpoint=Bogus/123&app=x")
            #expect(unknownTech.status == 500)
            #expect(try JSONValue.parse(unknownTech.body)["error"]?.stringValue == "Allocation failed")
            let noEndpoint = try await httpRequest(.POST, base + "/channels?app=x")
            #expect(noEndpoint.status == 400)
            #expect(try JSONValue.parse(noEndpoint.body)["message"]?.stringValue == "Endpoint must be specified")
            let badEndpoint = try await httpRequest(.POST, base + "/channels?endpoint=PJSIP&app=x")
            #expect(try JSONValue.parse(badEndpoint.body)["message"]?.stringValue == "Invalid endpoint specified")
            let noTarget = try await httpRequest(.POST, base + "/channels?endpoint=PJSIP/1@c")
            #expect(noTarget.status == 400)
            #expect(
                try JSONValue.parse(noTarget.body)["message"]?.stringValue
                    == "Application or extension must be specified"
            )
            let longID = String(repeating: "a", count: 150)
            let tooLong = try await httpRequest(.POST, base + "/channels/\(longID)?endpoint=PJSIP/1@c&app=x")
            #expect(tooLong.status == 400)
            #expect(
                try JSONValue.parse(tooLong.body)["message"]?.stringValue == "Uniqueid length exceeds maximum of 149"
            )
            let badJSON = try await httpRequest(.POST, base + "/channels?endpoint=PJSIP/1@c&app=x", body: "{not json")
            #expect(badJSON.status == 400)
            #expect(try JSONValue.parse(badJSON.body)["message"]?.stringValue == "Error parsing request body")
            let badVariables = try await httpRequest(
                .POST,
                base + "/channels?endpoint=PJSIP/1@c&app=x",
                body: #"{"variables":{"N":5}}"#
            )
            #expect(badVariables.status == 400)
            let ignoredVariables = try await httpRequest(
                .POST,
                base + "/channels?endpoint=PJSIP/155501090000@c&app=x",
                body: #"{"variables":["CALL_ID","x"]}"#
            )
            #expect(ignoredVariables.status == 200)
            let unknownPath = try await httpRequest(.GET, base + "/nonexistent/resource")
            #expect(unknownPath.status == 404)
            #expect(try JSONValue.parse(unknownPath.body)["message"]?.stringValue == "Resource not found")
            let noApplication = try await httpRequest(.GET, base + "/applications/\(uniqueName())")
            #expect(try JSONValue.parse(noApplication.body)["message"]?.stringValue == "Application not found")
            #expect(missing.headers.first(name: "Server") == "Asterisk/22.10.1")
        }
    }

    /// The whole originate in the JSON body is accepted, as Asterisk accepts it (C06).
    @Test func originateParametersInTheBody() async throws {
        try await withSimulator { harness in
            let application = uniqueName()
            let events = try await EventRecorder.connected(harness.configuration(application: application))
            defer { events.stop() }
            let id = uniqueName("call")
            let body = """
                {"endpoint": "Local/answer-long@dialer-test", "app": "\(application)", "appArgs": "x", \
                "channelId": "\(id)", "callerId": "Dialer Test <5551000>", "timeout": 10, \
                "variables": {"CALL_ID": {"value": "def", "report_events": true}, "CALLERID(name)": "Body Name"}}
                """
            let response = try await httpRequest(.POST, harness.baseURL + "/channels", body: body)
            #expect(response.status == 200)
            let created = try JSONValue.parse(response.body)
            #expect(created["id"]?.stringValue == id)
            #expect(created["caller"]?["name"]?.stringValue == "Body Name")
            #expect(created["connected"]?["name"]?.stringValue == "Dialer Test")
            try await events.waitForEvents("StasisStart") { events in
                events.contains { if case .stasisStart(let e) = $0 { e.channel.id == id } else { false } }
            }
            let start = events.events(for: id).compactMap { event -> ARIEvent.StasisStart? in
                if case .stasisStart(let e) = event { return e } else { return nil }
            }.first
            #expect(start?.args == ["x"])
            #expect(start?.channel.channelvars == ["CALL_ID": "def"])
            try await harness.client(application: application).hangup(channelID: id)
            try await events.waitForDestroyed(id)
        }
    }
}
