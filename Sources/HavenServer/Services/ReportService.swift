import Foundation
import HavenProtocol
import HavenStore

/// `haven.v1.ReportService`: an office's figures over a period. Counts only.
///
/// Figures "at the end of the period" are replayed from history (status
/// changes on the timeline, accused status history, placements), so a report
/// for a past quarter says what was true then, not what is true now. They are
/// aggregate queries over the office's dated facts (``ReportFact``), which
/// the store keeps with every record it writes: a report loads no case or
/// survivor, however many the office holds.
struct ReportService: ReportServiceHandler {
    let environment: ServiceEnvironment

    func getOfficeReport(
        _ request: Haven_V1_GetOfficeReportRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_OfficeReport {
        try self.environment.policy.check(context.principal, .readReports, office: request.officeCode)
        try Validate.date(request.period.firstDay, "period.first_day")
        try Validate.date(request.period.lastDay, "period.last_day")
        let first = request.period.firstDay
        let last = request.period.lastDay
        try Validate.require(CivilDates.onOrBefore(first, last), "period", "first_day is after last_day")
        try Validate.require(Self.days(from: first, to: last) <= 3660, "period", "longer than 3660 days")

        let (office, figures, inPeriod) = try await self.environment.store.read { tx in
            guard let office = try tx.load(Haven_V1_Office.self, id: request.officeCode) else {
                throw HavenError(code: .notFound, message: "no office with that code")
            }
            // Counts by aggregate queries over the office's records and their
            // dated facts (statuses, accused histories, placements, services),
            // and the timeline events of the period that count: no case or
            // survivor is loaded, however many the office holds.
            var period = CaseEventQuery(limit: Int.max)
            period.officeCode = office.code
            period.occurredFrom = dayString(first)
            period.occurredThrough = dayString(last)
            period.kinds = [.statusChanged, .rescueOperation, .conviction, .acquittal, .appealDecided]
            let figures = try tx.officeFigures(
                OfficeFiguresQuery(
                    officeCode: office.code,
                    firstDay: dayString(first) ?? "",
                    lastDay: dayString(last) ?? ""
                )
            )
            return (office, figures, try tx.caseEvents(period).map(\.event))
        }
        func within(_ date: Haven_V1_CivilDate) -> Bool {
            CivilDates.onOrBefore(first, date) && CivilDates.onOrBefore(date, last)
        }

        // Counted in 64 bits, saturating: stored values can never make a report trap.
        var tally = Tally()
        tally.casesOpened = UInt64(clamping: figures.casesOpened)
        tally.survivorsRegistered = UInt64(clamping: figures.survivorsRegistered)
        tally.survivorsInAftercare = UInt64(clamping: figures.survivorsInAftercare)
        tally.accusedOnBail = UInt64(
            clamping: figures.accusedByStatus[Haven_V1_AccusedLegalStatus.onBail.rawValue] ?? 0
        )
        var byStatus: [Haven_V1_CaseStatus: UInt64] = [:]
        for (status, count) in figures.casesByStatus {
            byStatus[Haven_V1_CaseStatus(rawValue: status) ?? .UNRECOGNIZED(status), default: 0].add(
                UInt64(clamping: count)
            )
        }
        for event in inPeriod where within(event.occurredOn) {
            switch event.detail {
            case .statusChanged(let change) where change.newStatus == .closed:
                tally.casesClosed.add(1)
            case .rescueOperation(let operation):
                tally.rescueOperations.add(1)
                tally.peopleRescued.add(UInt64(operation.peopleRescued))
                tally.minorsRescued.add(UInt64(operation.minorsRescued))
            case .conviction(let conviction):
                tally.convictions.add(UInt64(conviction.accusedIds.count))
            case .appealDecided(let appeal) where appeal.outcome == .acquittalOverturned:
                tally.convictions.add(UInt64(appeal.accusedIds.count))
            case .acquittal(let acquittal):
                tally.acquittals.add(UInt64(acquittal.accusedIds.count))
            case .appealDecided(let appeal) where appeal.outcome == .convictionOverturned:
                tally.acquittals.add(UInt64(appeal.accusedIds.count))
            default:
                break
            }
        }
        let services = figures.services.map { kind, value in
            (
                kind: Haven_V1_ServiceKind(rawValue: kind) ?? .UNRECOGNIZED(kind),
                count: UInt64(clamping: value.count),
                survivors: UInt64(clamping: value.survivors)
            )
        }
        var report = Haven_V1_OfficeReport()
        report.officeCode = office.code
        report.period = request.period
        report.generatedAtUnixMs = self.environment.nowUnixMs
        report.casesOpened = Tally.wire(tally.casesOpened)
        report.casesClosed = Tally.wire(tally.casesClosed)
        report.rescueOperations = Tally.wire(tally.rescueOperations)
        report.peopleRescued = Tally.wire(tally.peopleRescued)
        report.minorsRescued = Tally.wire(tally.minorsRescued)
        report.convictions = Tally.wire(tally.convictions)
        report.acquittals = Tally.wire(tally.acquittals)
        report.accusedOnBail = Tally.wire(tally.accusedOnBail)
        report.survivorsRegistered = Tally.wire(tally.survivorsRegistered)
        report.survivorsInAftercare = Tally.wire(tally.survivorsInAftercare)
        report.casesByStatus = byStatus.sorted { $0.key.rawValue < $1.key.rawValue }.map { status, count in
            var entry = Haven_V1_CaseStatusCount()
            entry.status = status
            entry.count = Tally.wire(count)
            return entry
        }
        report.servicesDelivered = services.sorted { $0.kind.rawValue < $1.kind.rawValue }.map { service in
            var entry = Haven_V1_ServiceCount()
            entry.kind = service.kind
            entry.count = Tally.wire(service.count)
            entry.survivors = Tally.wire(service.survivors)
            return entry
        }
        return report
    }

    /// A report's figures, counted in 64 bits. Adding saturates at the
    /// largest value instead of trapping; the wire's 32-bit fields show
    /// 4294967295 for anything larger (documented in report.proto).
    struct Tally {
        var casesOpened: UInt64 = 0
        var casesClosed: UInt64 = 0
        var rescueOperations: UInt64 = 0
        var peopleRescued: UInt64 = 0
        var minorsRescued: UInt64 = 0
        var convictions: UInt64 = 0
        var acquittals: UInt64 = 0
        var accusedOnBail: UInt64 = 0
        var survivorsRegistered: UInt64 = 0
        var survivorsInAftercare: UInt64 = 0

        static func wire(_ value: UInt64) -> UInt32 { UInt32(clamping: value) }
    }

    static func days(from first: Haven_V1_CivilDate, to last: Haven_V1_CivilDate) -> Int {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        func date(_ civil: Haven_V1_CivilDate) -> Date {
            calendar.date(from: DateComponents(year: Int(civil.year), month: Int(civil.month), day: Int(civil.day)))!
        }
        return calendar.dateComponents([.day], from: date(first), to: date(last)).day ?? 0
    }
}

extension UInt64 {
    /// Adds, saturating at `UInt64.max`.
    mutating func add(_ other: UInt64) {
        let (sum, overflow) = self.addingReportingOverflow(other)
        self = overflow ? .max : sum
    }
}
