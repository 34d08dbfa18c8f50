import Foundation
import HavenProtocol
import HavenServer
import HavenStore
import HavenTestSupport
import SwiftProtobuf
import Testing

/// The retention job, on a clock the test moves: what is due is erased, what
/// a legal hold covers is not, and the dry run changes nothing.
@Suite("Retention")
struct RetentionTests {
    @Test("erases identities and closed cases' notes when due, keeps what a legal hold covers, and audits what it did")
    func job() async throws {
        let scenario = try await AccountabilityScenario()
        let haven = scenario.haven
        // KOL keeps identities 2 years after the last case closed, notes 3 years.
        let office = try await scenario.call("admin", MethodCatalog.OfficeService.getOffice, .with { $0.code = "KOL" })
        var update = Haven_V1_UpdateOfficeRequest()
        update.code = "KOL"
        update.expectedVersion = office.version
        update.retention.identityYearsAfterClosure = 2
        update.retention.caseNotesYearsAfterClosure = 3
        _ = try await scenario.call("admin", MethodCatalog.OfficeService.updateOffice, update)

        // Free: a survivor whose only case closed. Held: one whose case has an accused on bail.
        let free = try await scenario.survivor("RETAIN-FREE", key: "free")
        let freeCase = try await scenario.closeCase(
            try await scenario.caseRecord("RETAIN-FREE", survivor: free, key: "free-case")
        )
        let held = try await scenario.survivor("RETAIN-HELD", key: "held")
        var heldCase = try await scenario.caseRecord("RETAIN-HELD", survivor: held, key: "held-case")
        heldCase = try await scenario.accusedOnBail(heldCase, key: "held")
        heldCase = try await scenario.closeCase(heldCase)
        // Not due at all: a survivor with an open case.
        let open = try await scenario.survivor("RETAIN-OPEN", key: "open")
        _ = try await scenario.caseRecord("RETAIN-OPEN", survivor: open, key: "open-case")

        func preview() async throws -> [Haven_V1_RetentionItem] {
            try await scenario.call(
                "director-kol",
                MethodCatalog.OfficeService.previewRetention,
                .with { $0.officeCode = "KOL" }
            )
            .items
        }
        func apply() async throws -> [Haven_V1_RetentionItem] {
            try await Retention.apply(haven.environment, now: Int64(haven.now.timeIntervalSince1970 * 1000))
        }

        // A year on, nothing is due.
        haven.advance(by: 366 * 86400)
        #expect(try await preview().isEmpty)
        #expect(try await apply().isEmpty)

        // Two years and a day on: identities due, one held; notes not yet.
        haven.advance(by: 366 * 86400)
        let plan = try await preview()
        #expect(
            Set(plan.map { "\($0.what) \($0.recordID) \($0.held)" }) == [
                "identity \(free.id) false", "identity \(held.id) true",
            ]
        )
        #expect(plan.first { $0.recordID == held.id }?.hold == heldCase.reference)
        // The dry run changed nothing.
        let stillThere = try await scenario.call(
            "director-kol",
            MethodCatalog.SurvivorService.getSurvivor,
            .with {
                $0.survivorID = free.id
                $0.includeIdentity = true
            }
        )
        #expect(stillThere.identity.legalName == "RETAIN-FREE-NAME")

        let erased = try await apply()
        #expect(erased.map(\.recordID) == [free.id])
        let afterFree = try await scenario.call(
            "director-kol",
            MethodCatalog.SurvivorService.getSurvivor,
            .with { $0.survivorID = free.id }
        )
        #expect(afterFree.erasedAtUnixMs > 0)
        #expect(afterFree.placements.allSatisfy { $0.homeName.isEmpty })
        let afterHeld = try await scenario.call(
            "director-kol",
            MethodCatalog.SurvivorService.getSurvivor,
            .with {
                $0.survivorID = held.id
                $0.includeIdentity = true
            }
        )
        #expect(afterHeld.erasedAtUnixMs == 0)
        #expect(afterHeld.identity.legalName == "RETAIN-HELD-NAME")
        let openSurvivor = try await scenario.call(
            "director-kol",
            MethodCatalog.SurvivorService.getSurvivor,
            .with {
                $0.survivorID = open.id
                $0.includeIdentity = true
            }
        )
        #expect(openSurvivor.identity.legalName == "RETAIN-OPEN-NAME")

        // Three years and a day: the free case's notes go; the held case's stay.
        haven.advance(by: 366 * 86400)
        let notes = try await apply()
        #expect(notes.map(\.recordID) == [freeCase.id])
        let freeAfter = try await scenario.call(
            "director-kol",
            MethodCatalog.CaseService.getCase,
            .with { $0.caseID = freeCase.id }
        )
        let noteTexts = freeAfter.events.compactMap { event -> String? in
            if case .note(let note) = event.detail { return note.text }
            return nil
        }
        #expect(noteTexts == [""], "the note event stays, its text is gone")
        let heldAfter = try await scenario.call(
            "director-kol",
            MethodCatalog.CaseService.getCase,
            .with { $0.caseID = heldCase.id }
        )
        #expect(
            heldAfter.events.contains {
                if case .note(let note) = $0.detail { return note.text == "RETAIN-HELD-CASE-NOTE" }
                return false
            }
        )

        // The hold lifts (acquittal): the next run erases the held survivor too.
        try await scenario.acquit(heldCase, on: AccountabilityScenario.date(2029, 6, 1), key: "held")
        let released = try await apply()
        #expect(Set(released.map(\.recordID)) == [held.id, heldCase.id])

        // Each run is one audit entry by havend, and the chain verifies.
        let runs = try await haven.store.read { tx in
            var query = AuditQuery(limit: 100)
            query.action = "retention.apply"
            return try tx.auditEntries(query)
        }
        #expect(runs.count == 3)
        #expect(runs.allSatisfy { $0.principalID == "havend" && !$0.detail.contains("RETAIN") })
        #expect(runs[0].resources.contains { $0.kind == "survivor" && $0.id == free.id })
        let verdict = try await scenario.verify(scenario.databasePath)
        #expect(verdict.intact, "\(verdict.problem)")
    }
}
