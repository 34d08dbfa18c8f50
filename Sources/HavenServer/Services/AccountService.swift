import Foundation
import HavenProtocol
import HavenStore

/// `haven.v1.AccountService`: accounts and their certificates, for admins.
///
/// Every change runs in the record writer's transaction: the caller's
/// account is re-checked there, and the call's audit entry covers the
/// account, certificate and enrolment rows it wrote.
struct AccountService: AccountServiceHandler {
    let environment: ServiceEnvironment

    func disableAccount(
        _ request: Haven_V1_SetAccountEnabledRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_Account {
        try await self.setEnabled(false, request, context)
    }

    func enableAccount(
        _ request: Haven_V1_SetAccountEnabledRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_Account {
        try await self.setEnabled(true, request, context)
    }

    private var env: ServiceEnvironment { self.environment }

    func createAccount(
        _ request: Haven_V1_CreateAccountRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_CreateAccountResponse {
        try self.env.policy.check(context.principal, .administer)
        let input = request.account
        try Accounts.validateID(input.id, "account.id")
        try Validate.text(input.displayName, "account.display_name")
        try Accounts.validateRole(input.role, "account.role")
        let hours = try Accounts.enrollmentHours(request.enrollmentValidHours)
        let days = try Accounts.certificateDays(request.certificateValidDays, role: input.role)
        let code = EnrollmentCode.generate()
        let env = self.env
        let now = env.nowUnixMs
        return try await env.writer.transaction(context) { tx in
            try env.policy.requireCurrent(context.principal, tx)
            guard try tx.account(id: input.id) == nil else {
                throw HavenError(code: .alreadyExists, message: "account.id: an account with that id exists")
            }
            let account = Account(
                id: input.id,
                displayName: input.displayName,
                role: input.role,
                officeCodes: input.officeCodes,
                partnerID: input.partnerID,
                createdAtUnixMs: now
            )
            try Accounts.checkReferences(account, tx)
            try tx.saveAccount(account)
            let enrollment = try Accounts.newEnrollment(
                code,
                account: account.id,
                hours: hours,
                days: days,
                now: now,
                env,
                tx
            )
            var response = Haven_V1_CreateAccountResponse()
            response.account = account.wire(credentials: nil, now: now)
            response.enrollment = enrollment
            return response
        }
    }

    func getAccount(_ request: Haven_V1_GetAccountRequest, _ context: CallContext) async throws -> Haven_V1_Account {
        try self.env.policy.check(context.principal, .administer)
        let now = self.env.nowUnixMs
        return try await self.env.store.read { tx in
            guard let account = try tx.account(id: request.accountID) else {
                throw AccessPolicy.notFound("account")
            }
            return account.wire(credentials: try tx.credentials(accountID: account.id), now: now)
        }
    }

    func listAccounts(
        _ request: Haven_V1_ListAccountsRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_ListAccountsResponse {
        try self.env.policy.check(context.principal, .administer)
        // A filter the admin may set (unset: any role); the policy decided
        // above who may list.
        let role = try Validate.optional(request.role, "role")
        var filters = request
        filters.clearPage()
        let after = try PageToken.cursor(request.page, filters: filters)?.id ?? ""
        let size = PageToken.size(request.page)
        let now = self.env.nowUnixMs
        let accounts = try await self.env.store.read { tx in
            try tx.accounts(after: after, role: role, limit: size + 1)
        }
        var response = Haven_V1_ListAccountsResponse()
        response.accounts = accounts.prefix(size).map { $0.wire(credentials: nil, now: now) }
        let next = accounts.count > size ? PageCursor(id: accounts[size - 1].id) : nil
        response.page = try PageToken.token(after: next, filters: filters)
        return response
    }

    func updateAccount(
        _ request: Haven_V1_UpdateAccountRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_Account {
        try self.env.policy.check(context.principal, .administer)
        try Validate.identifier(request.accountID, "account_id")
        if request.role != .unspecified { try Accounts.validateRole(request.role, "role") }
        try Validate.require(
            !request.displayName.isEmpty || request.role != .unspecified || request.changeOffices
                || request.changePartner,
            "account_id",
            "nothing to change"
        )
        if !request.changeOffices {
            try Validate.require(request.officeCodes.isEmpty, "office_codes", "set change_offices to change them")
        }
        if !request.changePartner {
            try Validate.require(request.partnerID.isEmpty, "partner_id", "set change_partner to change it")
        }
        let env = self.env
        let now = env.nowUnixMs
        return try await env.writer.transaction(context) { tx in
            try env.policy.requireCurrent(context.principal, tx)
            guard var account = try tx.account(id: request.accountID) else { throw AccessPolicy.notFound("account") }
            if !request.displayName.isEmpty {
                try Validate.text(request.displayName, "display_name")
                account.displayName = request.displayName
            }
            if request.role != .unspecified, request.role != account.role {
                if account.id == context.principal.id {
                    throw HavenError(
                        code: .failedPrecondition,
                        message: "an admin may not change their own role; ask another admin"
                    )
                }
                account.role = request.role
            }
            if request.changeOffices { account.officeCodes = request.officeCodes }
            if request.changePartner { account.partnerID = request.partnerID }
            try Accounts.checkReferences(account, tx)
            try tx.saveAccount(account)
            return account.wire(credentials: nil, now: now)
        }
    }

    func setEnabled(
        _ enabled: Bool,
        _ request: Haven_V1_SetAccountEnabledRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_Account {
        try self.env.policy.check(context.principal, .administer)
        try Validate.identifier(request.accountID, "account_id")
        try Validate.text(request.reason, "reason", required: false)
        let env = self.env
        let now = env.nowUnixMs
        let detail = request.reason.isEmpty ? "" : "reason: \(LogText.escaped(request.reason, limit: 300))"
        return try await env.writer.transaction(context, detail: detail) { tx in
            try env.policy.requireCurrent(context.principal, tx)
            guard var account = try tx.account(id: request.accountID) else { throw AccessPolicy.notFound("account") }
            if !enabled, account.id == context.principal.id {
                throw HavenError(code: .failedPrecondition, message: "you may not disable your own account")
            }
            if account.enabled != enabled {
                account.enabled = enabled
                try tx.saveAccount(account)
            }
            return account.wire(credentials: nil, now: now)
        }
    }

    func issueEnrollment(
        _ request: Haven_V1_IssueEnrollmentRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_Enrollment {
        try self.env.policy.check(context.principal, .administer)
        try Validate.identifier(request.accountID, "account_id")
        let hours = try Accounts.enrollmentHours(request.enrollmentValidHours)
        let code = EnrollmentCode.generate()
        let env = self.env
        let now = env.nowUnixMs
        return try await env.writer.transaction(context) { tx in
            try env.policy.requireCurrent(context.principal, tx)
            guard let account = try tx.account(id: request.accountID) else { throw AccessPolicy.notFound("account") }
            guard account.enabled else {
                throw HavenError(code: .failedPrecondition, message: "the account is disabled; enable it first")
            }
            // Earlier codes stop working: one machine enrols with the newest.
            var days = Accounts.defaultCertificateDays(account.role)
            for var earlier in try tx.usableEnrollments(accountID: account.id, at: now) {
                days = earlier.certificateValidDays
                earlier.spentAtUnixMs = now
                try tx.saveEnrollment(earlier)
            }
            if let latest = try tx.credentials(accountID: account.id).first {
                days = max(1, Int((latest.notValidAfterUnixMs - latest.issuedAtUnixMs) / 86_400_000))
            }
            return try Accounts.newEnrollment(code, account: account.id, hours: hours, days: days, now: now, env, tx)
        }
    }

    func revokeCredential(
        _ request: Haven_V1_RevokeCredentialRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_Credential {
        try self.env.policy.check(context.principal, .administer)
        try Validate.require(
            !request.serial.isEmpty && request.serial.allSatisfy { $0.isHexDigit && !$0.isUppercase },
            "serial",
            "must be the certificate's serial in lowercase hex"
        )
        try Validate.text(request.reason, "reason", required: false)
        let env = self.env
        let now = env.nowUnixMs
        return try await env.writer.transaction(context) { tx in
            try env.policy.requireCurrent(context.principal, tx)
            guard var credential = try tx.credential(serial: request.serial) else {
                throw AccessPolicy.notFound("certificate")
            }
            guard !credential.isRevoked else {
                throw HavenError(code: .failedPrecondition, message: "the certificate is already revoked")
            }
            credential.revokedAtUnixMs = now
            credential.revokedBy = context.principal.id
            credential.revokedReason = request.reason
            try tx.saveCredential(credential)
            return credential.wire(now: now)
        }
    }
}

/// Rules shared by the account methods and enrolment.
enum Accounts {
    static func validateID(_ id: String, _ field: String) throws(HavenError) {
        try Validate.require(
            (1...64).contains(id.utf8.count)
                && id.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-") }
                && id.first != "-",
            field,
            "must be 1 to 64 lowercase letters, digits or dashes, not starting with a dash"
        )
    }

    static func validateRole(_ role: Haven_V1_Role, _ field: String) throws(HavenError) {
        try Validate.known(role, field)
    }

    static func enrollmentHours(_ hours: UInt32) throws(HavenError) -> Int {
        if hours == 0 { return 24 }
        try Validate.require((1...168).contains(hours), "enrollment_valid_hours", "must be 1 to 168")
        return Int(hours)
    }

    /// Organisations outside the office get shorter-lived certificates.
    static func defaultCertificateDays(_ role: Haven_V1_Role) -> Int {
        AccessPolicy.actsForOrganisation(role) ? 30 : 90
    }

    static func certificateDays(_ days: UInt32, role: Haven_V1_Role) throws(HavenError) -> Int {
        if days == 0 { return Self.defaultCertificateDays(role) }
        try Validate.require((1...397).contains(days), "certificate_valid_days", "must be 1 to 397")
        return Int(days)
    }

    /// Offices and partner as the role needs them, each existing.
    static func checkReferences(_ account: Account, _ tx: any StoreReader) throws {
        // Which roles carry offices or a partner is the policy's (its table), not this service's.
        if AccessPolicy.worksInOffices(account.role) {
            try Validate.require(!account.officeCodes.isEmpty, "account.office_codes", "required for this role")
        } else {
            try Validate.require(account.officeCodes.isEmpty, "account.office_codes", "only office staff have them")
        }
        if AccessPolicy.actsForOrganisation(account.role) {
            try Validate.require(!account.partnerID.isEmpty, "account.partner_id", "required for a partner")
        } else {
            try Validate.require(account.partnerID.isEmpty, "account.partner_id", "only partners have one")
        }
        try Validate.require(
            Set(account.officeCodes).count == account.officeCodes.count,
            "account.office_codes",
            "lists an office twice"
        )
        for code in account.officeCodes {
            guard let office = try tx.load(Haven_V1_Office.self, id: code) else {
                throw HavenError(code: .notFound, message: "account.office_codes: no office \(code.prefix(8))")
            }
            guard office.status != .closed else {
                throw HavenError(
                    code: .failedPrecondition,
                    message: "account.office_codes: office \(code.prefix(8)) is closed"
                )
            }
        }
        if !account.partnerID.isEmpty {
            guard let partner = try tx.load(Haven_V1_PartnerOrganisation.self, id: account.partnerID) else {
                throw HavenError(code: .notFound, message: "account.partner_id: no partner organisation with that id")
            }
            guard partner.active else {
                throw HavenError(
                    code: .failedPrecondition,
                    message: "account.partner_id: the organisation is deactivated"
                )
            }
        }
    }

    /// Stores a new enrolment code and returns it as shown (once) to the admin.
    static func newEnrollment(
        _ code: String,
        account: String,
        hours: Int,
        days: Int,
        now: Int64,
        _ env: ServiceEnvironment,
        _ tx: any StoreWriter
    ) throws -> Haven_V1_Enrollment {
        let stored = StoredEnrollment(
            id: env.newID("enr"),
            codeHash: EnrollmentCode.hash(code),
            accountID: account,
            createdAtUnixMs: now,
            expiresAtUnixMs: now + Int64(hours) * 3_600_000,
            certificateValidDays: days
        )
        try tx.saveEnrollment(stored)
        var enrollment = Haven_V1_Enrollment()
        enrollment.code = code
        enrollment.accountID = account
        enrollment.expiresAtUnixMs = stored.expiresAtUnixMs
        enrollment.caCertificatePem = env.authority.rootCertificatePEM
        return enrollment
    }
}

extension Account {
    /// As the protocol shows it.
    func wire(credentials: [StoredCredential]?, now: Int64) -> Haven_V1_Account {
        var account = Haven_V1_Account()
        account.id = self.id
        account.displayName = self.displayName
        account.role = self.role
        account.officeCodes = self.officeCodes
        account.partnerID = self.partnerID
        account.enabled = self.enabled
        account.createdAtUnixMs = self.createdAtUnixMs
        account.credentials = (credentials ?? []).prefix(500).map { $0.wire(now: now) }
        return account
    }
}
