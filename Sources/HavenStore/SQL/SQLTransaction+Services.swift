import Crypto
import Foundation
import HavenProtocol

/// A row of the `survivorService` table: one service a survivor received.
///
/// Services are append-only: a row is written once, when its service is
/// recorded, and changed only by an erasure (which drops its sealed detail).
struct ServiceRow {
    var survivorID: String
    var sequence: Int64
    var id: String
    var officeCode: String
    /// `YYYY-MM-DD`: when it was delivered.
    var deliveredOn: String?
    /// ``Haven_V1_ServiceKind``'s value.
    var kind: Int
    /// The service without its detail.
    var body: Data
    /// The detail, sealed under the survivor's key.
    var sealed: Data?

    /// The audit trail's name for it: `survivorService/<survivor id>/<sequence>`.
    var resourceID: String { "\(self.survivorID)/\(self.sequence)" }

    /// `SELECT` of every column, in the order ``init(_:)`` reads them.
    static let select =
        "SELECT survivorID, sequence, id, officeCode, deliveredOn, kind, body, sealed FROM survivorService"

    /// Reads a row selected by ``select``.
    init(_ row: SQLRow) throws {
        self.survivorID = try row[0]
        self.sequence = try row[1]
        self.id = try row[2]
        self.officeCode = try row[3]
        self.deliveredOn = try row[4]
        self.kind = try row[5]
        self.body = try row[6]
        self.sealed = try row[7]
    }

    init(survivorID: String, sequence: Int64, id: String, officeCode: String, service: Haven_V1_ServiceRecord) {
        self.survivorID = survivorID
        self.sequence = sequence
        self.id = id
        self.officeCode = officeCode
        self.deliveredOn = dayString(service.deliveredOn)
        self.kind = service.kind.rawValue
        var stripped = service
        stripped.detail = ""
        self.body = stripped.serializedPayload()
        self.sealed = nil
    }
}

extension SQLTransaction {
    static let serviceKind = "survivorService"

    /// Stores the services a survivor change recorded, after those stored:
    /// each must continue the survivor's services (sequence one past the
    /// last), and the survivor's `service_count` must then equal the last.
    /// Details are sealed under the survivor's own key, bound to the
    /// service's place. Each service's report fact is written with it.
    func appendServices(_ services: [Haven_V1_ServiceRecord], to head: Haven_V1_Survivor) throws {
        guard !services.isEmpty else { return }
        var last = UInt32(
            clamping: try self.sql.value(
                Int64.self,
                "SELECT COALESCE(MAX(sequence), 0) FROM survivorService WHERE survivorID = ?",
                [head.id]
            ) ?? 0
        )
        var facts: [ReportFact] = []
        for service in services {
            guard service.sequence == last + 1 else {
                throw HavenError(
                    code: .internal,
                    message: "a service of survivor \(head.id) out of sequence (\(service.sequence) after \(last))"
                )
            }
            last = service.sequence
            var row = ServiceRow(
                survivorID: head.id,
                sequence: Int64(last),
                id: service.id,
                officeCode: head.officeCode,
                service: service
            )
            if !service.detail.isEmpty {
                row.sealed = Data(
                    try self.sealDetail(service.detail, survivorID: head.id, sequence: last, office: head.officeCode)
                )
            }
            try self.sql.execute(
                """
                INSERT INTO survivorService (survivorID, sequence, id, officeCode, deliveredOn, kind, body, sealed)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [row.survivorID, row.sequence, row.id, row.officeCode, row.deliveredOn, row.kind, row.body, row.sealed]
            )
            self.journaled(row)
            facts.append(ReportFact.service(service, officeCode: head.officeCode))
        }
        try self.insertFacts(facts, of: .survivor, id: head.id)
        guard head.serviceCount == last else {
            throw HavenError(
                code: .internal,
                message: "survivor \(head.id) counts \(head.serviceCount) services, its last is \(last)"
            )
        }
    }

    /// Drops the sealed details of a survivor's services (an erasure: the
    /// survivor's key is gone, and so is every box it sealed).
    func eraseServiceDetails(survivorID: String) throws {
        let rows = try self.sql.rows(
            "\(ServiceRow.select) WHERE survivorID = ? AND sealed IS NOT NULL ORDER BY sequence",
            [survivorID]
        ).map(ServiceRow.init)
        for var row in rows {
            row.sealed = nil
            try self.sql.execute(
                "UPDATE survivorService SET sealed = NULL WHERE survivorID = ? AND sequence = ?",
                [row.survivorID, row.sequence]
            )
            self.journaled(row)
        }
    }

    func survivorServices(_ query: SurvivorServiceQuery) throws -> [Haven_V1_ServiceRecord] {
        let direction = query.newestFirst ? "DESC" : "ASC"
        return try self.sql.rows(
            "\(ServiceRow.select) WHERE survivorID = ? AND sequence > ? ORDER BY sequence \(direction) LIMIT ?",
            [query.survivorID, Int64(query.afterSequence), max(0, query.limit)]
        ).map { try self.decode(ServiceRow($0)) }
    }

    func decode(_ row: ServiceRow) throws -> Haven_V1_ServiceRecord {
        var service: Haven_V1_ServiceRecord
        do {
            service = try Haven_V1_ServiceRecord(wireBytes: row.body)
        } catch {
            throw HavenError(code: .dataLoss, message: "stored service \(row.resourceID) cannot be decoded")
        }
        if let sealed = row.sealed {
            service.detail = try self.openDetail(
                Array(sealed),
                survivorID: row.survivorID,
                sequence: UInt32(clamping: row.sequence),
                office: row.officeCode
            )
        }
        return service
    }

    private static func detailContext(_ survivorID: String, _ sequence: UInt32, _ office: String) -> String {
        SealBox.fieldsContext(Self.serviceKind, "\(survivorID)/\(sequence)", office, version: 1)
    }

    /// The survivor's own key, which seals its identity and its services' details.
    private func survivorKey(_ survivorID: String, office: String, create: Bool) throws -> SymmetricKey? {
        try self.recordKey(kind: RecordKind.survivor.rawValue, id: survivorID, office: office, create: create)
    }

    private func sealDetail(_ text: String, survivorID: String, sequence: UInt32, office: String) throws -> [UInt8] {
        guard let key = try self.survivorKey(survivorID, office: office, create: true) else {
            throw HavenError(
                code: .failedPrecondition,
                message: "the store holds no keys to seal a service detail with"
            )
        }
        return try SealBox.seal(
            Array(text.utf8),
            key: key,
            context: Self.detailContext(survivorID, sequence, office)
        )
    }

    private func openDetail(_ sealed: [UInt8], survivorID: String, sequence: UInt32, office: String) throws -> String {
        guard let key = try self.survivorKey(survivorID, office: office, create: false) else {
            throw HavenError(code: .dataLoss, message: "a sealed service detail of survivor \(survivorID) has no key")
        }
        do {
            let plaintext = try SealBox.open(
                sealed,
                key: key,
                context: Self.detailContext(survivorID, sequence, office)
            )
            return String(decoding: plaintext, as: UTF8.self)
        } catch {
            throw HavenError(
                code: .dataLoss,
                message: "the sealed detail of service \(sequence) of survivor \(survivorID) does not open (moved?)"
            )
        }
    }

    /// Notes a service row written, for the transaction's audit entry
    /// (`survivorService/<survivor>/<sequence>`; services have no versions of their own).
    func journaled(_ row: ServiceRow) {
        self.journal.wrote(
            kind: Self.serviceKind,
            id: row.resourceID,
            office: row.officeCode,
            version: 1,
            hash: Self.storedHash(row)
        )
    }

    /// What the audit trail commits to for a service: every column.
    static func storedHash(_ row: ServiceRow) -> [UInt8] {
        var hasher = StoredHasher("haven.v1 survivor service")
        hasher.add(row.survivorID)
        hasher.add(row.sequence)
        hasher.add(row.id)
        hasher.add(row.officeCode)
        hasher.add(row.deliveredOn)
        hasher.add(Int64(row.kind))
        hasher.add(row.body)
        hasher.add(row.sealed)
        return hasher.finalize()
    }

    /// Every service's stored hash, keyed `survivorService/<survivor id>/<sequence>`.
    func serviceHashes(into hashes: inout [String: [UInt8]]) throws {
        try self.sql.forEachRow(ServiceRow.select, []) { selected in
            let row = try ServiceRow(selected)
            hashes["\(Self.serviceKind)/\(row.resourceID)"] = Self.storedHash(row)
        }
    }
}

extension SQLTransaction {
    /// Moves the services of survivors written before services had rows of
    /// their own out of their records, once, when the store is first opened
    /// with its keys after the `v6-survivor-services` migration (either
    /// store): each service becomes a row (its detail sealed anew, bound to
    /// its place; its report fact rewritten with that place), each survivor
    /// is stored again without its services and with its `service_count`
    /// (same version, identity kept), and entries `store.migrate` by `havend`
    /// commit to every row written. In the opening transaction: a failure
    /// leaves the database as it was.
    static func moveServices(_ tx: SQLTransaction) throws {
        guard tx.keys != nil,
            try tx.sql.value(String.self, "SELECT value FROM meta WHERE name = 'survivor-services'") == "in-records"
        else { return }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        var pending = 0
        func audit(_ force: Bool) throws {
            guard pending > 0, force || pending >= 500 else { return }
            try tx.appendAudit(
                NewAuditEntry(
                    atUnixMs: now,
                    principalID: "havend",
                    action: "store.migrate",
                    detail: "survivor services moved out of their records into rows of their own"
                )
            )
            pending = 0
        }
        let ids = try tx.sql.values(String.self, "SELECT id FROM record WHERE kind = 'survivor' ORDER BY id")
        for id in ids {
            guard
                let row = try tx.sql.row("\(RecordRow.select) WHERE kind = 'survivor' AND id = ?", [id])
                    .map(RecordRow.init)
            else { continue }
            var record: Haven_V1_Survivor = try tx.decode(row)
            guard !record.services.isEmpty else { continue }
            // The record's order is the services' order; `sequence` restates it.
            var services = record.takeRecordedServices()
            for index in services.indices { services[index].sequence = UInt32(index + 1) }
            record.serviceCount = UInt32(services.count)
            var head = try tx.row(record, sealedIdentity: row.secret)
            head.secret = row.secret
            try head.update(in: tx.sql)
            tx.journaled(head, version: record.recordVersion)
            try tx.sql.execute(
                "DELETE FROM reportFact WHERE recordKind = 'survivor' AND recordID = ? AND fact = ?",
                [id, ReportFact.Kind.service.rawValue]
            )
            try tx.appendServices(services, to: record)
            pending += 1 + services.count
            try audit(false)
        }
        try audit(true)
        try tx.sql.execute("UPDATE meta SET value = 'rows' WHERE name = 'survivor-services'")
    }
}
