import HavenProtocol

/// Which events of case timelines to read (``StoreReader/caseEvents(_:)``).
///
/// A case's timeline is stored as rows of its own, one per event, beside the
/// case's record (which keeps `event_count`, not the events): appending costs
/// the event, not the case, and reads take only the events they need.
package struct CaseEventQuery: Sendable {
    /// One case's events (with ``afterSequence``), or nil for an office's.
    package var caseID: String?
    /// Every case of this office (reports).
    package var officeCode: String?
    /// Only events after this position in the case's timeline.
    package var afterSequence: UInt32 = 0
    /// Only events that happened on or after this day (`YYYY-MM-DD`).
    package var occurredFrom: String?
    /// Only events that happened on or before this day (`YYYY-MM-DD`).
    package var occurredThrough: String?
    /// Only events of these kinds (``CaseEventKind``); nil for every kind.
    package var kinds: [CaseEventKind]?
    /// The newest first (the end of a timeline) instead of the oldest.
    package var newestFirst = false
    /// At most this many.
    package var limit: Int

    /// One case's events after `sequence`, oldest first.
    package static func timeline(_ caseID: String, after sequence: UInt32 = 0, limit: Int) -> CaseEventQuery {
        var query = CaseEventQuery(limit: limit)
        query.caseID = caseID
        query.afterSequence = sequence
        return query
    }

    package init(limit: Int) {
        self.limit = limit
    }
}

/// An event with the case it belongs to.
package struct StoredCaseEvent: Sendable {
    package var caseID: String
    package var event: Haven_V1_CaseEvent

    package init(caseID: String, event: Haven_V1_CaseEvent) {
        self.caseID = caseID
        self.event = event
    }
}

/// A timeline event's kind: the field number of its `detail`, stored beside
/// it so that reports and holds select events without decoding them all.
package enum CaseEventKind: Int, Sendable, CaseIterable {
    case rescueOperation = 10
    case arrest = 11
    case chargeSheet = 12
    case hearing = 13
    case conviction = 14
    case acquittal = 15
    case bailGranted = 16
    case appealFiled = 17
    case appealDecided = 18
    case reArrest = 19
    case release = 20
    case absconded = 21
    case note = 22
    case statusChanged = 23

    package init?(_ detail: Haven_V1_CaseEvent.OneOf_Detail?) {
        switch detail {
        case nil: return nil
        case .rescueOperation: self = .rescueOperation
        case .arrest: self = .arrest
        case .chargeSheet: self = .chargeSheet
        case .hearing: self = .hearing
        case .conviction: self = .conviction
        case .acquittal: self = .acquittal
        case .bailGranted: self = .bailGranted
        case .appealFiled: self = .appealFiled
        case .appealDecided: self = .appealDecided
        case .reArrest: self = .reArrest
        case .release: self = .release
        case .absconded: self = .absconded
        case .note: self = .note
        case .statusChanged: self = .statusChanged
        }
    }
}

extension Haven_V1_Case {
    /// The timeline events a change appended, taken out of the case before
    /// its record is stored: the store keeps them as rows of their own.
    package mutating func takeAppendedEvents() -> [Haven_V1_CaseEvent] {
        let events = self.events
        self.events = []
        return events
    }
}
