import Crypto
import Foundation
import HavenProtocol
import HavenStore
import Logging
import SwiftProtobuf

/// What every service uses: the store, the identity vault, the access policy, the clock.
package struct ServiceEnvironment: Sendable {
    package var store: any RecordStore
    package var vault: IdentityVault
    package var policy: AccessPolicy
    /// The current time; tests may fix it.
    package var now: @Sendable () -> Date

    package init(
        store: any RecordStore,
        vault: IdentityVault,
        policy: AccessPolicy = AccessPolicy(),
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.store = store
        self.vault = vault
        self.policy = policy
        self.now = now
    }

    /// Now, in Unix milliseconds.
    package var nowUnixMs: Int64 { Int64((self.now().timeIntervalSince1970 * 1000).rounded()) }

    /// A new record id: a prefix and 128 random bits.
    package func newID(_ prefix: String) -> String {
        prefix + "_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
    }

    /// Appends a change for the feed.
    package func recordChange(
        _ tx: any StoreWriter,
        _ kind: Haven_V1_ChangeKind,
        officeCode: String?,
        partnerID: String? = nil,
        survivorID: String? = nil,
        at time: Int64,
        subject: (inout Haven_V1_ChangeEvent) -> Void
    ) throws {
        var event = Haven_V1_ChangeEvent()
        event.kind = kind
        event.committedAtUnixMs = time
        event.officeCode = officeCode ?? ""
        subject(&event)
        try tx.appendChange(
            NewChange(event: event, officeCode: officeCode, partnerID: partnerID, survivorID: survivorID)
        )
    }

    /// Runs an idempotent create: the first request with a key creates (and
    /// remembers the result); a retry returns the record created then; the
    /// same key with a different request fails with ALREADY_EXISTS.
    package func idempotent<R: StoredRecord>(
        _ tx: any StoreWriter,
        context: CallContext,
        key: String,
        request: some SwiftProtobuf.Message,
        create: () throws -> R
    ) throws -> R {
        try Validate.idempotencyKey(key)
        let digest = Array(SHA256.hash(data: try request.serializedBytes(options: Self.deterministic) as [UInt8]))
        if let previous = try tx.idempotencyRecord(principalID: context.principal.id, key: key) {
            guard previous.method == context.method, previous.requestDigest == digest else {
                throw HavenError(
                    code: .alreadyExists,
                    message: "idempotency_key was already used for a different request"
                )
            }
            guard let record = try tx.load(R.self, id: previous.resultID) else {
                throw HavenError(code: .notFound, message: "the record this idempotency_key created no longer exists")
            }
            return record
        }
        let record = try create()
        try tx.recordIdempotency(
            IdempotencyRecord(
                principalID: context.principal.id,
                key: key,
                method: context.method,
                requestDigest: digest,
                resultID: record.recordID,
                createdAtUnixMs: self.nowUnixMs
            )
        )
        return record
    }

    private static let deterministic: BinaryEncodingOptions = {
        var options = BinaryEncodingOptions()
        options.useDeterministicOrdering = true
        return options
    }()

    /// Saves a survivor changed inside a write transaction on behalf of another
    /// record (a case link, an alert's flag): next version, change-log entry.
    package func saveSurvivor(
        _ tx: any StoreWriter,
        _ survivor: inout Haven_V1_Survivor,
        at now: Int64,
        change: (inout Haven_V1_Survivor) -> Void
    ) throws {
        let stored = survivor.version
        change(&survivor)
        survivor.version = stored + 1
        survivor.updatedAtUnixMs = now
        try tx.update(survivor, expectedVersion: stored)
        let saved = survivor
        try self.recordChange(tx, .updated, officeCode: saved.officeCode, survivorID: saved.id, at: now) {
            $0.survivor = saved
        }
    }

    /// Requires the caller's expected version to be the record's current one.
    package func requireVersion(_ expected: UInt64, current: UInt64, optional: Bool = false) throws {
        if optional && expected == 0 { return }
        guard expected != 0 else {
            throw HavenError.invalidField("expected_version", "required: the version you last read")
        }
        guard expected == current else {
            throw HavenError.staleVersion(expected: expected, current: current)
        }
    }
}
