import Foundation
import HavenProtocol
import HavenTestSupport
import NIOCore
import SwiftProtobuf
import Testing

@Suite("Every message of the schema")
struct SchemaRoundTripTests {
    /// Message names declared in `Protos/`, read from the files themselves.
    static func declaredMessages() throws -> Set<String> {
        var names = Set<String>()
        for file in try RepositoryPaths.protoFiles() {
            let text = try String(contentsOf: RepositoryPaths.protos.appendingPathComponent(file), encoding: .utf8)
            let package = text.split(separator: "\n").first { $0.hasPrefix("package ") }!
                .dropFirst("package ".count).dropLast()
            for line in text.split(separator: "\n") where line.hasPrefix("message ") {
                let name = line.dropFirst("message ".count).prefix { $0.isLetter || $0.isNumber || $0 == "_" }
                names.insert("\(package).\(name)")
            }
        }
        return names
    }

    struct Sample: Sendable, CustomTestStringConvertible {
        let name: String
        let text: String
        var testDescription: String { self.name }
    }

    static let allSamples: [Sample] =
        ProtocolSamples.texts.sorted { $0.key < $1.key }.map { Sample(name: $0.key, text: $0.value) }
        + ProtocolSamples.variants.map { Sample(name: $0.name, text: $0.text) }

    @Test("has a Swift type, and a sample, for every message declared in Protos/")
    func coverage() throws {
        let declared = try Self.declaredMessages()
        #expect(declared.count > 90)
        #expect(Set(HavenSchema.messageTypes.map { $0.protoMessageName }) == declared)
        #expect(Set(ProtocolSamples.texts.keys) == declared)
    }

    @Test("sets every declared field in at least one sample")
    func everyFieldSampled() throws {
        let samples = Self.allSamples.map(\.text).joined(separator: " ")
        let field = /^\s+(?:repeated\s+)?[\w.]+\s+(\w+)\s*=\s*\d+;/
        var missing: [String] = []
        for file in try RepositoryPaths.protoFiles() {
            let text = try String(contentsOf: RepositoryPaths.protos.appendingPathComponent(file), encoding: .utf8)
            for line in text.split(separator: "\n") {
                guard let match = String(line).firstMatch(of: field) else { continue }
                let name = String(match.1)
                if !samples.contains("\(name):") && !samples.contains("\(name) {") {
                    missing.append("\(file): \(name)")
                }
            }
        }
        #expect(missing.isEmpty, "fields without a sample value: \(missing)")
    }

    @Test("round-trips through binary, frames, text and JSON", arguments: Self.allSamples)
    func roundTrip(_ sample: Sample) throws {
        let (name, text) = (sample.name, sample.text)
        let type = try #require(HavenSchema.messageType(named: name))
        let message = try type.init(textFormatString: text)

        let binary: [UInt8] = try message.serializedBytes()
        let decoded = try type.init(serializedBytes: binary)
        #expect(decoded.isEqualTo(message: message))
        if !text.isEmpty {
            #expect(!binary.isEmpty, "a populated sample must not encode to nothing")
        }

        let framed = try FrameEncoder().encode(message)
        #expect(Array(framed.readableBytesView.dropFirst(Frame.headerLength)) == binary)
        var payload = framed
        payload.moveReaderIndex(forwardBy: Frame.headerLength)
        let fromFrame = try decodeAny(type, payload)
        #expect(fromFrame.isEqualTo(message: message))

        let reparsed = try type.init(textFormatString: message.textFormatString())
        #expect(reparsed.isEqualTo(message: message))

        let json = try type.init(jsonString: message.jsonString())
        #expect(json.isEqualTo(message: message))
    }

    private func decodeAny(
        _ type: any SwiftProtobuf.Message.Type,
        _ payload: ByteBuffer
    ) throws -> any SwiftProtobuf.Message {
        func open<M: SwiftProtobuf.Message>(_: M.Type) throws -> any SwiftProtobuf.Message {
            try M(decodingPayload: payload)
        }
        return try open(type)
    }

    @Test("keeps unknown fields from a newer peer")
    func unknownFieldsSurvive() throws {
        // Field 99 (varint 7) is not in haven.v1.Office: a newer schema's addition.
        var office = Haven_V1_Office()
        office.code = "KOL"
        var bytes: [UInt8] = try office.serializedBytes()
        bytes += [0x98, 0x06, 0x07]
        let decoded = try Haven_V1_Office(decodingPayload: bytes)
        #expect(decoded.code == "KOL")
        let reencoded: [UInt8] = try decoded.serializedBytes()
        #expect(reencoded == bytes)
    }

    @Test("rejects bytes that are not the message, naming the type and not the content")
    func undecodablePayload() throws {
        // A length-delimited field claiming 100 bytes with 3 present.
        let garbage: [UInt8] = [0x0A, 0x64, 0x41, 0x42, 0x43]
        let error = try #require(throws: HavenError.self) {
            try Haven_V1_SurvivorIdentity(decodingPayload: garbage)
        }
        #expect(error.code == .invalidArgument)
        #expect(error.message == "undecodable haven.v1.SurvivorIdentity payload")
    }
}
