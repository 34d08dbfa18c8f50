import HavenProtocol
import Testing

/// The random bytes of nonces and identifiers, read from the system in
/// batches: each handed out once, different every time.
@Suite("Random byte pool")
struct RandomBytePoolTests {
    @Test("identifier words never repeat, across many refills, from several threads, and their bits vary")
    func words() async {
        // 4 tasks × 5,000 words: 160,000 bytes, about 39 refills of 4 KiB.
        let words = await withTaskGroup(of: [UInt64].self) { group in
            for _ in 0..<4 {
                group.addTask {
                    var generator = IdentifierRandomness()
                    return (0..<5_000).map { _ in generator.next() }
                }
            }
            return await group.reduce(into: []) { $0.append(contentsOf: $1) }
        }
        #expect(words.count == 20_000)
        #expect(Set(words).count == words.count)
        // Each of the 64 bits is set in about half the words (a buffer left
        // zero, or bytes handed out twice, would not be).
        for bit in 0..<64 {
            let set = words.count { $0 & (1 << UInt64(bit)) != 0 }
            #expect((9_000...11_000).contains(set), "bit \(bit): \(set) of 20,000")
        }
    }

    @Test("taken bytes are the asked count and never the same run twice, across a refill")
    func take() {
        let runs = (0..<1_000).map { _ in Array(RandomBytePool.nonces.take(12)) }
        #expect(runs.allSatisfy { $0.count == 12 })
        #expect(Set(runs).count == runs.count)
        let whole = RandomBytePool.nonces.take(RandomBytePool.size)
        #expect(whole.count == RandomBytePool.size)
        #expect(Set(whole).count > 200, "a refill's bytes vary")
    }
}
