import Foundation
import HavenProtocol
import HavenServer
import HavenStore
import HavenTestSupport
import SwiftProtobuf
import Synchronization

/// One call of each method of the catalog against a KOL record, made fresh
/// for each call that changes something (so an allowed write in one cell
/// cannot change another cell's answer). Targets are made by KOL's director
/// and the admin; the call under test runs as the principal of the cell.
struct MethodProbes: Sendable {
    let grid: AccessGrid
    private let counter = Counter()

    final class Counter: Sendable {
        private let value = Mutex(0)
        func next() -> Int {
            self.value.withLock {
                $0 += 1
                return $0
            }
        }
    }

    private var haven: InProcessHaven { self.grid.haven }
    private func director() throws -> Principal { try self.grid.principal("director-kol") }
    private func admin() throws -> Principal { try self.grid.principal("admin") }
    private func key() -> String { "probe-\(self.counter.next())" }

    /// A fresh office code: two to eight capital letters.
    private func officeCode() -> String {
        var number = self.counter.next()
        var code = ""
        repeat {
            code.append(Character(UnicodeScalar(UInt8(65 + number % 26))))
            number /= 26
        } while number > 0
        return "Z" + code
    }

    private func freshCase() async throws -> Haven_V1_Case {
        var open = Haven_V1_OpenCaseRequest()
        open.officeCode = "KOL"
        open.category = .forcedLabour
        open.title = "Probe case (fictional)"
        open.idempotencyKey = self.key()
        var record = try await self.haven.call(MethodCatalog.CaseService.openCase, open, as: try self.director())
        var accused = Haven_V1_AddAccusedRequest()
        accused.caseID = record.id
        accused.expectedVersion = record.version
        accused.accused.name = "Accused (fictional)"
        accused.accused.role = .employer
        accused.idempotencyKey = self.key()
        record = try await self.haven.call(MethodCatalog.CaseService.addAccused, accused, as: try self.director())
        return record
    }

    /// A KOL survivor referred to partner `asha`, the referral left pending or accepted.
    private func freshSurvivor(accepted: Bool = true) async throws -> (Haven_V1_Survivor, Haven_V1_Referral) {
        var register = Haven_V1_RegisterSurvivorRequest()
        register.officeCode = "KOL"
        register.ageAtIntake = 14
        register.intakeOn = AccessGrid.date(2026, 6, 1)
        register.identity = AccessGrid.identity("probe")
        register.idempotencyKey = self.key()
        var survivor = try await self.haven.call(
            MethodCatalog.SurvivorService.registerSurvivor,
            register,
            as: try self.director()
        )
        var grant = Haven_V1_GrantConsentRequest()
        grant.survivorID = survivor.id
        grant.expectedVersion = survivor.version
        grant.consent.partnerID = self.grid.ashaID
        grant.consent.scopes = [.services]
        grant.consent.purpose = "probe (fictional)"
        grant.consent.givenBy = .guardian
        grant.consent.givenOn = AccessGrid.date(2026, 6, 1)
        survivor = try await self.haven.call(MethodCatalog.SurvivorService.grantConsent, grant, as: try self.director())
        var create = Haven_V1_CreateReferralRequest()
        create.survivorID = survivor.id
        create.partnerID = self.grid.ashaID
        create.service = .schooling
        create.note = "Probe referral (fictional)"
        create.idempotencyKey = self.key()
        var referral = try await self.haven.call(
            MethodCatalog.ReferralService.createReferral,
            create,
            as: try self.director()
        )
        if accepted {
            var accept = Haven_V1_TransitionReferralRequest()
            accept.referralID = referral.id
            accept.expectedVersion = referral.version
            referral = try await self.haven.call(
                MethodCatalog.ReferralService.acceptReferral,
                accept,
                as: try self.grid.principal("partner-asha")
            )
        }
        return (survivor, referral)
    }

    private func freshAlert() async throws -> Haven_V1_Alert {
        let record = try await self.freshCase()
        var bail = Haven_V1_AppendCaseEventRequest()
        bail.caseID = record.id
        bail.event.occurredOn = AccessGrid.date(2026, 6, 2)
        bail.event.bailGranted.accusedIds = [record.accused[0].id]
        bail.event.bailGranted.court = "Fictional Court"
        bail.idempotencyKey = self.key()
        _ = try await self.haven.call(MethodCatalog.CaseService.appendCaseEvent, bail, as: try self.director())
        var list = Haven_V1_ListAlertsRequest()
        list.officeCodes = ["KOL"]
        list.openOnly = true
        let alerts = try await self.haven.call(MethodCatalog.AlertService.listAlerts, list, as: try self.director())
        guard let alert = alerts.alerts.first(where: { $0.caseID == record.id }) else {
            throw HavenError(code: .internal, message: "probe alert not raised")
        }
        return alert
    }

    private func freshOffice() async throws -> Haven_V1_Office {
        var create = Haven_V1_CreateOfficeRequest()
        create.office.code = self.officeCode()
        create.office.name = "Probe office (fictional)"
        create.office.city = "Fictional City"
        create.office.country = "IN"
        create.office.timeZone = "Asia/Kolkata"
        create.idempotencyKey = self.key()
        return try await self.haven.call(MethodCatalog.OfficeService.createOffice, create, as: try self.admin())
    }

    /// A fresh partner organisation working with KOL, registered by the admin.
    private func freshPartner() async throws -> Haven_V1_PartnerOrganisation {
        var register = Haven_V1_RegisterPartnerRequest()
        register.partner.name = "Probe organisation (fictional)"
        register.partner.kind = .ngo
        register.partner.officeCodes = ["KOL"]
        register.idempotencyKey = self.key()
        return try await self.haven.call(MethodCatalog.PartnerService.registerPartner, register, as: try self.admin())
    }

    /// A fresh KOL caseworker account, made by the admin, and its enrolment code.
    private func freshAccount() async throws -> Haven_V1_CreateAccountResponse {
        var create = Haven_V1_CreateAccountRequest()
        create.account.id = "probe-account-\(self.counter.next())"
        create.account.displayName = "Probe caseworker (fictional)"
        create.account.role = .caseworker
        create.account.officeCodes = ["KOL"]
        return try await self.haven.call(MethodCatalog.AccountService.createAccount, create, as: try self.admin())
    }

    /// Enrols a key for `accountID` (a new code from the admin, then the
    /// enrolment); returns the certificate's serial.
    private func enrolled(_ accountID: String) async throws -> String {
        let enrollment = try await self.haven.call(
            MethodCatalog.AccountService.issueEnrollment,
            .with { $0.accountID = accountID },
            as: try self.admin()
        )
        var enroll = Haven_V1_EnrollRequest()
        enroll.code = enrollment.code
        enroll.csrDer = Data(try TestCSR.make().der)
        return try await self.haven.call(MethodCatalog.EnrollmentService.enroll, enroll, as: try self.admin())
            .credential.serial
    }

    private func transition(
        _ method: MethodDescriptor<Haven_V1_TransitionReferralRequest, Haven_V1_Referral>,
        accepted: Bool,
        as principal: Principal
    ) async throws -> StatusCode {
        let (_, referral) = try await self.freshSurvivor(accepted: accepted)
        var request = Haven_V1_TransitionReferralRequest()
        request.referralID = referral.id
        request.expectedVersion = referral.version
        request.resolution = "Probe resolution (fictional)"
        return await self.haven.code(method, request, as: principal)
    }

    /// Calls `method` as `principal` against a KOL target and returns the status code.
    func run(_ method: String, as principal: Principal) async throws -> StatusCode {
        let haven = self.haven
        switch method {
        case "haven.v1.SessionService/WhoAmI":
            return await haven.code(MethodCatalog.SessionService.whoAmI, .init(), as: principal)
        case "haven.v1.OfficeService/CreateOffice":
            var create = Haven_V1_CreateOfficeRequest()
            create.office.code = self.officeCode()
            create.office.name = "Probe office (fictional)"
            create.office.city = "Fictional City"
            create.office.country = "PH"
            create.office.timeZone = "Asia/Manila"
            create.idempotencyKey = self.key()
            return await haven.code(MethodCatalog.OfficeService.createOffice, create, as: principal)
        case "haven.v1.OfficeService/GetOffice":
            return await haven.code(MethodCatalog.OfficeService.getOffice, .with { $0.code = "KOL" }, as: principal)
        case "haven.v1.OfficeService/ListOffices":
            return await haven.code(MethodCatalog.OfficeService.listOffices, .init(), as: principal)
        case "haven.v1.OfficeService/UpdateOffice":
            let office = try await self.freshOffice()
            var update = Haven_V1_UpdateOfficeRequest()
            update.code = office.code
            update.expectedVersion = office.version
            update.name = "Renamed (fictional)"
            return await haven.code(MethodCatalog.OfficeService.updateOffice, update, as: principal)
        case "haven.v1.OfficeService/CloseOffice":
            let office = try await self.freshOffice()
            var close = Haven_V1_CloseOfficeRequest()
            close.code = office.code
            close.expectedVersion = office.version
            return await haven.code(MethodCatalog.OfficeService.closeOffice, close, as: principal)
        case "haven.v1.CaseService/OpenCase":
            var open = Haven_V1_OpenCaseRequest()
            open.officeCode = "KOL"
            open.category = .childLabour
            open.title = "Probe (fictional)"
            open.idempotencyKey = self.key()
            return await haven.code(MethodCatalog.CaseService.openCase, open, as: principal)
        case "haven.v1.CaseService/GetCase":
            return await haven.code(
                MethodCatalog.CaseService.getCase,
                .with { $0.caseID = self.grid.kolCaseID },
                as: principal
            )
        case "haven.v1.CaseService/ListCases":
            return await haven.code(
                MethodCatalog.CaseService.listCases,
                .with { $0.officeCodes = ["KOL"] },
                as: principal
            )
        case "haven.v1.CaseService/ListCaseEvents":
            return await haven.code(
                MethodCatalog.CaseService.listCaseEvents,
                .with { $0.caseID = self.grid.kolCaseID },
                as: principal
            )
        case "haven.v1.CaseService/ListAccusedHistory":
            return await haven.code(
                MethodCatalog.CaseService.listAccusedHistory,
                .with {
                    $0.caseID = self.grid.kolCaseID
                    $0.accusedID = self.grid.kolAccusedID
                },
                as: principal
            )
        case "haven.v1.CaseService/UpdateCase":
            let record = try await self.freshCase()
            var update = Haven_V1_UpdateCaseRequest()
            update.caseID = record.id
            update.expectedVersion = record.version
            update.title = "Retitled (fictional)"
            return await haven.code(MethodCatalog.CaseService.updateCase, update, as: principal)
        case "haven.v1.CaseService/UpdateCaseStatus":
            let record = try await self.freshCase()
            var update = Haven_V1_UpdateCaseStatusRequest()
            update.caseID = record.id
            update.expectedVersion = record.version
            update.status = .investigation
            update.reason = "Probe (fictional)"
            return await haven.code(MethodCatalog.CaseService.updateCaseStatus, update, as: principal)
        case "haven.v1.CaseService/AppendCaseEvent":
            let record = try await self.freshCase()
            var append = Haven_V1_AppendCaseEventRequest()
            append.caseID = record.id
            append.event.occurredOn = AccessGrid.date(2026, 6, 3)
            append.event.note.text = "Probe note (fictional)"
            append.idempotencyKey = self.key()
            return await haven.code(MethodCatalog.CaseService.appendCaseEvent, append, as: principal)
        case "haven.v1.CaseService/AddAccused":
            let record = try await self.freshCase()
            var add = Haven_V1_AddAccusedRequest()
            add.caseID = record.id
            add.expectedVersion = record.version
            add.accused.name = "Second accused (fictional)"
            add.accused.role = .recruiter
            add.idempotencyKey = self.key()
            return await haven.code(MethodCatalog.CaseService.addAccused, add, as: principal)
        case "haven.v1.CaseService/LinkSurvivor":
            let record = try await self.freshCase()
            let (survivor, _) = try await self.freshSurvivor()
            var link = Haven_V1_LinkSurvivorRequest()
            link.caseID = record.id
            link.expectedVersion = record.version
            link.survivorID = survivor.id
            return await haven.code(MethodCatalog.CaseService.linkSurvivor, link, as: principal)
        case "haven.v1.SurvivorService/RegisterSurvivor":
            var register = Haven_V1_RegisterSurvivorRequest()
            register.officeCode = "KOL"
            register.ageAtIntake = 16
            register.intakeOn = AccessGrid.date(2026, 6, 4)
            register.identity = AccessGrid.identity("probe-register")
            register.idempotencyKey = self.key()
            return await haven.code(MethodCatalog.SurvivorService.registerSurvivor, register, as: principal)
        case "haven.v1.SurvivorService/GetSurvivor":
            let (survivor, _) = try await self.freshSurvivor()
            return await haven.code(
                MethodCatalog.SurvivorService.getSurvivor,
                .with {
                    $0.survivorID = survivor.id
                    $0.includeIdentity = true
                },
                as: principal
            )
        case "haven.v1.SurvivorService/ListSurvivorServices":
            let (survivor, _) = try await self.freshSurvivor()
            var record = Haven_V1_RecordServiceRequest()
            record.survivorID = survivor.id
            record.service.kind = .counselling
            record.service.deliveredOn = AccessGrid.date(2026, 6, 5)
            record.idempotencyKey = self.key()
            _ = try await self.haven.call(MethodCatalog.SurvivorService.recordService, record, as: try self.director())
            return await haven.code(
                MethodCatalog.SurvivorService.listSurvivorServices,
                .with { $0.survivorID = survivor.id },
                as: principal
            )
        case "haven.v1.SurvivorService/ListSurvivors":
            return await haven.code(
                MethodCatalog.SurvivorService.listSurvivors,
                .with { $0.officeCodes = ["KOL"] },
                as: principal
            )
        case "haven.v1.SurvivorService/UpdateSurvivor":
            let (survivor, _) = try await self.freshSurvivor()
            var update = Haven_V1_UpdateSurvivorRequest()
            update.survivorID = survivor.id
            update.expectedVersion = survivor.version
            update.ageAtIntake = 15
            return await haven.code(MethodCatalog.SurvivorService.updateSurvivor, update, as: principal)
        case "haven.v1.SurvivorService/RecordService":
            let (survivor, _) = try await self.freshSurvivor()
            var record = Haven_V1_RecordServiceRequest()
            record.survivorID = survivor.id
            record.service.kind = .schooling
            record.service.deliveredOn = AccessGrid.date(2026, 6, 5)
            record.idempotencyKey = self.key()
            return await haven.code(MethodCatalog.SurvivorService.recordService, record, as: principal)
        case "haven.v1.SurvivorService/SetPlacement":
            let (survivor, _) = try await self.freshSurvivor()
            var placement = Haven_V1_SetPlacementRequest()
            placement.survivorID = survivor.id
            placement.expectedVersion = survivor.version
            placement.placement.homeName = "Probe home (fictional)"
            placement.placement.startedOn = AccessGrid.date(2026, 6, 5)
            return await haven.code(MethodCatalog.SurvivorService.setPlacement, placement, as: principal)
        case "haven.v1.SurvivorService/UpdateSurvivorStatus":
            let (survivor, _) = try await self.freshSurvivor()
            var update = Haven_V1_UpdateSurvivorStatusRequest()
            update.survivorID = survivor.id
            update.expectedVersion = survivor.version
            update.status = .reintegrated
            return await haven.code(MethodCatalog.SurvivorService.updateSurvivorStatus, update, as: principal)
        case "haven.v1.SurvivorService/GrantConsent":
            let (survivor, _) = try await self.freshSurvivor()
            var grant = Haven_V1_GrantConsentRequest()
            grant.survivorID = survivor.id
            grant.expectedVersion = survivor.version
            grant.consent.partnerID = self.grid.ashaID
            grant.consent.scopes = [.name]
            grant.consent.purpose = "probe (fictional)"
            grant.consent.givenBy = .survivor
            grant.consent.givenOn = AccessGrid.date(2026, 6, 5)
            return await haven.code(MethodCatalog.SurvivorService.grantConsent, grant, as: principal)
        case "haven.v1.SurvivorService/WithdrawConsent":
            let (survivor, _) = try await self.freshSurvivor()
            var withdraw = Haven_V1_WithdrawConsentRequest()
            withdraw.survivorID = survivor.id
            withdraw.expectedVersion = survivor.version
            withdraw.consentID = survivor.consents[0].id
            return await haven.code(MethodCatalog.SurvivorService.withdrawConsent, withdraw, as: principal)
        case "haven.v1.PartnerService/RegisterPartner":
            var register = Haven_V1_RegisterPartnerRequest()
            register.partner.name = "Probe partner (fictional)"
            register.partner.kind = .ngo
            register.partner.officeCodes = ["KOL"]
            register.idempotencyKey = self.key()
            return await haven.code(MethodCatalog.PartnerService.registerPartner, register, as: principal)
        case "haven.v1.PartnerService/UpdatePartner":
            let partner = try await self.freshPartner()
            var update = Haven_V1_UpdatePartnerRequest()
            update.partnerID = partner.id
            update.expectedVersion = partner.version
            update.contact = "office@probe.example (fictional)"
            return await haven.code(MethodCatalog.PartnerService.updatePartner, update, as: principal)
        case "haven.v1.PartnerService/DeactivatePartner":
            let partner = try await self.freshPartner()
            var deactivate = Haven_V1_SetPartnerActiveRequest()
            deactivate.partnerID = partner.id
            deactivate.expectedVersion = partner.version
            return await haven.code(MethodCatalog.PartnerService.deactivatePartner, deactivate, as: principal)
        case "haven.v1.PartnerService/ReactivatePartner":
            var partner = try await self.freshPartner()
            var deactivate = Haven_V1_SetPartnerActiveRequest()
            deactivate.partnerID = partner.id
            deactivate.expectedVersion = partner.version
            partner = try await haven.call(
                MethodCatalog.PartnerService.deactivatePartner,
                deactivate,
                as: try self.admin()
            )
            deactivate.expectedVersion = partner.version
            return await haven.code(MethodCatalog.PartnerService.reactivatePartner, deactivate, as: principal)
        case "haven.v1.PartnerService/GetPartner":
            return await haven.code(
                MethodCatalog.PartnerService.getPartner,
                .with { $0.partnerID = self.grid.ashaID },
                as: principal
            )
        case "haven.v1.PartnerService/ListPartners":
            return await haven.code(MethodCatalog.PartnerService.listPartners, .init(), as: principal)
        case "haven.v1.ReferralService/CreateReferral":
            let (survivor, _) = try await self.freshSurvivor()
            var create = Haven_V1_CreateReferralRequest()
            create.survivorID = survivor.id
            create.partnerID = self.grid.ashaID
            create.service = .legalAid
            create.idempotencyKey = self.key()
            return await haven.code(MethodCatalog.ReferralService.createReferral, create, as: principal)
        case "haven.v1.ReferralService/GetReferral":
            let (_, referral) = try await self.freshSurvivor()
            return await haven.code(
                MethodCatalog.ReferralService.getReferral,
                .with { $0.referralID = referral.id },
                as: principal
            )
        case "haven.v1.ReferralService/ListReferrals":
            return await haven.code(MethodCatalog.ReferralService.listReferrals, .init(), as: principal)
        case "haven.v1.ReferralService/AcceptReferral":
            return try await self.transition(
                MethodCatalog.ReferralService.acceptReferral,
                accepted: false,
                as: principal
            )
        case "haven.v1.ReferralService/DeclineReferral":
            return try await self.transition(
                MethodCatalog.ReferralService.declineReferral,
                accepted: false,
                as: principal
            )
        case "haven.v1.ReferralService/CompleteReferral":
            return try await self.transition(
                MethodCatalog.ReferralService.completeReferral,
                accepted: true,
                as: principal
            )
        case "haven.v1.ReferralService/RevokeReferral":
            return try await self.transition(
                MethodCatalog.ReferralService.revokeReferral,
                accepted: true,
                as: principal
            )
        case "haven.v1.AlertService/ListAlerts":
            return await haven.code(
                MethodCatalog.AlertService.listAlerts,
                .with { $0.officeCodes = ["KOL"] },
                as: principal
            )
        case "haven.v1.AlertService/AcknowledgeAlert":
            let alert = try await self.freshAlert()
            var acknowledge = Haven_V1_AcknowledgeAlertRequest()
            acknowledge.alertID = alert.id
            acknowledge.expectedVersion = alert.version
            acknowledge.acknowledgement = "Probe acknowledgement (fictional)"
            return await haven.code(MethodCatalog.AlertService.acknowledgeAlert, acknowledge, as: principal)
        case "haven.v1.FeedService/Subscribe":
            var subscribe = Haven_V1_SubscribeRequest()
            subscribe.start = .beginning
            do {
                _ = try await haven.collect(MethodCatalog.FeedService.subscribe, subscribe, as: principal)
                return .ok
            } catch let error as HavenError {
                return error.code.statusCode
            }
        case "haven.v1.ReportService/GetOfficeReport":
            var report = Haven_V1_GetOfficeReportRequest()
            report.officeCode = "KOL"
            report.period.firstDay = AccessGrid.date(2026, 1, 1)
            report.period.lastDay = AccessGrid.date(2026, 12, 31)
            return await haven.code(MethodCatalog.ReportService.getOfficeReport, report, as: principal)
        case "haven.v1.SurvivorService/EraseSurvivor":
            let (survivor, _) = try await self.freshSurvivor()
            var erase = Haven_V1_EraseSurvivorRequest()
            erase.survivorID = survivor.id
            erase.expectedVersion = survivor.version
            erase.reason = "Probe erasure (fictional)"
            return await haven.code(MethodCatalog.SurvivorService.eraseSurvivor, erase, as: principal)
        case "haven.v1.OfficeService/PreviewRetention":
            return await haven.code(
                MethodCatalog.OfficeService.previewRetention,
                .with { $0.officeCode = "KOL" },
                as: principal
            )
        case "haven.v1.OfficeService/RotateKeys":
            return await haven.code(
                MethodCatalog.OfficeService.rotateKeys,
                .with { $0.officeCodes = ["KOL"] },
                as: principal
            )
        case "haven.v1.AuditService/ListAuditEntries":
            return await haven.code(MethodCatalog.AuditService.listAuditEntries, .init(), as: principal)
        case "haven.v1.AuditService/VerifyAuditChain":
            do {
                let progress = try await haven.collect(
                    MethodCatalog.AuditService.verifyAuditChain,
                    .init(),
                    as: principal
                )
                guard progress.last?.verdict.intact == true else {
                    throw HavenError(
                        code: .internal,
                        message: "the grid's chain does not verify: \(progress.last?.verdict.problem ?? "no verdict")"
                    )
                }
                return .ok
            } catch let error as HavenError where error.code != .internal {
                return error.code.statusCode
            }
        case "haven.v1.AuditService/ListCheckpoints":
            return await haven.code(MethodCatalog.AuditService.listCheckpoints, .init(), as: principal)
        case "haven.v1.AuditService/SignCheckpoint":
            return await haven.code(MethodCatalog.AuditService.signCheckpoint, .init(), as: principal)
        case "haven.v1.AccountService/CreateAccount":
            var create = Haven_V1_CreateAccountRequest()
            create.account.id = "probe-new-\(self.counter.next())"
            create.account.displayName = "Probe partner (fictional)"
            create.account.role = .caseworker
            create.account.officeCodes = ["KOL"]
            return await haven.code(MethodCatalog.AccountService.createAccount, create, as: principal)
        case "haven.v1.AccountService/GetAccount":
            return await haven.code(
                MethodCatalog.AccountService.getAccount,
                .with { $0.accountID = "worker-kol" },
                as: principal
            )
        case "haven.v1.AccountService/ListAccounts":
            return await haven.code(MethodCatalog.AccountService.listAccounts, .init(), as: principal)
        case "haven.v1.AccountService/UpdateAccount":
            let account = try await self.freshAccount().account
            var update = Haven_V1_UpdateAccountRequest()
            update.accountID = account.id
            update.displayName = "Probe caseworker, renamed (fictional)"
            return await haven.code(MethodCatalog.AccountService.updateAccount, update, as: principal)
        case "haven.v1.AccountService/DisableAccount":
            let account = try await self.freshAccount().account
            return await haven.code(
                MethodCatalog.AccountService.disableAccount,
                .with { $0.accountID = account.id },
                as: principal
            )
        case "haven.v1.AccountService/EnableAccount":
            let account = try await self.freshAccount().account
            _ = try await haven.call(
                MethodCatalog.AccountService.disableAccount,
                .with { $0.accountID = account.id },
                as: try self.admin()
            )
            return await haven.code(
                MethodCatalog.AccountService.enableAccount,
                .with { $0.accountID = account.id },
                as: principal
            )
        case "haven.v1.AccountService/IssueEnrollment":
            let account = try await self.freshAccount().account
            return await haven.code(
                MethodCatalog.AccountService.issueEnrollment,
                .with { $0.accountID = account.id },
                as: principal
            )
        case "haven.v1.AccountService/RevokeCredential":
            let serial = try await self.enrolled(try await self.freshAccount().account.id)
            return await haven.code(
                MethodCatalog.AccountService.revokeCredential,
                .with { $0.serial = serial },
                as: principal
            )
        case "haven.v1.EnrollmentService/Enroll":
            let created = try await self.freshAccount()
            var enroll = Haven_V1_EnrollRequest()
            enroll.code = created.enrollment.code
            enroll.csrDer = Data(try TestCSR.make().der)
            return await haven.code(MethodCatalog.EnrollmentService.enroll, enroll, as: principal)
        case "haven.v1.EnrollmentService/RenewCredential":
            // Every principal renews its own certificate: the connection's, bound to its account.
            var holder = principal
            holder.credentialSerial = try await self.enrolled(principal.id)
            var renew = Haven_V1_RenewCredentialRequest()
            renew.csrDer = Data(try TestCSR.make().der)
            return await haven.code(MethodCatalog.EnrollmentService.renewCredential, renew, as: holder)
        case "haven.v1.OperationsService/GetServerStatus":
            return await haven.code(MethodCatalog.OperationsService.getServerStatus, .init(), as: principal)
        case "haven.v1.OperationsService/CreateBackup":
            do {
                _ = try await haven.collect(MethodCatalog.OperationsService.createBackup, .init(), as: principal)
                return .ok
            } catch let error as HavenError {
                return error.code.statusCode
            }
        default:
            throw HavenError(code: .unimplemented, message: "no probe for \(method)")
        }
    }
}
