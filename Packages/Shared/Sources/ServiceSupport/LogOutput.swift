import Foundation
import Synchronization

/// Standard error for log lines, written in batches by a thread of its own.
///
/// A line per request was a `write(2)` per request, under a lock every thread shared, on the request's own thread.
/// Lines now go into a buffer and a writer thread writes what gathered, at most a few milliseconds later, in one
/// call. Warnings and errors are written before `write` returns, with everything before them, so the lines that
/// explain a crash are out before it; so is everything on `flush()`, which runs at exit.
public final class LogOutput: Sendable {
    /// Standard error (file descriptor 2).
    public static let standardError = LogOutput(fileDescriptor: STDERR_FILENO)

    /// How long the writer waits for more lines before writing what it has, in seconds.
    static let gatherInterval = 0.002
    /// Above this many pending bytes a caller writes them itself rather than let the buffer grow.
    static let highWater = 1 << 20

    private let fileDescriptor: Int32
    /// Lines not written yet.
    private let pending = Mutex<[UInt8]>([])
    /// Wakes the writer when the buffer goes from empty to not empty.
    private let wakeUp = NSCondition()
    /// Held while bytes are being written, so that lines leave in the order they were appended.
    private let writing = Mutex(())

    /// Lines written to `fileDescriptor` (standard error, or a pipe in the tests).
    init(fileDescriptor: Int32) {
        self.fileDescriptor = fileDescriptor
        startWriterThread()
    }

    /// Appends one line (a newline is added); `urgent` writes it, and everything before it, before returning.
    public func write(_ line: String, urgent: Bool) {
        let (wasEmpty, overflow) = pending.withLock { pending in
            let wasEmpty = pending.isEmpty
            pending.append(contentsOf: line.utf8)
            pending.append(UInt8(ascii: "\n"))
            return (wasEmpty, pending.count > Self.highWater)
        }
        if urgent || overflow {
            flush()
            return
        }
        if wasEmpty {
            wakeUp.lock()
            wakeUp.signal()
            wakeUp.unlock()
        }
    }

    /// Writes every pending line now.
    public func flush() {
        writing.withLock { _ in
            let bytes = pending.withLock { pending in
                defer { pending.removeAll(keepingCapacity: true) }
                return pending
            }
            writeAll(bytes)
        }
    }

    private func startWriterThread() {
        let thread = Thread { [self] in
            while true {
                wakeUp.lock()
                while pending.withLock({ $0.isEmpty }) { wakeUp.wait() }
                wakeUp.unlock()
                // Let the lines of concurrent requests gather: one write for all of them.
                Thread.sleep(forTimeInterval: Self.gatherInterval)
                flush()
            }
        }
        thread.name = "log-writer"
        thread.start()
        if fileDescriptor == STDERR_FILENO {
            atexit { LogOutput.standardError.flush() }
        }
    }

    private func writeAll(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Foundation.write(fileDescriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written > 0 {
                    offset += written
                } else if written < 0, errno == EINTR {
                    continue
                } else if written < 0, errno == EAGAIN {
                    // A non-blocking standard error that is full: wait until it takes more.
                    var descriptor = pollfd(fd: fileDescriptor, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&descriptor, 1, 100)
                } else {
                    return  // Standard error is gone: nothing else can be told.
                }
            }
        }
    }
}
