import Foundation
import HavenProtocol
import HavenStore

/// What every service uses: the store, the key custodian, the access policy,
/// the record writer, the audit checkpoints, the clock.
///
/// A class, made once by the composition root: each call's handler and the
/// closures it gives the store's writer hold it with one reference, where a
/// struct of these fields was copied, each field retained and released, at
/// every capture (about half a percent of a write's samples in copies and
/// destroys, BENCHMARKS.md).
package final class ServiceEnvironment: Sendable {
    package let store: any RecordStore
    package let keys: KeyCustodian
    package let checkpoints: CheckpointSigner
    /// Issues certificates at enrolment and renewal.
    package let authority: CredentialAuthority
    /// Status and backups.
    package let operations: Operations
    package let policy: AccessPolicy
    /// The current time; tests may fix it.
    package let now: @Sendable () -> Date
    /// The one writer of records.
    package let writer: RecordWriter

    package init(
        store: any RecordStore,
        keys: KeyCustodian,
        checkpoints: CheckpointSigner,
        authority: CredentialAuthority,
        operations: Operations = Operations(),
        policy: AccessPolicy = AccessPolicy(),
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.store = store
        self.keys = keys
        self.checkpoints = checkpoints
        self.authority = authority
        self.operations = operations
        self.policy = policy
        self.now = now
        self.writer = RecordWriter(policy: policy, store: store) { Self.unixMilliseconds(now()) }
    }

    /// Now, in Unix milliseconds.
    package var nowUnixMs: Int64 { Self.unixMilliseconds(self.now()) }

    private static func unixMilliseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded())
    }

    /// A new record id: a prefix and 128 random bits.
    package func newID(_ prefix: String) -> String {
        // From the system's generator, a batch at a time (IdentifierRandomness):
        // `UUID()` opens /dev/urandom for each one.
        var generator = IdentifierRandomness()
        return Self.id(prefix, UUID.random(using: &generator))
    }

    /// A new timeline event's id: `evt_` and a version 7 UUID (``TimeOrderedUUID``)
    /// of the server's clock now, so that events sort by when the server took
    /// them in hand, which each event says anyway (`recorded_at_unix_ms`, set
    /// then or by the writer milliseconds later). The reports' index of events by
    /// office and day is keyed by it after the day: a new event's entry lands
    /// beside the last one of its day instead of on a random page of the index.
    package func newEventID() -> String {
        Self.id("evt", TimeOrderedUUID.make(now: self.now()))
    }

    /// A prefix, `_`, and a UUID's 16 bytes in lower-case hex without dashes,
    /// written directly (Foundation's `replacingOccurrences` was 3 % of a write).
    private static func id(_ prefix: String, _ uuid: UUID) -> String {
        var id = prefix
        id.reserveCapacity(prefix.utf8.count + 33)
        id.append("_")
        id += TimeOrderedUUID.lowercasedHex(uuid, dashes: false)
        return id
    }
}
