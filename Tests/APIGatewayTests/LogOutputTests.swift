import CallDomain
import Foundation
import Testing

@testable import ServiceSupport

/// Log lines are written in batches by a thread of their own: none is lost or reordered, and a warning is out before
/// `write` returns.
@Suite struct LogOutputTests {
    /// Reads what is in the pipe now, without waiting.
    static func readAvailable(_ descriptor: Int32) -> String {
        var collected = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress!, $0.count) }
            guard count > 0 else { break }
            collected.append(contentsOf: buffer[0..<count])
        }
        return String(decoding: collected, as: UTF8.self)
    }

    @Test("lines from eight writers at once arrive once each, in each writer's order; an urgent line is out at once")
    func linesArriveInOrderAndUrgentOnesAtOnce() async throws {
        var descriptors: [Int32] = [0, 0]
        try #require(pipe(&descriptors) == 0)
        defer {
            close(descriptors[0])
            close(descriptors[1])
        }
        // A pipe holds 64 KiB: a thread of its own (not a task: the writers may block the pool) drains it meanwhile.
        let output = LogOutput(fileDescriptor: descriptors[1])
        let reader = descriptors[0]
        let drained: Task<String, Never> = Task {
            await withCheckedContinuation { continuation in
                Thread {
                    var text = [UInt8]()
                    var buffer = [UInt8](repeating: 0, count: 65_536)
                    while !text.suffix(5).elementsEqual("done\n".utf8) {
                        let count = buffer.withUnsafeMutableBytes { read(reader, $0.baseAddress!, $0.count) }
                        guard count > 0 else { break }
                        text.append(contentsOf: buffer[0..<count])
                    }
                    continuation.resume(returning: String(decoding: text, as: UTF8.self))
                }.start()
            }
        }
        await withTaskGroup(of: Void.self) { group in
            for writer in 0..<8 {
                group.addTask {
                    for line in 0..<2_000 { output.write("w\(writer) l\(line)", urgent: line % 500 == 0) }
                }
            }
        }
        output.write("done", urgent: true)
        let lines = await drained.value.split(separator: "\n")
        #expect(lines.count == 8 * 2_000 + 1)
        for writer in 0..<8 {
            let own = lines.filter { $0.hasPrefix("w\(writer) ") }
            #expect(own == (0..<2_000).map { "w\(writer) l\($0)"[...] })
        }

        // Nothing pending now: an urgent line is readable the moment `write` returns.
        _ = fcntl(reader, F_SETFL, fcntl(reader, F_GETFL) | O_NONBLOCK)
        output.write("an error", urgent: true)
        #expect(Self.readAvailable(reader) == "an error\n")
    }

    @Test("after an urgent first line, a plain line is written by the writer thread within moments")
    func plainLinesLeaveAfterAnUrgentFirstLine() async throws {
        var descriptors: [Int32] = [0, 0]
        try #require(pipe(&descriptors) == 0)
        defer {
            close(descriptors[0])
            close(descriptors[1])
        }
        _ = fcntl(descriptors[0], F_SETFL, fcntl(descriptors[0], F_GETFL) | O_NONBLOCK)
        let output = LogOutput(fileDescriptor: descriptors[1])
        output.write("a warning", urgent: true)
        output.write("then information", urgent: false)
        var text = ""
        let deadline = ContinuousClock.now + .seconds(5)
        while !text.hasSuffix("then information\n"), ContinuousClock.now < deadline {
            text += Self.readAvailable(descriptors[0])
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(text == "a warning\nthen information\n")
    }

    @Test("a log line's timestamp (the wire's) is the format style's date and time, with the exact milliseconds")
    func timestampsAreTheFormatStyles() {
        let style = Date.ISO8601FormatStyle(timeZone: .gmt).year().month().day()
            .time(includingFractionalSeconds: false).timeZone(separator: .omitted)
        var random = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            // The style truncates the binary fraction (….929 can come out ….928); the line shows the milliseconds.
            let milliseconds = Int64.random(in: 0...4_102_444_800_000, using: &random)
            let seconds = milliseconds / 1000
            let fraction = String(milliseconds % 1000)
            let expected =
                Date(timeIntervalSince1970: Double(seconds) + 0.5).formatted(style).dropLast()
                + "." + String(repeating: "0", count: 3 - fraction.count) + fraction + "Z"
            let date = Date(timeIntervalSince1970: Double(milliseconds) / 1000)
            #expect(WireCoding.formatTimestamp(date) == expected, "\(milliseconds)")
        }
    }
}
