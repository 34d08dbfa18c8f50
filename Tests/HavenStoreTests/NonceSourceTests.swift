import Crypto
import Foundation
import Testing

@testable import HavenStore

@Suite("Nonces of sealed boxes")
struct NonceSourceTests {
    @Test("every nonce is 12 bytes and none repeats, across many refills of the buffer, from several threads")
    func distinct() async throws {
        // 4 tasks × 2,000 nonces: 8,000 × 12 bytes, about 23 refills of 4 KiB.
        let batches = try await withThrowingTaskGroup(of: [Data].self) { group in
            for _ in 0..<4 {
                group.addTask { (0..<2_000).map { _ in Data(NonceSource.next()) } }
            }
            return try await group.reduce(into: []) { $0.append(contentsOf: $1) }
        }
        #expect(batches.count == 8_000)
        #expect(batches.allSatisfy { $0.count == 12 })
        #expect(Set(batches).count == batches.count)
        // Not a constant: the bytes vary (a buffer left zero would repeat).
        #expect(Set(batches.map { $0.first! }).count > 200)
    }

    @Test("a box sealed with one opens with its key and context, and with no other")
    func seals() throws {
        let key = SymmetricKey(size: .bits256)
        let box = try SealBox.seal(
            Array("Fictional note".utf8),
            key: key,
            context: "haven.v1 fields caseEvent c/1 KOL version 1"
        )
        let opened = try SealBox.open(box, key: key, context: "haven.v1 fields caseEvent c/1 KOL version 1")
        #expect(String(decoding: opened, as: UTF8.self) == "Fictional note")
        #expect(throws: (any Error).self) {
            _ = try SealBox.open(box, key: key, context: "haven.v1 fields caseEvent c/2 KOL version 1")
        }
        let other = try SealBox.seal(
            Array("Fictional note".utf8),
            key: key,
            context: "haven.v1 fields caseEvent c/1 KOL version 1"
        )
        #expect(other != box, "a fresh nonce for each box")
    }
}
