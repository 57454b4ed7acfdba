import CallDomain
import Foundation

/// The OpenAPI 3.1 description of this server, written by hand in code so that it follows the configuration
/// (the bench route and the docs routes appear exactly when they are served; the examples use an allowed context).
///
/// A test compares its paths and methods with the router's routes and validates it with `openapi-spec-validator`,
/// and posts every request example to a running gateway.
enum OpenAPIDocument {
    /// What of the configuration shapes the document.
    struct Options: Sendable {
        var docsEnabled: Bool
        var benchBaselineRoute: Bool
        var allowedContexts: Set<String>
        var maxBodyBytes: Int
        var tokenRateLimit: GatewayConfiguration.RateLimit
    }

    /// The document as JSON bytes (sorted keys).
    static func json(_ options: Options) -> [UInt8] {
        let data = try? JSONSerialization.data(
            withJSONObject: document(options), options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
        return data.map { Array($0) } ?? []
    }

    // MARK: - Helpers

    private static func ref(_ name: String) -> [String: Any] { ["$ref": "#/components/schemas/\(name)"] }
    private static func responseRef(_ name: String) -> [String: Any] { ["$ref": "#/components/responses/\(name)"] }
    private static var bearer: [[String: Any]] { [["bearerAuth": [String]()]] }

    private static func jsonContent(_ schema: [String: Any], examples: [String: Any]? = nil) -> [String: Any] {
        var media: [String: Any] = ["schema": schema]
        if let examples { media["examples"] = examples }
        return ["application/json": media]
    }

    private static func problems(_ codes: [String]) -> [String: Any] {
        var responses: [String: Any] = [:]
        for code in codes { responses[code] = responseRef("Problem\(code)") }
        return responses
    }

    private static func merge(_ base: [String: Any], _ more: [String: Any]) -> [String: Any] {
        base.merging(more) { _, new in new }
    }

    private static var callIDParameter: [String: Any] {
        [
            "name": "id", "in": "path", "required": true, "description": "The call id (a UUID).",
            "schema": ["type": "string", "format": "uuid"],
        ]
    }

    private static var userIDParameter: [String: Any] {
        [
            "name": "id", "in": "path", "required": true, "description": "The user id (a UUID).",
            "schema": ["type": "string", "format": "uuid"],
        ]
    }

    // MARK: - Document

    static func document(_ options: Options) -> [String: Any] {
        var paths: [String: Any] = [
            "/api/v1/auth/token": ["post": tokenOperation(options)],
            "/api/v1/calls": ["post": createCallOperation(options), "get": listCallsOperation()],
            "/api/v1/calls/{id}": ["get": getCallOperation()],
            "/api/v1/calls/{id}/hangup": ["post": hangupOperation()],
            "/api/v1/calls/{id}/events": ["get": callEventsOperation()],
            "/api/v1/events": ["get": allEventsOperation()],
            "/api/v1/users": ["post": createUserOperation(), "get": listUsersOperation()],
            "/api/v1/users/{id}": ["patch": updateUserOperation(), "delete": deleteUserOperation()],
            "/health": ["get": healthOperation()],
            "/ready": ["get": readyOperation()],
            "/metrics": ["get": metricsOperation()],
        ]
        if options.docsEnabled {
            paths["/openapi.json"] = ["get": docsOperation("openapi", "This document.", type: "application/json")]
            paths["/docs"] = ["get": docsOperation("swaggerUI", "Swagger UI for this document.", type: "text/html")]
            paths["/redoc"] = ["get": docsOperation("redoc", "ReDoc for this document.", type: "text/html")]
        }
        if options.benchBaselineRoute {
            paths["/bench/baseline/calls"] = ["post": benchOperation()]
        }
        return [
            "openapi": "3.1.0",
            "info": [
                "title": "Outbound dialer API",
                "version": OperationsController.version,
                "summary": "Place outbound calls through Asterisk, follow them live, query their history.",
                "description": """
                Clients ask for a call with `POST /api/v1/calls`; the gateway validates it, publishes an \
                originate command to Kafka and answers `202` once Kafka acknowledged it. Dialer workers place \
                the call and publish its status events, which `GET /api/v1/calls/{id}/events` streams live \
                and the history (`GET /api/v1/calls/{id}`) records.

                Authenticate with `POST /api/v1/auth/token`, then send `Authorization: Bearer <token>`. Roles: \
                `viewer` reads; `operator` also places and hangs up calls; `admin` also manages users.

                Errors are `application/problem+json` (RFC 9457) with a stable `type` URI per kind \
                (`\(Problem.typeBase)<kind>`) and, for validation, every rejected field in `errors`.

                Every request may carry `X-Request-ID` (1-128 printable ASCII characters); it is echoed, \
                logged, and carried to Kafka as the W3C `traceparent` of the command.
                """,
            ] as [String: Any],
            "servers": [["url": "/"]],
            "tags": [
                ["name": "auth", "description": "Access tokens."],
                ["name": "calls", "description": "Placing, querying and hanging up calls."],
                ["name": "events", "description": "Live call status (Server-Sent Events)."],
                ["name": "users", "description": "User administration (admin)."],
                ["name": "operations", "description": "Health, readiness, metrics, documentation."],
            ],
            "paths": paths,
            "components": components(options),
        ]
    }

    // MARK: - Operations

    private static func tokenOperation(_ options: Options) -> [String: Any] {
        let limit = options.tokenRateLimit
        let formSchema: [String: Any] = ref("TokenRequest")
        return [
            "tags": ["auth"], "operationId": "createToken", "summary": "Get an access token",
            "description": """
            The OAuth2 password grant: `application/x-www-form-urlencoded` (as OAuth2 clients send it) or JSON. \
            Rate limited to \(limit.count) requests per \(limit.seconds) s per client address (429 with \
            `Retry-After` beyond). An unknown user, a wrong password and a disabled user get the same 401.
            """,
            "requestBody": [
                "required": true,
                "content": [
                    "application/x-www-form-urlencoded": [
                        "schema": formSchema,
                        "examples": [
                            "form": [
                                "summary": "Password grant",
                                "value": [
                                    "grant_type": "password", "username": "operator1",
                                    "password": "correct-horse-battery-staple",
                                ],
                            ]
                        ],
                    ],
                    "application/json": [
                        "schema": formSchema,
                        "examples": [
                            "json": [
                                "summary": "JSON",
                                "value": [
                                    "username": "operator1", "password": "correct-horse-battery-staple",
                                ],
                            ]
                        ],
                    ],
                ] as [String: Any],
            ] as [String: Any],
            "responses": merge(
                ["200": ["description": "A bearer token.", "content": jsonContent(ref("TokenResponse"))]],
                problems(["400", "401", "413", "415", "422", "429", "503"])),
        ]
    }

    private static func createCallOperation(_ options: Options) -> [String: Any] {
        var examples: [String: Any] = [
            "minimal": ["summary": "Just the number", "value": ["to": "+4930123456"]],
            "full": [
                "summary": "Caller id, variables, metadata, timeouts",
                "value": [
                    "to": "+4930123456",
                    "caller_id": ["name": "Acme Support", "number": "+4930999000"],
                    "timeout_seconds": 30,
                    "ttl_seconds": 120,
                    "variables": ["CAMPAIGN": "spring-2026", "AGENT_GROUP": "sales"],
                    "metadata": ["crm_contact_id": "C-1042", "attempt": 1],
                ] as [String: Any],
            ],
            "callerIdNumberOnly": [
                "summary": "Caller id as a plain number", "value": ["to": "0301234567", "caller_id": "+4930999000"],
            ],
        ]
        if let context = options.allowedContexts.sorted().first {
            examples["dialplan"] = [
                "summary": "Send the answered call to a dialplan extension",
                "value": ["to": "+4930123456", "context": context, "extension": "1000", "priority": 1] as [String: Any],
            ]
        }
        let contexts = options.allowedContexts.sorted()
        let allowed =
            contexts.isEmpty
            ? "none (calls go to the worker's default)" : contexts.map { "`\($0)`" }.joined(separator: ", ")
        return [
            "tags": ["calls"], "operationId": "createCall", "summary": "Place a call",
            "description": """
            Validates the request (every invalid field is reported at once, 422), publishes an originate \
            command to Kafka and answers `202` with the call (`status: queued`) and `Location` only after \
            Kafka acknowledged it. If Kafka does not acknowledge within the publish timeout: `503` with \
            `Retry-After` (the call was not accepted). Requires the operator role.

            Allowed contexts: \(allowed).

            **Idempotency-Key**: the key is recorded (user, key, fingerprint of the request, call id) before \
            publishing, and the call id is derived from (user, key). Repeating the request with the same key \
            never makes a second call: the answer is the original call (same id) with \
            `Idempotent-Replayed: true` — `200` with its current state when the history already has it, else \
            `202`. The same key with a different body gets `409`. A failed publish releases the key.
            """,
            "parameters": [
                [
                    "name": "Idempotency-Key", "in": "header", "required": false,
                    "description": "Makes retries safe: 1-255 printable ASCII characters, unique per call you mean.",
                    "schema": ["type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"],
                ] as [String: Any]
            ],
            "requestBody": [
                "required": true,
                "content": jsonContent(ref("CallRequest"), examples: examples),
            ] as [String: Any],
            "responses": merge(
                [
                    "202": [
                        "description": "Accepted: the originate command is in Kafka.",
                        "headers": [
                            "Location": ["description": "The call's URL.", "schema": ["type": "string"]],
                            "Idempotent-Replayed": [
                                "description": "`true` when this answers a repeated Idempotency-Key.",
                                "schema": ["type": "string", "enum": ["true"]],
                            ],
                        ],
                        "content": jsonContent(ref("Call")),
                    ] as [String: Any],
                    "200": [
                        "description": "A repeated Idempotency-Key whose call is in the history: its current state.",
                        "headers": [
                            "Location": ["description": "The call's URL.", "schema": ["type": "string"]]
                        ],
                        "content": jsonContent(ref("Call")),
                    ] as [String: Any],
                ],
                problems(["400", "401", "403", "409", "413", "415", "422", "503"])),
            "security": bearer,
        ]
    }

    private static func listCallsOperation() -> [String: Any] {
        func query(_ name: String, _ description: String, _ schema: [String: Any]) -> [String: Any] {
            ["name": name, "in": "query", "required": false, "description": description, "schema": schema]
        }
        return [
            "tags": ["calls"], "operationId": "listCalls", "summary": "List calls, newest first",
            "description": """
            Keyset pagination: pass `next_cursor` of one page as `cursor` to get the next; `null` on the last \
            page. Unknown or repeated query parameters and bad values are refused (422); a cursor this API did \
            not return is a 400. Requires the viewer role.
            """,
            "parameters": [
                query("status", "Only calls in this status.", ref("CallStatus")),
                query("to", "Only calls to this number.", ["type": "string", "pattern": "^\\+?[0-9]{3,20}$"]),
                query(
                    "created_after", "Only calls created at or after (RFC 3339).",
                    ["type": "string", "format": "date-time"]),
                query(
                    "created_before", "Only calls created before (RFC 3339).",
                    ["type": "string", "format": "date-time"]),
                query("limit", "Page size (default 50).", ["type": "integer", "minimum": 1, "maximum": 200]),
                query("cursor", "The `next_cursor` of the previous page.", ["type": "string", "maxLength": 128]),
            ],
            "responses": merge(
                ["200": ["description": "One page of calls.", "content": jsonContent(ref("CallList"))]],
                problems(["400", "401", "403", "422", "503"])),
            "security": bearer,
        ]
    }

    private static func getCallOperation() -> [String: Any] {
        [
            "tags": ["calls"], "operationId": "getCall", "summary": "A call with its status timeline",
            "description": """
            A call accepted a moment ago is a `404` until the history writer has recorded it (normally within \
            milliseconds of the `202`). Requires the viewer role.
            """,
            "parameters": [callIDParameter],
            "responses": merge(
                ["200": ["description": "The call.", "content": jsonContent(ref("Call"))]],
                problems(["401", "403", "404", "422", "503"])),
            "security": bearer,
        ]
    }

    private static func hangupOperation() -> [String: Any] {
        [
            "tags": ["calls"], "operationId": "hangupCall", "summary": "Cancel a queued call or hang up a live one",
            "description": """
            Publishes a cancel command (the call is still queued: it will never be dialed) or a hangup command \
            (it is being dialed or is up) to `calls.control.v1` and answers `202` with the call as it was. \
            `404` for an unknown call (including one not yet recorded), `409` for one that already ended. \
            Requires the operator role.
            """,
            "parameters": [callIDParameter],
            "responses": merge(
                ["202": ["description": "The command is in Kafka.", "content": jsonContent(ref("Call"))]],
                problems(["401", "403", "404", "409", "422", "503"])),
            "security": bearer,
        ]
    }

    private static var lastEventIDParameter: [String: Any] {
        [
            "name": "Last-Event-ID", "in": "header", "required": false,
            "description": "The id of the last event received; the stream resumes after it.",
            "schema": ["type": "string"],
        ]
    }

    /// `Last-Event-ID` of a call's stream: the `seq` of its last event (422 otherwise).
    private static var callLastEventIDParameter: [String: Any] {
        [
            "name": "Last-Event-ID", "in": "header", "required": false,
            "description": "The id (`seq`) of the last event received; the stream resumes after it.",
            "schema": ["type": "string", "pattern": "^[ \\t]*(\\+?[0-9]{1,18})?[ \\t]*$"],
        ]
    }

    private static func sseResponse(_ description: String) -> [String: Any] {
        [
            "description": description,
            "content": [
                "text/event-stream": [
                    // One event of the stream (OpenAPI 3.1 tools read `schema` of an event stream per event, as
                    // 3.2's `itemSchema`); comment lines (heartbeats) carry no event.
                    "schema": [
                        "type": "object", "required": ["data"],
                        "description": "One SSE event: `event: status`, `id:` its position, `data:` a CallStatusEvent.",
                        "properties": [
                            "event": ["type": "string", "enum": ["status"]],
                            "id": ["type": "string"],
                            "retry": ["type": "integer"],
                            "data": [
                                "type": "string", "contentMediaType": "application/json",
                                "contentSchema": ref("CallStatusEvent"),
                            ] as [String: Any],
                        ] as [String: Any],
                    ] as [String: Any],
                    "x-event-data": ref("CallStatusEvent"),
                ] as [String: Any]
            ],
        ]
    }

    private static func callEventsOperation() -> [String: Any] {
        [
            "tags": ["events"], "operationId": "streamCallEvents", "summary": "Live status of one call (SSE)",
            "description": """
            Server-Sent Events: `id:` is the event's `seq`, `event: status`, `data:` the CallStatusEvent JSON \
            (as on `calls.status.v1`). First the events the history holds after `Last-Event-ID` (all of them \
            when absent), then live ones, without gaps or duplicates. Comment lines are heartbeats. A client \
            that falls too far behind is disconnected and should reconnect with `Last-Event-ID`. The stream \
            stays open after the call ended; close it when you saw a terminal status. An id the history does \
            not know yet is not an error (a call accepted a moment ago may not be recorded yet): the stream waits \
            for its events. Requires the viewer role.
            """,
            "parameters": [callIDParameter, callLastEventIDParameter],
            "responses": merge(
                ["200": sseResponse("The event stream.")], problems(["401", "403", "422", "503"])),
            "security": bearer,
        ]
    }

    private static func allEventsOperation() -> [String: Any] {
        [
            "tags": ["events"], "operationId": "streamAllEvents", "summary": "Live status of every call (SSE)",
            "description": """
            Like the per-call stream, for every call, live only: `id:` is `<call id>:<seq>`. A \
            `Last-Event-ID` resumes only as far as this gateway instance's recent events reach; use the \
            per-call stream or `GET /api/v1/calls` to catch up reliably. Requires the viewer role.
            """,
            "parameters": [lastEventIDParameter],
            "responses": merge(["200": sseResponse("The event stream.")], problems(["401", "403"])),
            "security": bearer,
        ]
    }

    private static func createUserOperation() -> [String: Any] {
        [
            "tags": ["users"], "operationId": "createUser", "summary": "Create a user",
            "description": """
            Without `password`, one is generated and returned once as `generated_password`. Requires the admin \
            role.
            """,
            "requestBody": [
                "required": true,
                "content": jsonContent(
                    ref("UserCreate"),
                    examples: [
                        "withPassword": [
                            "summary": "With a password",
                            "value": [
                                "username": "viewer.jane", "password": "a-long-passphrase-1", "role": "viewer",
                            ],
                        ],
                        "generated": [
                            "summary": "Generated password",
                            "value": [
                                "username": "ops.bot", "role": "operator",
                            ],
                        ],
                    ]),
            ] as [String: Any],
            "responses": merge(
                [
                    "201": [
                        "description": "Created.", "content": jsonContent(ref("User")),
                        "headers": ["Location": ["description": "The user's URL.", "schema": ["type": "string"]]],
                    ] as [String: Any]
                ],
                problems(["400", "401", "403", "409", "413", "415", "422"])),
            "security": bearer,
        ]
    }

    private static func listUsersOperation() -> [String: Any] {
        [
            "tags": ["users"], "operationId": "listUsers", "summary": "List users",
            "description": "Requires the admin role.",
            "responses": merge(
                ["200": ["description": "Every user.", "content": jsonContent(ref("UserList"))]],
                problems(["401", "403"])),
            "security": bearer,
        ]
    }

    private static func updateUserOperation() -> [String: Any] {
        [
            "tags": ["users"], "operationId": "updateUser", "summary": "Disable or enable a user",
            "description": """
            A disabled user cannot get tokens and their tokens are refused (within `USER_CACHE_SECONDS`). An \
            admin cannot disable their own account. Requires the admin role.
            """,
            "parameters": [userIDParameter],
            "requestBody": [
                "required": true,
                "content": jsonContent(
                    ref("UserUpdate"),
                    examples: ["disable": ["summary": "Disable", "value": ["disabled": true]]]),
            ] as [String: Any],
            "responses": merge(
                ["200": ["description": "The user.", "content": jsonContent(ref("User"))]],
                problems(["400", "401", "403", "404", "409", "413", "415", "422"])),
            "security": bearer,
        ]
    }

    private static func deleteUserOperation() -> [String: Any] {
        [
            "tags": ["users"], "operationId": "deleteUser", "summary": "Delete a user",
            "description": "An admin cannot delete their own account. Requires the admin role.",
            "parameters": [userIDParameter],
            "responses": merge(["204": ["description": "Deleted."]], problems(["401", "403", "404", "409", "422"])),
            "security": bearer,
        ]
    }

    private static func healthOperation() -> [String: Any] {
        [
            "tags": ["operations"], "operationId": "health", "summary": "Liveness",
            "responses": ["200": ["description": "The process answers.", "content": jsonContent(ref("Health"))]],
        ]
    }

    private static func readyOperation() -> [String: Any] {
        [
            "tags": ["operations"], "operationId": "ready", "summary": "Readiness",
            "description": "200 when PostgreSQL and Kafka are reachable; else 503 naming what is not.",
            "responses": merge(
                ["200": ["description": "Ready.", "content": jsonContent(ref("Readiness"))]], problems(["503"])),
        ]
    }

    private static func metricsOperation() -> [String: Any] {
        [
            "tags": ["operations"], "operationId": "metrics", "summary": "Prometheus metrics",
            "responses": [
                "200": [
                    "description": "Prometheus text exposition format 0.0.4.",
                    "content": ["text/plain": ["schema": ["type": "string"]]],
                ] as [String: Any]
            ],
        ]
    }

    private static func docsOperation(_ id: String, _ summary: String, type: String) -> [String: Any] {
        [
            "tags": ["operations"], "operationId": id, "summary": summary,
            "description": "Served unless `DOCS_ENABLED=false`.",
            "responses": [
                "200": [
                    "description": summary,
                    "content": [type: ["schema": ["type": type == "text/html" ? "string" : "object"]]],
                ]
                    as [String: Any]
            ],
        ]
    }

    private static func benchOperation() -> [String: Any] {
        [
            "tags": ["operations"], "operationId": "benchBaseline",
            "summary": "Benchmark baseline (only with BENCH_BASELINE_ROUTE=true)",
            "description": """
            Answers the same 202 body shape as `POST /api/v1/calls` with no authentication, validation or \
            Kafka, so that a benchmark can measure the HTTP stack alone. Never enable it in production.
            """,
            "requestBody": [
                "required": false,
                "content": jsonContent(
                    ["type": "object"], examples: ["any": ["summary": "Any body", "value": ["to": "+4930123456"]]]),
            ] as [String: Any],
            "responses": ["202": ["description": "A fabricated accepted call.", "content": jsonContent(ref("Call"))]],
        ]
    }

    // MARK: - Components

    private static func problemResponse(_ description: String, retryAfter: Bool = false) -> [String: Any] {
        var response: [String: Any] = [
            "description": description,
            "content": ["application/problem+json": ["schema": ref("Problem")]],
        ]
        if retryAfter {
            response["headers"] = [
                "Retry-After": ["description": "Seconds to wait before retrying.", "schema": ["type": "integer"]]
            ]
        }
        return response
    }

    /// The object schema with each property outside `required` also accepting `null`.
    static func nullableOptionals(_ schema: [String: Any]) -> [String: Any] {
        var schema = schema
        let required = Set(schema["required"] as? [String] ?? [])
        guard let properties = schema["properties"] as? [String: Any] else { return schema }
        var nullable: [String: Any] = [:]
        for (name, property) in properties {
            nullable[name] = required.contains(name) ? property : ["anyOf": [property, ["type": "null"]]]
        }
        schema["properties"] = nullable
        return schema
    }

    static func components(_ options: Options) -> [String: Any] {
        let nullableString: [String: Any] = ["type": ["string", "null"]]
        let nullableTimestamp: [String: Any] = ["type": ["string", "null"], "format": "date-time"]
        let timestamp: [String: Any] = ["type": "string", "format": "date-time"]
        let statuses = CallStatus.allCases.map(\.rawValue)
        let failureReasons: [Any] = [NSNull()] + FailureReason.allCases.map(\.rawValue)
        let hangupCause: [String: Any] = [
            "oneOf": [
                ["type": "null"],
                [
                    "type": "object", "additionalProperties": false, "required": ["code", "text"],
                    "properties": ["code": ["type": "integer", "minimum": 0], "text": ["type": "string"]],
                ] as [String: Any],
            ]
        ]
        let variables: [String: Any] = [
            "type": "object", "maxProperties": ChannelVariables.maximumCount,
            "propertyNames": ["pattern": "^[A-Za-z_][A-Za-z0-9_]{0,63}$"],
            "additionalProperties": ["type": "string", "maxLength": 256, "pattern": "^[A-Za-z0-9 ._+=:*#%-]*$"],
            "description": "Channel variables (at most 32).",
        ]
        let metadata: [String: Any] = [
            "type": "object",
            "description": "Your own data about the call (at most 4 KiB of JSON, nesting depth 8, no U+0000 in a key "
                + "or a string); never sent to Asterisk, returned with the call and its events.",
        ]
        var callRequest: [String: Any] = [
            "type": "object", "additionalProperties": false, "required": ["to"],
            "properties": [
                "to": [
                    "type": "string", "pattern": "^\\+?[0-9]{3,20}$",
                    "description": "The number to dial: optional + then 3-20 ASCII digits.",
                ],
                "caller_id": [
                    "description": "The presented caller id: {name, number} or just the number.",
                    "oneOf": [
                        ["type": "string", "pattern": "^\\+?[0-9]{1,20}$"],
                        nullableOptionals([
                            "type": "object", "additionalProperties": false, "required": ["number"],
                            "properties": [
                                "name": [
                                    "type": "string", "minLength": 1, "maxLength": 80,
                                    "description": "Letters of any script, ASCII digits, space, '.', '-', '_', at "
                                        + "most 80 bytes in UTF-8 (no quotes, angle brackets or control characters).",
                                ] as [String: Any],
                                "number": ["type": "string", "pattern": "^\\+?[0-9]{1,20}$"],
                            ] as [String: Any],
                        ]),
                    ],
                ] as [String: Any],
                "context": [
                    "type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$",
                    // This gateway's ALLOWED_CONTEXTS (none: no context is accepted): the document describes the
                    // service as configured.
                    "enum": options.allowedContexts.isEmpty ? [""] : options.allowedContexts.sorted(),
                    "description":
                        "Dialplan context for the answered call; one of ALLOWED_CONTEXTS. Requires extension.",
                ] as [String: Any],
                "extension": [
                    "type": "string", "pattern": "^[A-Za-z0-9_+*#-]{1,64}$",
                    "description": "Dialplan extension. Requires context.",
                ],
                "priority": [
                    "type": "integer", "minimum": 1, "maximum": 99_999, "default": 1,
                    "description": "Dialplan priority. Requires context and extension.",
                ],
                "timeout_seconds": [
                    "type": "integer", "minimum": OriginateCommand.timeoutRange.lowerBound,
                    "maximum": OriginateCommand.timeoutRange.upperBound,
                    "description": "How long to ring (default DEFAULT_TIMEOUT).",
                ],
                "ttl_seconds": [
                    "type": "integer", "minimum": CallRequest.ttlRange.lowerBound,
                    "maximum": CallRequest.ttlRange.upperBound,
                    "description": "After this many seconds an undialed call expires (default CALL_TTL_SECONDS).",
                ],
                "variables": variables,
                "metadata": metadata,
            ] as [String: Any],
        ]
        // An optional field sent as null is the same as an absent one.
        callRequest = nullableOptionals(callRequest)
        // The dialplan target goes together: a context needs an extension and the reverse; a priority needs both.
        func given(_ name: String, _ type: String) -> [String: Any] {
            ["required": [name], "properties": [name: ["type": type]]]
        }
        callRequest["allOf"] = [
            ["if": given("context", "string"), "then": given("extension", "string")],
            ["if": given("extension", "string"), "then": given("context", "string")],
            [
                "if": given("priority", "integer"),
                "then": [
                    "required": ["context", "extension"],
                    "properties": ["context": ["type": "string"], "extension": ["type": "string"]],
                ] as [String: Any],
            ],
        ]
        let timelineEntry: [String: Any] = [
            "type": "object",
            "required": ["seq", "status", "previous_status", "occurred_at"],
            "properties": [
                "seq": ["type": "integer", "minimum": 0],
                "status": ref("CallStatus"),
                "previous_status": ["oneOf": [["type": "null"], ref("CallStatus")]],
                "occurred_at": timestamp,
                "node_id": nullableString, "worker_id": nullableString,
                "hangup_cause": hangupCause,
                "failure_reason": ["enum": failureReasons],
                "detail": nullableString,
            ] as [String: Any],
        ]
        let call: [String: Any] = [
            "type": "object",
            "required": ["id", "status", "seq", "created_at", "updated_at", "links"],
            "properties": [
                "id": ["type": "string", "format": "uuid"],
                "status": ref("CallStatus"),
                "seq": ["type": "integer", "minimum": 0, "description": "Highest applied event seq (0: queued)."],
                "to": nullableString,
                "caller_id": [
                    "oneOf": [
                        ["type": "null"],
                        [
                            "type": "object", "required": ["number"],
                            "properties": ["name": nullableString, "number": ["type": "string"]],
                        ] as [String: Any],
                    ]
                ],
                "context": nullableString, "extension": nullableString,
                "priority": ["type": ["integer", "null"]],
                "timeout_seconds": ["type": ["integer", "null"]],
                "variables": ["type": "object", "additionalProperties": ["type": "string"]],
                "metadata": ["type": "object"],
                "requested_by": nullableString, "request_id": nullableString,
                "node_id": nullableString, "worker_id": nullableString, "channel_id": nullableString,
                "hangup_cause": hangupCause,
                "failure_reason": ["enum": failureReasons],
                "retryable": ["type": ["boolean", "null"]],
                "detail": nullableString,
                "created_at": timestamp, "expires_at": nullableTimestamp, "dispatched_at": nullableTimestamp,
                "answered_at": nullableTimestamp, "ended_at": nullableTimestamp, "updated_at": timestamp,
                "timeline": ["type": "array", "items": ref("TimelineEntry")],
                "links": [
                    "type": "object", "required": ["self", "events", "hangup"],
                    "properties": [
                        "self": ["type": "string"], "events": ["type": "string"], "hangup": ["type": "string"],
                    ],
                ] as [String: Any],
            ] as [String: Any],
        ]
        let statusEvent: [String: Any] = [
            "type": "object",
            "description": "A status change, as published on calls.status.v1 (schemas/call-status-event.v1.json).",
            "required": ["event_id", "call_id", "seq", "status", "previous_status", "occurred_at", "metadata"],
            "properties": [
                "event_id": ["type": "string", "format": "uuid"],
                "call_id": ["type": "string", "format": "uuid"],
                "seq": ["type": "integer", "minimum": 1],
                "status": ref("CallStatus"), "previous_status": ref("CallStatus"),
                "occurred_at": timestamp,
                "node_id": nullableString, "worker_id": nullableString, "channel_id": nullableString,
                "to": nullableString, "hangup_cause": hangupCause,
                "failure_reason": ["enum": failureReasons],
                "retryable": ["type": ["boolean", "null"]],
                "detail": nullableString, "answered_at": nullableTimestamp, "ended_at": nullableTimestamp,
                "duration_seconds": ["type": ["number", "null"], "minimum": 0],
                "metadata": ["type": "object"],
            ] as [String: Any],
        ]
        let user: [String: Any] = [
            "type": "object", "required": ["id", "username", "role", "disabled", "created_at", "updated_at"],
            "properties": [
                "id": ["type": "string", "format": "uuid"],
                "username": ["type": "string"],
                "role": ref("Role"),
                "disabled": ["type": "boolean"],
                "created_at": timestamp, "updated_at": timestamp,
                "generated_password": [
                    "type": "string", "description": "Only when the password was generated; shown once.",
                ],
            ] as [String: Any],
        ]
        let schemas: [String: Any] = [
            "CallStatus": ["type": "string", "enum": statuses],
            "Role": ["type": "string", "enum": ["viewer", "operator", "admin"]],
            "CallRequest": callRequest,
            "Call": call,
            "TimelineEntry": timelineEntry,
            "CallList": [
                "type": "object", "required": ["calls", "next_cursor"],
                "properties": [
                    "calls": ["type": "array", "items": ref("Call")],
                    "next_cursor": nullableString,
                ] as [String: Any],
            ],
            "CallStatusEvent": statusEvent,
            "TokenRequest": [
                "type": "object", "additionalProperties": false, "required": ["username", "password"],
                "properties": [
                    "grant_type": ["type": "string", "enum": ["password"]],
                    "username": ["type": "string", "minLength": 1, "maxLength": 64],
                    "password": ["type": "string", "minLength": 1, "maxLength": 1024],
                    "scope": ["type": "string"], "client_id": ["type": "string"], "client_secret": ["type": "string"],
                ] as [String: Any],
            ],
            "TokenResponse": [
                "type": "object", "required": ["access_token", "token_type", "expires_in"],
                "properties": [
                    "access_token": ["type": "string"],
                    "token_type": ["type": "string", "enum": ["bearer"]],
                    "expires_in": ["type": "integer", "description": "Seconds until the token expires."],
                ] as [String: Any],
            ],
            "UserCreate": [
                "type": "object", "additionalProperties": false, "required": ["username", "role"],
                "properties": [
                    "username": ["type": "string", "pattern": "^[A-Za-z0-9._@-]{1,64}$"],
                    "password": [
                        "type": "string", "minLength": 12, "maxLength": 72,
                        "description": "At least 12 characters and at most 72 bytes in UTF-8; generated when absent.",
                    ],
                    "role": ref("Role"),
                ] as [String: Any],
            ],
            "UserUpdate": [
                "type": "object", "additionalProperties": false, "required": ["disabled"],
                "properties": ["disabled": ["type": "boolean"]],
            ],
            "User": user,
            "UserList": [
                "type": "object", "required": ["users"],
                "properties": ["users": ["type": "array", "items": ref("User")]],
            ],
            "FieldError": [
                "type": "object", "required": ["field", "message"],
                "properties": ["field": ["type": "string"], "message": ["type": "string"]],
            ],
            "Problem": [
                "type": "object", "required": ["type", "title", "status", "detail"],
                "description": "RFC 9457 problem details.",
                "properties": [
                    "type": [
                        "type": "string", "format": "uri",
                        "enum": Problem.Kind.allCases.map(\.typeURI),
                    ] as [String: Any],
                    "title": ["type": "string"],
                    "status": ["type": "integer"],
                    "detail": ["type": "string"],
                    "instance": ["type": "string"],
                    "request_id": ["type": "string"],
                    "errors": ["type": "array", "items": ref("FieldError")],
                ] as [String: Any],
            ],
            "Health": [
                "type": "object", "required": ["status", "version", "instance"],
                "properties": [
                    "status": ["type": "string", "enum": ["ok"]], "version": ["type": "string"],
                    "instance": ["type": "string"],
                ] as [String: Any],
            ],
            "Readiness": [
                "type": "object", "required": ["status", "checks"],
                "properties": [
                    "status": ["type": "string", "enum": ["ready"]],
                    "checks": ["type": "object", "additionalProperties": ["type": "string"]],
                ] as [String: Any],
            ],
        ]
        let responses: [String: Any] = [
            "Problem400": problemResponse("Malformed request (not JSON, bad cursor)."),
            "Problem401": [
                "description": "Missing, malformed, expired or otherwise invalid credentials.",
                "headers": ["WWW-Authenticate": ["description": "Bearer challenge.", "schema": ["type": "string"]]],
                "content": ["application/problem+json": ["schema": ref("Problem")]],
            ] as [String: Any],
            "Problem403": problemResponse("The caller's role does not allow this."),
            "Problem404": problemResponse("Not found."),
            "Problem409": problemResponse("Conflict (call ended, idempotency key reused, username taken)."),
            "Problem413": problemResponse("The body exceeds \(options.maxBodyBytes) bytes."),
            "Problem415": problemResponse("Wrong Content-Type."),
            "Problem422": problemResponse("Invalid fields; `errors` lists each."),
            "Problem429": problemResponse("Rate limited.", retryAfter: true),
            "Problem503": problemResponse("A dependency (Kafka or PostgreSQL) is unavailable.", retryAfter: true),
        ]
        return [
            "schemas": schemas,
            "responses": responses,
            "securitySchemes": [
                "bearerAuth": [
                    "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                    "description": "A token from POST /api/v1/auth/token.",
                ]
            ],
        ]
    }
}
