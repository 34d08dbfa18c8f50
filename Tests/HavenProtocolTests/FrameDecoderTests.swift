import HavenProtocol
import NIOCore
import NIOEmbedded
import NIOTestUtils
import Testing

@Suite("FrameDecoder")
struct FrameDecoderTests {
    static func frame(_ payload: [UInt8], flags: UInt8 = 0) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(flags)
        buffer.writeInteger(UInt32(payload.count))
        buffer.writeBytes(payload)
        return buffer
    }

    static func header(flags: UInt8 = 0, length: UInt32) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(flags)
        buffer.writeInteger(length)
        return buffer
    }

    /// Feeds `input` to a fresh decoder and returns what it produced, or throws its error.
    static func decode(
        _ input: ByteBuffer,
        maximum: Int = Frame.defaultMaximumPayloadLength,
        eof: Bool = true
    ) throws -> [ByteBuffer] {
        let processor = NIOSingleStepByteToMessageProcessor(FrameDecoder(maximumPayloadLength: maximum))
        var out: [ByteBuffer] = []
        try processor.process(buffer: input) { out.append($0) }
        if eof {
            try processor.finishProcessing(seenEOF: true) { out.append($0) }
        }
        return out
    }

    @Test("passes NIO's ByteToMessageDecoderVerifier: byte by byte, whole and batched")
    func verifier() throws {
        let payloads: [[UInt8]] = [
            [],
            [0x2A],
            Array("haven".utf8),
            Array(repeating: 0xAB, count: 300),
            Array(0...255),
        ]
        try ByteToMessageDecoderVerifier.verifyDecoder(
            inputOutputPairs: payloads.map { (Self.frame($0), [ByteBuffer(bytes: $0)]) },
            decoderFactory: { FrameDecoder() }
        )
    }

    @Test("accepts a zero-length payload")
    func zeroLength() throws {
        let out = try Self.decode(Self.frame([]))
        #expect(out == [ByteBuffer()])
    }

    @Test("accepts a payload of exactly the maximum")
    func exactlyMaximum() throws {
        let out = try Self.decode(Self.frame(Array(repeating: 7, count: 1024)), maximum: 1024)
        #expect(out.count == 1)
        #expect(out[0].readableBytes == 1024)
    }

    @Test(
        "refuses a declared length over the limit from the header alone",
        arguments: [
            (UInt32.max, Frame.defaultMaximumPayloadLength),
            (UInt32(Frame.defaultMaximumPayloadLength + 1), Frame.defaultMaximumPayloadLength),
            (UInt32(1025), 1024),
        ]
    )
    func oversized(declared: UInt32, maximum: Int) throws {
        // Only the five header bytes are ever given: the decoder must refuse
        // without waiting for (and so without buffering) the declared payload.
        let error = try #require(throws: HavenError.self) {
            try Self.decode(Self.header(length: declared), maximum: maximum, eof: false)
        }
        #expect(error.code == .resourceExhausted)
        #expect(error.message.contains("\(declared) bytes exceeds the limit of \(maximum) bytes"))
    }

    @Test("refuses an oversized frame on a channel, keeping only the header buffered")
    func oversizedOnChannel() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maximumPayloadLength: 1024)))
        var input = Self.header(length: UInt32.max)
        input.writeBytes([1, 2, 3])
        #expect(throws: HavenError.self) { try channel.writeInbound(input) }
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
        _ = try? channel.finish()
    }

    @Test("refuses every reserved flag bit", arguments: 1..<8)
    func reservedFlags(bit: Int) throws {
        let error = try #require(throws: HavenError.self) {
            try Self.decode(Self.frame([1, 2, 3], flags: UInt8(1) << bit))
        }
        #expect(error.code == .invalidArgument)
        #expect(error.message.contains("reserved"))
    }

    @Test("refuses the compressed flag, which version 1 never negotiates")
    func compressed() throws {
        let error = try #require(throws: HavenError.self) {
            try Self.decode(Self.frame([1, 2, 3], flags: Frame.compressedFlag))
        }
        #expect(error.code == .invalidArgument)
        #expect(error.message.contains("compressed"))
    }

    @Test("reports a header truncated at end of stream", arguments: 1..<5)
    func truncatedHeader(length: Int) throws {
        let partial = ByteBuffer(bytes: Array(Self.frame([9, 9, 9]).readableBytesView.prefix(length)))
        let error = try #require(throws: HavenError.self) { try Self.decode(partial) }
        #expect(error.code == .invalidArgument)
        #expect(error.message == "truncated frame: stream ended after \(length) of 5 header bytes")
    }

    @Test("reports a payload truncated at end of stream, after the complete frames before it")
    func truncatedPayload() throws {
        var input = Self.frame([1])
        input.writeImmutableBuffer(
            ByteBuffer(bytes: Self.frame(Array(repeating: 5, count: 10)).readableBytesView.prefix(9))
        )
        let processor = NIOSingleStepByteToMessageProcessor(FrameDecoder())
        var out: [ByteBuffer] = []
        try processor.process(buffer: input) { out.append($0) }
        #expect(out == [ByteBuffer(bytes: [1])])
        let error = try #require(throws: HavenError.self) {
            try processor.finishProcessing(seenEOF: true) { out.append($0) }
        }
        #expect(error.message == "truncated frame: stream ended after 4 of 10 payload bytes")
    }

    @Test("ends cleanly when the stream ends between frames")
    func cleanEnd() throws {
        var input = Self.frame([1, 2])
        input.writeImmutableBuffer(Self.frame([]))
        #expect(try Self.decode(input) == [ByteBuffer(bytes: [1, 2]), ByteBuffer()])
    }

    @Test("hands out payloads as slices of the receive buffer, not copies")
    func slicesNotCopies() throws {
        let input = Self.frame(Array(repeating: 0x11, count: 64))
        let out = try Self.decode(input)
        let same = input.withUnsafeReadableBytes { whole in
            out[0].withUnsafeReadableBytes { payload in
                payload.baseAddress == whole.baseAddress! + Frame.headerLength
            }
        }
        #expect(same)
    }
}
