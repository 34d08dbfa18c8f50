import Foundation
import HavenProtocol
import HavenServer
import HavenStore
import HavenTestSupport
import Logging
import NIOCore
import SwiftProtobuf
import Synchronization
import Testing
import X509

/// The access grid: every method of the catalog for every kind of principal,
/// and every path to a survivor (direct, list, feed live, feed replayed,
/// idempotent replay) for every role × office × referral state × consent
/// state. The expectations are written here as data, from docs/SECURITY.md's
/// policy table, not derived from the code under test. Runs in process
/// (router, policy, writer and store, without sockets).
@Suite("Access grid")
struct AccessGridTests {
    /// The principals of the grid, relative to the KOL records the cells target.
    enum Who: String, CaseIterable, Sendable {
        case admin
        case directorOwn = "director-kol"
        case directorOther = "director-mnl"
        case workerOwn = "worker-kol"
        case workerOther = "worker-mnl"
        case partner = "partner-asha"
        case otherPartner = "partner-other"
        case auditor
    }

    // MARK: The policy, as data

    private static let OK = StatusCode.ok
    private static let NF = StatusCode.notFound
    private static let PD = StatusCode.permissionDenied

    /// Method → outcome for each principal, in `Who.allCases` order: admin,
    /// director KOL, director MNL, caseworker KOL, caseworker MNL, partner the
    /// KOL survivor is referred to (accepted), another partner, auditor.
    static let methods: [String: [StatusCode]] = [
        "haven.v1.SessionService/WhoAmI": [OK, OK, OK, OK, OK, OK, OK, OK],
        "haven.v1.OfficeService/CreateOffice": [OK, PD, PD, PD, PD, PD, PD, PD],
        "haven.v1.OfficeService/GetOffice": [OK, OK, NF, OK, NF, NF, NF, NF],
        "haven.v1.OfficeService/ListOffices": [OK, OK, OK, OK, OK, PD, PD, PD],
        "haven.v1.OfficeService/UpdateOffice": [OK, PD, PD, PD, PD, PD, PD, PD],
        "haven.v1.OfficeService/CloseOffice": [OK, PD, PD, PD, PD, PD, PD, PD],
        "haven.v1.CaseService/OpenCase": [PD, OK, PD, OK, PD, PD, PD, PD],
        "haven.v1.CaseService/GetCase": [NF, OK, NF, OK, NF, NF, NF, NF],
        "haven.v1.CaseService/ListCases": [PD, OK, PD, OK, PD, PD, PD, PD],
        "haven.v1.CaseService/ListCaseEvents": [NF, OK, NF, OK, NF, NF, NF, NF],
        "haven.v1.CaseService/ListAccusedHistory": [NF, OK, NF, OK, NF, NF, NF, NF],
        "haven.v1.CaseService/UpdateCase": [NF, OK, NF, OK, NF, NF, NF, NF],
        "haven.v1.CaseService/UpdateCaseStatus": [NF, OK, NF, OK, NF, NF, NF, NF],
        "haven.v1.CaseService/AppendCaseEvent": [NF, OK, NF, OK, NF, NF, NF, NF],
        "haven.v1.CaseService/AddAccused": [NF, OK, NF, OK, NF, NF, NF, NF],
        "haven.v1.CaseService/LinkSurvivor": [NF, OK, NF, OK, NF, NF, NF, NF],
        "haven.v1.SurvivorService/RegisterSurvivor": [PD, OK, PD, OK, PD, PD, PD, PD],
        "haven.v1.SurvivorService/GetSurvivor": [NF, OK, NF, OK, NF, OK, NF, NF],
        "haven.v1.SurvivorService/ListSurvivors": [PD, OK, PD, OK, PD, OK, OK, PD],
        // The probe's survivor consented to share its services with the partner.
        "haven.v1.SurvivorService/ListSurvivorServices": [NF, OK, NF, OK, NF, OK, NF, NF],
        "haven.v1.SurvivorService/UpdateSurvivor": [NF, OK, NF, OK, NF, PD, NF, NF],
        "haven.v1.SurvivorService/RecordService": [NF, OK, NF, OK, NF, OK, NF, NF],
        "haven.v1.SurvivorService/SetPlacement": [NF, OK, NF, OK, NF, PD, NF, NF],
        "haven.v1.SurvivorService/UpdateSurvivorStatus": [NF, OK, NF, OK, NF, PD, NF, NF],
        "haven.v1.SurvivorService/GrantConsent": [NF, OK, NF, OK, NF, PD, NF, NF],
        "haven.v1.SurvivorService/WithdrawConsent": [NF, OK, NF, OK, NF, PD, NF, NF],
        "haven.v1.PartnerService/RegisterPartner": [OK, PD, PD, PD, PD, PD, PD, PD],
        "haven.v1.PartnerService/GetPartner": [OK, OK, OK, OK, OK, OK, NF, NF],
        "haven.v1.PartnerService/ListPartners": [OK, OK, OK, OK, OK, PD, PD, PD],
        "haven.v1.PartnerService/UpdatePartner": [OK, PD, PD, PD, PD, PD, PD, PD],
        "haven.v1.PartnerService/DeactivatePartner": [OK, PD, PD, PD, PD, PD, PD, PD],
        "haven.v1.PartnerService/ReactivatePartner": [OK, PD, PD, PD, PD, PD, PD, PD],
        "haven.v1.ReferralService/CreateReferral": [NF, OK, NF, OK, NF, PD, NF, NF],
        "haven.v1.ReferralService/GetReferral": [NF, OK, NF, OK, NF, OK, NF, NF],
        "haven.v1.ReferralService/ListReferrals": [PD, OK, OK, OK, OK, OK, OK, PD],
        "haven.v1.ReferralService/AcceptReferral": [NF, PD, NF, PD, NF, OK, NF, NF],
        "haven.v1.ReferralService/DeclineReferral": [NF, PD, NF, PD, NF, OK, NF, NF],
        "haven.v1.ReferralService/CompleteReferral": [NF, PD, NF, PD, NF, OK, NF, NF],
        "haven.v1.ReferralService/RevokeReferral": [NF, OK, NF, OK, NF, PD, NF, NF],
        "haven.v1.AlertService/ListAlerts": [PD, OK, PD, OK, PD, PD, PD, PD],
        "haven.v1.AlertService/AcknowledgeAlert": [NF, OK, NF, OK, NF, NF, NF, NF],
        "haven.v1.FeedService/Subscribe": [OK, OK, OK, OK, OK, OK, OK, PD],
        "haven.v1.ReportService/GetOfficeReport": [OK, OK, PD, PD, PD, PD, PD, PD],
        "haven.v1.SurvivorService/EraseSurvivor": [NF, OK, NF, PD, NF, PD, NF, NF],
        "haven.v1.OfficeService/PreviewRetention": [OK, OK, PD, PD, PD, PD, PD, PD],
        "haven.v1.OfficeService/RotateKeys": [OK, PD, PD, PD, PD, PD, PD, PD],
        "haven.v1.AuditService/ListAuditEntries": [PD, PD, PD, PD, PD, PD, PD, OK],
        "haven.v1.AuditService/VerifyAuditChain": [PD, PD, PD, PD, PD, PD, PD, OK],
        "haven.v1.AuditService/ListCheckpoints": [PD, PD, PD, PD, PD, PD, PD, OK],
        "haven.v1.AuditService/SignCheckpoint": [PD, PD, PD, PD, PD, PD, PD, OK],
        "haven.v1.AccountService/CreateAccount": [OK, PD, PD, PD, PD, PD, PD, PD],
        "haven.v1.AccountService/GetAccount": [OK, PD, PD, PD, PD, PD, PD, PD],
        "haven.v1.AccountService/ListAccounts": [OK, PD, PD, PD, PD, PD, PD, PD],
        "haven.v1.AccountService/UpdateAccount": [OK, PD, PD, PD, PD, PD, PD, PD],
        "haven.v1.AccountService/DisableAccount": [OK, PD, PD, PD, PD, PD, PD, PD],
        "haven.v1.AccountService/EnableAccount": [OK, PD, PD, PD, PD, PD, PD, PD],
        "haven.v1.AccountService/IssueEnrollment": [OK, PD, PD, PD, PD, PD, PD, PD],
        "haven.v1.AccountService/RevokeCredential": [OK, PD, PD, PD, PD, PD, PD, PD],
        // The code is the credential: whoever holds one enrols its account.
        "haven.v1.EnrollmentService/Enroll": [OK, OK, OK, OK, OK, OK, OK, OK],
        // Every principal renews its own certificate.
        "haven.v1.EnrollmentService/RenewCredential": [OK, OK, OK, OK, OK, OK, OK, OK],
        "haven.v1.OperationsService/GetServerStatus": [OK, PD, PD, PD, PD, PD, PD, PD],
        "haven.v1.OperationsService/CreateBackup": [OK, PD, PD, PD, PD, PD, PD, PD],
    ]

    /// Methods whose success is audited: every write, every identity read
    /// (the GetSurvivor probe asks for the identity), every administrative action.
    static let auditedOnSuccess: Set<String> = Set(
        MethodCatalog.all.map(\.fullName).filter { name in
            let method = name.split(separator: "/").last.map(String.init) ?? ""
            let reads = ["Get", "List", "WhoAmI", "Subscribe", "Verify", "Preview", "Sign"]
            return !reads.contains { method.hasPrefix($0) }
        }
    ).union(["haven.v1.SurvivorService/GetSurvivor"])

    /// Reads by a partner that are audited when (and only when) what they
    /// return carries fields consent opened to it.
    static let auditedWhenConsented: Set<String> = [
        "haven.v1.SurvivorService/ListSurvivors", "haven.v1.SurvivorService/ListSurvivorServices",
        "haven.v1.FeedService/Subscribe",
    ]

    /// Fields of a survivor every reader who sees it at all sees.
    static let baseFields: Set<String> = [
        "id", "code", "office_code", "version", "age_at_intake", "minor_at_intake", "intake_on", "status",
        "created_at_unix_ms", "updated_at_unix_ms",
    ]
    /// Record fields a consent scope opens to the partner.
    static let scopeFields: [Haven_V1_ConsentScope: Set<String>] = [
        .services: ["services", "service_count"], .placement: ["placements"], .cases: ["case_ids"],
    ]
    /// Identity fields a consent scope opens to the partner (notes: never).
    static let scopeIdentity: [Haven_V1_ConsentScope: Set<String>] = [
        .name: ["legal_name", "other_names"], .dateOfBirth: ["date_of_birth"],
        .demographics: ["gender", "nationality", "languages"], .contacts: ["contacts"],
        .addresses: ["home_address", "current_address"],
    ]
    static let allIdentity: Set<String> = [
        "legal_name", "other_names", "date_of_birth", "gender", "nationality", "languages", "contacts",
        "home_address", "current_address", "notes",
    ]
    /// Referral states under which the partner sees the survivor.
    static let liveReferrals: Set<ReferralState> = [.pending, .accepted, .completed]

    /// What `who` may see of a KOL survivor of the grid.
    enum Expectation: Equatable {
        case hidden
        case visible(fields: Set<String>, identity: Set<String>, withheld: Set<String>)
    }

    static func expected(_ who: Who, _ survivor: GridSurvivor) -> Expectation {
        let consents: Set<String> = survivor.consent == .none ? [] : ["consents"]
        switch who {
        case .directorOwn, .workerOwn:
            return .visible(
                fields: baseFields.union(["placements", "services", "service_count", "case_ids", "flags"])
                    .union(consents),
                identity: allIdentity,
                withheld: []
            )
        case .partner:
            guard liveReferrals.contains(survivor.referral) else { return .hidden }
            let scopes: [Haven_V1_ConsentScope] = if case .inForce(let scope) = survivor.consent { [scope] } else { [] }
            let identity = scopes.reduce(into: Set<String>()) { $0.formUnion(scopeIdentity[$1] ?? []) }
            return .visible(
                fields: scopes.reduce(baseFields.union(consents)) { $0.union(scopeFields[$1] ?? []) },
                identity: identity,
                withheld: allIdentity.subtracting(identity)
            )
        case .admin, .directorOther, .workerOther, .otherPartner, .auditor:
            return .hidden
        }
    }

    // MARK: The grid

    /// Counts the cells checked, for the closing figure.
    final class Cells: Sendable {
        private let count = Mutex(0)
        func add(_ n: Int = 1) { self.count.withLock { $0 += n } }
        var total: Int { self.count.withLock { $0 } }
    }

    @Test("every method of the catalog, for every kind of principal, answers as the policy table says")
    func methodGrid() async throws {
        let grid = try await AccessGrid.build()
        #expect(Set(Self.methods.keys) == Set(MethodCatalog.all.map(\.fullName)), "the table covers the catalog")
        let probes = MethodProbes(grid: grid)
        var checked = 0
        var audited = 0
        for method in MethodCatalog.all {
            let expected = try #require(Self.methods[method.fullName])
            for (index, who) in Who.allCases.enumerated() {
                let principal = try grid.principal(who.rawValue)
                let outcome = try await probes.run(method.fullName, as: principal)
                #expect(outcome == expected[index], "\(method.fullName) as \(who.rawValue)")
                checked += 1
                // The probed call is the last one made: its entries, and only its.
                let entries = try await grid.haven.auditEntries(ofCall: grid.haven.lastCallID)
                let cell = "\(method.fullName) as \(who.rawValue)"
                if outcome != .ok {
                    #expect(entries.count == 1, "a refusal is audited once: \(cell)")
                    #expect(entries.first?.outcome.rawValue == outcome.rawValue, "\(cell)")
                    #expect(entries.first?.principalID == principal.id, "\(cell)")
                } else if Self.auditedOnSuccess.contains(method.fullName) {
                    #expect(entries.count == 1, "an audited action has exactly one entry: \(cell)")
                    #expect(entries.first?.outcome == .ok, "\(cell)")
                    #expect(entries.first?.action == method.fullName, "\(cell)")
                } else if Self.auditedWhenConsented.contains(method.fullName), who == .partner || who == .otherPartner {
                    #expect(
                        entries.allSatisfy { $0.resources.allSatisfy { $0.disclosed == "consented" } },
                        "\(cell)"
                    )
                    #expect(method.kind == .serverStreaming || entries.count <= 1, "\(cell)")
                } else {
                    #expect(entries.isEmpty, "a plain read is not audited: \(cell)")
                }
                audited += entries.count
            }
        }
        print("access grid: \(checked) method cells, \(audited) audit entries checked")
    }

    @Test("every path to a survivor shows exactly what the policy allows, for every referral and consent state")
    func survivorGrid() async throws {
        let grid = try await AccessGrid.build()
        let haven = grid.haven
        let cells = Cells()
        for who in Who.allCases {
            let principal = try grid.principal(who.rawValue)

            // Direct: GetSurvivor, with and without identity.
            for survivor in grid.survivors {
                let expectation = Self.expected(who, survivor)
                var get = Haven_V1_GetSurvivorRequest()
                get.survivorID = survivor.id
                let plain = try? await haven.call(MethodCatalog.SurvivorService.getSurvivor, get, as: principal)
                get.includeIdentity = true
                let withIdentity = try? await haven.call(MethodCatalog.SurvivorService.getSurvivor, get, as: principal)
                switch expectation {
                case .hidden:
                    #expect(
                        plain == nil && withIdentity == nil,
                        "get \(survivor.referral)/\(survivor.consent) as \(who)"
                    )
                case .visible(let fields, let identity, let withheld):
                    #expect(
                        plain.map { presentFields($0) } == fields,
                        "get \(survivor.referral)/\(survivor.consent) as \(who)"
                    )
                    #expect(
                        withIdentity.map { presentFields($0.identity) } == identity,
                        "identity \(survivor.referral)/\(survivor.consent) as \(who)"
                    )
                    #expect(withIdentity.map { Set($0.withheldIdentityFields) } == withheld)
                }
                let code = await haven.code(MethodCatalog.SurvivorService.getSurvivor, get, as: principal)
                #expect(code == (expectation == .hidden ? .notFound : .ok), "a hidden survivor is NOT_FOUND")

                // Its services, paged: as the policy shows them on the survivor, or refused.
                var services = Haven_V1_ListSurvivorServicesRequest()
                services.survivorID = survivor.id
                let servicesCode = await haven.code(
                    MethodCatalog.SurvivorService.listSurvivorServices,
                    services,
                    as: principal
                )
                switch expectation {
                case .hidden:
                    #expect(servicesCode == .notFound, "services \(survivor.referral)/\(survivor.consent) as \(who)")
                case .visible(let fields, _, _) where fields.contains("services"):
                    let page = try await haven.call(
                        MethodCatalog.SurvivorService.listSurvivorServices,
                        services,
                        as: principal
                    )
                    #expect(!page.services.isEmpty && page.services.map(\.id) == plain?.services.map(\.id))
                    #expect(page.serviceCount == plain?.serviceCount)
                case .visible:
                    #expect(
                        servicesCode == .permissionDenied,
                        "services without consent \(survivor.referral)/\(survivor.consent) as \(who)"
                    )
                }
                cells.add(3)
            }

            // Lists: every page, and the flagged-only filter.
            let listed = await Self.listSurvivors(haven, principal, flaggedOnly: false)
            let flagged = await Self.listSurvivors(haven, principal, flaggedOnly: true)
            for survivor in grid.survivors {
                switch (Self.expected(who, survivor), listed) {
                case (_, .failure(let error)):
                    #expect([.admin, .auditor].contains(who) && error.code == .permissionDenied, "list as \(who)")
                case (.hidden, .success(let records)):
                    #expect(records[survivor.id] == nil, "list \(survivor.referral)/\(survivor.consent) as \(who)")
                case (.visible(let fields, _, _), .success(let records)):
                    #expect(
                        records[survivor.id].map { presentFields($0) } == fields,
                        "list \(survivor.referral)/\(survivor.consent) as \(who)"
                    )
                }
                switch (who, flagged) {
                case (.directorOwn, .success(let records)), (.workerOwn, .success(let records)):
                    #expect(records[survivor.id] != nil, "every grid survivor is flagged")
                case (.directorOther, .success(let records)), (.workerOther, .success(let records)):
                    #expect(records[survivor.id] == nil)
                case (_, .failure(let error)):
                    #expect(error.code == .permissionDenied, "partners, admins and auditors do not filter on flags")
                default:
                    Issue.record("flagged list as \(who) should have been refused")
                }
                cells.add(2)
            }

            // The feed replayed from the beginning: history as the principal may see it now.
            let changes: [Haven_V1_ChangeEvent]
            do {
                changes = try await haven.replayedChanges(as: principal)
            } catch let error as HavenError {
                #expect(who == .auditor && error.code == .permissionDenied)
                cells.add(grid.survivors.count)
                continue
            }
            let snapshots = Dictionary(
                grouping: changes.compactMap { change -> Haven_V1_Survivor? in
                    if case .survivor(let survivor) = change.subject { survivor } else { nil }
                },
                by: \.id
            )
            #expect(snapshots[grid.mnlSurvivorID] == nil || [.directorOther, .workerOther].contains(who))
            for survivor in grid.survivors {
                let seen = snapshots[survivor.id] ?? []
                switch Self.expected(who, survivor) {
                case .hidden:
                    #expect(seen.isEmpty, "feed replay \(survivor.referral)/\(survivor.consent) as \(who)")
                case .visible(let fields, _, _):
                    // A feed item carries the services its change recorded, no others:
                    // the latest shows every other field, and services show where recorded.
                    let latest = seen.max { $0.version < $1.version }
                    #expect(
                        latest.map { presentFields($0) } == fields.subtracting(["services"]),
                        "feed replay \(survivor.referral)/\(survivor.consent) as \(who)"
                    )
                    #expect(
                        seen.contains { !$0.services.isEmpty } == fields.contains("services"),
                        "the service recorded shows in its change's item when, and only when, the policy allows"
                    )
                    #expect(
                        seen.allSatisfy { presentFields($0).isSubset(of: fields) },
                        "no snapshot shows more than now"
                    )
                }
                cells.add()
            }
        }

        // The feed live: each principal follows, then every survivor changes once.
        for who in Who.allCases where who != .auditor {
            let principal = try grid.principal(who.rawValue)
            var follow = Haven_V1_SubscribeRequest()
            follow.start = .now
            follow.follow = true
            try await haven.follow(MethodCatalog.FeedService.subscribe, follow, as: principal) { stream in
                _ = await stream.next { if case .caughtUp = $0.item { true } else { false } }
                try await Self.touchEverySurvivor(grid)
                let last = try await haven.store.latestChangeSequence()
                let live = await stream.next { item in
                    if case .caughtUp(let caughtUp) = item.item {
                        Self.sequence(caughtUp.cursor) >= last
                    } else {
                        false
                    }
                }
                let changed = Dictionary(
                    grouping: live.compactMap { item -> Haven_V1_Survivor? in
                        if case .change(let change) = item.item, case .survivor(let survivor) = change.subject {
                            survivor
                        } else {
                            nil
                        }
                    },
                    by: \.id
                )
                for survivor in grid.survivors {
                    switch Self.expected(who, survivor) {
                    case .hidden:
                        #expect(
                            changed[survivor.id] == nil,
                            "feed live \(survivor.referral)/\(survivor.consent) as \(who)"
                        )
                    case .visible(let fields, _, _):
                        #expect(
                            changed[survivor.id]?.count == 1,
                            "feed live \(survivor.referral)/\(survivor.consent) as \(who)"
                        )
                        // The touch records no service: its item carries none.
                        #expect(
                            changed[survivor.id]?.first.map { presentFields($0) } == fields.subtracting(["services"])
                        )
                    }
                    cells.add()
                }
            }
        }

        // Idempotent replay: a create replayed shows the record as the principal may see it now.
        let director = try grid.principal("director-kol")
        let partner = try grid.principal("partner-asha")
        for survivor in grid.survivors {
            var register = Haven_V1_RegisterSurvivorRequest()
            register.officeCode = "KOL"
            register.ageAtIntake = 15
            register.intakeOn = AccessGrid.date(2026, 3, 14)
            register.identity = AccessGrid.identity("\(survivor.referral.rawValue)-\(survivor.consent)")
            register.idempotencyKey = survivor.registerKey
            let replayed = try await haven.call(MethodCatalog.SurvivorService.registerSurvivor, register, as: director)
            #expect(replayed.id == survivor.id, "the replay returns the record first created")
            if case .visible(let fields, _, _) = Self.expected(.directorOwn, survivor) {
                #expect(presentFields(replayed) == fields)
            }
            cells.add()
            guard let key = survivor.partnerServiceKey else { continue }
            var delivered = Haven_V1_RecordServiceRequest()
            delivered.survivorID = survivor.id
            delivered.service.kind = .counselling
            delivered.service.deliveredOn = AccessGrid.date(2026, 3, 20)
            delivered.idempotencyKey = key
            switch Self.expected(.partner, survivor) {
            case .hidden:
                let code = await haven.code(MethodCatalog.SurvivorService.recordService, delivered, as: partner)
                #expect(code == .notFound, "replay after revocation \(survivor.consent)")
            case .visible(let fields, _, _):
                let again = try await haven.call(MethodCatalog.SurvivorService.recordService, delivered, as: partner)
                #expect(presentFields(again) == fields, "replay \(survivor.referral)/\(survivor.consent)")
            }
            cells.add()
        }

        // Referrals as the partner sees them: whole while live, identifiers only once revoked.
        let identifiers: Set<String> = [
            "id", "survivor_id", "survivor_code", "partner_id", "status", "version", "created_at_unix_ms",
            "updated_at_unix_ms",
        ]
        let referralSnapshots = Dictionary(
            grouping: try await haven.replayedChanges(as: partner).compactMap { change -> Haven_V1_Referral? in
                if case .referral(let referral) = change.subject { referral } else { nil }
            },
            by: \.id
        )
        for survivor in grid.survivors {
            guard let referralID = survivor.referralID else { continue }
            let got = try await haven.call(
                MethodCatalog.ReferralService.getReferral,
                .with { $0.referralID = referralID },
                as: partner
            )
            let history = referralSnapshots[referralID] ?? []
            #expect(!history.isEmpty)
            if survivor.referral == .revoked {
                #expect(presentFields(got) == identifiers, "a revoked referral: identifiers only")
                #expect(history.allSatisfy { presentFields($0).isSubset(of: identifiers) }, "also in the replayed feed")
            } else {
                #expect(got.note == "Needs counselling (fictional)" && got.hasReferredBy)
                #expect(history.allSatisfy { $0.note == "Needs counselling (fictional)" })
            }
            cells.add(2)
        }
        print("access grid: \(cells.total) survivor and referral cells")
    }

    @Test("a slice of the grid over real TLS: direct reads and lists of every grid survivor, as every principal")
    func tlsSlice() async throws {
        let grid = try await AccessGrid.build()
        // The deployment lends its CA and server certificate; accounts and records are the grid's.
        let deployment = try TestDeployment()
        var configuration = ServerConfiguration()
        configuration.listenPort = 0
        configuration.shutdownGrace = .milliseconds(200)
        // What the server says when it ends a connection (notice and up), for a failure to name.
        let serverLog = LogCapture()
        let server = try TLSServer(
            configuration: configuration,
            tls: try TLSMaterial(dataDirectory: deployment.dataDirectory),
            store: grid.haven.store,
            router: grid.haven.router,
            logger: serverLog.logger(label: "haven-grid-tls", level: .notice)
        )
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            let port = try #require(try await server.listeningAddress.port)
            var cells = 0
            for who in Who.allCases {
                // Issued by the deployment's CA, bound to the grid's account in the grid's store.
                let credentials = try deployment.credentials(for: who.rawValue, register: false)
                let bound = StoredCredential(
                    try Certificate(firstPEMIn: credentials.certificatePEM),
                    accountID: who.rawValue,
                    issuedBy: "enrolment",
                    now: Date()
                )
                try await grid.haven.store.audited { tx in try tx.saveCredential(bound) }
                let connection = try await RawConnection.connect(port: port, credentials: credentials)
                let hello = try await connection.hello()
                guard case .hello = hello?.kind else {
                    Issue.record(
                        "\(who) was not greeted: \(String(describing: hello)); the server logged \(serverLog.all)"
                    )
                    await connection.close()
                    continue
                }
                do {
                    cells += try await Self.checkSurvivors(over: connection, as: who, grid)
                } catch {
                    Issue.record(error, "as \(who); the server logged \(serverLog.all)")
                }
                await connection.close()
            }
            print("access grid: \(cells) cells over TLS")
            server.initiateShutdown()
            do {
                try await group.waitForAll()
            } catch {
                Issue.record(error, "the server's run failed; it logged \(serverLog.all)")
            }
        }
    }

    /// Lists survivors and reads each grid survivor over `connection`, and
    /// checks both against the policy for `who`. Returns the cells checked.
    static func checkSurvivors(over connection: RawConnection, as who: Who, _ grid: AccessGrid) async throws -> Int {
        var cells = 0
        var id: UInt64 = 1
        var list = Haven_V1_ListSurvivorsRequest()
        list.page.pageSize = 500
        let listed = try await connection.call(MethodCatalog.SurvivorService.listSurvivors, list, id: id)
        let page = listed.error == nil ? try Haven_V1_ListSurvivorsResponse(decodingPayload: listed.payload) : nil
        for survivor in grid.survivors {
            id += 1
            let end = try await connection.call(
                MethodCatalog.SurvivorService.getSurvivor,
                .with { $0.survivorID = survivor.id },
                id: id
            )
            let listedRecord = page?.survivors.first { $0.id == survivor.id }
            switch Self.expected(who, survivor) {
            case .hidden:
                #expect(end.statusCode == .notFound, "TLS get \(survivor.referral)/\(survivor.consent) as \(who)")
                #expect(listedRecord == nil)
            case .visible(let fields, _, _):
                let record = try Haven_V1_Survivor(decodingPayload: end.payload)
                #expect(presentFields(record) == fields, "TLS get \(survivor.referral)/\(survivor.consent) as \(who)")
                #expect(listedRecord.map { presentFields($0) } == fields)
            }
            cells += 2
        }
        return cells
    }

    // MARK: Helpers

    static func listSurvivors(
        _ haven: InProcessHaven,
        _ principal: Principal,
        flaggedOnly: Bool
    ) async -> Result<[String: Haven_V1_Survivor], HavenError> {
        var request = Haven_V1_ListSurvivorsRequest()
        request.flaggedOnly = flaggedOnly
        request.page.pageSize = 500
        var found: [String: Haven_V1_Survivor] = [:]
        do {
            repeat {
                let page = try await haven.call(MethodCatalog.SurvivorService.listSurvivors, request, as: principal)
                for survivor in page.survivors { found[survivor.id] = survivor }
                request.page.pageToken = page.page.nextPageToken
            } while !request.page.pageToken.isEmpty
            return .success(found)
        } catch let error as HavenError {
            return .failure(error)
        } catch {
            return .failure(HavenError(code: .internal, message: "\(type(of: error))"))
        }
    }

    /// A change to every KOL survivor of the grid, by its director.
    static func touchEverySurvivor(_ grid: AccessGrid) async throws {
        let director = try grid.principal("director-kol")
        for survivor in grid.survivors {
            let current = try await grid.haven.call(
                MethodCatalog.SurvivorService.getSurvivor,
                .with { $0.survivorID = survivor.id },
                as: director
            )
            var update = Haven_V1_UpdateSurvivorRequest()
            update.survivorID = survivor.id
            update.expectedVersion = current.version
            update.ageAtIntake = current.ageAtIntake == 15 ? 16 : 15
            _ = try await grid.haven.call(MethodCatalog.SurvivorService.updateSurvivor, update, as: director)
        }
    }

    /// The change-log sequence a feed cursor stands for (cursors are `v1:N`, base64url).
    static func sequence(_ cursor: String) -> UInt64 {
        var base64 = cursor.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64), let text = String(data: data, encoding: .utf8) else { return 0 }
        // `v2:<lineage>:<sequence>` (or `v1:<sequence>`): the sequence is last.
        return text.split(separator: ":").last.flatMap { UInt64($0) } ?? 0
    }
}
