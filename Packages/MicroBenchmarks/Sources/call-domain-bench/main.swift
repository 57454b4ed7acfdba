import Benchmark
import CallDomain
import Foundation

// What a call costs in the pieces every call goes through: the originate command and the status event on the wire
// (encoded by the gateway and the workers, decoded by the workers, the history writer and the gateway's feed), the
// validation of a request's parts, and the state machine's checks. Run with `make bench-micro`.

let now = Date(timeIntervalSince1970: 1_796_000_000.123)
let command = try OriginateCommand(
    callID: .generate(now: now), requestedAt: now, expiresAt: now.addingTimeInterval(300),
    to: DialTarget("+12125550101"), callerID: CallerID(name: "Sales", number: "+12125550199"),
    dialplan: DialplanTarget(context: "agents", extension: "s", priority: 1), timeoutSeconds: 30,
    variables: ChannelVariables(["CAMPAIGN": "spring", "LANG": "en"]),
    metadata: ClientMetadata(["crm_id": .string("A-1234"), "attempt": .number(2)]), requestedBy: "crm",
    requestID: "b1c2d3e4f5a6")
let commandJSON = try WireCoding.encode(command)
let event = CallStatusEvent(
    callID: command.callID, seq: 3, status: .answered, previousStatus: .ringing, occurredAt: now,
    nodeID: "node-a", workerID: "worker-1", channelID: "1796000000.42", to: "+12125550101", answeredAt: now,
    metadata: command.metadata)
let eventJSON = try WireCoding.encode(event)

benchmark("OriginateCommand encode (JSONTextWriter, what WireCoding.encode uses)") {
    blackHole(try WireCoding.encode(command))
}
benchmark("OriginateCommand encode (JSONEncoder, wire conventions)") {
    blackHole(try WireCoding.encoder.encode(command))
}
benchmark("OriginateCommand decode") {
    blackHole(try WireCoding.decode(OriginateCommand.self, from: commandJSON))
}
benchmark("CallStatusEvent encode (JSONTextWriter)") {
    blackHole(try WireCoding.encode(event))
}
benchmark("CallStatusEvent encode (JSONEncoder)") {
    blackHole(try WireCoding.encoder.encode(event))
}
benchmark("CallStatusEvent decode") {
    blackHole(try WireCoding.decode(CallStatusEvent.self, from: eventJSON))
}
benchmark("timestamp format (RFC 3339, milliseconds)") {
    blackHole(WireCoding.formatTimestamp(now))
}
benchmark("validation: dial target, caller id, dial plan, two variables, metadata") {
    blackHole(try DialTarget("+12125550101"))
    blackHole(try CallerID(name: "Sales", number: "+12125550199"))
    blackHole(try DialplanTarget(context: "agents", extension: "s", priority: 1))
    blackHole(try ChannelVariables(["CAMPAIGN": "spring", "LANG": "en"]))
    blackHole(try ClientMetadata(["crm_id": .string("A-1234"), "attempt": .number(2)]))
}
benchmark("state machine: all 81 status pairs checked") {
    for from in CallStatus.allCases {
        for to in CallStatus.allCases { blackHole(from.canTransition(to: to)) }
    }
}

Benchmark.main()

/// Keeps a result alive so that the optimizer cannot drop the work that produced it.
@_optimize(none)
func blackHole<Value>(_ value: Value) {}
