import Foundation

/// Whether webhooks may reach private networks and plain `http`.
///
/// By default (``production``) only `https` URLs are accepted and an attempt never connects to a loopback,
/// private, link-local, shared, multicast or cloud-metadata address, whatever the host name resolves to.
/// ``allowPrivate`` (the `WEBHOOK_ALLOW_PRIVATE_TARGETS` setting) is for development: a receiver on this machine.
public struct WebhookTargetPolicy: Sendable, Hashable {
    /// Whether private addresses and `http` are allowed.
    public var allowsPrivateTargets: Bool

    /// Creates a policy.
    public init(allowsPrivateTargets: Bool) {
        self.allowsPrivateTargets = allowsPrivateTargets
    }

    /// Public `https` targets only.
    public static let production = WebhookTargetPolicy(allowsPrivateTargets: false)
    /// Anything reachable, `http` included (development only).
    public static let allowPrivate = WebhookTargetPolicy(allowsPrivateTargets: true)

    /// Whether an attempt may connect to `address`.
    public func permits(_ address: IPAddress) -> Bool {
        allowsPrivateTargets || address.isPublic
    }
}

/// A webhook URL, checked: `http(s)`, a host, no credentials, no fragment, at most 2,048 characters.
public struct WebhookURL: Sendable, Hashable, CustomStringConvertible {
    /// The URL as given.
    public let text: String
    /// `https` or `http`.
    public let isSecure: Bool
    /// The host name or address literal (without IPv6 brackets).
    public let host: String
    /// The port (443 or 80 unless given).
    public let port: Int
    /// The path and query sent in the request line (`/` when empty).
    public let target: String

    /// The longest URL accepted.
    public static let maximumLength = 2048

    /// Why a URL is refused.
    public enum Problem: Error, Equatable, Sendable, CustomStringConvertible {
        /// Not an absolute http(s) URL with a host, or too long, or with credentials or a fragment.
        case malformed(String)
        /// `http` while the policy requires `https`.
        case notHTTPS
        /// The host is an address the policy forbids (a private, loopback, link-local or metadata address).
        case forbiddenAddress(String)

        public var description: String {
            switch self {
            case .malformed(let why): why
            case .notHTTPS: "must use https (plain http is allowed only with WEBHOOK_ALLOW_PRIVATE_TARGETS)"
            case .forbiddenAddress(let address):
                "must not point at \(address): loopback, private, link-local and metadata addresses are refused"
            }
        }
    }

    /// Checks `text` against `policy`. A host name is not resolved here (its addresses are checked at every
    /// attempt, on the address connected to); an address literal is checked now.
    public init(_ text: String, policy: WebhookTargetPolicy) throws(Problem) {
        guard text.utf8.count <= Self.maximumLength else {
            throw .malformed("must be at most \(Self.maximumLength) characters")
        }
        guard !text.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7F }),
            let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let host = components.host, !host.isEmpty
        else {
            throw .malformed("must be an absolute http or https URL with a host")
        }
        guard components.user == nil, components.password == nil else {
            throw .malformed("must not carry credentials (put a secret in the path or rely on the signature)")
        }
        guard components.fragment == nil else { throw .malformed("must not have a fragment") }
        if scheme == "http", !policy.allowsPrivateTargets { throw .notHTTPS }
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if let address = IPAddress(bare), !policy.permits(address) {
            throw .forbiddenAddress(bare)
        }
        if !policy.allowsPrivateTargets, Self.isLocalName(bare) {
            throw .forbiddenAddress(bare)
        }
        let port = components.port ?? (scheme == "https" ? 443 : 80)
        guard (1...65535).contains(port) else { throw .malformed("must have a port in 1...65535") }
        self.text = text
        self.isSecure = scheme == "https"
        self.host = bare
        self.port = port
        let path = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
        self.target = components.percentEncodedQuery.map { "\(path)?\($0)" } ?? path
    }

    /// Names that only ever mean this machine or its network (refused early; the address check would refuse them
    /// at the attempt anyway).
    private static func isLocalName(_ host: String) -> Bool {
        let name = host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "."))
        return name == "localhost" || name.hasSuffix(".localhost") || name.hasSuffix(".local")
            || name.hasSuffix(".internal") || name == "metadata" || name == "metadata.google.internal"
    }

    public var description: String { text }
}

/// An IPv4 or IPv6 address, classified for the SSRF defence.
public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    /// 4 or 16 bytes, network order.
    public let bytes: [UInt8]

    /// From 4 (IPv4) or 16 (IPv6) bytes.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// Parses a textual address (`192.0.2.1`, `2001:db8::1`); `nil` for a host name.
    public init?(_ text: String) {
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            bytes = withUnsafeBytes(of: v4) { Array($0) }
        } else if inet_pton(AF_INET6, text, &v6) == 1 {
            bytes = withUnsafeBytes(of: v6) { Array($0) }
        } else {
            return nil
        }
    }

    /// The IPv4 address an IPv6 address carries (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64
    /// `64:ff9b::a.b.c.d`), which is where a packet to it really goes.
    var embeddedIPv4: IPAddress? {
        guard bytes.count == 16 else { return nil }
        let head = Array(bytes[0..<12])
        let mapped: [UInt8] = Array(repeating: 0, count: 10) + [0xFF, 0xFF]
        let compatible: [UInt8] = Array(repeating: 0, count: 12)
        let nat64: [UInt8] = [0x00, 0x64, 0xFF, 0x9B] + Array(repeating: 0, count: 8)
        guard head == mapped || head == nat64 || (head == compatible && bytes[12...].contains(where: { $0 != 0 }))
        else { return nil }
        return IPAddress(bytes: Array(bytes[12..<16]))
    }

    /// Whether the address is globally routable: not loopback, unspecified, private (RFC 1918, unique local),
    /// shared (RFC 6598), link-local (cloud metadata lives there), multicast, broadcast, documentation,
    /// benchmarking or reserved, nor any of these carried inside an IPv6 address.
    public var isPublic: Bool {
        if let embedded = embeddedIPv4 { return embedded.isPublic }
        if bytes.count == 4 {
            let (a, b) = (bytes[0], bytes[1])
            switch a {
            case 0, 10, 127: return false  // this network, private, loopback
            case 100 where (64...127).contains(b): return false  // shared address space (carrier NAT)
            case 169 where b == 254: return false  // link-local, cloud metadata (169.254.169.254)
            case 172 where (16...31).contains(b): return false
            case 192 where b == 168: return false
            case 192 where b == 0 && (bytes[2] == 0 || bytes[2] == 2): return false  // IETF protocol, TEST-NET-1
            case 198 where b == 18 || b == 19: return false  // benchmarking
            case 198 where b == 51 && bytes[2] == 100: return false  // TEST-NET-2
            case 203 where b == 0 && bytes[2] == 113: return false  // TEST-NET-3
            case 224...255: return false  // multicast, reserved, broadcast
            default: return true
            }
        }
        if bytes.allSatisfy({ $0 == 0 }) { return false }  // ::
        if bytes[0..<15].allSatisfy({ $0 == 0 }) && bytes[15] == 1 { return false }  // ::1
        if bytes[0] & 0xFE == 0xFC { return false }  // fc00::/7 unique local (fd00:ec2::254, metadata)
        if bytes[0] == 0xFE && bytes[1] & 0xC0 == 0x80 { return false }  // fe80::/10 link-local
        if bytes[0] == 0xFE && bytes[1] & 0xC0 == 0xC0 { return false }  // fec0::/10 site-local (deprecated)
        if bytes[0] == 0xFF { return false }  // multicast
        if bytes[0] == 0x20 && bytes[1] == 0x01 && bytes[2] == 0x0D && bytes[3] == 0xB8 { return false }  // docs
        if bytes[0] == 0x20 && bytes[1] == 0x02 {  // 6to4 carries an IPv4 address in bytes 2...5
            return IPAddress(bytes: Array(bytes[2..<6]))?.isPublic ?? false
        }
        return true
    }

    public var description: String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        var storage = in6_addr()
        withUnsafeMutableBytes(of: &storage) { $0.copyBytes(from: bytes) }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(AF_INET6, &storage, &buffer, socklen_t(buffer.count)) != nil else { return "?" }
        return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
