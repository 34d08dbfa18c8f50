import HavenProtocol

/// Which legal status changes of accused persons to read
/// (``StoreReader/accusedHistory(_:)``).
///
/// An accused person's legal status history is stored as rows of its own,
/// one per change, beside the case's record (whose accused keep their
/// `legal_status` and `history_count`, not their history): a timeline event
/// that changes a status costs the change, not the case, and reads take only
/// the changes they need.
package struct AccusedHistoryQuery: Sendable {
    /// The accused (ids are unique in a deployment), each read on its own.
    package var accusedIDs: [String]
    /// Only changes after this place in each history.
    package var afterSequence: UInt32 = 0
    /// The newest first (the latest changes) instead of the oldest.
    package var newestFirst = false
    /// At most this many of each accused.
    package var limit: Int

    /// One accused person's changes after `sequence`, oldest first.
    package init(_ accusedID: String, after sequence: UInt32 = 0, limit: Int) {
        self.accusedIDs = [accusedID]
        self.afterSequence = sequence
        self.limit = limit
    }

    /// The latest changes of each of `accusedIDs`, newest first.
    package static func latest(of accusedIDs: [String], limit: Int) -> AccusedHistoryQuery {
        AccusedHistoryQuery(accusedIDs: accusedIDs, newestFirst: true, limit: limit)
    }

    private init(accusedIDs: [String], newestFirst: Bool, limit: Int) {
        self.accusedIDs = accusedIDs
        self.newestFirst = newestFirst
        self.limit = limit
    }
}

extension Haven_V1_Accused {
    /// Records a change of legal status: its place after the last
    /// (`sequence`, and the accused's `history_count`), the status it sets,
    /// and the change after those this write already made, as a write's
    /// response and the change feed show it (the store keeps every change as
    /// a row of its own and the record none).
    package mutating func record(_ change: Haven_V1_AccusedStatusChange) {
        var change = change
        change.sequence = self.historyCount + 1
        self.historyCount = change.sequence
        self.legalStatus = change.status
        self.history.append(change)
    }
}

extension Haven_V1_Case {
    /// The status changes a write made, by accused, taken out of the case
    /// before its record is stored: the store keeps them as rows of their own.
    package mutating func takeStatusChanges() -> [AccusedStatusChanges] {
        var taken: [AccusedStatusChanges] = []
        for index in self.accused.indices where !self.accused[index].history.isEmpty {
            let accused = self.accused[index]
            taken.append(
                AccusedStatusChanges(
                    accusedID: accused.id,
                    historyCount: accused.historyCount,
                    changes: accused.history
                )
            )
            self.accused[index].history = []
        }
        return taken
    }
}

/// The status changes a write made to one accused.
package struct AccusedStatusChanges: Sendable {
    package var accusedID: String
    /// The accused's `history_count` after the write: where the changes end.
    package var historyCount: UInt32
    package var changes: [Haven_V1_AccusedStatusChange]
}
