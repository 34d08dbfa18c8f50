import Foundation
import HavenProtocol
import HavenStore

/// `haven.v1.EnrollmentService`: certificates for keys the clients made
/// themselves. The server never sees a private key.
struct EnrollmentService: EnrollmentServiceHandler {
    let environment: ServiceEnvironment
    let limiter: EnrollmentLimiter

    private var env: ServiceEnvironment { self.environment }

    /// The one answer to every code that does not work: unknown, spent,
    /// expired, or for a disabled account look alike.
    static let refused = HavenError(
        code: .unauthenticated,
        message: "enrolment code unknown, already used or expired; ask your administrator for a new one"
    )

    func enroll(_ request: Haven_V1_EnrollRequest, _ context: CallContext) async throws -> Haven_V1_IssuedCredential {
        try Validate.require(!request.code.isEmpty, "code", "required")
        try Validate.require(!request.csrDer.isEmpty, "csr_der", "required")
        let now = self.env.nowUnixMs
        if case .refuse(let retryAfterMs) = self.limiter.admit(atUnixMs: now) {
            throw HavenError.exhausted("too many failed enrolments; retry later", retryAfterMs: retryAfterMs)
        }
        let hash = EnrollmentCode.hash(request.code)
        let env = self.env
        do {
            guard let found = try await env.store.read({ try $0.enrollment(codeHash: hash) }), found.isUsable(at: now)
            else { throw Self.refused }
            let (issued, stored) = try env.authority.issue(
                csrDER: Array(request.csrDer),
                accountID: found.accountID,
                validityDays: found.certificateValidDays,
                issuedBy: "enrolment",
                now: env.now()
            )
            return try await env.writer.transaction(
                context,
                principalID: found.accountID,
                detail: "enrolment \(found.id)"
            ) { tx in
                // Read again under the write lock: a code is spent once, by the first to get here.
                guard var enrollment = try tx.enrollment(codeHash: hash), enrollment.isUsable(at: now),
                    let account = try tx.account(id: enrollment.accountID), account.enabled
                else { throw Self.refused }
                enrollment.spentAtUnixMs = now
                try tx.saveEnrollment(enrollment)
                try tx.saveCredential(stored)
                return issued
            }
        } catch let error as HavenError where error.code == .unauthenticated {
            self.limiter.failed(atUnixMs: now)
            throw error
        }
    }

    func renewCredential(
        _ request: Haven_V1_RenewCredentialRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_IssuedCredential {
        let principal = context.principal
        guard !principal.isEnrolling else {
            throw HavenError(code: .unauthenticated, message: "renewal needs the current certificate")
        }
        try Validate.require(!request.csrDer.isEmpty, "csr_der", "required")
        let env = self.env
        guard let current = try await env.store.read({ try $0.credential(serial: principal.credentialSerial) }),
            !current.isRevoked
        else {
            throw HavenError(code: .unauthenticated, message: "this connection's certificate was revoked")
        }
        let days = max(1, Int((current.notValidAfterUnixMs - current.issuedAtUnixMs) / 86_400_000))
        let (issued, stored) = try env.authority.issue(
            csrDER: Array(request.csrDer),
            accountID: principal.id,
            validityDays: days,
            issuedBy: "renewal",
            now: env.now()
        )
        try Validate.require(
            stored.publicKeySHA256 != current.publicKeySHA256,
            "csr_der",
            "must be for a new key: a renewal never reuses the current one"
        )
        return try await env.writer.transaction(context, detail: "renews \(current.serial)") { tx in
            try env.policy.requireCurrent(principal, tx)
            guard let again = try tx.credential(serial: current.serial), !again.isRevoked else {
                throw HavenError(code: .unauthenticated, message: "this connection's certificate was revoked")
            }
            try tx.saveCredential(stored)
            return issued
        }
    }
}
