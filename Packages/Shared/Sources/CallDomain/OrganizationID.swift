import Foundation

/// The organization (a team, or a client account of a BPO) a call, user or API key belongs to.
///
/// Commands and status events carry it so that every consumer can scope what it stores and shows without a lookup;
/// a message without one comes from a producer older than organizations and belongs to ``default``.
public struct OrganizationID: UUIDIdentifier {
    /// The underlying UUID.
    public let uuid: UUID

    /// Wraps a UUID read back from storage or the wire.
    public init(uuid: UUID) {
        self.uuid = uuid
    }

    /// The organization that data from before organizations migrated into (fixed by migration 0003).
    public static let `default` = OrganizationID(uuid: UUID(uuidString: "00000000-0000-4000-8000-000000000001")!)

    /// A new random id.
    public static func generate() -> OrganizationID { OrganizationID(uuid: .systemRandom()) }
}
