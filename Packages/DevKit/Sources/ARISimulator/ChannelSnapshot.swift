/// One Asterisk channel as the simulator keeps it: the originated channel, or the `;2` half of a Local pair.
struct ChannelLeg: Sendable {
    var id: String
    var name: String
    var state: String
    var callerName = ""
    var callerNumber = ""
    var connectedName = ""
    var connectedNumber = ""
    var context: String
    var exten: String
    var priority: Int
    var appName: String
    var appData: String
    var creationTime: String
    /// Variables set with `report_events`: shown as `channelvars` in snapshots.
    var reportedVariables: [(name: String, value: String)] = []

    /// Moves the leg in the dialplan, as a `ChannelDialplan` event reports it.
    mutating func locate(priority: Int, app: String, data: String) {
        self.priority = priority
        self.appName = app
        self.appData = data
    }

    /// The `Channel` JSON object, keys in Asterisk's order.
    func json() -> String {
        var output = "{"
        output.reserveCapacity(440)
        JSONText.appendField("id", self.id, to: &output)
        output.append(",")
        JSONText.appendField("name", self.name, to: &output)
        output.append(",")
        JSONText.appendField("state", self.state, to: &output)
        output.append(",\"protocol_id\":\"\",\"caller\":{")
        JSONText.appendField("name", self.callerName, to: &output)
        output.append(",")
        JSONText.appendField("number", self.callerNumber, to: &output)
        output.append("},\"connected\":{")
        JSONText.appendField("name", self.connectedName, to: &output)
        output.append(",")
        JSONText.appendField("number", self.connectedNumber, to: &output)
        output.append("},\"accountcode\":\"\",\"dialplan\":{")
        JSONText.appendField("context", self.context, to: &output)
        output.append(",")
        JSONText.appendField("exten", self.exten, to: &output)
        output.append(",\"priority\":")
        output.append(String(self.priority))
        output.append(",")
        JSONText.appendField("app_name", self.appName, to: &output)
        output.append(",")
        JSONText.appendField("app_data", self.appData, to: &output)
        output.append("},")
        JSONText.appendField("creationtime", self.creationTime, to: &output)
        output.append(",\"language\":\"en\"")
        if !self.reportedVariables.isEmpty {
            output.append(",\"channelvars\":{")
            for (index, variable) in self.reportedVariables.enumerated() {
                if index > 0 { output.append(",") }
                JSONText.appendField(variable.name, variable.value, to: &output)
            }
            output.append("}")
        }
        output.append("}")
        return output
    }
}

/// Event JSON text without its final `"application"` member (added per receiving application).
///
/// Key order follows what Asterisk 22 sent in the captures, although JSON readers must not depend on it.
enum EventText {
    static func channelEvent(_ type: String, _ channel: ChannelLeg, asteriskID: String) -> String {
        var output = "{\"type\":\"\(type)\",\"timestamp\":\"\(AsteriskClock.now())\",\"channel\":"
        output.append(channel.json())
        appendTail(&output, asteriskID)
        return output
    }

    static func callerID(_ channel: ChannelLeg, asteriskID: String) -> String {
        var output = "{\"type\":\"ChannelCallerId\",\"timestamp\":\"\(AsteriskClock.now())\","
        output.append("\"caller_presentation\":0,\"caller_presentation_txt\":\"Presentation Allowed, Not Screened\",")
        output.append("\"channel\":")
        output.append(channel.json())
        appendTail(&output, asteriskID)
        return output
    }

    static func dial(status: String, dialstring: String, peer: ChannelLeg, asteriskID: String) -> String {
        var output = "{\"type\":\"Dial\",\"timestamp\":\"\(AsteriskClock.now())\","
        JSONText.appendField("dialstatus", status, to: &output)
        output.append(",\"forward\":\"\",")
        JSONText.appendField("dialstring", dialstring, to: &output)
        output.append(",\"peer\":")
        output.append(peer.json())
        appendTail(&output, asteriskID)
        return output
    }

    static func dialplan(_ channel: ChannelLeg, asteriskID: String) -> String {
        var output = "{\"type\":\"ChannelDialplan\",\"timestamp\":\"\(AsteriskClock.now())\","
        JSONText.appendField("dialplan_app", channel.appName, to: &output)
        output.append(",")
        JSONText.appendField("dialplan_app_data", channel.appData, to: &output)
        output.append(",\"channel\":")
        output.append(channel.json())
        appendTail(&output, asteriskID)
        return output
    }

    static func varset(_ variable: String, _ value: String, _ channel: ChannelLeg, asteriskID: String) -> String {
        var output = "{"
        JSONText.appendField("variable", variable, to: &output)
        output.append(",")
        JSONText.appendField("value", value, to: &output)
        output.append(",\"type\":\"ChannelVarset\",\"timestamp\":\"\(AsteriskClock.now())\",\"channel\":")
        output.append(channel.json())
        appendTail(&output, asteriskID)
        return output
    }

    static func stasisStart(args: [String], _ channel: ChannelLeg, asteriskID: String) -> String {
        var output = "{\"type\":\"StasisStart\",\"timestamp\":\"\(AsteriskClock.now())\",\"args\":["
        for (index, argument) in args.enumerated() {
            if index > 0 { output.append(",") }
            JSONText.appendString(argument, to: &output)
        }
        output.append("],\"channel\":")
        output.append(channel.json())
        appendTail(&output, asteriskID)
        return output
    }

    static func hangupRequest(cause: Int, soft: Bool, _ channel: ChannelLeg, asteriskID: String) -> String {
        var output = "{\"cause\":\(cause),"
        if soft { output.append("\"soft\":true,") }
        output.append("\"type\":\"ChannelHangupRequest\",\"timestamp\":\"\(AsteriskClock.now())\",\"channel\":")
        output.append(channel.json())
        appendTail(&output, asteriskID)
        return output
    }

    static func destroyed(cause: Int, _ channel: ChannelLeg, asteriskID: String) -> String {
        var output = "{\"type\":\"ChannelDestroyed\",\"timestamp\":\"\(AsteriskClock.now())\",\"cause\":\(cause),"
        JSONText.appendField("cause_txt", HangupCause.text(cause), to: &output)
        output.append(",\"channel\":")
        output.append(channel.json())
        appendTail(&output, asteriskID)
        return output
    }

    /// `ApplicationReplaced` is complete text: its key order differs (`application` before `asterisk_id`).
    static func applicationReplaced(application: String, asteriskID: String) -> String {
        var output = "{\"type\":\"ApplicationReplaced\",\"timestamp\":\"\(AsteriskClock.now())\","
        JSONText.appendField("application", application, to: &output)
        output.append(",")
        JSONText.appendField("asterisk_id", asteriskID, to: &output)
        output.append("}")
        return output
    }

    /// Completes a prefix for one application.
    static func finish(_ prefix: String, application: String) -> String {
        var output = prefix
        output.append(",")
        JSONText.appendField("application", application, to: &output)
        output.append("}")
        return output
    }

    private static func appendTail(_ output: inout String, _ asteriskID: String) {
        output.append(",")
        JSONText.appendField("asterisk_id", asteriskID, to: &output)
    }
}
