import Foundation
import HavenProtocol
import HavenTestSupport
import HavenWireTesting
import NIOCore
import SwiftProtobuf
import Testing

/// The generated codec against swift-protobuf, the reference: the same bytes
/// out for every value, the same values in for every input, the same inputs
/// refused. (protobuf-c joins the comparison in the benchmark package's
/// tests, which link it.)
///
/// Serialized, so that it takes one core at most from the suites that run
/// beside it; `.heavy` (never beside the suites that time a promise), and
/// each loop yields between values: its minutes of work that never suspends
/// otherwise held one of Swift's two cooperative threads for seconds at a
/// time, which the servers and clients of the suites beside it share (a
/// certificate's cut-off came 3.2 s after expiry against a 3 s bound, and a
/// flooding client sent too little for its server to stall within a minute).
@Suite("Generated wire codec", .serialized, .heavy)
struct WireCodecTests {
    /// Values per message type; `HAVEN_LONG=1` runs 40,000. The thousands
    /// per message that CI compares run in the benchmark package's
    /// `ThreeWayDifferentialTests` (with protobuf-c too), after this suite:
    /// here they would take CI's two cores from the suites that time what a
    /// server does within a second.
    static let valuesPerType = ProcessInfo.processInfo.environment["HAVEN_LONG"] == "1" ? 40_000 : 400

    struct Subject: Sendable, CustomTestStringConvertible {
        let name: String
        var testDescription: String { self.name }
    }

    static let subjects = _WireSchema.messages.map { Subject(name: $0.name) }

    @Test("encodes every sample to swift-protobuf's bytes and decodes them back")
    func samples() throws {
        for (name, text) in ProtocolSamples.texts.sorted(by: { $0.key < $1.key }) + ProtocolSamples.variants {
            let type = try #require(_WireSchema.byName[name]?.type, "\(name) has no generated codec")
            try Self.expectAgreement(reference: try type.init(textFormatString: text), context: name)
        }
    }

    @Test("agrees with swift-protobuf on random values of", arguments: subjects)
    func randomValues(_ subject: Subject) async throws {
        let type = _WireSchema.byName[subject.name]!.type
        var random = RandomMessages(seed: Self.seed(subject.name), unknownFields: true)
        for index in 0..<Self.valuesPerType {
            let input = random.encoding(of: subject.name, style: .canonical)
            let reference = try type.init(serializedBytes: input)
            try Self.expectAgreement(reference: reference, context: "\(subject.name) #\(index)")
            await Task.yield()
        }
    }

    @Test(
        "decodes what a decoder must accept (any order, repeats, packed or not, overlong varints) as swift-protobuf does",
        arguments: subjects
    )
    func noisyInputs(_ subject: Subject) async throws {
        let type = _WireSchema.byName[subject.name]!.type
        var random = RandomMessages(seed: Self.seed(subject.name) ^ 0x5eed, unknownFields: true)
        for index in 0..<(Self.valuesPerType / 2) {
            let input = random.encoding(of: subject.name, style: .noisy)
            try Self.expectSameDecoding(type, input, context: "\(subject.name) noisy #\(index)")
            await Task.yield()
        }
    }

    @Test(
        "refuses exactly the damaged inputs swift-protobuf refuses (truncated, bit-flipped, spliced)",
        arguments: subjects
    )
    func damagedInputs(_ subject: Subject) async throws {
        let type = _WireSchema.byName[subject.name]!.type
        var random = RandomMessages(seed: Self.seed(subject.name) ^ 0xdead, unknownFields: false)
        var refused = 0
        for index in 0..<(Self.valuesPerType / 10) {
            let input = random.encoding(of: subject.name, style: .canonical)
            guard !input.isEmpty else { continue }
            var damaged: [[UInt8]] = [Array(input.dropLast(1 + random.next(input.count)))]
            var flipped = input
            flipped[random.next(input.count)] ^= UInt8(1 << random.next(8))
            damaged.append(flipped)
            // An invalid UTF-8 byte, a huge length, a reserved wire type (6), a field number 0.
            var spliced = input
            spliced.insert(
                contentsOf: [[0xff], [0x0a, 0xff, 0xff, 0xff, 0x0f], [0x0e], [0x00]][random.next(4)],
                at: random.next(input.count + 1)
            )
            damaged.append(spliced)
            for bytes in damaged {
                if try Self.expectSameDecoding(type, bytes, context: "\(subject.name) damaged #\(index)") == nil {
                    refused += 1
                }
            }
            await Task.yield()
        }
        if Self.valuesPerType >= 400, _WireSchema.byName[subject.name]!.fields.count > 2 {
            #expect(
                refused > 0,
                "no damaged input of \(subject.name) was refused: the damage is not reaching the decoders"
            )
        }
    }

    @Test("keeps unknown fields exactly, in the order they came, through a round trip")
    func unknownFieldsSurvive() throws {
        // A newer partner's office: field 1 (code) known, 40 (varint), 41 (bytes) and 42 (fixed32) unknown.
        let input: [UInt8] =
            [0x0a, 0x03, 0x4b, 0x4f, 0x4c, 0xc0, 0x02, 0x96, 0x01, 0xca, 0x02, 0x02, 0x68, 0x69]
            + [0xd5, 0x02, 1, 2, 3, 4]
        let office = try Haven_V1_Office(wireBytes: input)
        #expect(office.code == "KOL")
        #expect(office.unknownFields.data == Data(input[5...]))
        #expect(office.wireBytes() == input)
        #expect(try office.serializedBytes() == input)
    }

    @Test("frames a message with the generated codec exactly as with swift-protobuf")
    func framing() throws {
        let text = ProtocolSamples.texts["haven.v1.ServerEnvelope"]!
        let envelope = try Haven_V1_ServerEnvelope(textFormatString: text)
        let encoder = FrameEncoder()
        var buffer = ByteBuffer()
        try encoder.encode(envelope, into: &buffer)
        let payload: [UInt8] = try envelope.serializedBytes()
        #expect(
            Array(buffer.readableBytesView) == [0] + withUnsafeBytes(of: UInt32(payload.count).bigEndian, Array.init)
                + payload
        )
        // Too large for the peer: refused before anything is written.
        #expect(throws: HavenError.self) {
            try FrameEncoder(maximumPayloadLength: payload.count - 1).encode(envelope, into: &buffer)
        }
        #expect(buffer.readableBytes == 0)
    }

    // MARK: Checks

    /// The generated codec and swift-protobuf encode `reference` to the same
    /// bytes, and each decodes the other's bytes to `reference`.
    static func expectAgreement(reference: any HavenWireMessage, context: String) throws {
        func check<M: HavenWireMessage>(_ value: M) throws {
            let expected: [UInt8] = try value.serializedBytes()
            let generated = value.wireBytes()
            #expect(generated == expected, "\(context): the generated encoder's bytes differ from swift-protobuf's")
            #expect(value.wireSize == expected.count, "\(context): wireSize")
            var buffer = ByteBuffer(bytes: [0xaa])
            value.writeWire(into: &buffer)
            #expect(Array(buffer.readableBytesView.dropFirst()) == expected, "\(context): writeWire(into:)")
            let decoded = try M(wireBytes: expected)
            #expect(
                decoded.isEqualTo(message: value),
                "\(context): the generated decoder's value differs from swift-protobuf's"
            )
            #expect(
                try M(serializedBytes: generated).isEqualTo(message: value),
                "\(context): swift-protobuf reads the generated bytes differently"
            )
        }
        try check(reference)
    }

    /// Both decoders accept `input` with equal values, or both refuse it.
    /// Returns the decoded value's bytes, nil when refused.
    @discardableResult
    static func expectSameDecoding(
        _ type: any HavenWireMessage.Type,
        _ input: [UInt8],
        context: String
    ) throws -> [UInt8]? {
        func check<M: HavenWireMessage>(_: M.Type) throws -> [UInt8]? {
            let reference = Result { try M(serializedBytes: input) }
            let generated = Result { try M(wireBytes: input) }
            switch (reference, generated) {
            case (.success(let expected), .success(let actual)):
                // Equal values, or the same bytes when a double holds NaN (not equal to itself).
                let bytes: [UInt8] = try expected.serializedBytes()
                #expect(
                    try actual.isEqualTo(message: expected) || actual.serializedBytes() == bytes,
                    "\(context): decoded values differ"
                )
                return bytes
            case (.failure, .failure):
                return nil
            case (.success, .failure(let error)):
                Issue.record(
                    "\(context): swift-protobuf accepts what the generated decoder refuses (\(error)): \(input)"
                )
                return nil
            case (.failure(let error), .success):
                Issue.record(
                    "\(context): the generated decoder accepts what swift-protobuf refuses (\(error)): \(input)"
                )
                return nil
            }
        }
        return try check(type)
    }

    /// A stable seed per message type (Swift's `hashValue` changes per process).
    static func seed(_ name: String) -> UInt64 {
        name.utf8.reduce(14_695_981_039_346_656_037) { ($0 ^ UInt64($1)) &* 1_099_511_628_211 }
    }
}
