import Foundation
import HavenProtocol
import HavenTestSupport
import NIOCore
import SwiftProtobuf
import Testing

/// Frames built by Debian's `protoc` (scripts/generate-golden-frames.py) and
/// checked in: Haven must read them, write them byte for byte, and agree with
/// `protoc` on what they mean.
@Suite("Golden frames")
struct GoldenFrameTests {
    struct Fixture: Sendable, CustomTestStringConvertible {
        let name: String
        let envelopeType: String
        let payloadType: String?
        let frame: [UInt8]
        let expectedText: String
        let expectedPayloadText: String?
        var testDescription: String { self.name }

        var payload: [UInt8] { Array(self.frame.dropFirst(Frame.headerLength)) }
    }

    static func load() throws -> [Fixture] {
        let directory = RepositoryPaths.goldenFrames
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".textproto") }
            .map { String($0.dropLast(".textproto".count)) }
            .sorted()
        return try names.map { name in
            func read(_ suffix: String) throws -> String {
                try String(contentsOf: directory.appendingPathComponent(name + suffix), encoding: .utf8)
            }
            let source = try read(".textproto")
            func header(_ key: String) -> String? {
                source.split(separator: "\n").first { $0.hasPrefix("# \(key): ") }
                    .map { String($0.dropFirst("# \(key): ".count)) }
            }
            let hex = try read(".hex").trimmingCharacters(in: .whitespacesAndNewlines)
            let payloadType = header("payload")
            return Fixture(
                name: name,
                envelopeType: header("envelope")!,
                payloadType: payloadType,
                frame: try bytes(fromHex: hex),
                expectedText: try read(".txt"),
                expectedPayloadText: payloadType == nil ? nil : try read(".payload.txt")
            )
        }
    }

    static let fixtures: [Fixture] = (try? load()) ?? []

    @Test("fixtures are present")
    func present() {
        #expect(Self.fixtures.count >= 15)
    }

    @Test("decode to the expected values and re-encode byte for byte", arguments: Self.fixtures)
    func decodeAndEncode(_ fixture: Fixture) throws {
        let processor = NIOSingleStepByteToMessageProcessor(FrameDecoder())
        var payloads: [ByteBuffer] = []
        try processor.process(buffer: ByteBuffer(bytes: fixture.frame)) { payloads.append($0) }
        try #require(payloads.count == 1)

        let type = try #require(HavenSchema.messageType(named: fixture.envelopeType))
        let expected = try type.init(textFormatString: fixture.expectedText)
        let decoded = try type.init(serializedBytes: Array(payloads[0].readableBytesView))
        #expect(decoded.isEqualTo(message: expected))

        let encoded = try FrameEncoder().encode(expected)
        #expect(Array(encoded.readableBytesView) == fixture.frame)

        if let payloadType = fixture.payloadType, let payloadText = fixture.expectedPayloadText {
            let inner = try #require(HavenSchema.messageType(named: payloadType))
            let bytes = try innerPayload(of: decoded)
            let decodedInner = try inner.init(serializedBytes: bytes)
            let expectedInner = try inner.init(textFormatString: payloadText)
            #expect(decodedInner.isEqualTo(message: expectedInner))
        }
    }

    @Test("client-get-office reads as the specification's example says")
    func specificationExample() throws {
        let fixture = try #require(Self.fixtures.first { $0.name == "client-get-office" })
        #expect(fixture.frame.prefix(5) == [0x00, 0x00, 0x00, 0x00, 0x30])
        let envelope = try Haven_V1_ClientEnvelope(serializedBytes: fixture.payload)
        #expect(envelope.callID == 1)
        #expect(envelope.start.method == MethodCatalog.OfficeService.getOffice.fullName)
        #expect(envelope.start.timeoutMs == 5000)
        let request = try Haven_V1_GetOfficeRequest(serializedBytes: envelope.start.payload)
        #expect(request.code == "KOL")
    }

    @Test(
        "protoc --decode reads each payload as the checked-in text, and protoc --encode writes the same bytes",
        .enabled(
            if: executableOnPath("protoc") != nil || runningInCI,
            "protoc is not installed: apt-get install -y protobuf-compiler"
        ),
        arguments: Self.fixtures
    )
    func protocAgrees(_ fixture: Fixture) throws {
        let protoc = try #require(executableOnPath("protoc"), "CI must install protobuf-compiler")
        let files = try RepositoryPaths.protoFiles()
        let include = "--proto_path=\(RepositoryPaths.protos.path)"

        let decoded = try run(
            protoc,
            [include, "--decode=\(fixture.envelopeType)"] + files,
            input: Data(fixture.payload)
        )
        #expect(decoded.status == 0, "\(String(decoding: decoded.error, as: UTF8.self))")
        #expect(String(decoding: decoded.output, as: UTF8.self) == fixture.expectedText)

        let encoded = try run(
            protoc,
            [include, "--encode=\(fixture.envelopeType)"] + files,
            input: Data(fixture.expectedText.utf8)
        )
        #expect(encoded.status == 0)
        #expect(Array(encoded.output) == fixture.payload)

        // And protoc reads what Haven writes.
        let type = try #require(HavenSchema.messageType(named: fixture.envelopeType))
        let expected = try type.init(textFormatString: fixture.expectedText)
        let ours = try FrameEncoder().encode(expected)
        let fromHaven = try run(
            protoc,
            [include, "--decode=\(fixture.envelopeType)"] + files,
            input: Data(ours.readableBytesView.dropFirst(Frame.headerLength))
        )
        #expect(String(decoding: fromHaven.output, as: UTF8.self) == fixture.expectedText)
    }
}

private func innerPayload(of envelope: any SwiftProtobuf.Message) throws -> Data {
    switch envelope {
    case let client as Haven_V1_ClientEnvelope: return client.start.payload
    case let server as Haven_V1_ServerEnvelope:
        switch server.kind {
        case .message(let message): return message.payload
        case .end(let end): return end.payload
        default: break
        }
    default: break
    }
    throw HavenError(code: .internal, message: "fixture declares a payload but its envelope carries none")
}
