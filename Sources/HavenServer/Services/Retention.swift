import Foundation
import HavenProtocol
import HavenStore

/// A legal hold: nothing linked to a case with an accused whose prosecution
/// or appeal is open may be erased, whatever retention says or a director asks.
package enum LegalHold {
    /// Statuses in which a prosecution is not over.
    static let openStatuses: Set<Haven_V1_AccusedLegalStatus> = [.atLarge, .inCustody, .onBail, .absconding]

    /// Whether a case has an accused whose prosecution or appeal is open.
    package static func isOpen(_ record: Haven_V1_Case, _ tx: any StoreReader) throws -> Bool {
        if record.accused.contains(where: { Self.openStatuses.contains($0.legalStatus) }) { return true }
        var appeals = CaseEventQuery.timeline(record.id, limit: Int.max)
        appeals.kinds = [.appealFiled, .appealDecided]
        var appealed = Set<String>()
        for event in try tx.caseEvents(appeals).map(\.event) {
            switch event.detail {
            case .appealFiled(let appeal): appealed.formUnion(appeal.accusedIds)
            case .appealDecided(let decision): appealed.subtract(decision.accusedIds)
            default: break
            }
        }
        return !appealed.isEmpty
    }

    /// The reference of a case that holds `survivor`, or nil.
    package static func hold(for survivor: Haven_V1_Survivor, _ tx: any StoreReader) throws -> String? {
        try tx.load(Haven_V1_Case.self, ids: survivor.caseIds).first(where: { try Self.isOpen($0, tx) })?.reference
    }
}

/// What an office's retention policy makes due, and the job that erases it.
package enum Retention {
    /// `years` whole years after `instant` (UTC calendar).
    static func after(_ instant: Int64, years: UInt32) -> Int64 {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let start = Date(timeIntervalSince1970: Double(instant) / 1000)
        let due = calendar.date(byAdding: .year, value: Int(years), to: start) ?? start
        return Int64((due.timeIntervalSince1970 * 1000).rounded())
    }

    /// Everything due in `office` at `now`, erasable or held.
    package static func plan(
        _ office: Haven_V1_Office,
        now: Int64,
        _ tx: any StoreReader
    ) throws
        -> [Haven_V1_RetentionItem]
    {
        guard office.hasRetention else { return [] }
        let policy = office.retention
        var items: [Haven_V1_RetentionItem] = []
        if policy.identityYearsAfterClosure > 0 {
            try Self.each(Haven_V1_Survivor.self, office: office.code, tx) { survivor in
                guard survivor.erasedAtUnixMs == 0,
                    try tx.hasRecordKey(kind: .survivor, id: survivor.id)
                else { return }
                let cases = try tx.load(Haven_V1_Case.self, ids: survivor.caseIds)
                guard cases.allSatisfy({ $0.status == .closed }) else { return }
                let base = cases.map(\.closedAtUnixMs).max() ?? survivor.createdAtUnixMs
                let due = Self.after(base, years: policy.identityYearsAfterClosure)
                guard due <= now else { return }
                var item = Haven_V1_RetentionItem()
                item.what = "identity"
                item.recordID = survivor.id
                item.code = survivor.code
                item.dueAtUnixMs = due
                if let hold = try cases.first(where: { try LegalHold.isOpen($0, tx) }) {
                    item.held = true
                    item.hold = hold.reference
                }
                items.append(item)
            }
        }
        if policy.caseNotesYearsAfterClosure > 0 {
            try Self.each(Haven_V1_Case.self, office: office.code, statuses: [.closed], tx) { record in
                guard try tx.hasRecordKey(kind: .caseRecord, id: record.id) else { return }
                let due = Self.after(record.closedAtUnixMs, years: policy.caseNotesYearsAfterClosure)
                guard due <= now else { return }
                var item = Haven_V1_RetentionItem()
                item.what = "case_notes"
                item.recordID = record.id
                item.code = record.reference
                item.dueAtUnixMs = due
                if try LegalHold.isOpen(record, tx) {
                    item.held = true
                    item.hold = record.reference
                }
                items.append(item)
            }
        }
        return items
    }

    private static func each<R: StoredRecord>(
        _ type: R.Type,
        office: String,
        statuses: [Haven_V1_CaseStatus]? = nil,
        _ tx: any StoreReader,
        _ body: (R) throws -> Void
    ) throws {
        var query = RecordQuery(order: .idAscending, limit: 500)
        query.officeCodes = [office]
        query.statuses = statuses?.map(\.rawValue)
        while true {
            let page = try tx.page(R.self, query)
            for record in page.records { try body(record) }
            guard let next = page.next else { return }
            query.after = next
        }
    }

    /// Erases what is due and not held, in every office with a policy, in one
    /// transaction that also rotates the affected offices' keys and the
    /// master key (so the erasure reaches earlier backups), and audits it.
    ///
    /// - Returns: The items erased (nothing when nothing was due).
    @discardableResult
    package static func apply(_ environment: ServiceEnvironment, now: Int64) async throws -> [Haven_V1_RetentionItem] {
        let writer = environment.writer
        // Offices with a policy, and those with something due and not held:
        // their keys rotate with the erasure.
        let (offices, affected) = try await environment.store.read { tx in
            let offices = try tx.page(Haven_V1_Office.self, RecordQuery(order: .idAscending, limit: 10_000)).records
                .filter(\.hasRetention)
            let affected = try offices.filter { try Self.plan($0, now: now, tx).contains { !$0.held } }.map(\.code)
            return (offices, affected)
        }
        guard !affected.isEmpty else { return [] }
        return try await environment.keys.rotate(environment.store, offices: affected) { tx, rotation, fingerprint in
            // Planned again inside the transaction: a hold may have begun meanwhile.
            let current = try offices.flatMap { office -> [Haven_V1_RetentionItem] in
                guard let office = try tx.load(Haven_V1_Office.self, id: office.code) else { return [] }
                return try Self.plan(office, now: now, tx)
            }.filter { !$0.held }
            for item in current {
                if item.what == "identity" {
                    try writer.retain(Haven_V1_Survivor.self, id: item.recordID, tx) { survivor, now in
                        survivor.erasedAtUnixMs = now
                        _ = survivor.takeSealedFields()
                    }
                } else {
                    try writer.retain(Haven_V1_Case.self, id: item.recordID, tx) { record, _ in
                        _ = record.takeSealedFields()
                    }
                }
            }
            try tx.appendAudit(
                NewAuditEntry(
                    atUnixMs: now,
                    principalID: "havend",
                    action: "retention.apply",
                    detail:
                        "\(current.filter { $0.what == "identity" }.count) identities and \(current.filter { $0.what == "case_notes" }.count) cases' notes erased; \(rotation.officesRotated) office keys and the master key rotated (now \(fingerprint))"
                )
            )
            return current
        }
    }
}
