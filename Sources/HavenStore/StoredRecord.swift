import HavenProtocol
import SwiftProtobuf

/// The kinds of record the store keeps.
package enum RecordKind: String, Sendable, CaseIterable {
    case office
    case caseRecord = "case"
    case survivor
    case partner
    case referral
    case alert
}

/// The columns a record is found and sorted by, beside its serialized body.
package struct RecordIndex: Sendable, Hashable {
    /// A second unique key: a case reference, a survivor code.
    package var alias: String?
    /// The owning office.
    package var officeCode: String?
    /// The partner concerned (a referral's partner).
    package var partnerID: String?
    /// The record this one is about (a referral's survivor, an alert's case).
    package var subjectID: String?
    /// The record's status enum value.
    package var status: Int = 0
    /// Its category or kind enum value.
    package var category: Int = 0
    /// A calendar day, `YYYY-MM-DD` (a case's opening, a survivor's intake).
    package var day: String?
    /// Creation instant: the "newest first" order.
    package var createdAtUnixMs: Int64 = 0
    /// Last change instant.
    package var updatedAtUnixMs: Int64 = 0
    /// A flag to filter on (a flagged survivor, an open alert).
    package var flagged: Bool = false

    package init() {}
}

/// A record the store keeps: a schema message with an id, a version and index columns.
package protocol StoredRecord: HavenWireMessage, Sendable {
    /// Which table of records it lives in.
    static var recordKind: RecordKind { get }
    /// Its id.
    var recordID: String { get }
    /// Its version (compare-and-set).
    var recordVersion: UInt64 { get }
    /// The columns it is found by.
    var index: RecordIndex { get }
    /// Why it cannot be stored as it is, if it cannot (e.g. an unsealed identity).
    var storageViolation: String? { get }
    /// The facts reports count that it holds (stored beside it, ``ReportFact``).
    var reportFacts: [ReportFact] { get }
    /// Whether it holds the same report facts as `other`, judged without
    /// computing them (false when in doubt: the facts are then written again).
    func hasSameReportFacts(as other: Self) -> Bool
}

extension StoredRecord {
    package var storageViolation: String? { nil }
    package var reportFacts: [ReportFact] { [] }
    package func hasSameReportFacts(as other: Self) -> Bool { true }
}

/// `YYYY-MM-DD`, which sorts like the date.
package func dayString(_ date: Haven_V1_CivilDate) -> String? {
    guard date.year > 0 else { return nil }
    // Every date a request may carry (validated: years 1–9999): ten bytes
    // written in place, without the strings of the general case below.
    if date.year <= 9999, (0...99).contains(date.month), (0...99).contains(date.day) {
        return String(unsafeUninitializedCapacity: 10) { buffer in
            func digits(_ value: Int32, _ count: Int, at offset: Int) {
                var value = value
                for index in stride(from: offset + count - 1, through: offset, by: -1) {
                    buffer[index] = UInt8(ascii: "0") + UInt8(value % 10)
                    value /= 10
                }
            }
            digits(date.year, 4, at: 0)
            buffer[4] = UInt8(ascii: "-")
            digits(date.month, 2, at: 5)
            buffer[7] = UInt8(ascii: "-")
            digits(date.day, 2, at: 8)
            return 10
        }
    }
    let year = String(date.year)
    let month = date.month < 10 ? "0\(date.month)" : String(date.month)
    let day = date.day < 10 ? "0\(date.day)" : String(date.day)
    return "\(String(repeating: "0", count: max(0, 4 - year.count)))\(year)-\(month)-\(day)"
}

extension Haven_V1_Office: StoredRecord {
    package static var recordKind: RecordKind { .office }
    package var recordID: String { self.code }
    package var recordVersion: UInt64 { self.version }
    package var index: RecordIndex {
        var index = RecordIndex()
        index.officeCode = self.code
        index.status = self.status.rawValue
        index.createdAtUnixMs = self.createdAtUnixMs
        index.updatedAtUnixMs = self.updatedAtUnixMs
        return index
    }
}

extension Haven_V1_Case: StoredRecord {
    package static var recordKind: RecordKind { .caseRecord }
    package var recordID: String { self.id }
    package var recordVersion: UInt64 { self.version }
    package var index: RecordIndex {
        var index = RecordIndex()
        index.alias = self.reference
        index.officeCode = self.officeCode
        index.status = self.status.rawValue
        index.category = self.category.rawValue
        index.day = dayString(self.openedOn)
        index.createdAtUnixMs = self.openedAtUnixMs
        index.updatedAtUnixMs = self.updatedAtUnixMs
        return index
    }
}

extension Haven_V1_Survivor: StoredRecord {
    package static var recordKind: RecordKind { .survivor }
    package var recordID: String { self.id }
    package var recordVersion: UInt64 { self.version }
    package var index: RecordIndex {
        var index = RecordIndex()
        index.alias = self.code
        index.officeCode = self.officeCode
        index.status = self.status.rawValue
        index.day = dayString(self.intakeOn)
        index.createdAtUnixMs = self.createdAtUnixMs
        index.updatedAtUnixMs = self.updatedAtUnixMs
        index.flagged = !self.flags.isEmpty
        return index
    }
    /// The identity is stored only sealed, beside the record, never in its body.
    package var storageViolation: String? {
        self.hasIdentity || !self.withheldIdentityFields.isEmpty
            ? "a survivor's identity is stored only sealed, never in the record body" : nil
    }
}

extension Haven_V1_PartnerOrganisation: StoredRecord {
    package static var recordKind: RecordKind { .partner }
    package var recordID: String { self.id }
    package var recordVersion: UInt64 { self.version }
    package var index: RecordIndex {
        var index = RecordIndex()
        index.partnerID = self.id
        index.category = self.kind.rawValue
        index.createdAtUnixMs = self.createdAtUnixMs
        index.updatedAtUnixMs = self.createdAtUnixMs
        index.flagged = self.active
        return index
    }
}

extension Haven_V1_Referral: StoredRecord {
    package static var recordKind: RecordKind { .referral }
    package var recordID: String { self.id }
    package var recordVersion: UInt64 { self.version }
    package var index: RecordIndex {
        var index = RecordIndex()
        index.officeCode = self.officeCode
        index.partnerID = self.partnerID
        index.subjectID = self.survivorID
        index.status = self.status.rawValue
        index.category = self.service.rawValue
        index.createdAtUnixMs = self.createdAtUnixMs
        index.updatedAtUnixMs = self.updatedAtUnixMs
        return index
    }
}

extension Haven_V1_Alert: StoredRecord {
    package static var recordKind: RecordKind { .alert }
    package var recordID: String { self.id }
    package var recordVersion: UInt64 { self.version }
    package var index: RecordIndex {
        var index = RecordIndex()
        index.officeCode = self.officeCode
        index.subjectID = self.caseID
        index.category = self.kind.rawValue
        index.createdAtUnixMs = self.raisedAtUnixMs
        index.updatedAtUnixMs = max(self.raisedAtUnixMs, self.acknowledgedAtUnixMs)
        index.flagged = self.acknowledgedAtUnixMs == 0
        return index
    }
}
