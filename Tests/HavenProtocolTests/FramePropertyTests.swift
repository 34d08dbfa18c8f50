import HavenProtocol
import HavenWireTesting
import NIOCore
import Testing

@Suite("Frames under random splits")
struct FramePropertyTests {
    @Test("any sequence of frames, cut at any points, decodes to the same payloads", arguments: 0..<200)
    func randomSplits(seed: Int) throws {
        var random = SplitMix64(seed: UInt64(seed) &* 0xA24B_AED4_963E_E407)
        let maximum = 4096
        let count = Int.random(in: 0...12, using: &random)
        var payloads: [[UInt8]] = []
        var stream: [UInt8] = []
        for _ in 0..<count {
            // Mostly small frames, some empty, some at the limit.
            let length =
                switch Int.random(in: 0..<10, using: &random) {
                case 0: 0
                case 1: maximum
                default: Int.random(in: 1...300, using: &random)
                }
            let payload = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            payloads.append(payload)
            stream += [0] + withUnsafeBytes(of: UInt32(length).bigEndian, Array.init) + payload
        }

        var cuts = Set<Int>()
        if !stream.isEmpty {
            for _ in 0..<Int.random(in: 0...20, using: &random) {
                cuts.insert(Int.random(in: 0...stream.count, using: &random))
            }
        }
        let bounds = [0] + cuts.sorted() + [stream.count]

        let processor = NIOSingleStepByteToMessageProcessor(FrameDecoder(maximumPayloadLength: maximum))
        var decoded: [[UInt8]] = []
        for (start, end) in zip(bounds, bounds.dropFirst()) where start <= end {
            try processor.process(buffer: ByteBuffer(bytes: stream[start..<end])) {
                decoded.append(Array($0.readableBytesView))
            }
        }
        try processor.finishProcessing(seenEOF: true) { decoded.append(Array($0.readableBytesView)) }
        #expect(decoded == payloads, "seed \(seed): \(count) frames cut at \(cuts.sorted())")
    }

    @Test("a stream cut short anywhere inside a frame reports truncation, never a bogus payload", arguments: 0..<50)
    func randomTruncation(seed: Int) throws {
        var random = SplitMix64(seed: UInt64(seed) &+ 0x5151)
        let payload = (0..<Int.random(in: 1...200, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random)
        }
        let frame = [0] + withUnsafeBytes(of: UInt32(payload.count).bigEndian, Array.init) + payload
        let cut = Int.random(in: 1..<frame.count, using: &random)

        let processor = NIOSingleStepByteToMessageProcessor(FrameDecoder())
        var decoded: [ByteBuffer] = []
        try processor.process(buffer: ByteBuffer(bytes: frame[..<cut])) { decoded.append($0) }
        let error = try #require(throws: HavenError.self) {
            try processor.finishProcessing(seenEOF: true) { decoded.append($0) }
        }
        #expect(decoded.isEmpty)
        #expect(error.message.hasPrefix("truncated frame"))
    }
}
