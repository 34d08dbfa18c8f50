import Foundation
import HavenProtocol
import NIOCore
import SwiftProtobuf

/// What the fuzzers drive (`scripts/fuzz.sh`, through `haven-fuzz` built
/// with libFuzzer) and what `FuzzCorpusTests` replays on every run of the
/// suite: the same code, so an input the fuzzer found is a regression test
/// as soon as it is saved under `Fuzz/regressions/<target>/`.
///
/// Each target takes any bytes and returns the invariants they broke (none
/// when the code under test behaved: accepted what is valid, refused what is
/// not with the documented error, and never crashed). Under the fuzzer a
/// broken invariant is a crash, so libFuzzer saves the input.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// The frame decoder: any byte stream, delivered in chunks of any size.
    case frames
    /// Client and server envelopes, and the request a call start carries,
    /// decoded by its method's type and checked against the field limits.
    case envelopes
    /// Any message of the schema (chosen by the first byte), decoded,
    /// re-encoded and checked against the field limits.
    case messages
    /// A whole server connection without TLS: the frame reader, hello, call
    /// control and dispatch to the real handlers over a temporary store
    /// (``ConnectionHarness``).
    case connection
    /// Any message of the schema (chosen by the first byte), decoded by the
    /// generated decoder alone and by swift-protobuf: whatever the generated
    /// decoder accepts, swift-protobuf accepts as the same value, and both
    /// encoders write the same bytes for it.
    case wire

    /// Runs one input, from synchronous code outside Swift's cooperative
    /// thread pool (libFuzzer's callback, `haven-fuzz replay`).
    ///
    /// - Returns: The invariants broken; empty when none.
    public func run(_ input: [UInt8]) -> [String] {
        switch self {
        case .frames: Self.frames(input)
        case .envelopes: Self.envelopes(input)
        case .messages: Self.messages(input)
        case .connection: Self.connection(input)
        case .wire: Self.wire(input)
        }
    }

    /// Runs one input from async code (the tests).
    ///
    /// - Returns: The invariants broken; empty when none.
    public func check(_ input: [UInt8]) async -> [String] {
        switch self {
        case .connection: await Self.connection(async: input)
        default: self.run(input)
        }
    }

    // MARK: Frames

    /// What decoding a whole stream gives: the payloads, then the error that stopped it, if any.
    package struct Decoded: Equatable {
        package var payloads: [[UInt8]] = []
        package var error: HavenError.Code?
    }

    /// The first byte picks the chunk size (1 to 16 bytes) and the payload
    /// limit (64 bytes, 4 KiB or the default 4 MiB); the rest is the stream.
    package static func frames(_ input: [UInt8]) -> [String] {
        guard let control = input.first else { return [] }
        let stream = Array(input.dropFirst())
        let chunk = Int(control & 0x0F) + 1
        let limit = [64, 4096, Frame.defaultMaximumPayloadLength, 0][Int(control >> 4) & 0x03]
        let chunked = Self.decode(stream, limit: limit, chunk: chunk)
        var problems: [String] = []
        if case .failure(let other) = chunked.outcome {
            problems.append("the decoder threw \(type(of: other)), not HavenError")
        }
        let reference = Self.reference(stream, limit: limit)
        if chunked.decoded != reference {
            problems.append(
                "chunks of \(chunk), limit \(limit): decoded \(chunked.decoded.payloads.count) payloads then \(String(describing: chunked.decoded.error)); the reference \(reference.payloads.count) then \(String(describing: reference.error))"
            )
        }
        if let code = chunked.decoded.error, code != .invalidArgument, code != .resourceExhausted {
            problems.append("a framing error must be INVALID_ARGUMENT or RESOURCE_EXHAUSTED, not \(code)")
        }
        if chunked.decoded.payloads.contains(where: { $0.count > limit }) {
            problems.append("a payload over the limit was delivered")
        }
        return problems
    }

    /// Runs the decoder as a channel handler would: bytes arrive `chunk` at a time, then end of stream.
    package static func decode(
        _ stream: [UInt8],
        limit: Int,
        chunk: Int
    ) -> (decoded: Decoded, outcome: Result<Void, any Error>) {
        var decoder = FrameDecoder(maximumPayloadLength: limit)
        var buffer = ByteBuffer()
        var decoded = Decoded()
        do {
            var offset = 0
            while offset < stream.count {
                let end = min(stream.count, offset + chunk)
                buffer.writeBytes(stream[offset..<end])
                offset = end
                while let payload = try decoder.decode(buffer: &buffer) {
                    decoded.payloads.append(Array(payload.readableBytesView))
                }
                buffer.discardReadBytes()
            }
            while let payload = try decoder.decodeLast(buffer: &buffer, seenEOF: true) {
                decoded.payloads.append(Array(payload.readableBytesView))
            }
            return (decoded, .success(()))
        } catch let error as HavenError {
            decoded.error = error.code
            return (decoded, .success(()))
        } catch {
            return (decoded, .failure(error))
        }
    }

    /// PROTOCOL.md §3 read literally, one frame at a time over the whole stream.
    package static func reference(_ stream: [UInt8], limit: Int) -> Decoded {
        var decoded = Decoded()
        var offset = 0
        while offset < stream.count {
            guard stream.count - offset >= Frame.headerLength else {
                decoded.error = .invalidArgument  // truncated header
                return decoded
            }
            let flags = stream[offset]
            let length = stream[(offset + 1)...(offset + 4)].reduce(0) { $0 << 8 | Int($1) }
            if flags != 0 {
                decoded.error = .invalidArgument  // reserved bits, or compression never negotiated
                return decoded
            }
            if length > limit {
                decoded.error = .resourceExhausted
                return decoded
            }
            guard stream.count - offset - Frame.headerLength >= length else {
                decoded.error = .invalidArgument  // truncated payload
                return decoded
            }
            decoded.payloads.append(Array(stream[(offset + 5)..<(offset + 5 + length)]))
            offset += Frame.headerLength + length
        }
        return decoded
    }

    // MARK: Envelopes and messages

    static func envelopes(_ input: [UInt8]) -> [String] {
        var problems = Self.roundTrip(Haven_V1_ClientEnvelope.self, input)
        problems += Self.roundTrip(Haven_V1_ServerEnvelope.self, input)
        if let envelope = try? Haven_V1_ClientEnvelope(serializedBytes: input) {
            switch envelope.kind {
            case .hello(let hello):
                _ = HavenFieldLimits.violation(in: hello)
            case .start(let start):
                _ = HavenFieldLimits.violation(in: start)
                // The request, as the router decodes it for the method named.
                if let method = MethodCatalog.method(named: start.method),
                    let type = HavenSchema.messageType(named: method.requestType)
                {
                    problems += Self.roundTrip(type, Array(start.payload))
                }
            default:
                break
            }
        }
        return problems
    }

    static func messages(_ input: [UInt8]) -> [String] {
        guard let selector = input.first else { return [] }
        let types = HavenSchema.messageTypes
        return Self.roundTrip(types[Int(selector) % types.count], Array(input.dropFirst()))
    }

    static func wire(_ input: [UInt8]) -> [String] {
        guard let selector = input.first else { return [] }
        let messages = _WireSchema.messages
        return messages[Int(selector) % messages.count].type.differential(Array(input.dropFirst()))
    }
}

extension HavenWireMessage {

    /// The generated decoder (without its fallback) against swift-protobuf,
    /// and, on what both accept, the generated encoder against swift-protobuf's.
    static func differential(_ bytes: [UInt8]) -> [String] {
        typealias M = Self
        let name = M.protoMessageName
        let reference = Result { try M(serializedBytes: bytes) }
        let generated = bytes.withUnsafeBytes { raw in Result { () throws(_WireFallback) in try M(_generatedOnly: raw) }
        }
        let combined = Result { try M(wireBytes: bytes) }
        var problems: [String] = []
        switch (reference, combined) {
        case (.success, .failure): problems.append("\(name): swift-protobuf accepts what init(wireBytes:) refuses")
        case (.failure, .success): problems.append("\(name): init(wireBytes:) accepts what swift-protobuf refuses")
        case (.failure(let error), .failure(let other)):
            if "\(error)" != "\(other)" {
                problems.append("\(name): refused with \(other), swift-protobuf with \(error)")
            }
        case (.success, .success): break
        }
        guard case .success(let value) = generated else { return problems }
        guard case .success(let expected) = reference else {
            return problems + ["\(name): the generated decoder accepts what swift-protobuf refuses"]
        }
        do {
            // Values compared as swift-protobuf's bytes: a double can be NaN.
            let expectedBytes: [UInt8] = try expected.serializedBytes()
            if try value.serializedBytes() != expectedBytes {
                problems.append("\(name): the generated decoder's value differs from swift-protobuf's")
            }
            if value.wireBytes() != expectedBytes || value.wireSize != expectedBytes.count {
                problems.append("\(name): the generated encoder's bytes differ from swift-protobuf's")
            }
        } catch {
            problems.append("\(name): swift-protobuf cannot encode a decoded value: \(error)")
        }
        return problems
    }
}

extension FuzzTarget {
    /// Decodes; when that succeeds, checks the field limits, re-encodes, decodes
    /// again and expects the same bytes (unknown fields included). Bytes, not
    /// `==`: a double can be NaN, which is not equal to itself (the first
    /// finding of the fuzzer, kept in `Fuzz/regressions/messages/`). A failure
    /// to decode must be swift-protobuf's decoding error.
    static func roundTrip(_ type: any SwiftProtobuf.Message.Type, _ bytes: [UInt8]) -> [String] {
        let message: any SwiftProtobuf.Message
        do {
            message = try type.init(serializedBytes: bytes)
        } catch is BinaryDecodingError {
            return []
        } catch {
            return ["\(type.protoMessageName): decoding threw \(Swift.type(of: error)), not BinaryDecodingError"]
        }
        _ = HavenFieldLimits.violation(in: message)
        do {
            let encoded: [UInt8] = try message.serializedBytes()
            let again = try type.init(serializedBytes: encoded)
            let twice: [UInt8] = try again.serializedBytes()
            guard twice == encoded else {
                return ["\(type.protoMessageName): encoding is not stable across a round trip"]
            }
            return []
        } catch {
            return ["\(type.protoMessageName): a decoded message did not round-trip: \(error)"]
        }
    }
}
