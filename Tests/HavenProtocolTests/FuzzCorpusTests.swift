import Foundation
import HavenFuzzTargets
import HavenProtocol
import HavenTestSupport
import Testing

/// The fuzzers' seeds and every input they ever broke something with, replayed
/// on every run of the suite (`scripts/fuzz.sh` fuzzes by hand; what it finds
/// is saved under `Fuzz/regressions/<target>/` and from then on runs here).
@Suite("Fuzzing corpus")
struct FuzzCorpusTests {
    static let fuzz = RepositoryPaths.root.appendingPathComponent("Fuzz")

    static func inputs(_ target: FuzzTarget, in folder: String) throws -> [URL] {
        let directory = Self.fuzz.appendingPathComponent(folder).appendingPathComponent(target.rawValue)
        guard FileManager.default.fileExists(atPath: directory.path) else { return [] }
        return try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .filter { !$0.lastPathComponent.hasPrefix(".") }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    @Test(
        "every seed and every saved regression input runs without breaking an invariant",
        arguments: FuzzTarget.allCases
    )
    func replay(_ target: FuzzTarget) throws {
        let seeds = try Self.inputs(target, in: "corpus")
        #expect(seeds.count >= 10, "a seed corpus for \(target) (haven-fuzz seed Fuzz/corpus)")
        for file in seeds + (try Self.inputs(target, in: "regressions")) {
            let problems = target.run(Array(try Data(contentsOf: file)))
            #expect(problems.isEmpty, "\(file.lastPathComponent): \(problems)")
        }
    }

    @Test("the frame target compares the decoder with PROTOCOL.md read literally, whatever the chunking")
    func framesAgreeWithTheReference() {
        // Two frames, then a third whose header declares more than the 64-byte limit.
        let stream: [UInt8] = [0, 0, 0, 0, 2, 0xAA, 0xBB, 0, 0, 0, 0, 0, 0, 0, 0, 0, 65]
        for chunk in 1...16 {
            let decoded = FuzzTarget.decode(stream, limit: 64, chunk: chunk).decoded
            #expect(decoded.payloads == [[0xAA, 0xBB], []])
            #expect(decoded.error == .resourceExhausted)
            #expect(decoded == FuzzTarget.reference(stream, limit: 64))
        }
        #expect(FuzzTarget.reference([0, 0, 0, 0, 3, 1], limit: 64).error == .invalidArgument, "truncated payload")
        #expect(FuzzTarget.reference([2, 0, 0, 0, 0], limit: 64).error == .invalidArgument, "reserved flag")
        #expect(FuzzTarget.frames([0x00, 1, 0, 0, 0, 0]).isEmpty, "the compressed flag is refused by both")
    }

    @Test("Fuzz/haven.dict is what haven-fuzz dictionary prints (every method of the catalog)")
    func dictionaryIsCurrent() throws {
        let committed = try String(contentsOf: Self.fuzz.appendingPathComponent("haven.dict"), encoding: .utf8)
        #expect(committed == FuzzSeeds.dictionary())
    }
}
