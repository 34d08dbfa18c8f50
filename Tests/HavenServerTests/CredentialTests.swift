import Crypto
import Foundation
import GRDB
import HavenProtocol
import HavenServer
import HavenStore
import HavenTestSupport
import NIOCore
import SwiftASN1
import SwiftProtobuf
import Testing
import X509

/// Accounts bound to certificates, enrolment with keys made by the client,
/// renewal and revocation — over real mutual TLS where the handshake matters,
/// in process where only the handlers do.
@Suite("Credentials")
struct CredentialTests {
    /// An admin's raw connection to a running test server.
    /// The go-away that arrives on `connection` within three seconds, if any.
    static func goAway(on connection: RawConnection) async -> Haven_V1_GoAway? {
        while let envelope = try? await connection.next(timeout: .seconds(3)) {
            if case .goAway(let away) = envelope.kind { return away }
        }
        return nil
    }

    /// Whether a new connection with revoked `credentials` is answered with a
    /// go-away saying so, instead of a session.
    static func refusedAsRevoked(port: Int, _ credentials: TestCredentials) async throws -> Bool {
        let connection = try await RawConnection.connect(port: port, credentials: credentials)
        let answer: Haven_V1_ServerEnvelope?
        do {
            answer = try await connection.hello()
        } catch {
            answer = try? await connection.next()
        }
        await connection.close()
        guard case .goAway(let away) = answer?.kind else { return false }
        return away.message.contains("revoked")
    }

    static func admin(_ deployment: TestDeployment, _ server: RunningServer) async throws -> RawConnection {
        let connection = try await RawConnection.connect(
            port: server.port,
            credentials: try deployment.credentials(for: "admin")
        )
        try await connection.hello()
        return connection
    }

    /// A connection that presents no client certificate.
    static func anonymous(_ deployment: TestDeployment, _ server: RunningServer) async throws -> RawConnection {
        let connection = try await RawConnection.connect(
            port: server.port,
            credentials: TestCredentials(caPEM: try deployment.caPEM, certificatePEM: "", privateKeyPEM: "")
        )
        try await connection.hello()
        return connection
    }

    static func createCaseworker(
        _ id: String,
        on admin: RawConnection,
        callID: UInt64
    ) async throws
        -> Haven_V1_CreateAccountResponse
    {
        var create = Haven_V1_CreateAccountRequest()
        create.account.id = id
        create.account.displayName = "Caseworker (fictional)"
        create.account.role = .caseworker
        create.account.officeCodes = ["KOL"]
        return try await admin.unary(MethodCatalog.AccountService.createAccount, create, id: callID)
    }

    static func office(_ code: String, on admin: RawConnection, callID: UInt64) async throws {
        var office = Haven_V1_CreateOfficeRequest()
        office.office.code = code
        office.office.name = "Fictional \(code)"
        office.office.city = "Kolkata"
        office.office.country = "IN"
        office.office.timeZone = "Asia/Kolkata"
        office.idempotencyKey = "office-\(code)"
        _ = try await admin.unary(MethodCatalog.OfficeService.createOffice, office, id: callID)
    }

    @Test(
        "a machine enrols with a one-time code and a key of its own: the server never sees the key, binds the certificate to the account, and the code is spent"
    )
    func enrolment() async throws {
        let deployment = try TestDeployment()
        let server = try await deployment.start()
        let admin = try await Self.admin(deployment, server)
        try await Self.office("KOL", on: admin, callID: 1)
        let created = try await Self.createCaseworker("field-worker", on: admin, callID: 3)
        #expect(created.enrollment.code.count == 31, "26 characters in groups of five")
        #expect(created.enrollment.caCertificatePem == (try deployment.caPEM))
        #expect(created.account.enabled && created.account.role == .caseworker)

        // Before enrolment, a connection without a certificate may enrol and nothing else.
        let anonymous = try await Self.anonymous(deployment, server)
        let whoAmI = try await anonymous.call(MethodCatalog.SessionService.whoAmI, .init(), id: 1)
        #expect(whoAmI.statusCode == .unauthenticated)
        #expect(whoAmI.message.contains("may only call haven.v1.EnrollmentService/Enroll"), "\(whoAmI.message)")
        let listing = try await anonymous.call(MethodCatalog.OfficeService.listOffices, .init(), id: 3)
        #expect(listing.statusCode == .unauthenticated)

        // A wrong code and a CSR signed by another key are refused; the right one is not spent by them.
        let (key, csr) = try TestCSR.make()
        var wrong = Haven_V1_EnrollRequest()
        wrong.code = "00000-00000-00000-00000-00000-0"
        wrong.csrDer = Data(csr)
        let refused = try await anonymous.call(MethodCatalog.EnrollmentService.enroll, wrong, id: 5)
        #expect(refused.statusCode == .unauthenticated)
        #expect(refused.message.contains("unknown, already used or expired"))
        var forged = Haven_V1_EnrollRequest()
        forged.code = created.enrollment.code
        forged.csrDer = Data(try TestCSR.der(for: key, signedBy: P256.Signing.PrivateKey()))
        let badSignature = try await anonymous.call(MethodCatalog.EnrollmentService.enroll, forged, id: 7)
        #expect(badSignature.statusCode == .invalidArgument, "\(badSignature.message)")

        // Codes are read without dashes or case, as people type them.
        var enroll = Haven_V1_EnrollRequest()
        enroll.code = created.enrollment.code.lowercased().replacingOccurrences(of: "-", with: " ")
        enroll.csrDer = Data(csr)
        let issued = try await anonymous.unary(MethodCatalog.EnrollmentService.enroll, enroll, id: 9)
        #expect(issued.credential.accountID == "field-worker")
        #expect(issued.credential.state == .active)
        let leaf = try Certificate(firstPEMIn: issued.certificateChainPem)
        #expect(leaf.publicKey == Certificate.PublicKey(key.publicKey), "the certificate is for the machine's own key")
        #expect(leaf.serialHex == issued.credential.serial)
        #expect(issued.caCertificatePem == (try deployment.caPEM))
        let issuing = try PEMDocument.parseMultiple(pemString: issued.certificateChainPem)
        #expect(issuing.count == 2, "the chain carries the issuing CA for the server to verify")

        // Spent: the same code again is refused like an unknown one.
        let (_, again) = try TestCSR.make()
        enroll.csrDer = Data(again)
        let spent = try await anonymous.call(MethodCatalog.EnrollmentService.enroll, enroll, id: 11)
        #expect(spent.statusCode == .unauthenticated)
        await anonymous.close()

        // The new credentials work, and are the account's.
        let credentials = TestCredentials(
            caPEM: issued.caCertificatePem,
            certificatePEM: issued.certificateChainPem,
            privateKeyPEM: key.pemRepresentation
        )
        let worker = try await RawConnection.connect(port: server.port, credentials: credentials)
        try await worker.hello()
        let principal = try await worker.unary(MethodCatalog.SessionService.whoAmI, .init(), id: 1)
        #expect(principal.id == "field-worker" && principal.role == .caseworker)
        await worker.close()

        // The account shows its certificate; the audit trail names the enrolment, never the code.
        let shown = try await admin.unary(
            MethodCatalog.AccountService.getAccount,
            .with { $0.accountID = "field-worker" },
            id: 5
        )
        #expect(shown.credentials.map(\.serial) == [issued.credential.serial])
        let entries = try await server.store.read { tx in
            var query = AuditQuery(limit: 1000)
            query.newestFirst = true
            return try tx.auditEntries(query)
        }
        let enrolled = try #require(
            entries.first { $0.action == "haven.v1.EnrollmentService/Enroll" && $0.outcome == .ok }
        )
        #expect(enrolled.principalID == "field-worker")
        #expect(enrolled.resources.contains { $0.kind == "credential" && $0.id == issued.credential.serial })
        #expect(!entries.contains { $0.detail.contains(created.enrollment.code) })
        await admin.close()
        try await server.stop()
    }

    @Test("a certificate the CA signed but that is bound to no account is refused, whatever its common name says")
    func unboundCertificate() async throws {
        let deployment = try TestDeployment()
        let server = try await deployment.start()
        let unbound = try deployment.credentials(for: "worker-kol", register: false)
        let connection = try await RawConnection.connect(port: server.port, credentials: unbound)
        // The server may have answered and closed before our hello is written.
        let answer: Haven_V1_ServerEnvelope?
        do {
            answer = try await connection.hello()
        } catch {
            answer = try await connection.next()
        }
        guard case .goAway(let goAway) = answer?.kind else {
            Issue.record("expected a go-away, got \(String(describing: answer))")
            return
        }
        #expect(StatusCode(wire: goAway.code) == .unauthenticated)
        #expect(goAway.message.contains("not issued to any account"), "\(goAway.message)")
        #expect(await connection.closed(within: .seconds(2)))
        let refusal = try await server.store.read { tx in
            var query = AuditQuery(limit: 10)
            query.newestFirst = true
            query.action = "session.authenticate"
            return try tx.auditEntries(query)
        }
        #expect(refusal.first?.principalID.hasPrefix("certificate:") == true, "names the serial, not the common name")
        try await server.stop()
    }

    @Test(
        "revoking a certificate ends its live connection within a second and refuses it from then on; the account's other certificates go on",
        .timed
    )
    func revocation() async throws {
        let deployment = try TestDeployment()
        let server = try await deployment.start()
        let admin = try await Self.admin(deployment, server)
        let revokedCredentials = try deployment.credentials(for: "worker-kol")
        let kept = try deployment.credentials(for: "worker-kol")
        let serial = try Certificate(firstPEMIn: revokedCredentials.certificatePEM).serialHex

        let live = try await RawConnection.connect(port: server.port, credentials: revokedCredentials)
        try await live.hello()
        _ = try await live.unary(MethodCatalog.SessionService.whoAmI, .init(), id: 1)

        var revoke = Haven_V1_RevokeCredentialRequest()
        revoke.serial = serial
        revoke.reason = "laptop lost (fictional)"
        let revoked = try await admin.unary(MethodCatalog.AccountService.revokeCredential, revoke, id: 1)
        let revokedAt = ContinuousClock.now
        #expect(revoked.state == .revoked && revoked.revokedBy == "admin")
        let goAway = await Self.goAway(on: live)
        // Within a second, as SessionCutoffTests allows for two shared cores: three.
        #expect(ContinuousClock.now - revokedAt < SessionCutoffTests.bound, "within about a second")
        #expect(goAway.map { StatusCode(wire: $0.code) } == .unauthenticated)
        #expect(goAway?.message.contains("revoked") == true)
        #expect(await live.closed(within: .seconds(2)))

        // A new handshake with it is refused; another certificate of the same account still works.
        #expect(
            try await Self.refusedAsRevoked(port: server.port, revokedCredentials),
            "a revoked certificate opened a session"
        )
        let other = try await RawConnection.connect(port: server.port, credentials: kept)
        try await other.hello()
        #expect(try await other.unary(MethodCatalog.SessionService.whoAmI, .init(), id: 1).id == "worker-kol")

        // Revoking twice is refused; an unknown serial is NOT_FOUND.
        let twice = try await admin.call(MethodCatalog.AccountService.revokeCredential, revoke, id: 3)
        #expect(twice.statusCode == .failedPrecondition)
        revoke.serial = "00ff"
        #expect(
            try await admin.call(MethodCatalog.AccountService.revokeCredential, revoke, id: 5).statusCode == .notFound
        )
        await other.close()
        await admin.close()
        try await server.stop()
    }
}

extension CredentialTests {
    @Test(
        "deactivating a partner organisation ends its accounts' live connections within a second and refuses them until it is reactivated",
        .timed
    )
    func partnerDeactivation() async throws {
        let deployment = try TestDeployment()
        let server = try await deployment.start()
        let admin = try await Self.admin(deployment, server)
        try await Self.office("KOL", on: admin, callID: 1)
        var register = Haven_V1_RegisterPartnerRequest()
        register.partner.name = "Asha Home (fictional)"
        register.partner.kind = .aftercareHome
        register.partner.officeCodes = ["KOL"]
        register.idempotencyKey = "asha"
        let partner = try await admin.unary(MethodCatalog.PartnerService.registerPartner, register, id: 3)
        try deployment.updateAccount("partner-asha") { $0.partnerID = partner.id }
        let credentials = try deployment.credentials(for: "partner-asha")

        let live = try await RawConnection.connect(port: server.port, credentials: credentials)
        try await live.hello()
        #expect(try await live.unary(MethodCatalog.SessionService.whoAmI, .init(), id: 1).partnerID == partner.id)
        var deactivate = Haven_V1_SetPartnerActiveRequest()
        deactivate.partnerID = partner.id
        deactivate.expectedVersion = partner.version
        deactivate.reason = "contract ended (fictional)"
        let inactive = try await admin.unary(MethodCatalog.PartnerService.deactivatePartner, deactivate, id: 5)
        // Committed once the call returns: the cut-off is measured from there.
        let started = ContinuousClock.now
        #expect(!inactive.active)
        var goAway: Haven_V1_GoAway?
        while let envelope = try? await live.next(timeout: .seconds(3)) {
            if case .goAway(let away) = envelope.kind {
                goAway = away
                break
            }
        }
        #expect(ContinuousClock.now - started < SessionCutoffTests.bound)
        #expect(goAway?.message == "partner organisation deactivated")

        let again = try await RawConnection.connect(port: server.port, credentials: credentials)
        let answer: Haven_V1_ServerEnvelope?
        do {
            answer = try await again.hello()
        } catch {
            answer = try await again.next()
        }
        if case .goAway(let away) = answer?.kind {
            #expect(away.message == "partner organisation deactivated")
        } else {
            Issue.record("a deactivated organisation's account opened a session")
        }
        // No new accounts for it either.
        var create = Haven_V1_CreateAccountRequest()
        create.account.id = "asha-second"
        create.account.displayName = "Asha 2 (fictional)"
        create.account.role = .partner
        create.account.partnerID = partner.id
        #expect(
            try await admin.call(MethodCatalog.AccountService.createAccount, create, id: 7).statusCode
                == .failedPrecondition
        )

        deactivate.expectedVersion = inactive.version
        _ = try await admin.unary(MethodCatalog.PartnerService.reactivatePartner, deactivate, id: 9)
        let back = try await RawConnection.connect(port: server.port, credentials: credentials)
        try await back.hello()
        #expect(try await back.unary(MethodCatalog.SessionService.whoAmI, .init(), id: 1).id == "partner-asha")
        await back.close()
        await admin.close()
        try await server.stop()
    }
}

/// The account and enrolment handlers, in process.
@Suite("Accounts over the protocol")
struct AccountServiceTests {
    static let accounts = [
        Account(id: "admin", displayName: "Admin (fictional)", role: .admin, createdAtUnixMs: 1),
        Account(id: "other-admin", displayName: "Admin 2 (fictional)", role: .admin, createdAtUnixMs: 1),
        Account(
            id: "director-kol",
            displayName: "Director (fictional)",
            role: .director,
            officeCodes: ["KOL"],
            createdAtUnixMs: 1
        ),
    ]

    static func haven() async throws -> InProcessHaven {
        let haven = try InProcessHaven(accounts: Self.accounts)
        let admin = try haven.principal("admin")
        for (code, country) in [("KOL", "IN"), ("MNL", "PH")] {
            var office = Haven_V1_CreateOfficeRequest()
            office.office.code = code
            office.office.name = "Fictional \(code)"
            office.office.city = "City"
            office.office.country = country
            office.office.timeZone = "Asia/Kolkata"
            office.idempotencyKey = code
            _ = try await haven.call(MethodCatalog.OfficeService.createOffice, office, as: admin)
        }
        return haven
    }

    static func create(_ change: (inout Haven_V1_Account) -> Void) -> Haven_V1_CreateAccountRequest {
        var request = Haven_V1_CreateAccountRequest()
        request.account.id = "new-account"
        request.account.displayName = "New (fictional)"
        request.account.role = .caseworker
        request.account.officeCodes = ["KOL"]
        change(&request.account)
        return request
    }

    static func error<Request, Response>(
        _ haven: InProcessHaven,
        _ method: MethodDescriptor<Request, Response>,
        _ request: Request,
        as who: String = "admin"
    ) async throws -> HavenError? {
        do {
            _ = try await haven.call(method, request, as: try haven.principal(who))
            return nil
        } catch let error as HavenError {
            return error
        }
    }

    @Test(
        "create checks every reference: offices exist and are open, partners exist and are active, ids and roles are valid"
    )
    func referentialChecks() async throws {
        let haven = try await Self.haven()
        let create = MethodCatalog.AccountService.createAccount
        let unknownOffice = try await Self.error(haven, create, Self.create { $0.officeCodes = ["ZZZ"] })
        #expect(unknownOffice?.code == .notFound && unknownOffice?.message.hasPrefix("account.office_codes") == true)
        let unknownPartner = try await Self.error(
            haven,
            create,
            Self.create {
                $0.role = .partner
                $0.officeCodes = []
                $0.partnerID = "ptn_bogus"
            }
        )
        #expect(unknownPartner?.code == .notFound && unknownPartner?.message.hasPrefix("account.partner_id") == true)
        let noOffices = try await Self.error(haven, create, Self.create { $0.officeCodes = [] })
        #expect(noOffices?.code == .invalidArgument)
        let officesForAdmin = try await Self.error(haven, create, Self.create { $0.role = .admin })
        #expect(officesForAdmin?.code == .invalidArgument)
        let badID = try await Self.error(haven, create, Self.create { $0.id = "Has Spaces" })
        #expect(badID?.code == .invalidArgument)
        let noRole = try await Self.error(haven, create, Self.create { $0.role = .unspecified })
        #expect(noRole?.code == .invalidArgument)
        let taken = try await Self.error(haven, create, Self.create { $0.id = "director-kol" })
        #expect(taken?.code == .alreadyExists)
        let notAdmin = try await Self.error(haven, create, Self.create { _ in }, as: "director-kol")
        #expect(notAdmin?.code == .permissionDenied)

        _ = try await haven.call(
            MethodCatalog.OfficeService.closeOffice,
            .with {
                $0.code = "MNL"
                $0.expectedVersion = 1
            },
            as: try haven.principal("admin")
        )
        let closed = try await Self.error(haven, create, Self.create { $0.officeCodes = ["MNL"] })
        #expect(closed?.code == .failedPrecondition)

        // Nothing refused was written.
        let stored = try await haven.store.read { try $0.accounts().map(\.id) }
        #expect(Set(stored) == Set(Self.accounts.map(\.id)))
        let created = try await haven.call(create, Self.create { _ in }, as: try haven.principal("admin"))
        #expect(created.account.enabled && created.enrollment.accountID == "new-account")
    }

    @Test(
        "an admin may not disable themselves or change their own role; another admin may; updates check references too"
    )
    func selfProtection() async throws {
        let haven = try await Self.haven()
        let disableSelf = try await Self.error(
            haven,
            MethodCatalog.AccountService.disableAccount,
            .with { $0.accountID = "admin" }
        )
        #expect(disableSelf?.code == .failedPrecondition)
        let demoteSelf = try await Self.error(
            haven,
            MethodCatalog.AccountService.updateAccount,
            .with {
                $0.accountID = "admin"
                $0.role = .auditor
            }
        )
        #expect(demoteSelf?.code == .failedPrecondition)
        let moved = try await Self.error(
            haven,
            MethodCatalog.AccountService.updateAccount,
            .with {
                $0.accountID = "director-kol"
                $0.changeOffices = true
                $0.officeCodes = ["NOPE"]
            }
        )
        #expect(moved?.code == .notFound)
        let other = try await haven.call(
            MethodCatalog.AccountService.disableAccount,
            .with {
                $0.accountID = "admin"
                $0.reason = "left (fictional)"
            },
            as: try haven.principal("other-admin")
        )
        #expect(!other.enabled)
        let listed = try await haven.call(
            MethodCatalog.AccountService.listAccounts,
            .with { $0.page.pageSize = 2 },
            as: try haven.principal("other-admin")
        )
        #expect(listed.accounts.map(\.id) == ["admin", "director-kol"])
        #expect(!listed.page.nextPageToken.isEmpty)
        let rest = try await haven.call(
            MethodCatalog.AccountService.listAccounts,
            .with {
                $0.page.pageSize = 2
                $0.page.pageToken = listed.page.nextPageToken
            },
            as: try haven.principal("other-admin")
        )
        #expect(rest.accounts.map(\.id) == ["other-admin"] && rest.page.nextPageToken.isEmpty)
        let admins = try await haven.call(
            MethodCatalog.AccountService.listAccounts,
            .with { $0.role = .admin },
            as: try haven.principal("other-admin")
        )
        #expect(admins.accounts.map(\.id) == ["admin", "other-admin"], "the role filter, in the store's query")
    }

    @Test(
        "codes expire, a new code withdraws the older one, a disabled account cannot enrol, and renewal needs a new key and a certificate not revoked"
    )
    func codesAndRenewal() async throws {
        let haven = try await Self.haven()
        let admin = try haven.principal("admin")
        let created = try await haven.call(MethodCatalog.AccountService.createAccount, Self.create { _ in }, as: admin)
        let newer = try await haven.call(
            MethodCatalog.AccountService.issueEnrollment,
            .with { $0.accountID = "new-account" },
            as: admin
        )
        func enroll(_ code: String) async throws -> HavenError? {
            var request = Haven_V1_EnrollRequest()
            request.code = code
            request.csrDer = Data(try TestCSR.make().der)
            return try await Self.error(haven, MethodCatalog.EnrollmentService.enroll, request)
        }
        #expect(try await enroll(created.enrollment.code)?.code == .unauthenticated, "withdrawn by the newer code")
        haven.advance(by: 25 * 3600)
        #expect(try await enroll(newer.code)?.code == .unauthenticated, "expired after 24 hours")

        let third = try await haven.call(
            MethodCatalog.AccountService.issueEnrollment,
            .with { $0.accountID = "new-account" },
            as: admin
        )
        _ = try await haven.call(
            MethodCatalog.AccountService.disableAccount,
            .with { $0.accountID = "new-account" },
            as: admin
        )
        #expect(try await enroll(third.code)?.code == .unauthenticated, "a disabled account does not enrol")
        _ = try await haven.call(
            MethodCatalog.AccountService.enableAccount,
            .with { $0.accountID = "new-account" },
            as: admin
        )

        // Renewal: for a new key, by a certificate not revoked.
        let fourth = try await haven.call(
            MethodCatalog.AccountService.issueEnrollment,
            .with { $0.accountID = "new-account" },
            as: admin
        )
        let (key, csr) = try TestCSR.make()
        var request = Haven_V1_EnrollRequest()
        request.code = fourth.code
        request.csrDer = Data(csr)
        let issued = try await haven.call(MethodCatalog.EnrollmentService.enroll, request, as: admin)
        #expect(issued.credential.notValidAfterUnixMs - issued.credential.issuedAtUnixMs <= 90 * 86_400_000)
        var holder = try haven.principal("new-account")
        holder.credentialSerial = issued.credential.serial
        var sameKey = Haven_V1_RenewCredentialRequest()
        sameKey.csrDer = Data(try TestCSR.der(for: key))
        let reused = try await Self.errorAs(haven, holder, sameKey)
        #expect(reused?.code == .invalidArgument, "a renewal never reuses the key")
        var renew = Haven_V1_RenewCredentialRequest()
        renew.csrDer = Data(try TestCSR.make().der)
        let renewed = try await haven.call(MethodCatalog.EnrollmentService.renewCredential, renew, as: holder)
        #expect(renewed.credential.serial != issued.credential.serial && renewed.credential.issuedBy == "renewal")
        let account = try await haven.call(
            MethodCatalog.AccountService.getAccount,
            .with { $0.accountID = "new-account" },
            as: admin
        )
        #expect(account.credentials.count == 2 && account.credentials.allSatisfy { $0.state == .active })

        _ = try await haven.call(
            MethodCatalog.AccountService.revokeCredential,
            .with { $0.serial = issued.credential.serial },
            as: admin
        )
        #expect(
            try await Self.errorAs(haven, holder, renew)?.code == .unauthenticated,
            "a revoked certificate does not renew"
        )

        // The whole story verifies: every certificate and code is covered by the audit chain.
        let verdict = try await AuditVerifier(store: haven.store, publicKey: haven.environment.checkpoints.publicKey)
            .verify()
        #expect(verdict.intact, "\(verdict.problem)")
    }

    static func errorAs(
        _ haven: InProcessHaven,
        _ principal: Principal,
        _ request: Haven_V1_RenewCredentialRequest
    ) async throws -> HavenError? {
        do {
            _ = try await haven.call(MethodCatalog.EnrollmentService.renewCredential, request, as: principal)
            return nil
        } catch let error as HavenError {
            return error
        }
    }

    @Test("the shape of an account follows the policy table: offices for office staff, an organisation for partners")
    func accountShape() {
        let roles: [Haven_V1_Role] = [.admin, .director, .caseworker, .partner, .auditor]
        #expect(roles.filter(AccessPolicy.worksInOffices) == [.director, .caseworker])
        #expect(roles.filter(AccessPolicy.actsForOrganisation) == [.partner])
        let staff = Account(
            id: "w",
            displayName: "W (fictional)",
            role: .caseworker,
            officeCodes: ["KOL"],
            createdAtUnixMs: 1
        )
        let partner = Account(
            id: "p",
            displayName: "P (fictional)",
            role: .partner,
            partnerID: "ptn-1",
            createdAtUnixMs: 1
        )
        #expect(AccessPolicy.organisation(of: staff) == nil && AccessPolicy.organisation(of: partner) == "ptn-1")
    }

    @Test(
        "failed enrolments are bounded server-wide: past the limit, RESOURCE_EXHAUSTED with a retry delay until the window ends"
    )
    func limiter() {
        let limiter = EnrollmentLimiter(limit: 3, windowMs: 60_000)
        #expect(limiter.admit(atUnixMs: 1_000) == .admit)
        for _ in 0..<3 { limiter.failed(atUnixMs: 1_000) }
        #expect(
            limiter.admit(atUnixMs: 2_000) == .refuse(retryAfterMs: 59_000),
            "the window began with the first failure"
        )
        #expect(limiter.admit(atUnixMs: 61_000) == .admit, "a new window")
        limiter.failed(atUnixMs: 61_000)
        #expect(limiter.admit(atUnixMs: 61_001) == .admit)
    }

    @Test("enrolment codes: 130 random bits, read back without dashes, case or look-alike letters")
    func codes() {
        let code = EnrollmentCode.generate()
        #expect(code.count == 31 && code.split(separator: "-").count == 6)
        #expect(
            EnrollmentCode.hash(code) == EnrollmentCode.hash(code.lowercased().replacingOccurrences(of: "-", with: ""))
        )
        #expect(EnrollmentCode.hash("O1IL-0") == EnrollmentCode.hash("0111-0"))
        #expect(EnrollmentCode.generate() != code)
    }

    @Test("an upgraded deployment's existing bundles are bound to their accounts once, and only those its root signed")
    func legacyAdoption() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let data = DataDirectory(directory.url.appendingPathComponent("data"))
        try data.initialize(development: true)
        // As before certificates were bound: no credential rows at all.
        try DatabaseQueue(path: data.databaseFile).write { try $0.execute(sql: "DELETE FROM credential") }
        let store = try SQLiteStore(path: data.databaseFile)
        // A bundle signed by another deployment's CA, naming an existing account.
        let stranger = try CertificateAuthority.createRoot(name: "Stranger (fictional)", validity: 86400)
        let foreign = try stranger.issueClientCertificate(accountID: "admin", validity: 3600)
        try FileManager.default.createDirectory(
            atPath: data.credentialsDirectory("foreign"),
            withIntermediateDirectories: true
        )
        try foreign.certificatePEM.write(
            toFile: data.credentialsDirectory("foreign") + "/client.pem",
            atomically: true,
            encoding: .utf8
        )

        #expect(try data.adoptLegacyCredentials(store: store) == 1, "the admin's own bundle, not the stranger's")
        #expect(try data.adoptLegacyCredentials(store: store) == 0, "once")
        let adopted = try store.writeSynchronously { try $0.credentials(accountID: "admin") }
        #expect(adopted.map(\.issuedBy) == ["legacy"])
    }
}
