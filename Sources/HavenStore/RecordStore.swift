import HavenProtocol

/// Haven's storage: transactions over records, the change log, counters,
/// idempotency keys, accounts, the audit trail and the keys sealed data is wrapped with.
///
/// Business rules (validation, state transitions, alerts) live above the
/// store and run inside ``write(_:)``: the closure sees a consistent snapshot,
/// and everything it writes commits atomically with the change-log entries it
/// appends, or not at all. Implementations: ``SQLiteStore`` (embedded, the
/// default). Every implementation passes the same conformance tests.
package protocol RecordStore: Sendable {
    /// Runs `body` in a read-only snapshot.
    ///
    /// - Throws: What `body` throws, or ``HavenError`` UNAVAILABLE when the
    ///   database cannot be read.
    func read<T: Sendable>(_ body: @escaping @Sendable (any StoreReader) throws -> T) async throws -> T

    /// Runs `body` in one serialisable write transaction.
    ///
    /// When `body` throws, nothing it wrote is kept. When this returns, the
    /// transaction is durable (an acknowledged write survives a crash). The
    /// write is not bound to the calling task's cancellation: once submitted
    /// it is made (or fails) whatever the caller does — as an audit entry of
    /// a refusal or a disclosure must be.
    ///
    /// - Throws: What `body` throws, or ``HavenError`` UNAVAILABLE when the
    ///   database cannot be written.
    @discardableResult
    func write<T: Sendable>(_ body: @escaping @Sendable (any StoreWriter) throws -> T) async throws -> T

    /// ``write(_:)`` for a call's own write: when the calling task is
    /// cancelled (the client cancelled the call, its deadline passed) before
    /// the store begins the write, it throws ``HavenError`` CANCELLED and
    /// writes nothing. Once begun, the write completes whatever the caller
    /// does, with the writes it shares a transaction with.
    ///
    /// - Throws: What ``write(_:)`` throws, or ``HavenError`` CANCELLED.
    @discardableResult
    func writeUnlessCancelled<T: Sendable>(
        _ body: @escaping @Sendable (any StoreWriter) throws -> T
    ) async throws -> T

    /// The highest change-log sequence committed so far (0 when empty).
    func latestChangeSequence() async throws -> UInt64

    /// Changes committed so far, and then every time a write commits changes.
    ///
    /// Each element is the highest sequence committed when it was produced;
    /// consumers re-read the change log from their own cursor. Elements may be
    /// coalesced: after a burst of commits only the latest is guaranteed.
    func changeNotifications() -> AsyncStream<UInt64>
}

extension RecordStore {
    /// A store that cannot drop a write it has not begun (a wrapper) makes
    /// it as ``write(_:)`` does.
    package func writeUnlessCancelled<T: Sendable>(
        _ body: @escaping @Sendable (any StoreWriter) throws -> T
    ) async throws -> T {
        try await self.write(body)
    }
}
