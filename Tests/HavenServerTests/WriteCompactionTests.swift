import NIOCore
import NIOEmbedded
import Testing

@testable import HavenServer

/// What reaches the socket: a small write out of a large buffer is copied
/// into one of its own size; a write that fills most of its buffer passes
/// as it is.
@Suite("Write compaction")
struct WriteCompactionTests {
    @Test("a 40-byte record in a 16 KiB buffer is queued in a 40-byte buffer; a full buffer is not copied")
    func compacts() throws {
        let channel = EmbeddedChannel(handler: WriteCompactionHandler())
        var record = ByteBufferAllocator().buffer(capacity: 16 * 1024)
        record.writeBytes((0..<40).map { UInt8($0) })
        try channel.writeOutbound(record)
        let small = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(small == record, "the same bytes")
        #expect(small.storageCapacity < 1024, "its own small buffer, not the 16 KiB one")

        var full = ByteBufferAllocator().buffer(capacity: 4096)
        full.writeBytes([UInt8](repeating: 7, count: 4000))
        try channel.writeOutbound(full)
        let passed = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(passed == full)
        #expect(passed.storageCapacity == full.storageCapacity)
        _ = try channel.finish()
    }
}
