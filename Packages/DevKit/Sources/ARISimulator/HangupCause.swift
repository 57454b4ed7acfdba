/// Q.850 hangup causes as Asterisk names them (`ast_cause2str`, main/channel.c in Asterisk 22).
enum HangupCause {
    /// `cause_txt` of a `ChannelDestroyed` event for `cause`; Asterisk answers "Unknown" for anything not
    /// in its table, including 0.
    static func text(_ cause: Int) -> String {
        Self.table[cause] ?? "Unknown"
    }

    /// The cause of `DELETE /channels/{id}?reason=` (`convert_reason_to_hangup_code` in
    /// res/ari/resource_channels.c); `nil` for a name ARI rejects with 400.
    static func cause(forReason reason: String) -> Int? {
        switch reason {
        case "normal": 16
        case "busy": 17
        case "congestion": 34
        case "no_answer": 19
        case "timeout": 18
        case "rejected": 21
        case "unallocated": 1
        case "normal_unspecified": 31
        case "number_incomplete": 28
        case "codec_mismatch": 58
        case "interworking": 127
        case "failure": 38
        case "answered_elsewhere": 26
        default: nil
        }
    }

    /// The final `Dial.dialstatus` when the callee's side hangs up with `cause` before answering, as the
    /// captures show it for a Local channel whose dialplan runs `Hangup(cause)`: 17 BUSY, 34 CONGESTION,
    /// 20 CHANUNAVAIL, 1 and 21 NOANSWER. Other causes are not captured: they follow Asterisk's
    /// `ast_dial` mapping of the control frame the Local channel passes on (busy-like and congestion-like
    /// causes as such, the rest NOANSWER); treat them as an assumption.
    static func dialStatus(forCalleeHangup cause: Int) -> String {
        switch cause {
        case 17: "BUSY"
        case 34, 38, 41, 42, 44: "CONGESTION"
        case 20: "CHANUNAVAIL"
        default: "NOANSWER"
        }
    }

    private static let table: [Int: String] = [
        1: "Unallocated (unassigned) number",
        2: "No route to specified transmit network",
        3: "No route to destination",
        5: "Misdialed trunk prefix",
        6: "Channel unacceptable",
        7: "Call awarded and being delivered in an established channel",
        8: "Pre-empted",
        14: "Number ported elsewhere",
        16: "Normal Clearing",
        17: "User busy",
        18: "No user responding",
        19: "User alerting, no answer",
        20: "Subscriber absent",
        21: "Call Rejected",
        22: "Number changed",
        23: "Redirected to new destination",
        26: "Answered elsewhere",
        27: "Destination out of order",
        28: "Invalid number format",
        29: "Facility rejected",
        30: "Response to STATus ENQuiry",
        31: "Normal, unspecified",
        34: "Circuit/channel congestion",
        38: "Network out of order",
        41: "Temporary failure",
        42: "Switching equipment congestion",
        43: "Access information discarded",
        44: "Requested channel not available",
        50: "Facility not subscribed",
        52: "Outgoing call barred",
        54: "Incoming call barred",
        57: "Bearer capability not authorized",
        58: "Bearer capability not available",
        65: "Bearer capability not implemented",
        66: "Channel not implemented",
        69: "Facility not implemented",
        81: "Invalid call reference value",
        88: "Incompatible destination",
        95: "Invalid message unspecified",
        96: "Mandatory information element is missing",
        97: "Message type nonexist.",
        98: "Wrong message",
        99: "Info. element nonexist or not implemented",
        100: "Invalid information element contents",
        101: "Message not compatible with call state",
        102: "Recover on timer expiry",
        103: "Mandatory IE length error",
        111: "Protocol error, unspecified",
        127: "Interworking, unspecified",
    ]
}
