import Foundation
import GRDB
import HavenProtocol
import HavenServer
import HavenStore
import HavenTestSupport
import SwiftProtobuf

/// A small fictional KOL deployment for the accountability tests: an office,
/// survivors with canary identities, cases with notes, in process, on a real
/// database file.
struct AccountabilityScenario {
    let haven: InProcessHaven

    static let accounts = [
        Account(id: "admin", displayName: "Admin (fictional)", role: .admin, createdAtUnixMs: 1),
        Account(
            id: "director-kol",
            displayName: "Director (fictional)",
            role: .director,
            officeCodes: ["KOL"],
            createdAtUnixMs: 1
        ),
        Account(
            id: "worker-kol",
            displayName: "Caseworker (fictional)",
            role: .caseworker,
            officeCodes: ["KOL"],
            createdAtUnixMs: 1
        ),
        Account(id: "auditor", displayName: "Auditor (fictional)", role: .auditor, createdAtUnixMs: 1),
    ]

    init() async throws {
        self.haven = try InProcessHaven(accounts: Self.accounts)
        var office = Haven_V1_CreateOfficeRequest()
        office.office.code = "KOL"
        office.office.name = "Kolkata (fictional)"
        office.office.city = "Kolkata"
        office.office.country = "IN"
        office.office.timeZone = "Asia/Kolkata"
        office.idempotencyKey = "office-kol"
        _ = try await self.call("admin", MethodCatalog.OfficeService.createOffice, office)
    }

    func call<Request, Response>(
        _ who: String,
        _ method: MethodDescriptor<Request, Response>,
        _ request: Request
    ) async throws -> Response {
        try await self.haven.call(method, request, as: try self.haven.principal(who))
    }

    func code<Request, Response>(
        _ who: String,
        _ method: MethodDescriptor<Request, Response>,
        _ request: Request
    ) async throws -> StatusCode {
        await self.haven.code(method, request, as: try self.haven.principal(who))
    }

    static func date(_ year: Int32, _ month: Int32, _ day: Int32) -> Haven_V1_CivilDate {
        .with {
            $0.year = year
            $0.month = month
            $0.day = day
        }
    }

    /// Registers a survivor whose identity, placement home and service detail carry `canary`.
    func survivor(_ canary: String, key: String) async throws -> Haven_V1_Survivor {
        var register = Haven_V1_RegisterSurvivorRequest()
        register.officeCode = "KOL"
        register.ageAtIntake = 15
        register.intakeOn = Self.date(2026, 1, 10)
        register.identity.legalName = "\(canary)-NAME"
        register.identity.contacts = [
            .with {
                $0.label = "guardian"
                $0.value = "\(canary)-PHONE"
            }
        ]
        register.identity.notes = "\(canary)-NOTES"
        register.idempotencyKey = key
        var survivor = try await self.call("director-kol", MethodCatalog.SurvivorService.registerSurvivor, register)
        var placement = Haven_V1_SetPlacementRequest()
        placement.survivorID = survivor.id
        placement.expectedVersion = survivor.version
        placement.placement.homeName = "\(canary)-HOME"
        placement.placement.startedOn = Self.date(2026, 1, 11)
        survivor = try await self.call("director-kol", MethodCatalog.SurvivorService.setPlacement, placement)
        var service = Haven_V1_RecordServiceRequest()
        service.survivorID = survivor.id
        service.service.kind = .vocationalTraining
        service.service.detail = "\(canary)-DETAIL"
        service.service.deliveredOn = Self.date(2026, 2, 1)
        service.idempotencyKey = key + "-service"
        return try await self.call("director-kol", MethodCatalog.SurvivorService.recordService, service)
    }

    /// Opens a case linked to `survivor`, with a note carrying `canary`.
    func caseRecord(_ canary: String, survivor: Haven_V1_Survivor, key: String) async throws -> Haven_V1_Case {
        var open = Haven_V1_OpenCaseRequest()
        open.officeCode = "KOL"
        open.category = .sexTrafficking
        open.title = "Fictional raid \(key)"
        open.idempotencyKey = key
        var record = try await self.call("director-kol", MethodCatalog.CaseService.openCase, open)
        var link = Haven_V1_LinkSurvivorRequest()
        link.caseID = record.id
        link.survivorID = survivor.id
        link.expectedVersion = record.version
        record = try await self.call("director-kol", MethodCatalog.CaseService.linkSurvivor, link)
        var note = Haven_V1_AppendCaseEventRequest()
        note.caseID = record.id
        note.event.occurredOn = Self.date(2026, 2, 2)
        note.event.note.text = "\(canary)-CASE-NOTE"
        note.idempotencyKey = key + "-note"
        return try await self.call("director-kol", MethodCatalog.CaseService.appendCaseEvent, note)
    }

    /// Adds an accused to the case and grants them bail: a prosecution still open (a legal hold).
    func accusedOnBail(_ record: Haven_V1_Case, key: String) async throws -> Haven_V1_Case {
        var accused = Haven_V1_AddAccusedRequest()
        accused.caseID = record.id
        accused.expectedVersion = record.version
        accused.accused.name = "Accused (fictional)"
        accused.accused.role = .trafficker
        accused.idempotencyKey = key + "-accused"
        let withAccused = try await self.call("director-kol", MethodCatalog.CaseService.addAccused, accused)
        var bail = Haven_V1_AppendCaseEventRequest()
        bail.caseID = record.id
        bail.event.occurredOn = Self.date(2026, 3, 1)
        bail.event.bailGranted.accusedIds = [withAccused.accused[0].id]
        bail.event.bailGranted.court = "Fictional court"
        bail.idempotencyKey = key + "-bail"
        return try await self.call("director-kol", MethodCatalog.CaseService.appendCaseEvent, bail)
    }

    /// Acquits the case's first accused: the prosecution is over, the hold lifts.
    func acquit(_ record: Haven_V1_Case, on date: Haven_V1_CivilDate, key: String) async throws {
        var acquittal = Haven_V1_AppendCaseEventRequest()
        acquittal.caseID = record.id
        acquittal.event.occurredOn = date
        acquittal.event.acquittal.accusedIds = [record.accused[0].id]
        acquittal.event.acquittal.court = "Fictional court"
        acquittal.idempotencyKey = key + "-acquittal"
        _ = try await self.call("director-kol", MethodCatalog.CaseService.appendCaseEvent, acquittal)
    }

    func closeCase(_ record: Haven_V1_Case) async throws -> Haven_V1_Case {
        var close = Haven_V1_UpdateCaseStatusRequest()
        close.caseID = record.id
        close.expectedVersion = record.version
        close.status = .closed
        close.reason = "Fictional closure"
        return try await self.call("director-kol", MethodCatalog.CaseService.updateCaseStatus, close)
    }

    var databasePath: String { self.haven.directory.path("haven.sqlite") }

    /// A consistent single-file copy of the live database (`VACUUM INTO`): a backup.
    func backup(to path: String) throws {
        let queue = try DatabaseQueue(path: self.databasePath)
        try queue.writeWithoutTransaction { db in try db.execute(sql: "VACUUM INTO ?", arguments: [path]) }
        try queue.close()
    }

    /// Verifies the chain of the database at `path` with this deployment's keys.
    func verify(_ path: String, trusted: [Haven_V1_AuditCheckpoint] = []) async throws -> Haven_V1_AuditVerdict {
        let store = try SQLiteStore(path: path, keys: self.haven.keys.keys)
        return try await AuditVerifier(store: store, publicKey: self.haven.environment.checkpoints.publicKey)
            .verify(trusted: trusted)
    }

    /// Entries covering a resource, oldest first.
    func entries(kind: String, id: String) async throws -> [Haven_V1_AuditEntry] {
        try await self.haven.store.read { tx in
            var query = AuditQuery(limit: 10_000)
            query.resourceKind = kind
            query.resourceID = id
            return try tx.auditEntries(query)
        }
    }
}
