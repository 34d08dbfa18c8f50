import Foundation
import HavenProtocol
import Testing

@testable import HavenClient

/// The keys the client makes for creates that carry none: UUIDs of version 7,
/// whose first 48 bits are the time, so that a client's keys sort by when
/// they were made (and land side by side in the server's index).
@Suite("Idempotency keys")
struct IdempotencyKeyTests {
    /// A generator that always gives `value`, so that the random bits are known.
    struct Constant: RandomNumberGenerator {
        var value: UInt64
        mutating func next() -> UInt64 { self.value }
    }

    @Test("a key is a version 7 UUID: the time in its first 48 bits, the version and variant set, the rest random")
    func layout() throws {
        var generator = Constant(value: .max)
        let key = IdempotencyKey.make(milliseconds: 0x0193_8F2A_1B3C, using: &generator)
        #expect(key == "01938f2a-1b3c-7fff-bfff-ffffffffffff")
        let uuid = try #require(UUID(uuidString: key)).uuid
        #expect(uuid.6 >> 4 == 7, "version 7")
        #expect(uuid.8 >> 6 == 0b10, "the RFC 9562 variant")

        var zeros = Constant(value: 0)
        #expect(IdempotencyKey.make(milliseconds: 1, using: &zeros) == "00000000-0001-7000-8000-000000000000")
    }

    @Test("keys made later sort after keys made earlier, and keys made together differ")
    func ordered() {
        let start = Date(timeIntervalSince1970: 1_764_000_000)
        let keys = (0..<1_000).map { IdempotencyKey.make(now: start.addingTimeInterval(Double($0) / 100)) }
        #expect(keys == keys.sorted(), "in the order they were made, 10 ms apart")
        let together = (0..<10_000).map { _ in IdempotencyKey.make(now: start) }
        #expect(Set(together).count == 10_000, "74 random bits: no two alike")
        #expect(
            together.allSatisfy { $0.hasPrefix(String(keys[0].prefix(13))) },
            "the same millisecond, the same prefix"
        )
    }

    @Test("a key is written as Foundation writes the UUID, in lower case")
    func textMatchesFoundation() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<1_000 {
            let uuid = UUID.random(using: &generator)
            #expect(TimeOrderedUUID.lowercasedString(uuid) == uuid.uuidString.lowercased())
        }
        let edges = [
            UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)),
            UUID(uuid: (255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255)),
        ]
        for uuid in edges { #expect(TimeOrderedUUID.lowercasedString(uuid) == uuid.uuidString.lowercased()) }
        #expect(IdempotencyKey.make().count == 36)
    }
}
