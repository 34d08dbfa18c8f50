import Foundation
import HavenFuzzTargets
import HavenProtocol
import HavenTestSupport
import NIOCore
import Testing

/// The fuzzers' seeds and every input they ever broke something with, replayed
/// on every run of the suite (`scripts/fuzz.sh` fuzzes by hand; what it finds
/// is saved under `Fuzz/regressions/<target>/` and from then on runs here).
///
/// `.heavy`: its five targets replay at once, each a long run of work that
/// rarely suspends, on the threads Swift's concurrency shares with the
/// servers of the suites beside it. A certificate's cut-off, timed beside it
/// in one CI run, came more than 4 s late (its bound is 3 s). Each replay
/// also yields between inputs.
@Suite("Fuzzing corpus", .heavy)
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
    func replay(_ target: FuzzTarget) async throws {
        let seeds = try Self.inputs(target, in: "corpus")
        #expect(seeds.count >= 10, "a seed corpus for \(target) (haven-fuzz seed Fuzz/corpus)")
        for file in seeds + (try Self.inputs(target, in: "regressions")) {
            let problems = await target.check(Array(try Data(contentsOf: file)))
            #expect(problems.isEmpty, "\(file.lastPathComponent): \(problems)")
            await Task.yield()
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

    @Test(
        "the connection target reaches the handlers: a caseworker's hello and WhoAmI are answered, an over-long field refused"
    )
    func connectionTargetDispatches() async throws {
        let encoder = FrameEncoder()
        let hello = Array(
            try encoder.encode(Haven_V1_ClientEnvelope.hello(clientAgent: "haven-fuzz/1")).readableBytesView
        )
        let whoAmI = Array(
            try encoder.encode(
                Haven_V1_ClientEnvelope.start(callID: 1, method: MethodCatalog.SessionService.whoAmI, request: .init())
            ).readableBytesView
        )
        var office = Haven_V1_GetOfficeRequest()
        office.code = String(repeating: "K", count: 10_000)
        let tooLong = Array(
            try encoder.encode(
                Haven_V1_ClientEnvelope.start(callID: 2, method: MethodCatalog.OfficeService.getOffice, request: office)
            ).readableBytesView
        )
        // Control byte 2: the caseworker (worker-kol), whole chunks.
        let replies = try await ConnectionHarness.replies([7 << 3 | 2] + hello + whoAmI + tooLong)
        guard case .hello = replies.first?.kind else {
            Issue.record("no hello first: \(replies)")
            return
        }
        let ends = Dictionary(
            replies.compactMap { envelope -> (UInt64, Haven_V1_CallEnd)? in
                guard case .end(let end) = envelope.kind else { return nil }
                return (envelope.callID, end)
            },
            uniquingKeysWith: { first, _ in first }
        )
        let principal = try Haven_V1_Principal(decodingPayload: try #require(ends[1]).payload)
        #expect(principal.id == "worker-kol")
        #expect(ends[2]?.statusCode == .invalidArgument)
        #expect(await FuzzTarget.connection.check([7 << 3 | 2] + hello + whoAmI + tooLong).isEmpty)
    }

    @Test("Fuzz/haven.dict is what haven-fuzz dictionary prints (every method of the catalog)")
    func dictionaryIsCurrent() throws {
        let committed = try String(contentsOf: Self.fuzz.appendingPathComponent("haven.dict"), encoding: .utf8)
        #expect(committed == FuzzSeeds.dictionary())
    }
}
