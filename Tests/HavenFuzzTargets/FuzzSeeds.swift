import Foundation
import HavenProtocol
import HavenTestSupport
import HavenWireTesting
import NIOCore
import SwiftProtobuf

/// The seed corpus and the dictionary, made from what the suite already
/// trusts: the golden frames (PROTOCOL.md's test vectors) and a sample of
/// every message of the schema.
public enum FuzzSeeds {
    /// Writes `<directory>/<target>/<name>` for every target; returns how many.
    public static func write(into directory: URL) throws -> Int {
        var written = 0
        func save(_ target: FuzzTarget, _ name: String, _ bytes: [UInt8]) throws {
            let folder = directory.appendingPathComponent(target.rawValue, isDirectory: true)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try Data(bytes).write(to: folder.appendingPathComponent(name))
            written += 1
        }
        let frames = try FileManager.default.contentsOfDirectory(atPath: RepositoryPaths.goldenFrames.path)
            .filter { $0.hasSuffix(".hex") }.sorted()
        var stream: [UInt8] = []
        for file in frames {
            let hex = try String(contentsOf: RepositoryPaths.goldenFrames.appendingPathComponent(file), encoding: .utf8)
            let frame = try bytes(fromHex: hex)
            let name = String(file.dropLast(4))
            // Whole-stream limits: 4 KiB in chunks of 16, and 64 bytes in chunks of 1.
            try save(.frames, name, [0x1F] + frame)
            try save(.frames, name + "-small-limit", [0x00] + frame)
            try save(.envelopes, name, Array(frame.dropFirst(Frame.headerLength)))
            stream += frame
        }
        try save(.frames, "all-golden-frames", [0x27] + stream)
        let types = HavenSchema.messageTypes
        for (index, type) in types.enumerated() {
            guard let text = ProtocolSamples.texts[type.protoMessageName] else { continue }
            let message = try type.init(textFormatString: text)
            try save(.messages, type.protoMessageName, [UInt8(index % 256)] + (try message.serializedBytes()))
        }
        // The wire codec: every sample, and noisy encodings (any order, repeats, unknown fields).
        var random = RandomMessages(seed: 13, unknownFields: true)
        for (index, message) in _WireSchema.messages.enumerated() {
            if let text = ProtocolSamples.texts[message.name] {
                let sample = try message.type.init(textFormatString: text)
                try save(.wire, message.name, [UInt8(index % 256)] + (try sample.serializedBytes()))
            }
            for variant in 0..<2 {
                let bytes = random.encoding(of: message.name, style: .noisy)
                try save(.wire, "\(message.name)-noisy-\(variant)", [UInt8(index % 256)] + bytes)
            }
        }
        // A whole connection: a hello, then one call of every method with its sample request,
        // as the admin (control byte 0) and as a caseworker (2), in chunks of 16 bytes (2 << 3).
        let encoder = FrameEncoder()
        let hello = Array(
            try encoder.encode(Haven_V1_ClientEnvelope.hello(clientAgent: "haven-fuzz/1")).readableBytesView
        )
        for method in MethodCatalog.all {
            guard let type = HavenSchema.messageType(named: method.requestType),
                let text = ProtocolSamples.texts[method.requestType]
            else { continue }
            var start = Haven_V1_ClientEnvelope()
            start.callID = 1
            start.start.method = method.fullName
            start.start.payload = try type.init(textFormatString: text).serializedData()
            let call = Array(try encoder.encode(start).readableBytesView)
            for principal: UInt8 in [0, 2] {
                try save(
                    .connection,
                    "\(method.fullName.replacingOccurrences(of: "/", with: "_"))-\(principal)",
                    [2 << 3 | principal] + hello + call
                )
            }
        }
        // No hello; a hello on the wrong call id; one byte at a time as a machine that has yet to enrol.
        try save(
            .connection,
            "no-hello",
            [0] + Array(try encoder.encode(Haven_V1_ClientEnvelope.ping(1)).readableBytesView)
        )
        var wrongID = Haven_V1_ClientEnvelope.hello(clientAgent: "haven-fuzz/1")
        wrongID.callID = 9
        try save(.connection, "hello-on-call-9", [2] + Array(try encoder.encode(wrongID).readableBytesView))
        try save(.connection, "enrolling-bytewise", [5] + hello)
        return written
    }

    /// A libFuzzer dictionary: method names, the ALPN id, and common field keys.
    public static func dictionary() -> String {
        var lines = ["# Haven's tokens for libFuzzer (haven-fuzz dictionary)."]
        lines.append("alpn=\"\(HavenWire.alpnIdentifier)\"")
        for method in MethodCatalog.all {
            lines.append("method_\(method.service.split(separator: ".").last!)_\(method.method)=\"\(method.fullName)\"")
        }
        // Field keys: numbers 1–24 as varint (wire type 0) and length-delimited (wire type 2).
        for number in 1...24 {
            for wire in [0, 2] {
                let key = number << 3 | wire
                lines.append(String(format: "key_%d_%d=\"\\x%02X\"", number, wire, key))
            }
        }
        lines.append("frame_header=\"\\x00\\x00\\x00\\x00\\x10\"")
        lines.append("varint_max=\"\\xFF\\xFF\\xFF\\xFF\\xFF\\xFF\\xFF\\xFF\\xFF\\x01\"")
        return lines.joined(separator: "\n") + "\n"
    }
}
