import HavenProtocol
import NIOCore
import SwiftProtobuf
import Testing

@Suite("FrameEncoder")
struct FrameEncoderTests {
    @Test("writes flags 0, the big-endian length, then exactly swift-protobuf's bytes")
    func layout() throws {
        var office = Haven_V1_Office()
        office.code = "MNL"
        office.name = "Manila field office"
        let frame = try FrameEncoder().encode(office)
        let plain: [UInt8] = try office.serializedBytes()
        #expect(frame.getInteger(at: 0, as: UInt8.self) == 0)
        #expect(frame.getInteger(at: 1, as: UInt32.self) == UInt32(plain.count))
        #expect(Array(frame.readableBytesView.dropFirst(5)) == plain)
        #expect(frame.readableBytes == plain.count + 5)
    }

    @Test("encodes an all-default message as a five-byte frame")
    func empty() throws {
        let frame = try FrameEncoder().encode(Haven_V1_CallCancel())
        #expect(Array(frame.readableBytesView) == [0, 0, 0, 0, 0])
    }

    @Test("refuses to produce a frame the peer would refuse")
    func oversize() throws {
        var note = Haven_V1_CaseNote()
        note.text = String(repeating: "x", count: 2000)
        let error = try #require(throws: HavenError.self) {
            try FrameEncoder(maximumPayloadLength: 1024).encode(note)
        }
        #expect(error.code == .resourceExhausted)
        #expect(!error.message.contains("xxx"), "an error never echoes content")
    }

    @Test("writes a header for a payload serialized elsewhere")
    func header() throws {
        let header = try FrameEncoder().header(payloadLength: 0x0102_0304 & 0x3F_FFFF, allocator: ByteBufferAllocator())
        #expect(Array(header.readableBytesView) == [0x00, 0x00, 0x02, 0x03, 0x04])
        #expect(throws: HavenError.self) {
            try FrameEncoder(maximumPayloadLength: 10).header(payloadLength: 11, allocator: ByteBufferAllocator())
        }
    }

    @Test("encoding into a connection's buffer gives the same bytes and reuses its memory")
    func intoReusesMemory() throws {
        let encoder = FrameEncoder()
        var office = Haven_V1_Office()
        office.code = "MNL"
        office.name = "Manila field office"
        var outgoing = ByteBuffer()
        try encoder.encode(office, into: &outgoing)
        #expect(outgoing == (try encoder.encode(office)))
        let first = outgoing.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }

        office.name = "Manila field office, Ermita"
        try encoder.encode(office, into: &outgoing)
        #expect(outgoing == (try encoder.encode(office)))
        let second = outgoing.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        #expect(first == second, "the previous frame was released, so its memory is reused")
    }

    @Test("a frame still held by the channel is never overwritten by the next one")
    func intoLeavesHeldFrameAlone() throws {
        let encoder = FrameEncoder()
        var outgoing = ByteBuffer()
        try encoder.encode(Haven_V1_Office.with { $0.code = "KOL" }, into: &outgoing)
        let inFlight = outgoing  // what the channel still has queued
        let before = Array(inFlight.readableBytesView)
        try encoder.encode(Haven_V1_Office.with { $0.code = "MUM" }, into: &outgoing)
        #expect(Array(inFlight.readableBytesView) == before)
        let held = try #require(inFlight.getSlice(at: 5, length: inFlight.readableBytes - 5))
        #expect(try Haven_V1_Office(decodingPayload: held).code == "KOL")
        #expect(outgoing == (try encoder.encode(Haven_V1_Office.with { $0.code = "MUM" })))
    }

    @Test("a large frame's memory is not kept, and a refused frame leaves the buffer empty")
    func intoLimits() throws {
        var note = Haven_V1_CaseNote()
        note.text = String(repeating: "x", count: FrameEncoder.reusableCapacity + 1)
        var outgoing = ByteBuffer()
        try FrameEncoder().encode(note, into: &outgoing)
        #expect(outgoing.readableBytes > FrameEncoder.reusableCapacity)
        try FrameEncoder().encode(Haven_V1_CallCancel(), into: &outgoing)
        #expect(Array(outgoing.readableBytesView) == [0, 0, 0, 0, 0])
        #expect(outgoing.capacity <= FrameEncoder.reusableCapacity)

        let error = try #require(throws: HavenError.self) {
            try FrameEncoder(maximumPayloadLength: 1024).encode(note, into: &outgoing)
        }
        #expect(error.code == .resourceExhausted)
        #expect(outgoing.readableBytes == 0)
        try FrameEncoder().encode(Haven_V1_CallCancel(), into: &outgoing)
        #expect(Array(outgoing.readableBytesView) == [0, 0, 0, 0, 0])
    }

    @Test("threads encoding at once each get their own frames")
    func intoFromManyThreads() async throws {
        let results = await withTaskGroup(of: Bool.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    let encoder = FrameEncoder()
                    var outgoing = ByteBuffer()
                    for round in 0..<500 {
                        let office = Haven_V1_Office.with { $0.name = "office \(worker)-\(round)" }
                        guard (try? encoder.encode(office, into: &outgoing)) != nil,
                            let payload = outgoing.getSlice(at: 5, length: outgoing.readableBytes - 5),
                            let decoded = try? Haven_V1_Office(decodingPayload: payload),
                            decoded == office
                        else { return false }
                        await Task.yield()  // may resume on another thread
                    }
                    return true
                }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results == Array(repeating: true, count: 8))
    }

    @Test("frames decode back through FrameDecoder")
    func throughDecoder() throws {
        let envelope = try Haven_V1_ClientEnvelope.start(
            callID: 9,
            method: MethodCatalog.SurvivorService.getSurvivor,
            request: .with { $0.code = "MNL-S-0042" },
            timeout: .milliseconds(1500)
        )
        let processor = NIOSingleStepByteToMessageProcessor(FrameDecoder())
        var payloads: [ByteBuffer] = []
        try processor.process(buffer: try FrameEncoder().encode(envelope)) { payloads.append($0) }
        let decoded = try Haven_V1_ClientEnvelope(decodingPayload: payloads[0])
        #expect(decoded == envelope)
        #expect(decoded.start.timeoutMs == 1500)
        #expect(try Haven_V1_GetSurvivorRequest(decodingPayload: decoded.start.payload).code == "MNL-S-0042")
    }
}

@Suite("Envelope builders")
struct EnvelopeBuilderTests {
    @Test(
        "round timeouts up to whole milliseconds, never down to 'use the default'",
        arguments: [
            (Duration.zero, UInt64(1)), (.nanoseconds(1), 1), (.microseconds(999), 1), (.milliseconds(1), 1),
            (.microseconds(1001), 2), (.seconds(30), 30_000), (.seconds(-5), 1),
        ]
    )
    func timeouts(duration: Duration, expected: UInt64) {
        #expect(HavenWire.milliseconds(roundingUp: duration) == expected)
    }

    @Test("negotiate the highest shared version, or none")
    func negotiation() {
        #expect(HavenWire.negotiate(offered: [1]) == 1)
        #expect(HavenWire.negotiate(offered: [3, 1, 2], supported: [1, 2]) == 2)
        #expect(HavenWire.negotiate(offered: [2, 3]) == nil)
        #expect(HavenWire.negotiate(offered: []) == nil)
    }

    @Test("carry a HavenError through CallEnd with its code, message and details")
    func errorRoundTrip() throws {
        let error = HavenError.staleVersion(expected: 4, current: 5)
        let envelope = Haven_V1_ServerEnvelope.end(callID: 2, error: error)
        let decoded = try Haven_V1_ServerEnvelope(serializedBytes: envelope.serializedBytes() as [UInt8])
        #expect(decoded.end.error == error)
        #expect(decoded.end.error?.currentVersion == 5)
        #expect(decoded.end.statusCode == .failedPrecondition)
    }

    @Test("a unary success carries the response and no error")
    func unarySuccess() throws {
        var office = Haven_V1_Office()
        office.code = "KOL"
        let envelope = try Haven_V1_ServerEnvelope.end(callID: 1, response: office)
        #expect(envelope.end.error == nil)
        #expect(try Haven_V1_Office(decodingPayload: envelope.end.payload) == office)
        #expect(Haven_V1_ServerEnvelope.endOfStream(callID: 1).end.error == nil)
    }

    @Test("go-away reads as its reason, and an OK go-away as UNAVAILABLE")
    func goAway() {
        let away = Haven_V1_ServerEnvelope.goAway(
            lastCallID: 7,
            reason: HavenError(code: .resourceExhausted, message: "frame too large")
        )
        #expect(away.goAway.lastCallID == 7)
        #expect(away.goAway.reason == HavenError(code: .resourceExhausted, message: "frame too large"))
        #expect(Haven_V1_GoAway().reason.code == .unavailable)
    }
}
