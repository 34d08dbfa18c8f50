import HavenProtocol

/// One dated fact a report counts, kept as a row of its own (`reportFact`)
/// beside the record or event it comes from, so that a report is a few
/// aggregate queries over an office's facts instead of a load of every case
/// and survivor it holds.
///
/// Facts carry no identity and nothing sealed: statuses, service kinds and
/// days, which the record bodies and timeline rows already hold unsealed.
/// They are derived, never written by a service: the store writes a record's
/// facts with the record, in the same transaction, and a case's status
/// changes with the timeline events they come from.
package struct ReportFact: Hashable, Sendable {
    package enum Kind: Int, Sendable {
        /// A case's status change (a `statusChanged` timeline event); its
        /// position is the event's sequence.
        case caseStatus = 1
        /// A change of an accused's legal status, owned by the accused
        /// (``ReportFact/accusedOwnerKind``); its position is the change's
        /// place in the accused's history (written with the change's row).
        /// Facts of histories still inside a case's record (a store not yet
        /// moved, `SQLTransaction.moveAccusedHistory`) are owned by the case.
        case accusedStatus = 2
        /// A service delivered to a survivor; its position is the service's
        /// sequence (written with the service's row).
        case service = 3
        /// A survivor's stay in an aftercare home.
        case placement = 4
    }

    package var kind: Kind
    /// Its order among the facts of its kind of one record (a case status
    /// change: the event's sequence; others: their place in the record).
    package var position: Int
    /// The office of the record when the fact was written.
    package var officeCode: String
    /// A status or a service kind (the enum's value).
    package var category: Int
    /// A case status change's status before (0 otherwise).
    package var prior: Int = 0
    /// An accused's id (empty otherwise).
    package var subject: String = ""
    /// `YYYY-MM-DD`: when it took effect, was delivered, or began ("" if unset).
    package var fromDay: String
    /// A placement's last day (nil while it lasts, and for other facts).
    package var throughDay: String?

    package init(
        kind: Kind,
        position: Int,
        officeCode: String,
        category: Int,
        prior: Int = 0,
        subject: String = "",
        fromDay: String,
        throughDay: String? = nil
    ) {
        self.kind = kind
        self.position = position
        self.officeCode = officeCode
        self.category = category
        self.prior = prior
        self.subject = subject
        self.fromDay = fromDay
        self.throughDay = throughDay
    }

    /// The fact a service states (its position is the service's sequence).
    package static func service(_ service: Haven_V1_ServiceRecord, officeCode: String) -> ReportFact {
        ReportFact(
            kind: .service,
            position: Int(service.sequence),
            officeCode: officeCode,
            category: service.kind.rawValue,
            fromDay: dayString(service.deliveredOn) ?? ""
        )
    }

    /// What owns the facts of accused status changes kept as rows: the
    /// accused (`reportFact.recordKind`), by id (`recordID`).
    package static let accusedOwnerKind = "accused"

    /// The fact a change of an accused's legal status states (its position
    /// is the change's place in the accused's history).
    package static func accusedStatus(
        _ change: Haven_V1_AccusedStatusChange,
        accusedID: String,
        officeCode: String
    ) -> ReportFact {
        ReportFact(
            kind: .accusedStatus,
            position: Int(change.sequence),
            officeCode: officeCode,
            category: change.status.rawValue,
            subject: accusedID,
            fromDay: dayString(change.effectiveOn) ?? ""
        )
    }

    /// The fact a status-change event states, if it is one.
    package static func caseStatus(_ event: Haven_V1_CaseEvent, officeCode: String) -> ReportFact? {
        guard case .statusChanged(let change) = event.detail else { return nil }
        return ReportFact(
            kind: .caseStatus,
            position: Int(event.sequence),
            officeCode: officeCode,
            category: change.newStatus.rawValue,
            prior: change.previousStatus.rawValue,
            fromDay: dayString(event.occurredOn) ?? ""
        )
    }
}

extension Haven_V1_Case {
    /// Its accused's legal status histories that its record still holds, in
    /// order (only a record stored before histories had rows of their own,
    /// until the store moves them: see `SQLTransaction.moveAccusedHistory`).
    /// Changes in rows bring their own facts
    /// (``ReportFact/accusedStatus(_:accusedID:officeCode:)``).
    package var reportFacts: [ReportFact] {
        var facts: [ReportFact] = []
        for accused in self.accused {
            for change in accused.history {
                facts.append(
                    ReportFact(
                        kind: .accusedStatus,
                        position: facts.count,
                        officeCode: self.officeCode,
                        category: change.status.rawValue,
                        subject: accused.id,
                        fromDay: dayString(change.effectiveOn) ?? ""
                    )
                )
            }
        }
        return facts
    }

    package func hasSameReportFacts(as other: Haven_V1_Case) -> Bool {
        self.officeCode == other.officeCode && self.accused.map(\.history) == other.accused.map(\.history)
    }
}

extension Haven_V1_Survivor {
    /// Its placements, in order, and the services its record still holds
    /// (only a record stored before services had rows of their own, until
    /// the store moves them: see `SQLTransaction.moveServices`). Services in
    /// rows bring their own facts (``ReportFact/service(_:officeCode:)``).
    package var reportFacts: [ReportFact] {
        var facts: [ReportFact] = []
        for service in self.services {
            facts.append(
                ReportFact(
                    kind: .service,
                    position: facts.count,
                    officeCode: self.officeCode,
                    category: service.kind.rawValue,
                    fromDay: dayString(service.deliveredOn) ?? ""
                )
            )
        }
        for placement in self.placements {
            facts.append(
                ReportFact(
                    kind: .placement,
                    position: facts.count,
                    officeCode: self.officeCode,
                    category: 0,
                    fromDay: dayString(placement.startedOn) ?? "",
                    throughDay: placement.hasEndedOn ? dayString(placement.endedOn) ?? "" : nil
                )
            )
        }
        return facts
    }

    package func hasSameReportFacts(as other: Haven_V1_Survivor) -> Bool {
        self.officeCode == other.officeCode && self.services == other.services && self.placements == other.placements
    }
}

/// What a report asks of an office's facts.
package struct OfficeFiguresQuery: Sendable {
    package var officeCode: String
    /// The period's first and last day, `YYYY-MM-DD`.
    package var firstDay: String
    package var lastDay: String

    package init(officeCode: String, firstDay: String, lastDay: String) {
        self.officeCode = officeCode
        self.firstDay = firstDay
        self.lastDay = lastDay
    }
}

/// An office's figures that come from its records' facts, computed by
/// aggregate queries (``StoreReader/officeFigures(_:)``).
package struct OfficeFigures: Sendable, Equatable {
    /// Cases opened within the period.
    package var casesOpened: Int64 = 0
    /// Survivors registered (intake) within the period.
    package var survivorsRegistered: Int64 = 0
    /// Cases opened by the period's end, by their status at its end.
    package var casesByStatus: [Int: Int64] = [:]
    /// The accused of the office's cases, by their legal status at the period's end.
    package var accusedByStatus: [Int: Int64] = [:]
    /// Survivors in an aftercare placement on the period's last day.
    package var survivorsInAftercare: Int64 = 0
    /// Services delivered within the period, by kind: how many, to how many survivors.
    package var services: [Int: (count: Int64, survivors: Int64)] = [:]

    package init() {}

    package static func == (lhs: OfficeFigures, rhs: OfficeFigures) -> Bool {
        lhs.casesOpened == rhs.casesOpened && lhs.survivorsRegistered == rhs.survivorsRegistered
            && lhs.casesByStatus == rhs.casesByStatus && lhs.accusedByStatus == rhs.accusedByStatus
            && lhs.survivorsInAftercare == rhs.survivorsInAftercare
            && lhs.services.mapValues { [$0.count, $0.survivors] }
                == rhs.services.mapValues { [$0.count, $0.survivors] }
    }
}
