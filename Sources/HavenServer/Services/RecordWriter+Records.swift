import HavenProtocol
import HavenStore

extension Haven_V1_Office: WritableRecord {
    package static var noun: String { "office" }
    package mutating func stamp(version: UInt64, at now: Int64) {
        self.version = version
        self.updatedAtUnixMs = now
    }
    package func attach(to event: inout Haven_V1_ChangeEvent) { event.office = self }
}

extension Haven_V1_Case: WritableRecord {
    package static var noun: String { "case" }
    package mutating func stamp(version: UInt64, at now: Int64) {
        self.version = version
        self.updatedAtUnixMs = now
    }
    package func attach(to event: inout Haven_V1_ChangeEvent) { event.caseRecord = self }
    package func asRead(_ tx: any StoreReader) throws -> Haven_V1_Case { try CaseReads.withLatest(self, tx) }
}

extension Haven_V1_Survivor: WritableRecord {
    package static var noun: String { "survivor" }
    package mutating func stamp(version: UInt64, at now: Int64) {
        self.version = version
        self.updatedAtUnixMs = now
    }
    package func attach(to event: inout Haven_V1_ChangeEvent) { event.survivor = self }
    package func asRead(_ tx: any StoreReader) throws -> Haven_V1_Survivor {
        try SurvivorReads.withLatestServices(self, tx)
    }
}

extension Haven_V1_PartnerOrganisation: WritableRecord {
    package static var noun: String { "partner" }
    package mutating func stamp(version: UInt64, at now: Int64) {
        self.version = version
    }
    package func attach(to event: inout Haven_V1_ChangeEvent) { event.partner = self }
}

extension Haven_V1_Referral: WritableRecord {
    package static var noun: String { "referral" }
    package mutating func stamp(version: UInt64, at now: Int64) {
        self.version = version
        self.updatedAtUnixMs = now
    }
    package func attach(to event: inout Haven_V1_ChangeEvent) { event.referral = self }
}

extension Haven_V1_Alert: WritableRecord {
    package static var noun: String { "alert" }
    package mutating func stamp(version: UInt64, at now: Int64) {
        self.version = version
    }
    package func attach(to event: inout Haven_V1_ChangeEvent) { event.alert = self }
}
