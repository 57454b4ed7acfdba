import Foundation
import NIOCore

/// A streaming `multipart/form-data` parser (RFC 7578 over RFC 2046 §5.1): bytes go in as they arrive, parts come out
/// as their headers, their body in pieces, and their end, so an upload of any size is never held whole.
///
/// Written here rather than taken from multipart-kit because the one version available (4.7.1) traps on hostile
/// input: a byte above 0x7F in a part's header name indexes past its 128-entry character table, and an empty
/// `boundary=` fails its precondition. Either stops the whole gateway with one request (found by `make fuzz-quick`).
/// Everything malformed here is a thrown ``MultipartFormError``, never a trap.
struct MultipartFormParser {
    /// What the parser found, in order.
    enum Event {
        /// A part starts, with its header fields (names as sent, values decoded as UTF-8).
        case partBegan([(name: String, value: String)])
        /// A piece of the current part's body.
        case body(ByteBuffer)
        /// The current part's body is complete.
        case partEnded
    }

    private enum State {
        /// Before the first delimiter: the preamble, ignored.
        case preamble
        /// Just past a delimiter: `--` closes the body, else optional padding and CRLF open a part.
        case afterDelimiter
        /// Reading a part's header block, up to the empty line.
        case headers
        /// Reading a part's body, up to the next delimiter.
        case body
        /// Past the close delimiter: the epilogue, ignored.
        case epilogue
    }

    /// The longest header block one part may have; a client sending more is not sending a form.
    static let headerBlockLimit = 16 * 1024

    /// `CRLF--boundary`: every delimiter, the first one included (the body is read as if a CRLF came before it).
    private let delimiter: [UInt8]
    private var state = State.preamble
    private var pending: ByteBuffer
    /// How much of a header block read so far is known to hold no end of block, so that a block sent a byte at a
    /// time is searched once, not once per byte.
    private var headerBytesSearched = 0

    /// A parser for the given `boundary` parameter; it must be 1 to 70 characters (RFC 2046 §5.1.1).
    init(boundary: String) throws(MultipartFormError) {
        let bytes = Array(boundary.utf8)
        guard (1...70).contains(bytes.count), bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else {
            throw MultipartFormError("the boundary must be 1 to 70 printable ASCII characters")
        }
        delimiter = Array("\r\n--".utf8) + bytes
        pending = ByteBuffer(bytes: [0x0D, 0x0A])
    }

    /// Whether the close delimiter was read: a body that ends before it was cut short.
    var isComplete: Bool {
        if case .epilogue = state { return true }
        return false
    }

    /// Parses the next bytes of the body, handing each event found to `handle`.
    mutating func parse(_ chunk: ByteBuffer, _ handle: (Event) throws -> Void) throws {
        var chunk = chunk
        if case .epilogue = state { return }
        pending.writeBuffer(&chunk)
        while try step(handle) {}
        // What is kept between chunks stays small: a partial delimiter, a partial header block.
        pending.discardReadBytes()
    }

    /// Advances through `pending` as far as one state allows; false when more bytes are needed.
    private mutating func step(_ handle: (Event) throws -> Void) throws -> Bool {
        switch state {
        case .preamble:
            if let index = firstDelimiter() {
                pending.moveReaderIndex(to: index + delimiter.count)
                state = .afterDelimiter
                return true
            }
            // Keep only what may be the start of a delimiter.
            pending.moveReaderIndex(forwardBy: max(0, pending.readableBytes - (delimiter.count - 1)))
            return false

        case .afterDelimiter:
            let view = pending.readableBytesView
            guard view.count >= 2 else { return false }
            if view.starts(with: [0x2D, 0x2D]) {
                state = .epilogue
                pending.clear()
                return false
            }
            // Transport padding (spaces, tabs) may come before the CRLF.
            guard let end = view.firstIndex(where: { $0 != 0x20 && $0 != 0x09 }) else {
                guard view.count <= 256 else { throw MultipartFormError("a delimiter line is too long") }
                return false
            }
            guard view.count > end - view.startIndex + 1 else { return false }
            guard view[end] == 0x0D, view[end + 1] == 0x0A else {
                throw MultipartFormError("a boundary delimiter is not followed by a line end")
            }
            pending.moveReaderIndex(to: end + 2)
            state = .headers
            return true

        case .headers:
            let view = pending.readableBytesView
            if view.starts(with: [0x0D, 0x0A]) {
                // No header fields at all: the empty line comes at once.
                pending.moveReaderIndex(forwardBy: 2)
                try handle(.partBegan([]))
                state = .body
                return true
            }
            let searchFrom = max(0, headerBytesSearched - 3)
            let end = Self.firstIndex(of: [0x0D, 0x0A, 0x0D, 0x0A], in: pending, from: searchFrom)
            guard (end.map { $0 - pending.readerIndex } ?? view.count) <= Self.headerBlockLimit else {
                throw MultipartFormError("a part's headers exceed \(Self.headerBlockLimit) bytes")
            }
            guard let end else {
                headerBytesSearched = view.count
                return false
            }
            let fields = try Self.headerFields(
                pending.getSlice(at: pending.readerIndex, length: end - pending.readerIndex)!)
            pending.moveReaderIndex(to: end + 4)
            headerBytesSearched = 0
            try handle(.partBegan(fields))
            state = .body
            return true

        case .body:
            if let index = firstDelimiter() {
                if index > pending.readerIndex {
                    try handle(.body(pending.getSlice(at: pending.readerIndex, length: index - pending.readerIndex)!))
                }
                pending.moveReaderIndex(to: index + delimiter.count)
                try handle(.partEnded)
                state = .afterDelimiter
                return true
            }
            // Everything but a possible partial delimiter at the end is body.
            let safe = pending.readableBytes - (delimiter.count - 1)
            if safe > 0 {
                try handle(.body(pending.readSlice(length: safe)!))
            }
            return false

        case .epilogue:
            pending.clear()
            return false
        }
    }

    /// Where the next delimiter starts in `pending`, as a buffer index.
    private func firstDelimiter() -> Int? {
        Self.firstIndex(of: delimiter, in: pending)
    }

    /// The buffer index where `needle` first occurs in `buffer`'s readable bytes, searching from the `from`th byte.
    private static func firstIndex(of needle: [UInt8], in buffer: ByteBuffer, from: Int = 0) -> Int? {
        buffer.withUnsafeReadableBytes { haystack -> Int? in
            guard haystack.count >= needle.count, let first = needle.first, let base = haystack.baseAddress else {
                return nil
            }
            return needle.withUnsafeBytes { needleBytes -> Int? in
                var start = from
                let last = haystack.count - needle.count
                while start <= last {
                    // The first byte (CR) is rare in most bodies: memchr finds it, memcmp checks the rest.
                    guard let found = memchr(base + start, Int32(first), last - start + 1) else { return nil }
                    let candidate = base.distance(to: UnsafeRawPointer(found))
                    if memcmp(found, needleBytes.baseAddress!, needle.count) == 0 {
                        return buffer.readerIndex + candidate
                    }
                    start = candidate + 1
                }
                return nil
            }
        }
    }

    /// The fields of a header block (CRLF-separated `name: value` lines, without the final empty line).
    private static func headerFields(_ block: ByteBuffer) throws -> [(name: String, value: String)] {
        var fields: [(name: String, value: String)] = []
        let bytes = Array(block.readableBytesView)
        var lineStart = 0
        while lineStart < bytes.count {
            let lineEnd = Self.lineEnd(in: bytes, from: lineStart)
            let line = bytes[lineStart..<lineEnd]
            guard let colon = line.firstIndex(of: 0x3A), colon > line.startIndex else {
                throw MultipartFormError("a part header line is not a \"name: value\" field")
            }
            let name = line[line.startIndex..<colon]
            guard name.allSatisfy(isTokenCharacter) else {
                throw MultipartFormError("a part header name has a character RFC 9110 does not allow")
            }
            var value = line[(colon + 1)...].drop(while: { $0 == 0x20 || $0 == 0x09 })
            while let last = value.last, last == 0x20 || last == 0x09 { value = value.dropLast() }
            guard !value.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0x00 }) else {
                throw MultipartFormError("a part header value has a control character")
            }
            fields.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
            lineStart = lineEnd + 2
        }
        return fields
    }

    /// Where the line starting at `start` ends (its CRLF, or the end of the block).
    private static func lineEnd(in bytes: [UInt8], from start: Int) -> Int {
        var index = start
        while index + 1 < bytes.count {
            if bytes[index] == 0x0D, bytes[index + 1] == 0x0A { return index }
            index += 1
        }
        return bytes.count
    }

    /// `tchar` of RFC 9110 §5.6.2: the characters a field name is made of.
    private static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "a")...UInt8(ascii: "z"):
            true
        default:
            Array("!#$%&'*+-.^_`|~".utf8).contains(byte)
        }
    }
}

/// A `multipart/form-data` body that cannot be read, and why.
struct MultipartFormError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) { self.description = description }
}
