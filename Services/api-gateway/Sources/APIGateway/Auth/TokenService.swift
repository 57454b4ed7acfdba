import CallStore
import Foundation
import JWTKit

/// The claims of an access token.
///
/// `sub` is the user id, `role` the role at issue time (informative: the database's current role is what counts),
/// `jti` a unique id for logs, `iss` and `aud` this deployment's issuer and audience.
struct AccessTokenClaims: JWTPayload, Equatable {
    var sub: SubjectClaim
    var role: String
    var iat: IssuedAtClaim
    var exp: ExpirationClaim
    var jti: IDClaim
    var iss: IssuerClaim
    var aud: AudienceClaim

    func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired()
    }
}

/// Why a presented token was refused (never shown in full to the client: all are a 401).
enum TokenRejection: Error, Equatable, CustomStringConvertible {
    case malformed
    case wrongAlgorithm(String)
    case badSignature
    case expired
    case wrongIssuer
    case wrongAudience
    case badSubject

    var description: String {
        switch self {
        case .malformed: "the token is not a well-formed JWT"
        case .wrongAlgorithm(let alg): "the token's algorithm \(alg) is not accepted"
        case .badSignature: "the token's signature does not verify"
        case .expired: "the token has expired"
        case .wrongIssuer: "the token was issued by someone else"
        case .wrongAudience: "the token is meant for another audience"
        case .badSubject: "the token's subject is not a user id"
        }
    }
}

/// Issues and verifies HS256 access tokens.
///
/// The algorithm is pinned: a token whose header says anything but `HS256` (`none`, `RS256`, ...) is refused
/// before its signature is even looked at, so no algorithm-confusion trick applies.
struct TokenService: Sendable {
    let keys: JWTKeyCollection
    let issuer: String
    let audience: String
    let lifetime: Duration
    /// Tokens that passed every check, until their expiry: a client presents one token for many requests.
    let verified = ExpiringCache<String, (userID: UUID, tokenID: String), Date>(capacity: 10_000)

    /// Builds the signer. The key's length was checked by the configuration (jwt-kit asserts on short keys).
    init(secretKey: GatewayConfiguration.SecretKey, issuer: String, audience: String, lifetimeMinutes: Int) async {
        precondition(secretKey.bytes.count >= GatewayConfiguration.minimumSecretKeyBytes)
        keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secretKey.bytes), digestAlgorithm: .sha256)
        self.issuer = issuer
        self.audience = audience
        lifetime = .seconds(lifetimeMinutes * 60)
    }

    /// A new token for `user`; returns it with its lifetime in seconds.
    func issue(for user: User, now: Date = Date()) async throws -> (token: String, expiresIn: Int) {
        let seconds = Int(lifetime.components.seconds)
        let claims = AccessTokenClaims(
            sub: SubjectClaim(value: user.id.uuidString.lowercased()),
            role: user.role.rawValue,
            iat: IssuedAtClaim(value: now),
            exp: ExpirationClaim(value: now.addingTimeInterval(Double(seconds))),
            jti: IDClaim(value: UUID().uuidString.lowercased()),
            iss: IssuerClaim(value: issuer),
            aud: AudienceClaim(value: [audience]))
        var header = JWTHeader()
        header.typ = "JWT"
        return (try await keys.sign(claims, header: header), seconds)
    }

    /// Verifies algorithm, signature, expiry, issuer and audience; returns the user id and the token id.
    ///
    /// A token that passed before is answered from ``verified`` until it expires: the same bytes carry the same
    /// signature and claims, so only the clock can change the answer (decoding and HMAC were a tenth of the CPU of a
    /// call request). Whether its user may still act is decided per request by the user directory, not here.
    func verify(_ token: String) async throws(TokenRejection) -> (userID: UUID, tokenID: String) {
        let now = Date()
        if let known = verified.value(for: token, now: now) { return known }
        let result = try await verifyInFull(token)
        verified.insert((result.userID, result.tokenID), for: token, until: result.expiresAt, now: now)
        return (result.userID, result.tokenID)
    }

    private func verifyInFull(
        _ token: String
    ) async throws(TokenRejection) -> (
        userID: UUID, tokenID: String, expiresAt: Date
    ) {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard token.utf8.count <= 4096, parts.count == 3, let headerBytes = Self.base64URLDecode(parts[0]) else {
            throw .malformed
        }
        struct Header: Decodable { var alg: String? }
        guard let header = try? JSONDecoder().decode(Header.self, from: Data(headerBytes)) else { throw .malformed }
        guard header.alg == "HS256" else { throw .wrongAlgorithm(header.alg ?? "(none)") }
        let claims: AccessTokenClaims
        do {
            claims = try await keys.verify(token, as: AccessTokenClaims.self)
        } catch let error as JWTError {
            switch error.errorType {
            case .signatureVerificationFailed: throw .badSignature
            case .claimVerificationFailure where error.failedClaim is ExpirationClaim: throw .expired
            default: throw .malformed
            }
        } catch {
            throw .malformed
        }
        guard claims.iss.value == issuer else { throw .wrongIssuer }
        guard claims.aud.value.contains(audience) else { throw .wrongAudience }
        guard let userID = UUID(uuidString: claims.sub.value) else { throw .badSubject }
        return (userID, claims.jti.value, claims.exp.value)
    }

    static func base64URLDecode(_ text: Substring) -> [UInt8]? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.utf8.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64).map { Array($0) }
    }
}
