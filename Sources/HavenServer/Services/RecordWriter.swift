import Crypto
import Foundation
import HavenProtocol
import HavenStore
import Logging
import SwiftProtobuf

/// A record the writer can change: it knows how to stamp its version and
/// where its changes go in the feed.
package protocol WritableRecord: StoredRecord {
    /// The record's name in messages ("case", "survivor").
    static var noun: String { get }
    /// Sets the version and last-change instant after a change.
    mutating func stamp(version: UInt64, at now: Int64)
    /// Puts the record in a change event's subject.
    func attach(to event: inout Haven_V1_ChangeEvent)
    /// The record as a read returns it (a case with its latest events, a
    /// survivor with its latest services), applied to the access policy's
    /// view of it, never before.
    func asRead(_ tx: any StoreReader) throws -> Self
}

extension WritableRecord {
    package func asRead(_ tx: any StoreReader) throws -> Self { self }
}

/// Who may make a change, asked of the policy by the writer.
package enum WritePermission: Sendable {
    /// `action` on the record's office (`writeRecords` for office records, `administer` for offices).
    case office(Action)
    /// `action` for the partner organisation the record is addressed to.
    case addressedPartner(Action)
    /// A partner recording a service it delivered: needs an accepted referral of the survivor.
    case deliveredService
    /// An administrator's change (offices, partners).
    case administer
}

/// The version a change expects to find.
package enum ExpectedVersion: Sendable {
    /// Required: 0 is INVALID_ARGUMENT, another value than the current one FAILED_PRECONDITION.
    case required(UInt64)
    /// 0 means "whatever is current" (appends that commute).
    case optional(UInt64)
}

/// The one place that writes records.
///
/// Handlers say what changes; the writer does the rest, in the caller's
/// transaction: it checks that the principal's account is still what the
/// connection was opened with, finds the record (NOT_FOUND when missing *or*
/// not visible to the principal now), asks the policy for the permission,
/// compares the version, applies the change, bumps the version and the
/// last-change instant, stores it and appends the change-log entry. A call's
/// transaction (``transaction(_:_:)``) ends with the call's one audit entry,
/// which the store fills with every record, change and disclosure of the
/// transaction and their hashes; the store refuses to commit without it.
package struct RecordWriter: Sendable {
    let policy: AccessPolicy
    let store: any RecordStore
    let clock: @Sendable () -> Int64

    package init(policy: AccessPolicy, store: any RecordStore, clock: @escaping @Sendable () -> Int64) {
        self.policy = policy
        self.store = store
        self.clock = clock
    }

    /// Runs a call's write transaction and ends it with the call's audit
    /// entry, when it wrote anything.
    ///
    /// - Parameter detail: A short, non-identifying note for the entry.
    /// - Parameter principalID: Whom the entry names when the connection has
    ///   no account yet (an enrolment names the account it enrols).
    package func transaction<T: Sendable>(
        _ context: CallContext,
        principalID: String? = nil,
        detail: String = "",
        _ body: @escaping @Sendable (any StoreWriter) throws -> T
    ) async throws -> T {
        // The call's own write: dropped if the call is cancelled before the store begins it.
        try await self.store.writeUnlessCancelled { tx in
            let value = try body(tx)
            if tx.pendingAudit {
                var entry = self.entry(context, outcome: .ok, detail: detail)
                if let principalID { entry.principalID = principalID }
                try tx.appendAudit(entry)
            }
            return value
        }
    }

    /// Runs a call's read in a read snapshot (no write lock). What it
    /// discloses — an identity, fields a partner receives under consent — is
    /// audited, one entry committed, before the result is returned: a result
    /// whose entry could not be written is never returned.
    package func read<T: Sendable>(
        _ context: CallContext,
        _ body: @escaping @Sendable (any StoreReader, Disclosures) throws -> T
    ) async throws -> T {
        let (value, disclosed) = try await self.store.read { tx in
            let disclosures = Disclosures()
            let value = try body(tx, disclosures)
            return (value, disclosures.resources)
        }
        if !disclosed.isEmpty {
            var entry = self.entry(context, outcome: .ok, detail: "")
            entry.resources = disclosed
            let disclosure = entry
            try await self.store.write { tx in try tx.appendAudit(disclosure) }
        }
        return value
    }

    /// Records a refused call (PERMISSION_DENIED, NOT_FOUND,
    /// UNAUTHENTICATED) in its own transaction.
    package func refused(_ context: CallContext, _ error: HavenError) async {
        await self.store.audit(self.entry(context, outcome: error.code.statusCode, detail: ""), logger: context.logger)
    }

    /// The audit entry of a call.
    func entry(_ context: CallContext, outcome: StatusCode, detail: String) -> NewAuditEntry {
        NewAuditEntry(
            atUnixMs: self.clock(),
            principalID: context.principal.id,
            principalRole: context.principal.role,
            action: context.method,
            outcome: outcome.wire,
            requestID: context.requestID,
            detail: detail
        )
    }

    /// Stores a new record (version 1) and records its creation.
    ///
    /// - Parameters:
    ///   - record: The record, its server-set fields filled in.
    ///   - secret: A sealed secret to store beside it (a survivor's identity).
    ///   - permission: What the principal needs to create it.
    /// - Returns: The record as stored.
    @discardableResult
    package func create<R: WritableRecord>(
        _ record: R,
        identity: Haven_V1_SurvivorIdentity? = nil,
        permission: WritePermission,
        _ context: CallContext,
        _ tx: any StoreWriter
    ) throws -> R {
        try self.policy.requireCurrent(context.principal, tx)
        try self.authorize(record, permission, context.principal, tx)
        var record = record
        record.stamp(version: 1, at: self.clock())
        try tx.insert(record, identity: identity)
        try self.recordChange(record, kind: .created, tx)
        return record
    }

    /// Changes a stored record.
    ///
    /// - Parameters:
    ///   - id: The record's id.
    ///   - expected: The version the caller last read.
    ///   - permission: What the principal needs to change it.
    ///   - kind: How the feed reports the change.
    ///   - erasing: Destroys the record's key: its identity and sealed fields
    ///     are gone, in this version and every earlier one.
    ///   - change: Applies the change; returns a new identity to seal beside
    ///     the record, or nil to keep the current one.
    /// - Returns: The record as stored.
    /// - Throws: NOT_FOUND when the record is missing or not visible to the
    ///   principal; PERMISSION_DENIED; FAILED_PRECONDITION on a stale version;
    ///   what `change` throws. Nothing is written then.
    @discardableResult
    package func update<R: WritableRecord>(
        _ type: R.Type,
        id: String,
        expected: ExpectedVersion,
        permission: WritePermission,
        kind: Haven_V1_ChangeKind = .updated,
        erasing: Bool = false,
        _ context: CallContext,
        _ tx: any StoreWriter,
        change: (inout R, Int64) throws -> Haven_V1_SurvivorIdentity?
    ) throws -> R {
        try self.policy.requireCurrent(context.principal, tx)
        let found = try tx.load(R.self, id: id)
        guard let found, try self.policy.view(found, for: context.principal, in: tx, now: self.clock()) != nil else {
            throw AccessPolicy.notFound(R.noun)
        }
        try self.authorize(found, permission, context.principal, tx)
        switch expected {
        case .required(let version): try Self.requireVersion(version, current: found.recordVersion)
        case .optional(let version) where version != 0:
            try Self.requireVersion(version, current: found.recordVersion)
        case .optional: break
        }
        var record = found
        let now = self.clock()
        let identity = try change(&record, now)
        record.stamp(version: found.recordVersion + 1, at: now)
        let sealed: SealedChange = erasing ? .erase : identity.map { .identity($0) } ?? .keep
        try tx.update(record, expectedVersion: found.recordVersion, sealed: sealed)
        try self.recordChange(record, kind: kind, tx)
        return record
    }

    /// Changes a record on behalf of another change in the same transaction
    /// (a survivor flagged by an alert, linked to a case): the caller's change
    /// was authorised; this one follows from it.
    package func follow<R: WritableRecord>(
        _ record: inout R,
        _ tx: any StoreWriter,
        change: (inout R) throws -> Void
    ) throws {
        let stored = record.recordVersion
        let now = self.clock()
        try change(&record)
        record.stamp(version: stored + 1, at: now)
        try tx.update(record, expectedVersion: stored, sealed: .keep)
        try self.recordChange(record, kind: .updated, tx)
    }

    /// An idempotent create's key, checked, and its request's digest: what
    /// ``idempotent(_:_:_:create:)`` compares a retry with. Made before the
    /// write is queued, so that a missing key is refused without the writer
    /// and the request is encoded and hashed off it.
    package struct IdempotentRequest: Sendable {
        let key: String
        let digest: [UInt8]
    }

    /// Checks an idempotent create's key and digests its request
    /// (``requestDigest(_:)``).
    package func idempotency(key: String, of request: some HavenWireMessage) throws -> IdempotentRequest {
        try Validate.idempotencyKey(key)
        return IdempotentRequest(key: key, digest: Self.requestDigest(request))
    }

    /// SHA-256 of the request's deterministic protobuf, stored with the
    /// result: a change of either would refuse the retries of requests made
    /// before it. The generated codec writes those very bytes (the schema has
    /// no maps, the one thing deterministic ordering changes, and the codec
    /// writes every field and unknown field as swift-protobuf does), without
    /// swift-protobuf's visitor; `IdempotencyDigestTests` holds the two equal.
    static func requestDigest(_ request: some HavenWireMessage) -> [UInt8] {
        let bytes: [UInt8] = request.serializedPayload()
        return Array(SHA256.hash(data: bytes))
    }

    /// Runs an idempotent create: the first request with a key creates (and
    /// remembers the result); a retry returns that record *as the principal
    /// may see it now*, as a read returns it (NOT_FOUND when it no longer
    /// may); the same key with a
    /// different request fails with ALREADY_EXISTS.
    package func idempotent<R: WritableRecord>(
        _ context: CallContext,
        _ request: IdempotentRequest,
        _ tx: any StoreWriter,
        create: () throws -> R
    ) throws -> R {
        let (key, digest) = (request.key, request.digest)
        let principal = context.principal
        if let previous = try tx.idempotencyRecord(principalID: principal.id, key: key) {
            guard previous.method == context.method, previous.requestDigest == digest else {
                throw HavenError(
                    code: .alreadyExists,
                    message: "idempotency_key was already used for a different request"
                )
            }
            try self.policy.requireCurrent(principal, tx)
            guard let record = try tx.load(R.self, id: previous.resultID),
                let view = try self.policy.view(record, for: principal, in: tx, now: self.clock())
            else {
                throw AccessPolicy.notFound(R.noun)
            }
            // As a read returns it now (a case with its latest events, a
            // survivor with the latest services its view may show).
            return try view.asRead(tx)
        }
        let record = try create()
        try tx.recordIdempotency(
            IdempotencyRecord(
                principalID: principal.id,
                key: key,
                method: context.method,
                requestDigest: digest,
                resultID: record.recordID,
                createdAtUnixMs: self.clock()
            )
        )
        guard let view = try self.policy.view(record, for: principal, in: tx, now: self.clock()) else {
            throw AccessPolicy.notFound(R.noun)
        }
        return view
    }

    private func authorize<R: WritableRecord>(
        _ record: R,
        _ permission: WritePermission,
        _ principal: Principal,
        _ tx: any StoreReader
    ) throws {
        let allowed: Bool
        switch permission {
        case .office(let action):
            allowed = self.policy.allows(principal, action, office: record.index.officeCode)
        case .administer:
            allowed = self.policy.allows(principal, .administer)
        case .addressedPartner(let action):
            allowed = self.policy.allows(principal, action, partner: record.index.partnerID ?? "")
        case .deliveredService:
            let accepted = try ConsentView.hasAcceptedReferral(
                record.recordID,
                partnerID: principal.account.partnerID,
                tx
            )
            allowed =
                accepted && self.policy.allows(principal, .recordDeliveredService, partner: principal.account.partnerID)
        }
        guard allowed else { throw AccessPolicy.denied(principal) }
    }

    fileprivate func recordChange<R: WritableRecord>(
        _ record: R,
        kind: Haven_V1_ChangeKind,
        _ tx: any StoreWriter
    ) throws {
        var event = Haven_V1_ChangeEvent()
        event.kind = kind
        event.committedAtUnixMs = self.clock()
        let index = record.index
        event.officeCode = index.officeCode ?? ""
        record.attach(to: &event)
        let survivorID: String? =
            switch R.recordKind {
            case .survivor: record.recordID
            case .referral: index.subjectID
            default: nil
            }
        try tx.appendChange(
            NewChange(event: event, officeCode: index.officeCode, partnerID: index.partnerID, survivorID: survivorID)
        )
    }

    /// Requires the caller's expected version to be the record's current one.
    static func requireVersion(_ expected: UInt64, current: UInt64) throws(HavenError) {
        guard expected != 0 else {
            throw HavenError.invalidField("expected_version", "required: the version you last read")
        }
        guard expected == current else {
            throw HavenError.staleVersion(expected: expected, current: current)
        }
    }
}

extension RecordWriter {
    /// Erases a record's sealed data on behalf of the retention job (not a
    /// caller): the same version bump, change-log entry and stored hash as
    /// any change; the job's own audit entry covers it.
    package func retain<R: WritableRecord>(
        _ type: R.Type,
        id: String,
        _ tx: any StoreWriter,
        change: (inout R, Int64) throws -> Void
    ) throws {
        guard var record = try tx.load(R.self, id: id) else { throw AccessPolicy.notFound(R.noun) }
        let stored = record.recordVersion
        let now = self.clock()
        try change(&record, now)
        record.stamp(version: stored + 1, at: now)
        try tx.update(record, expectedVersion: stored, sealed: .erase)
        try self.recordChange(record, kind: .updated, tx)
    }
}

/// What a read disclosed, collected while it runs (see ``RecordWriter/read(_:_:)``).
package final class Disclosures {
    fileprivate var resources: [Haven_V1_AuditResource] = []

    /// Notes that `record` was disclosed: `identity`, or `consented` fields.
    package func add<R: WritableRecord>(_ record: R, _ what: String) {
        var resource = Haven_V1_AuditResource()
        resource.kind = R.recordKind.rawValue
        resource.id = record.recordID
        resource.officeCode = record.index.officeCode ?? ""
        resource.disclosed = what
        self.resources.append(resource)
    }
}

extension RecordStore {
    /// Appends one audit entry in its own transaction: a refusal or a session
    /// event, whose call has already failed — so a failure here is logged,
    /// not thrown.
    package func audit(_ entry: NewAuditEntry, logger: Logger) async {
        do {
            try await self.write { tx in try tx.appendAudit(entry) }
        } catch {
            logger.error(
                "could not append an audit entry",
                metadata: ["action": "\(entry.action)", "error": "\(error)"]
            )
        }
    }
}
