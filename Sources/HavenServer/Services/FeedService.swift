import Foundation
import HavenProtocol
import HavenStore

/// `haven.v1.FeedService`: every change a principal may see, in commit order,
/// resumable from a cursor with no gap and no duplicate.
struct FeedService: FeedServiceHandler {
    let environment: ServiceEnvironment

    private var env: ServiceEnvironment { self.environment }
    private static let batchSize = 200

    /// Cursors are opaque to clients: `v2:`, the change log's lineage
    /// (``StoreReader/feedEpoch()``) and the change-log sequence, base64url.
    /// (`v1:` cursors, without a lineage, are still read.)
    static func cursor(_ sequence: UInt64, epoch: String) -> String {
        Data("v2:\(epoch):\(sequence)".utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// The lineage (nil for a `v1:` cursor) and sequence a cursor names.
    static func position(fromCursor cursor: String) throws(HavenError) -> (epoch: String?, sequence: UInt64) {
        var base64 = cursor.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64), let text = String(data: data, encoding: .utf8) else {
            throw HavenError.invalidField("cursor", "not a cursor this server issued")
        }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        switch (parts.first, parts.count) {
        case ("v1", 2):
            if let sequence = UInt64(parts[1]) { return (nil, sequence) }
        case ("v2", 3):
            if let sequence = UInt64(parts[2]), !parts[1].isEmpty { return (String(parts[1]), sequence) }
        default:
            break
        }
        throw HavenError.invalidField("cursor", "not a cursor this server issued")
    }

    /// OUT_OF_RANGE with a ``Haven_V1_FeedReset`` naming where to resume.
    static func reset(latest: UInt64, epoch: String) -> HavenError {
        var detail = Haven_V1_ErrorDetail()
        detail.feedReset.resumeCursor = Self.cursor(latest, epoch: epoch)
        return HavenError(
            code: .outOfRange,
            message:
                "this server's change log does not hold the cursor's change (it was restored from a backup, or the cursor is from another deployment): resubscribe from the beginning to rebuild, or after the cursor in the FeedReset detail to continue from now",
            details: [detail]
        )
    }

    func subscribe(
        _ request: Haven_V1_SubscribeRequest,
        _ context: CallContext,
        _ stream: ResponseStream<Haven_V1_FeedItem>
    ) async throws {
        let principal = context.principal
        let policy = self.env.policy
        try policy.check(principal, .followFeed)
        if request.follow { context.runsUntilCancelled() }
        // An office filter narrows the feed; for office staff each office asked
        // for must be one of theirs (what is shown is decided entry by entry).
        let offices: Set<String>? =
            policy.reach(principal, .readRecords) == .ownOffices
            ? Set(try policy.offices(principal, .readRecords, asked: request.officeCodes) ?? [])
            : (request.officeCodes.isEmpty ? nil : Set(request.officeCodes))
        let subjects = Set(request.subjects)
        let store = self.env.store

        // Subscribe to commit notifications before reading the position, so a
        // commit between the two is not missed.
        let notifications = store.changeNotifications()
        var waiting = notifications.makeAsyncIterator()
        let (latest, epoch) = try await store.read { tx in (try tx.latestChangeSequence(), try tx.feedEpoch()) }
        var position: UInt64
        var cursorEpoch: String?
        switch request.start {
        case .afterCursor:
            try Validate.require(!request.cursor.isEmpty, "cursor", "required with FEED_START_AFTER_CURSOR")
            (cursorEpoch, position) = try Self.position(fromCursor: request.cursor)
        case .beginning:
            position = 0
        case .now:
            position = latest
        case .unspecified:
            if request.cursor.isEmpty {
                position = latest
            } else {
                (cursorEpoch, position) = try Self.position(fromCursor: request.cursor)
            }
        case .UNRECOGNIZED:
            throw HavenError.invalidField("start", "unknown value")
        }
        guard position <= latest, cursorEpoch == nil || cursorEpoch == epoch else {
            throw Self.reset(latest: latest, epoch: epoch)
        }

        // Where the last CaughtUp was sent: one follows every catch-up with the
        // present, whether the newest change was visible to the caller or not.
        var caughtUpAt: UInt64? = nil
        // A partner receives survivors' consented fields: a batch that
        // carries any is audited before it is sent.
        let partner = self.env.policy.reach(principal, .actForPartner) == .ownPartner
        let writer = self.env.writer
        let metrics = self.env.operations.statistics.metrics
        if request.follow { metrics.feedSubscribed() }
        defer { if request.follow { metrics.feedUnsubscribed() } }
        while true {
            // Deliver everything committed after `position`.
            while true {
                let now = self.env.nowUnixMs
                let batch = try await writer.read(context) {
                    [position] tx, disclosures -> (items: [Haven_V1_ChangeEvent], scanned: UInt64, full: Bool) in
                    let entries = try tx.changes(after: position, limit: Self.batchSize)
                    var items: [Haven_V1_ChangeEvent] = []
                    for entry in entries {
                        guard subjects.isEmpty || subjects.contains(entry.event.subject.feedSubject) else { continue }
                        if let offices, let office = entry.officeCode, !offices.contains(office) { continue }
                        if let item = try policy.change(entry, for: principal, in: tx, now: now) {
                            if partner, case .survivor(let survivor) = item.subject,
                                SurvivorService.carriesConsented(survivor)
                            {
                                disclosures.add(survivor, "consented")
                            }
                            items.append(item)
                        }
                    }
                    return (items, entries.last?.sequence ?? position, entries.count == Self.batchSize)
                }
                for var event in batch.items {
                    // Lag is measured for live delivery only (after the first catch-up), not for replayed history.
                    if caughtUpAt != nil {
                        metrics.feedDelivered(lag: .milliseconds(self.env.nowUnixMs - event.committedAtUnixMs))
                    }
                    event.cursor = Self.cursor(event.sequence, epoch: epoch)
                    var item = Haven_V1_FeedItem()
                    item.change = event
                    try await stream.send(item)
                }
                position = batch.scanned
                if !batch.full { break }
            }
            if caughtUpAt != position {
                var item = Haven_V1_FeedItem()
                item.caughtUp.cursor = Self.cursor(position, epoch: epoch)
                try await stream.send(item)
                caughtUpAt = position
            }
            guard request.follow else { return }
            // Wait for a commit past the position.
            while true {
                guard let committed = await waiting.next() else { return }
                try Task.checkCancellation()
                if committed > position { break }
            }
        }
    }

}
