/// Which records a list wants, in what order, from where.
package struct RecordQuery: Sendable, Hashable {
    /// The order of a page.
    package enum Order: Sendable, Hashable {
        /// By id, ascending (offices by code).
        case idAscending
        /// By alias, ascending (survivors by code).
        case aliasAscending
        /// By creation instant, newest first, then id.
        case newestFirst
    }

    package var order: Order
    /// Only these offices (nil: any).
    package var officeCodes: [String]?
    /// Only these status values (nil: any).
    package var statuses: [Int]?
    /// Only these category values (nil: any).
    package var categories: [Int]?
    /// Only days on or after (`YYYY-MM-DD`).
    package var dayFrom: String?
    /// Only days on or before (`YYYY-MM-DD`).
    package var dayTo: String?
    /// Only records created on or after (Unix ms).
    package var createdFrom: Int64?
    /// Only records created on or before (Unix ms).
    package var createdTo: Int64?
    /// Only records changed at or after (Unix ms).
    package var updatedSince: Int64?
    /// Only records of this partner.
    package var partnerID: String?
    /// Only records about this subject.
    package var subjectID: String?
    /// Only flagged (true) or unflagged (false) records.
    package var flagged: Bool?
    /// Only these ids.
    package var ids: [String]?
    /// Only records that are the subject of a referral matching this filter
    /// (a partner's referred survivors), evaluated in the store.
    package var referredBy: ReferralFilter?
    /// Continue after this position.
    package var after: PageCursor?
    /// Records per page.
    package var limit: Int

    package init(order: Order, limit: Int = 50) {
        self.order = order
        self.limit = limit
    }
}

/// A position in an ordered list: the last record a page returned.
package struct PageCursor: Sendable, Hashable, Codable {
    /// The sort key of the order (creation instant for newest-first).
    package var sortKey: Int64
    /// The alias, for alias order.
    package var alias: String
    /// The record id, the tie-breaker.
    package var id: String

    package init(sortKey: Int64 = 0, alias: String = "", id: String) {
        self.sortKey = sortKey
        self.alias = alias
        self.id = id
    }
}

/// One page of a list.
package struct RecordPage<R: Sendable>: Sendable {
    /// The records, in the query's order.
    package var records: [R]
    /// Where the next page starts; nil on the last page.
    package var next: PageCursor?

    package init(records: [R], next: PageCursor?) {
        self.records = records
        self.next = next
    }
}

/// Referrals that make a record visible: to one partner, in some statuses.
package struct ReferralFilter: Sendable, Hashable {
    package var partnerID: String
    package var statuses: [Int]

    package init(partnerID: String, statuses: [Int]) {
        self.partnerID = partnerID
        self.statuses = statuses
    }
}
