import HavenProtocol

extension HavenClient.Feed {
    /// Follows the change feed, resuming after connection failures.
    ///
    /// The sequence yields every change the caller may see, in commit order,
    /// and a `caught_up` item whenever it has delivered everything committed so
    /// far. When the connection breaks or the server restarts it reconnects with
    /// backoff and subscribes again right after the last cursor it yielded, so
    /// nothing is skipped and nothing repeats. Persist the cursor of the last item
    /// you processed to resume the same way after your own restart.
    ///
    /// ```swift
    /// for try await item in client.feed.follow(after: savedCursor) {
    ///     if case .change(let change) = item.item { try await handle(change) }
    ///     savedCursor = item.cursor
    /// }
    /// ```
    ///
    /// - Parameters:
    ///   - cursor: Resume right after this cursor.
    ///   - fromBeginning: Without a cursor: true to start from the first change
    ///     ever recorded, false to start with changes committed from now on.
    ///   - officeCodes: Only these offices; empty for every office you may see.
    ///   - subjects: Only these record types; empty for all.
    /// - Returns: An endless sequence; it throws `HavenError` for failures a
    ///   reconnect cannot fix (an invalid cursor, no permission).
    public func follow(
        after cursor: String? = nil,
        fromBeginning: Bool = false,
        officeCodes: [String] = [],
        subjects: [Haven_V1_FeedSubject] = []
    ) -> HavenFeed {
        var request = Haven_V1_SubscribeRequest()
        request.follow = true
        request.officeCodes = officeCodes
        request.subjects = subjects
        request.start = fromBeginning ? .beginning : .now
        return HavenFeed(client: self.client, request: request, cursor: cursor)
    }
}

/// The change feed as a resuming `AsyncSequence`; see ``HavenClient/Feed/follow(after:fromBeginning:officeCodes:subjects:)``.
public struct HavenFeed: AsyncSequence, Sendable {
    public typealias Element = Haven_V1_FeedItem

    let client: HavenClient
    let request: Haven_V1_SubscribeRequest
    let cursor: String?

    public func makeAsyncIterator() -> Iterator {
        Iterator(client: self.client, request: self.request, cursor: self.cursor)
    }

    /// Iterates the feed.
    public struct Iterator: AsyncIteratorProtocol {
        let client: HavenClient
        let request: Haven_V1_SubscribeRequest
        /// The cursor of the last item yielded.
        public private(set) var cursor: String?
        var current: HavenResponseStream<Haven_V1_FeedItem>.Iterator?
        var failures = 0

        init(client: HavenClient, request: Haven_V1_SubscribeRequest, cursor: String?) {
            self.client = client
            self.request = request
            self.cursor = cursor
        }

        /// The next item; waits for the next change when caught up.
        ///
        /// - Throws: `HavenError` when resuming cannot help; `CancellationError` when the task is cancelled.
        public mutating func next() async throws -> Haven_V1_FeedItem? {
            while true {
                try Task.checkCancellation()
                do {
                    if self.current == nil {
                        var request = self.request
                        if let cursor = self.cursor {
                            request.start = .afterCursor
                            request.cursor = cursor
                        }
                        self.current = try await self.client.feed.subscribe(request).makeAsyncIterator()
                    }
                    guard let item = try await self.current!.next() else {
                        // The server ended a followed stream: subscribe again from the cursor.
                        self.current = nil
                        continue
                    }
                    self.failures = 0
                    switch item.item {
                    case .change(let change): self.cursor = change.cursor
                    case .caughtUp(let caughtUp): self.cursor = caughtUp.cursor
                    case .none: break
                    }
                    return item
                } catch let error as HavenError where error.code == .unavailable {
                    self.current = nil
                    self.failures += 1
                    try await Task.sleep(for: self.client.reconnectDelay(failures: self.failures))
                }
            }
        }
    }
}

extension Haven_V1_FeedItem {
    /// The cursor to resume after this item.
    public var cursor: String {
        switch self.item {
        case .change(let change): change.cursor
        case .caughtUp(let caughtUp): caughtUp.cursor
        case .none: ""
        }
    }
}
