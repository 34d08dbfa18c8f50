import BenchmarkMessages
import HavenProtocol
import NIOCore
import SwiftProtobuf
import Testing

/// Haven's Swift encoding and protobuf-c's C encoding are the same wire
/// format: each reads what the other writes, for every benchmarked message.
@Suite("Haven and protobuf-c")
struct WireCompatibilityTests {
    @Test("protobuf-c reads Haven's frames and writes the same bytes back", arguments: Representative.all.map(\.name))
    func cReadsSwift(name: String) throws {
        let sample = try #require(Representative.all.first { $0.name == name })
        func check<M: HavenWireMessage>(_ message: M) throws {
            let frame = try FrameEncoder(maximumPayloadLength: 64 << 20).encode(message)
            let payload = Array(frame.readableBytesView.dropFirst(Frame.headerLength))
            let codec = try #require(ProtobufCCodec(messageName: M.protoMessageName))
            let cBytes = try #require(
                codec.roundTrip(payload),
                "protobuf-c could not decode Haven's \(M.protoMessageName)"
            )
            // Both encoders write fields in number order: the bytes agree exactly.
            #expect(cBytes == payload)
            // And what C wrote decodes in Swift to the original message.
            let decoded = try M(decodingPayload: cBytes)
            #expect(decoded.isEqualTo(message: message))
        }
        try _openExistential(sample.message, do: check)
    }

    @Test("Haven rejects what protobuf-c rejects: a truncated message")
    func truncated() throws {
        let bytes: [UInt8] = try Representative.mediumCase.serializedBytes()
        let cut = Array(bytes.prefix(bytes.count / 2))
        let codec = try #require(ProtobufCCodec(messageName: Haven_V1_Case.protoMessageName))
        #expect(codec.roundTrip(cut) == nil)
        #expect(throws: HavenError.self) { try Haven_V1_Case(decodingPayload: cut) }
    }
}
