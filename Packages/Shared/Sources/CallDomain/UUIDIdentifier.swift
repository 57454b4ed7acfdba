import Foundation

/// An identifier that is a UUID, written on the wire, in ARI and in URLs in its lower-case canonical form.
public protocol UUIDIdentifier: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The underlying UUID.
    var uuid: UUID { get }
    /// Wraps a UUID read back from storage or the wire.
    init(uuid: UUID)
}

extension UUIDIdentifier {
    /// Parses the canonical textual form; `nil` for anything that is not a UUID.
    public init?(_ string: String) {
        guard string.utf8.count == 36, let uuid = UUID(uuidString: string) else { return nil }
        self.init(uuid: uuid)
    }

    /// Lower-case canonical form.
    public var description: String { uuid.uuidString.lowercased() }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let string = try container.decode(String.self)
        guard let id = Self(string) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a UUID: \(string)")
        }
        self = id
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
