import Crypto
import Foundation
import HavenProtocol

/// A row of the `survivorService` table: one service a survivor received
/// (``SequencedRow``; its sealed text is the service's detail).
struct ServiceRow: SequencedRow {
    static let table = "survivorService"
    static let ownerColumn = "survivorID"
    static let dayColumn = "deliveredOn"
    static let sealingKind: RecordKind? = .survivor
    static let hashDomain = "haven.v1 survivor service"
    static let statements = SequencedStatements(Self.self)

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

    var ownerID: String { self.survivorID }
    var day: String? { self.deliveredOn }

    init(ownerID: String, sequence: Int64, id: String, officeCode: String, day: String?, kind: Int, body: Data) {
        self.survivorID = ownerID
        self.sequence = sequence
        self.id = id
        self.officeCode = officeCode
        self.deliveredOn = day
        self.kind = kind
        self.body = body
    }
}

extension SQLTransaction {
    /// Stores the services a survivor change recorded, after those stored:
    /// each must continue the survivor's services (sequence one past the
    /// last), and the survivor's `service_count` must then equal the last.
    /// Details are sealed under the survivor's own key, bound to the
    /// service's place. Each service's report fact is written with it.
    func appendServices(_ services: [Haven_V1_ServiceRecord], to head: Haven_V1_Survivor) throws {
        guard !services.isEmpty else { return }
        var last = try self.lastSequence(ServiceRow.self, of: head.id)
        var facts: [ReportFact] = []
        for service in services {
            guard service.sequence == last + 1 else {
                throw HavenError(
                    code: .internal,
                    message: "a service of survivor \(head.id) out of sequence (\(service.sequence) after \(last))"
                )
            }
            last = service.sequence
            var stripped = service
            stripped.detail = ""
            let row = ServiceRow(
                ownerID: head.id,
                sequence: Int64(last),
                id: service.id,
                officeCode: head.officeCode,
                day: dayString(service.deliveredOn),
                kind: service.kind.rawValue,
                body: stripped.serializedPayload()
            )
            try self.insert(row, sealing: service.detail)
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

    func survivorServices(_ query: SurvivorServiceQuery) throws -> [Haven_V1_ServiceRecord] {
        try self.rows(
            ServiceRow.self,
            of: query.survivorID,
            after: query.afterSequence,
            newestFirst: query.newestFirst,
            limit: query.limit
        ).map(self.decode)
    }

    func decode(_ row: ServiceRow) throws -> Haven_V1_ServiceRecord {
        var service: Haven_V1_ServiceRecord
        do {
            service = try Haven_V1_ServiceRecord(wireBytes: row.body)
        } catch {
            throw HavenError(code: .dataLoss, message: "stored service \(row.resourceID) cannot be decoded")
        }
        service.detail = try self.openSealed(row)
        return service
    }
}

extension SQLTransaction {
    /// Moves the services of survivors written before services had rows of
    /// their own out of their records, once, when the store is first opened
    /// with its keys after the `v6-survivor-services` migration (either
    /// store): each service becomes a row (its detail sealed anew, bound to
    /// its place; the survivor's report facts written again, its services'
    /// with their places), each survivor
    /// is stored again without its services and with its `service_count`
    /// (same version, identity kept), and entries `store.migrate` by `havend`
    /// commit to every row written. In the opening transaction: a failure
    /// leaves the database as it was.
    static func moveServices(_ tx: SQLTransaction) throws {
        guard tx.keys != nil,
            try tx.sql.value(String.self, "SELECT value FROM meta WHERE name = 'survivor-services'") == "in-records"
        else { return }
        var audit = MoveAudit(tx, detail: "survivor services moved out of their records into rows of their own")
        try tx.forEachStored(Haven_V1_Survivor.self) { record, stored in
            var record = record
            guard !record.services.isEmpty else { return }
            // The record's order is the services' order; `sequence` restates it.
            var services = record.takeRecordedServices()
            for index in services.indices { services[index].sequence = UInt32(index + 1) }
            record.serviceCount = UInt32(services.count)
            try tx.restore(record, was: stored)
            // Its facts written again: its placements' places follow its services no more.
            try tx.sql.execute("DELETE FROM reportFact WHERE recordKind = 'survivor' AND recordID = ?", [record.id])
            try tx.insertFacts(record.reportFacts, of: .survivor, id: record.id)
            try tx.appendServices(services, to: record)
            try audit.wrote(1 + services.count)
        }
        try audit.finish()
        try tx.sql.execute("UPDATE meta SET value = 'rows' WHERE name = 'survivor-services'")
    }
}
