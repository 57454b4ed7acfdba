import Foundation
import TestSupport

/// A plain TCP connection to a loopback port, for what an HTTP client library will not send: bytes one at a time,
/// malformed heads, and streams whose answers are never read.
final class RawConnection: @unchecked Sendable {
    // @unchecked: the descriptor is used by one task at a time (the test that opened it).
    private let descriptor: Int32
    private var closed = false

    /// Connects; `receiveBuffer` shrinks the socket's receive buffer (before connecting, so the window is small) for
    /// clients that must fall behind quickly.
    init(port: Int, receiveBuffer: Int32? = nil) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestEnvironmentError("socket() failed: \(errno)") }
        if var size = receiveBuffer {
            setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            let error = errno
            Glibc.close(descriptor)
            throw TestEnvironmentError("connect() failed: \(error)")
        }
    }

    deinit {
        if !closed { Glibc.close(descriptor) }
    }

    /// Closes the connection.
    func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(descriptor)
    }

    /// Sends bytes; `false` once the peer has closed the connection (no SIGPIPE).
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes {
                Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if sent < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += sent
        }
        return true
    }

    /// Sends text.
    @discardableResult
    func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    /// Whether the peer closed the connection (end of stream or reset); reads and discards what is pending.
    func peerClosed() -> Bool {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = buffer.withUnsafeMutableBytes {
                recv(descriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT))
            }
            if count == 0 { return true }
            if count < 0 { return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR }
        }
    }

    /// Reads until the peer closes the connection or `timeout` passes; returns what arrived.
    func readUntilClosed(timeout: Duration) async -> [UInt8] {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let count = buffer.withUnsafeMutableBytes {
                recv(descriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT))
            }
            if count > 0 {
                received += buffer[..<count]
                continue
            }
            if count == 0 { return received }
            if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR { return received }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return received
    }

    /// Reads until `marker` arrives or `timeout` passes; returns what arrived.
    func read(until marker: String, timeout: Duration) async -> String {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let count = buffer.withUnsafeMutableBytes {
                recv(descriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT))
            }
            if count > 0 {
                received += buffer[..<count]
                if String(decoding: received, as: UTF8.self).contains(marker) { break }
                continue
            }
            if count == 0 { break }
            if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR { break }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return String(decoding: received, as: UTF8.self)
    }
}
