import Crypto
import Foundation
import HavenProtocol
import Testing

@testable import HavenStore

/// The stored hashes the audit trail commits to are SHA-256 over a fixed
/// layout of fields; entries written by every earlier release are verified
/// against it, so the layout must never change, whatever builds it.
@Suite("Stored hashes")
struct StoredHasherTests {
    @Test("hash the domain and each field in the one layout: 0x01, a big-endian length and the bytes; 0xFF for none")
    func layout() {
        var hasher = StoredHasher("haven.v1 test")
        hasher.add("Kolkata — কলকাতা")
        hasher.add(nil as String?)
        hasher.add(Data([0, 1, 2, 255]))
        hasher.add(nil as Data?)
        hasher.add([9, 8, 7] as [UInt8])
        hasher.add(Int64(-2))
        hasher.add(true)
        hasher.add(false)

        func field(_ bytes: [UInt8]) -> [UInt8] {
            [0x01] + withUnsafeBytes(of: Int64(bytes.count).bigEndian, Array.init) + bytes
        }
        let expected: [UInt8] =
            field(Array("haven.v1 test".utf8)) + field(Array("Kolkata — কলকাতা".utf8)) + [0xFF]
            + field([0, 1, 2, 255]) + [0xFF] + field([9, 8, 7])
            + withUnsafeBytes(of: Int64(-2).bigEndian, Array.init) + [1, 0]
        #expect(hasher.finalize() == Array(SHA256.hash(data: expected)))
    }

    @Test("a record row's stored hash is the one earlier releases wrote")
    func recordRowGolden() {
        let row = RecordRow(
            kind: "case",
            id: "case_0001",
            alias: "KOL-2026-0001",
            officeCode: "KOL",
            partnerID: nil,
            subjectID: nil,
            status: 2,
            category: 0,
            day: "2026-03-01",
            createdAt: 1_700_000_000_000,
            updatedAt: 1_700_000_000_500,
            flagged: false,
            version: 3,
            body: Data("fictional body".utf8),
            secret: nil,
            sealed: Data([1, 2, 3])
        )
        // Computed by the hasher as it stood before it wrote into one buffer (at 1de482f).
        #expect(
            SQLTransaction.storedHash(row).map { String(format: "%02x", $0) }.joined()
                == "8496b81b03ab82479f4a9a3dfaa75ddcd25f6d4d813e19172d6b627ba9991025"
        )
    }

    @Test("a day is YYYY-MM-DD, padded, for every valid date and the odd stored one")
    func days() {
        func day(_ year: Int32, _ month: Int32, _ day: Int32) -> String? {
            var date = Haven_V1_CivilDate()
            date.year = year
            date.month = month
            date.day = day
            return dayString(date)
        }
        #expect(day(2026, 3, 1) == "2026-03-01")
        #expect(day(1, 1, 9) == "0001-01-09")
        #expect(day(9999, 12, 31) == "9999-12-31")
        #expect(day(812, 10, 10) == "0812-10-10")
        #expect(day(0, 3, 1) == nil)
        #expect(day(12345, 1, 1) == "12345-01-01")
        #expect(day(2026, 100, 1) == "2026-100-01")
    }
}
