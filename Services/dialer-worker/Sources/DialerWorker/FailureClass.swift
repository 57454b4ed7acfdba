import CallDomain
import CallMessaging
import PostgresNIO

/// Whether retrying an operation can help: the one rule every retry loop of the worker follows.
///
/// Transient: the peer is away or slow (connection refused or closed, a timeout, PostgreSQL shutting down or out of
/// resources): retry with back-off while the outage lasts. Permanent: the data itself is refused (a message that does
/// not decode or validate, a PostgreSQL data exception or constraint violation): retrying would stall the partition
/// forever, so the message goes to the dead-letter topic instead.
enum FailureClass: Sendable, Equatable {
    case transient
    case permanent(DeadLetterReason)

    /// Classifies an error of decoding a message or of storing it.
    static func of(_ error: any Error) -> FailureClass {
        switch error {
        case is DecodingError, is WireError:
            return .permanent(.undecodable)
        case let error as PostgresTransactionError:
            // The transaction failed because of what ran in it (or its BEGIN/COMMIT): classify that.
            if let inner = error.closureError ?? error.beginError ?? error.commitError { return of(inner) }
            return .transient
        case let error as PSQLError:
            // SQLSTATE classes: 22 data exception (a value out of range), 23 integrity constraint violation.
            guard let state = error.serverInfo?[.sqlState] else { return .transient }
            return state.hasPrefix("22") || state.hasPrefix("23") ? .permanent(.rejectedByStore) : .transient
        default:
            return .transient
        }
    }
}
