import HavenProtocol
import HavenStore
import SwiftProtobuf

extension RecordPage where R: StoredRecord {
    /// The page with each record transformed (a view, a shorter form); the
    /// position of the next page is unchanged.
    package func map(_ transform: (R) throws -> R) rethrows -> RecordPage<R> {
        RecordPage(records: try self.records.map(transform), next: self.next)
    }

    /// The page cut so that its records add up to at most
    /// ``HavenLimits/maxPageBytes`` (always keeping the first): a cut page
    /// continues right after its last record, so nothing is skipped.
    package func bounded(order: RecordQuery.Order) -> RecordPage<R> {
        var total = 0
        for (position, record) in self.records.enumerated() {
            total += record.wireSize  // counted, not encoded
            if total > HavenLimits.maxPageBytes && position > 0 {
                let last = self.records[position - 1]
                let index = last.index
                let cursor: PageCursor =
                    switch order {
                    case .idAscending: PageCursor(id: last.recordID)
                    case .aliasAscending: PageCursor(alias: index.alias ?? "", id: last.recordID)
                    case .newestFirst: PageCursor(sortKey: index.createdAtUnixMs, id: last.recordID)
                    }
                return RecordPage(records: Array(self.records[..<position]), next: cursor)
            }
        }
        return self
    }
}

/// The elements of a history a call returns (timeline events, services):
/// the first `count` of `items` that add up to at most `bytes`, always the
/// first one — a read's latest (taken newest first) or a page of a listing.
package func boundedPrefix<T: HavenWireMessage>(_ items: [T], count: Int, bytes: Int) -> [T] {
    var taken: [T] = []
    var total = 0
    for item in items.prefix(count) {
        total += item.wireSize  // counted, not encoded
        if !taken.isEmpty && total > bytes { break }
        taken.append(item)
    }
    return taken
}
