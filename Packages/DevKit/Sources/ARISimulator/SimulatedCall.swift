import Foundation
import NIOCore

/// An originated channel and, for a Local endpoint, its `;2` half, with where the call is in its script.
struct SimulatedCall: Sendable {
    enum Phase: Sendable, Equatable {
        /// Created, not ringing (state Down).
        case dialing
        /// Ringing (state Ringing).
        case ringing
        /// Answered and in the Stasis application.
        case stasis
        /// Answered and running the dialplan (after `continue`, or a dialplan-style originate).
        case dialplan
    }

    /// Timed steps of the script.
    enum Step: Sendable {
        /// The callee answers.
        case answer
        /// The callee's busy/congestion/hangup outcome happens.
        case outcome
        /// The originate timeout passes while ringing.
        case timeout
        /// The Local `;2` half starts waiting (Answer() takes 500 ms before the next dialplan step).
        case peerWait
        /// The callee hangs up after the hold time.
        case calleeHangup
        /// `AMD()` decides (the `dialer-amd` context).
        case machineDetectionVerdict
        /// A machine's greeting ended: back to Stasis (`detect_message_end`).
        case machineDetectionReturn
    }

    var primary: ChannelLeg
    var peer: ChannelLeg?
    /// Applications that receive the call's events (the originate's `app`, plus explicit subscriptions).
    var subscribers: Set<String>
    /// Stasis application of an app-style originate.
    var app: String?
    /// `appArgs` of the originate.
    var appArgs: String?
    /// Dialplan target of a dialplan-style originate.
    var dialplanTarget: (context: String, exten: String, priority: Int)?
    var outcome: SimulatedOutcome
    /// Time from answer to the callee's hangup.
    var hold: Duration
    /// Originate ring timeout; `nil` for none (`timeout=-1`).
    var ringTimeout: Duration?
    /// `Dial.dialstring`: the endpoint's resource.
    var dialstring: String
    var phase: Phase = .dialing
    /// Whether the first events have been emitted (they may wait for the HTTP response to be written).
    var started = false
    /// Channel variables of the originate, in request order (the `;2` half inherits them).
    var variables: [(name: String, value: String)] = []
    /// Whether the channel has been in Stasis (then `STASISSTATUS=SUCCESS` is set when it ends).
    var wasInStasis = false
    var answeredAt: ContinuousClock.Instant?
    /// What `AMD()` decides if the call goes through the `dialer-amd` context.
    var verdict: SimulatedVerdict = .human
    /// What the `dialer-amd` context's `AMD()` will set, and when: fixed as the channel enters it.
    var amdDecision: AMDDecision?
    var timer: Scheduled<Void>?
    /// Incremented on every reschedule; a timer that fires with an older generation is stale.
    var generation: UInt64 = 0

    var isLocal: Bool { self.peer != nil }

    /// Ids of the legs, primary first.
    var legIDs: [String] {
        if let peer { return [self.primary.id, peer.id] }
        return [self.primary.id]
    }
}

/// A parsed `Local/<exten>@<context>` or `Tech/<resource>` endpoint.
struct ParsedEndpoint: Sendable {
    var technology: String
    var resource: String
    var isLocal: Bool { self.technology.lowercased() == "local" }

    /// `Local/exten@context[/options]` → (exten, context); Asterisk's default context is `default`.
    var localTarget: (exten: String, context: String) {
        var resource = self.resource
        if let optionSlash = resource.firstIndex(of: "/") { resource = String(resource[..<optionSlash]) }
        guard let at = resource.firstIndex(of: "@") else { return (resource, "default") }
        return (String(resource[..<at]), String(resource[resource.index(after: at)...]))
    }

    /// Device part of a non-Local endpoint, used in the channel name (`PJSIP/<device>-0000001c`): the PJSIP
    /// endpoint after `@`, or the first path element, as chan_pjsip names outbound channels.
    var deviceName: String {
        if let at = self.resource.lastIndex(of: "@"), !self.resource.contains("/") {
            return String(self.resource[self.resource.index(after: at)...])
        }
        if let slash = self.resource.firstIndex(of: "/") { return String(self.resource[..<slash]) }
        return self.resource
    }

    /// Splits `Tech/resource`; `nil` when either part is empty (ARI: "Invalid endpoint specified").
    static func parse(_ endpoint: String) -> ParsedEndpoint? {
        guard let slash = endpoint.firstIndex(of: "/") else { return nil }
        let technology = String(endpoint[..<slash])
        let resource = String(endpoint[endpoint.index(after: slash)...])
        guard !technology.isEmpty, !resource.isEmpty else { return nil }
        return ParsedEndpoint(technology: technology, resource: resource)
    }
}

/// `callerId` as `ast_callerid_parse` reads it: `"Name" <number>`, `Name <number>`, or a bare number/name.
enum CallerIDText {
    static func parse(_ text: String) -> (name: String, number: String) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let open = trimmed.lastIndex(of: "<"), let close = trimmed.lastIndex(of: ">"), open < close {
            var name = trimmed[..<open].trimmingCharacters(in: .whitespaces)
            if name.hasPrefix("\""), name.hasSuffix("\""), name.count >= 2 {
                name = String(name.dropFirst().dropLast())
            }
            let number = String(trimmed[trimmed.index(after: open)..<close])
            return (name, shrink(number))
        }
        let isNumber = !trimmed.isEmpty && trimmed.allSatisfy { $0.isNumber || "+-() .".contains($0) }
        return isNumber ? ("", shrink(trimmed)) : (trimmed, "")
    }

    /// `ast_shrink_phone_number`: drops the separators people write in numbers.
    private static func shrink(_ number: String) -> String {
        let shrinkable = number.allSatisfy { $0.isNumber || "+-() .".contains($0) }
        return shrinkable ? number.filter { !"-() .".contains($0) } : number
    }
}

extension Duration {
    /// Seconds as Asterisk's `Wait()` data would show them: `3`, `0.5`.
    var waitArgument: String {
        let milliseconds = self.milliseconds
        if milliseconds % 1000 == 0 { return String(milliseconds / 1000) }
        var text = String(Double(milliseconds) / 1000)
        while text.hasSuffix("0") { text.removeLast() }
        return text
    }

    var milliseconds: Int64 {
        let (seconds, attoseconds) = self.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    var timeAmount: TimeAmount {
        let (seconds, attoseconds) = self.components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
