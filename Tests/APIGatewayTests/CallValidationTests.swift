import CallDomain
import CallMessaging
import CallStore
import EmbeddedKafka
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import NIOHTTP1
import TestSupport
import Testing

@testable import APIGateway

/// `POST /api/v1/calls` refuses every injection and malformed field with a 422 naming the field, and never puts
/// a command on the topic for a refused request.
@Suite struct CallValidationTests {
    /// JSON string literal of `text` (escapes quotes, controls, non-ASCII stays as is).
    static func quoted(_ text: String) -> String {
        String(decoding: try! JSONEncoder().encode(text), as: UTF8.self)
    }

    /// (body, the fields that must be named).
    static var matrix: [(String, [String])] {
        let long = String(repeating: "1", count: 10_000)
        let manyVariables = (0..<33).map { "\"V\($0)\":\"x\"" }.joined(separator: ",")
        let bigMetadata = "{\"blob\":\(quoted(String(repeating: "a", count: 4200)))}"
        var deep = "1"
        for _ in 0..<10 { deep = "{\"a\":\(deep)}" }
        var cases: [(String, [String])] = []
        // Dial-string injections in the number.
        for to in [
            "123&PJSIP/900@evil", "1,2", "a/b", "1@x", "12345\r\n", "123\u{0}456", "\u{661}\u{662}\u{663}\u{664}",
            "", long, "+", "12", "123 456", "١٢٣٤٥", "１２３４５", "123;456", "123|456", "${EXTEN}",
        ] {
            cases.append(("{\"to\":\(quoted(to))}", ["to"]))
        }
        // Header forgery in the caller id name, injections in its number.
        for name in [
            "\"x\" <1>\r\nVia: y", "x\"y", "<sip:evil@x>", "a\rb", "a\nb", "nul\u{0}", "",
            String(repeating: "n", count: 81),
            "bidi\u{202E}override", "zero\u{200B}width",
        ] {
            cases.append(
                ("{\"to\":\"123\",\"caller_id\":{\"name\":\(quoted(name)),\"number\":\"123\"}}", ["caller_id.name"]))
        }
        for number in ["1&2", "a", "", "12\r\n", long] {
            cases.append(("{\"to\":\"123\",\"caller_id\":{\"number\":\(quoted(number))}}", ["caller_id.number"]))
            cases.append(("{\"to\":\"123\",\"caller_id\":\(quoted(number))}", ["caller_id.number"]))
        }
        cases.append(("{\"to\":\"123\",\"caller_id\":{\"name\":\"x\"}}", ["caller_id.number"]))
        cases.append(("{\"to\":\"123\",\"caller_id\":{\"number\":\"1\",\"display\":\"x\"}}", ["caller_id.display"]))
        cases.append(("{\"to\":\"123\",\"caller_id\":42}", ["caller_id"]))
        // Dialplan: contexts from the allow-list only, extensions and priorities by their rules.
        cases += [
            ("{\"to\":\"123\",\"context\":\"not-allowed\",\"extension\":\"100\"}", ["context"]),
            ("{\"to\":\"123\",\"context\":\"out bound\",\"extension\":\"100\"}", ["context"]),
            ("{\"to\":\"123\",\"context\":\"outbound\",\"extension\":\"100&Dial(x)\"}", ["extension"]),
            ("{\"to\":\"123\",\"context\":\"outbound\",\"extension\":\"1,2\"}", ["extension"]),
            ("{\"to\":\"123\",\"context\":\"outbound\",\"extension\":\"\"}", ["extension"]),
            ("{\"to\":\"123\",\"context\":\"outbound\"}", ["extension"]),
            ("{\"to\":\"123\",\"extension\":\"100\"}", ["context"]),
            ("{\"to\":\"123\",\"context\":\"outbound\",\"extension\":\"100\",\"priority\":0}", ["priority"]),
            ("{\"to\":\"123\",\"context\":\"outbound\",\"extension\":\"100\",\"priority\":1.5}", ["priority"]),
            ("{\"to\":\"123\",\"context\":\"outbound\",\"extension\":\"100\",\"priority\":\"1\"}", ["priority"]),
        ]
        // Variables: count, names, values.
        cases += [
            ("{\"to\":\"123\",\"variables\":{\(manyVariables)}}", ["variables"]),
            ("{\"to\":\"123\",\"variables\":{\"1BAD\":\"x\"}}", ["variables.1BAD"]),
            ("{\"to\":\"123\",\"variables\":{\"BAD-NAME\":\"x\"}}", ["variables.BAD-NAME"]),
            ("{\"to\":\"123\",\"variables\":{\"A B\":\"x\"}}", ["variables.A B"]),
            ("{\"to\":\"123\",\"variables\":{\"OK\":\"a&b\"}}", ["variables.OK"]),
            ("{\"to\":\"123\",\"variables\":{\"OK\":\"a,b\"}}", ["variables.OK"]),
            ("{\"to\":\"123\",\"variables\":{\"OK\":\"${SHELL}\"}}", ["variables.OK"]),
            ("{\"to\":\"123\",\"variables\":{\"OK\":\"line\\r\\nbreak\"}}", ["variables.OK"]),
            ("{\"to\":\"123\",\"variables\":{\"OK\":1}}", ["variables.OK"]),
            ("{\"to\":\"123\",\"variables\":[\"A\"]}", ["variables"]),
            ("{\"to\":\"123\",\"variables\":{\"DIALER_AMD_APP\":\"x\"}}", ["variables.DIALER_AMD_APP"]),
            ("{\"to\":\"123\",\"variables\":{\"AMDSTATUS\":\"HUMAN\"}}", ["variables.AMDSTATUS"]),
        ]
        // Answering machine detection: a mode, or an object with a mode, a policy and AMD()'s timings in range.
        cases += [
            ("{\"to\":\"123\",\"machine_detection\":\"on\"}", ["machine_detection"]),
            ("{\"to\":\"123\",\"machine_detection\":true}", ["machine_detection"]),
            ("{\"to\":\"123\",\"machine_detection\":{}}", ["machine_detection.mode"]),
            ("{\"to\":\"123\",\"machine_detection\":{\"mode\":\"off\"}}", ["machine_detection.mode"]),
            (
                "{\"to\":\"123\",\"machine_detection\":{\"mode\":\"detect\",\"on_machine\":\"transfer\","
                    + "\"greeting_ms\":0,\"silence_threshold\":40000,\"beep\":1}}",
                [
                    "machine_detection.on_machine", "machine_detection.greeting_ms",
                    "machine_detection.silence_threshold", "machine_detection.beep",
                ]
            ),
        ]
        // Metadata size and depth, timeouts, unknown fields, wrong types.
        cases += [
            ("{\"to\":\"123\",\"metadata\":\(bigMetadata)}", ["metadata"]),
            ("{\"to\":\"123\",\"metadata\":\(deep)}", ["metadata"]),
            ("{\"to\":\"123\",\"metadata\":\"text\"}", ["metadata"]),
            ("{\"to\":\"123\",\"timeout_seconds\":4}", ["timeout_seconds"]),
            ("{\"to\":\"123\",\"timeout_seconds\":301}", ["timeout_seconds"]),
            ("{\"to\":\"123\",\"timeout_seconds\":\"30\"}", ["timeout_seconds"]),
            ("{\"to\":\"123\",\"ttl_seconds\":1}", ["ttl_seconds"]),
            ("{\"to\":\"123\",\"endpoint\":\"PJSIP/900@evil\"}", ["endpoint"]),
            ("{\"to\":123}", ["to"]),
            ("{\"to\":null}", ["to"]),
            ("{}", ["to"]),
        ]
        // Everything wrong at once: every field is named in one answer.
        cases.append(
            (
                "{\"to\":\"1,2\",\"caller_id\":{\"name\":\"<x>\",\"number\":\"a\"},\"context\":\"nope\","
                    + "\"extension\":\"1&2\","
                    + "\"priority\":0,\"timeout_seconds\":1,\"variables\":{\"9\":\"&\"},\"metadata\":\(bigMetadata),"
                    + "\"ttl_seconds\":0,\"surprise\":true}",
                [
                    "to", "caller_id.name", "caller_id.number", "context", "extension", "priority", "timeout_seconds",
                    "variables.9", "metadata", "ttl_seconds", "surprise",
                ]
            ))
        return cases
    }

    @Test func theValidationMatrixIsAnswered422NamingEveryField() async throws {
        try await GatewayHarness.run { gateway in
            let (_, token) = try await gateway.user(.operator)
            for (body, fields) in Self.matrix {
                let response = try await gateway.postCall(body, token: token)
                let shown = String(body.prefix(120))
                #expect(response.status == .unprocessableContent, "\(shown)")
                #expect(response.headers[.contentType] == "application/problem+json", "\(shown)")
                #expect(response.problemType == "https://outbound-dialer.example/problems/validation", "\(shown)")
                #expect(response.json["status"] as? Int == 422)
                #expect(response.json["title"] is String && response.json["detail"] is String)
                for field in fields {
                    #expect(
                        response.errorFields.contains(field), "\(shown) should name \(field): \(response.errorFields)")
                }
                // Nothing the client sent is echoed raw in a way that could carry a header break.
                #expect(!response.text.contains("\r\nVia"), "\(shown)")
            }
            // No refused request reached Kafka.
            let messages = try await gateway.messages(on: gateway.topics.originate)
            #expect(messages.isEmpty)
        }
    }

    @Test func malformedBodiesAreClientErrorsNeverServerErrors() async throws {
        try await GatewayHarness.run(environment: ["MAX_BODY_BYTES": "2048"]) { gateway in
            let (_, token) = try await gateway.user(.operator)
            let cases: [(String, HTTPFields, HTTPResponse.Status)] = [
                ("{\"to\":", [.contentType: "application/json"], .badRequest),
                ("[1,2,3]", [.contentType: "application/json"], .badRequest),
                ("\"just a string\"", [.contentType: "application/json"], .badRequest),
                ("", [.contentType: "application/json"], .badRequest),
                ("to=123", [.contentType: "application/x-www-form-urlencoded"], .unsupportedMediaType),
                ("{\"to\":\"123\"}", [.contentType: "text/plain"], .unsupportedMediaType),
                ("{\"to\":\"123\"}", [:], .unsupportedMediaType),
                ("{\"to\":\"123\"}", [.contentType: " \t "], .unsupportedMediaType),
                ("{\"to\":\"123\"}", [.contentType: "application/jsonx"], .unsupportedMediaType),
                // The media type is read case-insensitively and without blanks or parameters: the body gets as far
                // as validation (letters are no dial target).
                ("{\"to\":\"abc\"}", [.contentType: " Application/JSON ; charset=utf-8"], .unprocessableContent),
                ("{\"to\":\"abc\"}", [.contentType: "application/problem+json"], .unprocessableContent),
                (
                    "{\"to\":\"\(String(repeating: "1", count: 3000))\"}", [.contentType: "application/json"],
                    .contentTooLarge
                ),
                ("\u{FEFF}{\"to\":\"123\"", [.contentType: "application/json"], .badRequest),
            ]
            for (body, headers, status) in cases {
                var headers = headers
                headers[.authorization] = "Bearer \(token)"
                let response = try await gateway.request(.post, "/api/v1/calls", headers: headers, body: body)
                #expect(response.status == status, "\(body.prefix(40)) \(headers)")
                #expect(response.headers[.contentType] == "application/problem+json")
            }
            let idempotency = try await gateway.postCall(
                "{\"to\":\"123\"}", token: token, idempotencyKey: "has a space")
            #expect(idempotency.status == .unprocessableContent)
            #expect(idempotency.errorFields == ["Idempotency-Key"])
        }
    }

    @Test func validRequestsOfEveryShapeAreAccepted() async throws {
        try await GatewayHarness.run { gateway in
            let (_, token) = try await gateway.user(.operator)
            let bodies = [
                #"{"to":"123"}"#,
                #"{"to":"+4930123456","caller_id":"+4930999000"}"#,
                #"{"to":"0049301234567890123","caller_id":{"name":"Zoë Ångström-Øster","number":"1"}}"#,
                #"{"to":"123","caller_id":{"name":"محمد","number":"+1"}}"#,
                #"{"to":"123","context":"sales-queue","extension":"*100#"}"#,
                #"{"to":"123","context":"outbound","extension":"s","priority":99999,"timeout_seconds":5,"#
                    + #""ttl_seconds":86400}"#,
                #"{"to":"123","variables":{"_A":"","B_2":"a b.c_d-e+f=g:h*i#j%k"},"#
                    + #""metadata":{"n":null,"l":[1,true,"x"]}}"#,
                #"{"to":"123","caller_id":null,"variables":null,"metadata":null}"#,
                #"{"to":"123","machine_detection":"off"}"#,
                #"{"to":"123","machine_detection":"detect_message_end"}"#,
                #"{"to":"123","machine_detection":{"mode":"detect","on_machine":"continue","initial_silence_ms":2500,"#
                    + #""greeting_ms":1500,"after_greeting_silence_ms":800,"total_analysis_time_ms":5000,"#
                    + #""minimum_word_length_ms":100,"between_words_silence_ms":50,"maximum_number_of_words":3,"#
                    + #""silence_threshold":256,"maximum_word_length_ms":5000}}"#,
            ]
            for body in bodies {
                let response = try await gateway.postCall(body, token: token)
                #expect(response.status == .accepted, "\(body): \(response.text)")
            }
        }
    }

    @Test func machineDetectionReachesTheCommandAndTheAnswer() async throws {
        try await GatewayHarness.run { gateway in
            let (_, token) = try await gateway.user(.operator)
            let response = try await gateway.postCall(
                #"{"to":"123","machine_detection":{"mode":"detect","total_analysis_time_ms":4000}}"#, token: token)
            #expect(response.status == .accepted, "\(response.text)")
            let detection = try #require(response.json["machine_detection"] as? [String: Any])
            #expect(detection["mode"] as? String == "detect")
            #expect(detection["on_machine"] as? String == "hangup", "the default policy")
            #expect(detection["total_analysis_time_ms"] as? Int == 4000)
            #expect(response.json["answered_by"] is NSNull, "nobody answered yet")
            let callID = try #require(response.json["id"] as? String)
            let messages = try await gateway.messages(on: gateway.topics.originate)
            let command = try #require(
                try messages.map { try CallMessageDecoder.originate($0).0 }.first { $0.callID.description == callID })
            #expect(
                command.machineDetection
                    == (try MachineDetection(mode: .detect, timings: [.totalAnalysisTime: 4000])))
            let plain = try await gateway.postCall(#"{"to":"124","machine_detection":"off"}"#, token: token)
            #expect(plain.json["machine_detection"] is NSNull)
        }
    }
}
