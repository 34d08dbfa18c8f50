import Foundation
import HavenProtocol
import HavenServer
import HavenStore
import HavenTestSupport
import SwiftProtobuf

/// The states a survivor's referral to the partner can be in, for the grid.
enum ReferralState: String, CaseIterable, Sendable {
    case none, pending, accepted, declined, completed, revoked
}

/// The states of a survivor's consent for the partner, for the grid.
enum ConsentState: Hashable, Sendable, CustomStringConvertible {
    case none
    case withdrawn
    case expired
    case inForce(Haven_V1_ConsentScope)

    static let all: [ConsentState] =
        [.none, .withdrawn, .expired]
        + [.name, .dateOfBirth, .contacts, .addresses, .services, .placement, .cases, .demographics].map {
            .inForce($0)
        }

    var description: String {
        switch self {
        case .none: "none"
        case .withdrawn: "withdrawn"
        case .expired: "expired"
        case .inForce(let scope): "in-force-\(scope)"
        }
    }
}

/// One survivor of the grid: its referral and consent state for partner `asha`.
struct GridSurvivor: Sendable {
    var referral: ReferralState
    var consent: ConsentState
    var id: String
    var referralID: String?
    /// The idempotency key director-kol registered it with.
    var registerKey: String
    /// The idempotency key partner-asha recorded a service with, while its referral was accepted.
    var partnerServiceKey: String?
}

/// A deployment in process with offices KOL and MNL, partners `asha` (the
/// one survivors are referred to) and `other`, accounts for every role, and a
/// survivor in KOL for every referral state × consent state, each with a
/// placement, a service, a case link, a flag from a bail alert, and a full
/// fictional identity. MNL has its own case and survivor.
final class AccessGrid: Sendable {
    let haven: InProcessHaven
    let survivors: [GridSurvivor]
    let kolCaseID: String
    /// The KOL case's accused.
    let kolAccusedID: String
    let mnlSurvivorID: String
    let ashaID: String
    let otherPartnerID: String

    static let staffAccounts: [Account] = [
        Account(id: "admin", displayName: "Admin (fictional)", role: .admin, createdAtUnixMs: 1),
        Account(
            id: "director-kol",
            displayName: "D K (fictional)",
            role: .director,
            officeCodes: ["KOL"],
            createdAtUnixMs: 1
        ),
        Account(
            id: "director-mnl",
            displayName: "D M (fictional)",
            role: .director,
            officeCodes: ["MNL"],
            createdAtUnixMs: 1
        ),
        Account(
            id: "worker-kol",
            displayName: "W K (fictional)",
            role: .caseworker,
            officeCodes: ["KOL"],
            createdAtUnixMs: 1
        ),
        Account(
            id: "worker-mnl",
            displayName: "W M (fictional)",
            role: .caseworker,
            officeCodes: ["MNL"],
            createdAtUnixMs: 1
        ),
        Account(id: "auditor", displayName: "Auditor (fictional)", role: .auditor, createdAtUnixMs: 1),
    ]

    static func date(_ year: Int32, _ month: Int32, _ day: Int32) -> Haven_V1_CivilDate {
        .with {
            $0.year = year
            $0.month = month
            $0.day = day
        }
    }

    static func address(_ line: String) -> Haven_V1_Address {
        .with {
            $0.lines = [line]
            $0.city = "Fictional City"
            $0.country = "IN"
        }
    }

    /// A complete fictional identity: every field set.
    static func identity(_ label: String) -> Haven_V1_SurvivorIdentity {
        .with {
            $0.legalName = "Fictional Person \(label)"
            $0.otherNames = ["Nickname \(label)"]
            $0.dateOfBirth = date(2011, 6, 1)
            $0.gender = "female"
            $0.nationality = "IN"
            $0.languages = ["bn", "hi"]
            $0.contacts = [
                .with {
                    $0.label = "guardian mobile"
                    $0.value = "+91 00000 00000"
                }
            ]
            $0.homeAddress = address("1 Fictional Lane")
            $0.currentAddress = address("2 Fictional Home")
            $0.notes = "Fictional notes \(label)"
        }
    }

    func principal(_ id: String) throws -> Principal { try self.haven.principal(id) }

    static func build() async throws -> AccessGrid {
        let haven = try InProcessHaven(accounts: Self.staffAccounts)
        let admin = try haven.principal("admin")
        for (code, country, zone) in [("KOL", "IN", "Asia/Kolkata"), ("MNL", "PH", "Asia/Manila")] {
            var office = Haven_V1_CreateOfficeRequest()
            office.office.code = code
            office.office.name = "\(code) office (fictional)"
            office.office.city = "Fictional City"
            office.office.country = country
            office.office.timeZone = zone
            office.idempotencyKey = "office-\(code)"
            _ = try await haven.call(MethodCatalog.OfficeService.createOffice, office, as: admin)
        }
        var partnerIDs: [String] = []
        for name in ["Asha Home (fictional)", "Other NGO (fictional)"] {
            var partner = Haven_V1_RegisterPartnerRequest()
            partner.partner.name = name
            partner.partner.kind = .aftercareHome
            partner.partner.officeCodes = ["KOL", "MNL"]
            partner.partner.services = [.counselling, .schooling]
            partner.idempotencyKey = "partner-\(name)"
            partnerIDs.append(try await haven.call(MethodCatalog.PartnerService.registerPartner, partner, as: admin).id)
        }
        try haven.store.auditedSynchronously { tx in
            try tx.saveAccount(
                Account(
                    id: "partner-asha",
                    displayName: "Asha (fictional)",
                    role: .partner,
                    partnerID: partnerIDs[0],
                    createdAtUnixMs: 1
                )
            )
            try tx.saveAccount(
                Account(
                    id: "partner-other",
                    displayName: "Other (fictional)",
                    role: .partner,
                    partnerID: partnerIDs[1],
                    createdAtUnixMs: 1
                )
            )
        }
        let director = try haven.principal("director-kol")
        let asha = try haven.principal("partner-asha")

        var open = Haven_V1_OpenCaseRequest()
        open.officeCode = "KOL"
        open.category = .sexTrafficking
        open.title = "Raid, fictional lane"
        open.idempotencyKey = "case-kol"
        var kolCase = try await haven.call(MethodCatalog.CaseService.openCase, open, as: director)
        var accused = Haven_V1_AddAccusedRequest()
        accused.caseID = kolCase.id
        accused.expectedVersion = kolCase.version
        accused.accused.name = "Accused (fictional)"
        accused.accused.role = .brothelKeeper
        accused.idempotencyKey = "accused-kol"
        kolCase = try await haven.call(MethodCatalog.CaseService.addAccused, accused, as: director)

        var survivors: [GridSurvivor] = []
        for referral in ReferralState.allCases {
            for consent in ConsentState.all {
                let label = "\(referral.rawValue)-\(consent)"
                var register = Haven_V1_RegisterSurvivorRequest()
                register.officeCode = "KOL"
                register.ageAtIntake = 15
                register.intakeOn = date(2026, 3, 14)
                register.identity = identity(label)
                register.idempotencyKey = "register-\(label)"
                var survivor = try await haven.call(
                    MethodCatalog.SurvivorService.registerSurvivor,
                    register,
                    as: director
                )
                var entry = GridSurvivor(
                    referral: referral,
                    consent: consent,
                    id: survivor.id,
                    registerKey: register.idempotencyKey
                )

                var placement = Haven_V1_SetPlacementRequest()
                placement.survivorID = survivor.id
                placement.expectedVersion = survivor.version
                placement.placement.homeName = "Fictional Home"
                placement.placement.startedOn = date(2026, 3, 15)
                survivor = try await haven.call(MethodCatalog.SurvivorService.setPlacement, placement, as: director)
                var service = Haven_V1_RecordServiceRequest()
                service.survivorID = survivor.id
                service.service.kind = .counselling
                service.service.deliveredOn = date(2026, 3, 16)
                service.idempotencyKey = "service-\(label)"
                survivor = try await haven.call(MethodCatalog.SurvivorService.recordService, service, as: director)
                var link = Haven_V1_LinkSurvivorRequest()
                link.caseID = kolCase.id
                link.expectedVersion = kolCase.version
                link.survivorID = survivor.id
                kolCase = try await haven.call(MethodCatalog.CaseService.linkSurvivor, link, as: director)
                survivor = try await haven.call(
                    MethodCatalog.SurvivorService.getSurvivor,
                    .with { $0.survivorID = survivor.id },
                    as: director
                )

                func grant(_ scopes: [Haven_V1_ConsentScope], expiresAt: Int64 = 0) async throws {
                    var grant = Haven_V1_GrantConsentRequest()
                    grant.survivorID = survivor.id
                    grant.expectedVersion = survivor.version
                    grant.consent.partnerID = partnerIDs[0]
                    grant.consent.scopes = scopes
                    grant.consent.purpose = "aftercare (fictional)"
                    grant.consent.givenBy = .survivor
                    grant.consent.givenOn = date(2026, 3, 16)
                    grant.consent.expiresAtUnixMs = expiresAt
                    survivor = try await haven.call(MethodCatalog.SurvivorService.grantConsent, grant, as: director)
                }
                let everyScope: [Haven_V1_ConsentScope] = [
                    .name, .dateOfBirth, .contacts, .addresses, .services, .placement, .cases, .demographics,
                ]
                switch consent {
                case .none: break
                case .withdrawn:
                    try await grant(everyScope)
                    var withdraw = Haven_V1_WithdrawConsentRequest()
                    withdraw.survivorID = survivor.id
                    withdraw.expectedVersion = survivor.version
                    withdraw.consentID = survivor.consents[0].id
                    survivor = try await haven.call(
                        MethodCatalog.SurvivorService.withdrawConsent,
                        withdraw,
                        as: director
                    )
                case .expired:
                    let inAnHour = Int64(haven.now.timeIntervalSince1970 * 1000) + 3_600_000
                    try await grant(everyScope, expiresAt: inAnHour)
                case .inForce(let scope):
                    try await grant([scope])
                }

                if referral != .none {
                    var create = Haven_V1_CreateReferralRequest()
                    create.survivorID = survivor.id
                    create.partnerID = partnerIDs[0]
                    create.service = .counselling
                    create.note = "Needs counselling (fictional)"
                    create.idempotencyKey = "referral-\(label)"
                    var made = try await haven.call(MethodCatalog.ReferralService.createReferral, create, as: director)
                    entry.referralID = made.id
                    func move(
                        _ method: MethodDescriptor<Haven_V1_TransitionReferralRequest, Haven_V1_Referral>,
                        as principal: Principal
                    ) async throws {
                        var transition = Haven_V1_TransitionReferralRequest()
                        transition.referralID = made.id
                        transition.expectedVersion = made.version
                        transition.resolution = "Resolution (fictional)"
                        made = try await haven.call(method, transition, as: principal)
                    }
                    if [.accepted, .completed, .revoked].contains(referral) {
                        try await move(MethodCatalog.ReferralService.acceptReferral, as: asha)
                        var delivered = Haven_V1_RecordServiceRequest()
                        delivered.survivorID = survivor.id
                        delivered.service.kind = .counselling
                        delivered.service.deliveredOn = date(2026, 3, 20)
                        delivered.idempotencyKey = "partner-service-\(label)"
                        _ = try await haven.call(MethodCatalog.SurvivorService.recordService, delivered, as: asha)
                        entry.partnerServiceKey = delivered.idempotencyKey
                    }
                    switch referral {
                    case .declined: try await move(MethodCatalog.ReferralService.declineReferral, as: asha)
                    case .completed: try await move(MethodCatalog.ReferralService.completeReferral, as: asha)
                    case .revoked: try await move(MethodCatalog.ReferralService.revokeReferral, as: director)
                    case .none, .pending, .accepted: break
                    }
                }
                survivors.append(entry)
            }
        }

        // Bail for the accused: an alert that flags every linked survivor.
        var bail = Haven_V1_AppendCaseEventRequest()
        bail.caseID = kolCase.id
        bail.event.occurredOn = date(2026, 4, 1)
        bail.event.bailGranted.accusedIds = [kolCase.accused[0].id]
        bail.event.bailGranted.court = "Fictional Court"
        bail.idempotencyKey = "bail-kol"
        _ = try await haven.call(MethodCatalog.CaseService.appendCaseEvent, bail, as: director)

        let directorMNL = try haven.principal("director-mnl")
        var mnl = Haven_V1_RegisterSurvivorRequest()
        mnl.officeCode = "MNL"
        mnl.ageAtIntake = 12
        mnl.intakeOn = date(2026, 5, 2)
        mnl.identity = identity("MNL")
        mnl.idempotencyKey = "register-mnl"
        let mnlSurvivor = try await haven.call(MethodCatalog.SurvivorService.registerSurvivor, mnl, as: directorMNL)

        // Two hours later: the consents granted "for an hour" have lapsed.
        haven.advance(by: 2 * 3600)
        return AccessGrid(
            haven: haven,
            survivors: survivors,
            kolCaseID: kolCase.id,
            kolAccusedID: kolCase.accused[0].id,
            mnlSurvivorID: mnlSurvivor.id,
            ashaID: partnerIDs[0],
            otherPartnerID: partnerIDs[1]
        )
    }

    private init(
        haven: InProcessHaven,
        survivors: [GridSurvivor],
        kolCaseID: String,
        kolAccusedID: String,
        mnlSurvivorID: String,
        ashaID: String,
        otherPartnerID: String
    ) {
        self.haven = haven
        self.survivors = survivors
        self.kolCaseID = kolCaseID
        self.kolAccusedID = kolAccusedID
        self.mnlSurvivorID = mnlSurvivorID
        self.ashaID = ashaID
        self.otherPartnerID = otherPartnerID
    }
}

/// The top-level fields a message carries (proto names; fields at their default are absent).
func presentFields(_ message: some SwiftProtobuf.Message) -> Set<String> {
    var options = JSONEncodingOptions()
    options.preserveProtoFieldNames = true
    guard let data = try? message.jsonUTF8Data(options: options),
        let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
    else { return [] }
    return Set(object.keys)
}
