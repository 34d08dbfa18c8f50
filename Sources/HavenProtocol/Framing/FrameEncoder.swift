import NIOCore
import SwiftProtobuf

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Serializes messages into frames.
///
/// The message is serialized once, straight into the buffer that goes to the
/// socket, behind a five-byte header reserved up front: there is no
/// intermediate array and no copy of the payload.
///
/// ```swift
/// let encoder = FrameEncoder()
/// let frame = try encoder.encode(envelope)   // header + payload, ready to write
///
/// var outgoing = ByteBuffer()                 // one per connection
/// try encoder.encode(envelope, into: &outgoing)
/// channel.writeAndFlush(outgoing, promise: nil)
/// ```
///
/// The second form reuses the buffer's memory for the next frame once the
/// channel has let go of the previous one, so a busy connection does not
/// allocate per frame.
public struct FrameEncoder: Sendable {
    /// The largest payload this encoder produces, in bytes. The peer refuses
    /// larger frames, so they are refused here before they are sent.
    public let maximumPayloadLength: Int

    /// Creates an encoder.
    ///
    /// - Parameter maximumPayloadLength: The peer's limit (default 4 MiB).
    public init(maximumPayloadLength: Int = Frame.defaultMaximumPayloadLength) {
        precondition(
            maximumPayloadLength >= 0 && UInt64(maximumPayloadLength) <= UInt64(UInt32.max),
            "maximumPayloadLength must fit in a frame's UInt32 length"
        )
        self.maximumPayloadLength = maximumPayloadLength
    }

    /// Serializes `message` into a complete frame.
    ///
    /// - Parameter message: The message (normally an envelope).
    /// - Returns: A buffer holding the header and the payload.
    /// - Throws: ``HavenError`` with RESOURCE_EXHAUSTED when the payload would
    ///   exceed ``maximumPayloadLength``, INTERNAL when serialization fails.
    public func encode(_ message: some SwiftProtobuf.Message) throws(HavenError) -> ByteBuffer {
        try self.frame(message).buffer
    }

    /// Serializes `message` into `FramedBytes` (into a buffer lent by this
    /// thread's ``FrameLender``, if any) and checks the payload's length.
    private func frame(_ message: some SwiftProtobuf.Message) throws(HavenError) -> FramedBytes {
        let framed: FramedBytes
        do {
            framed = try message.serializedBytes()
        } catch {
            throw HavenError(code: .internal, message: "could not serialize \(type(of: message).protoMessageName)")
        }
        guard framed.count <= self.maximumPayloadLength else {
            throw HavenError(
                code: .resourceExhausted,
                message:
                    "\(type(of: message).protoMessageName) of \(framed.count) bytes exceeds the frame limit of \(self.maximumPayloadLength) bytes"
            )
        }
        return framed
    }

    /// Frames whose buffer is kept for reuse by `encode(_:into:)`; a larger
    /// frame's memory is given back rather than held by an idle connection.
    public static let reusableCapacity = 64 * 1024

    /// Replaces the contents of `buffer` with a complete frame of `message`.
    ///
    /// The frame is serialized straight into `buffer`'s memory when nothing
    /// else holds it (the channel has written the previous frame), so a
    /// connection that keeps one buffer for its outgoing frames allocates
    /// nothing per frame; otherwise `buffer` gets fresh memory, as
    /// `encode(_:)` would. Memory beyond ``reusableCapacity`` is not kept.
    ///
    /// - Parameters:
    ///   - message: The message (normally an envelope).
    ///   - buffer: The connection's outgoing buffer. On return it holds the
    ///     frame; after an error it is empty.
    /// - Throws: ``HavenError`` with RESOURCE_EXHAUSTED when the payload would
    ///   exceed ``maximumPayloadLength``, INTERNAL when serialization fails.
    public func encode(_ message: some SwiftProtobuf.Message, into buffer: inout ByteBuffer) throws(HavenError) {
        if buffer.capacity > Self.reusableCapacity { buffer = ByteBuffer() }
        let lender = FrameLender.current
        lender.buffer = consume buffer
        defer { lender.buffer = nil }
        do throws(HavenError) {
            buffer = try self.frame(message).buffer
        } catch {
            buffer = ByteBuffer()  // the lent memory, if serialized into, goes with the refused frame
            throw error
        }
    }

    /// Serializes `message` into a complete frame with Haven's generated
    /// codec (the same bytes as swift-protobuf's, sized once and written in
    /// place).
    ///
    /// - Parameter message: The message (normally an envelope).
    /// - Returns: A buffer holding the header and the payload.
    /// - Throws: ``HavenError`` with RESOURCE_EXHAUSTED when the payload would
    ///   exceed ``maximumPayloadLength``.
    public func encode(_ message: some HavenWireMessage) throws(HavenError) -> ByteBuffer {
        var buffer = ByteBuffer()
        try self.encode(message, into: &buffer)
        return buffer
    }

    /// Replaces the contents of `buffer` with a complete frame of `message`,
    /// with Haven's generated codec: the message is sized once, then written
    /// straight into `buffer`'s memory behind the header.
    ///
    /// `buffer`'s memory is reused when nothing else holds it (the channel has
    /// written the previous frame), so a connection that keeps one buffer for
    /// its outgoing frames allocates nothing per frame. Memory beyond
    /// ``reusableCapacity`` is not kept.
    ///
    /// - Parameters:
    ///   - message: The message (normally an envelope).
    ///   - buffer: The connection's outgoing buffer. On return it holds the
    ///     frame; after an error it is empty.
    /// - Throws: ``HavenError`` with RESOURCE_EXHAUSTED when the payload would
    ///   exceed ``maximumPayloadLength``.
    public func encode(_ message: some HavenWireMessage, into buffer: inout ByteBuffer) throws(HavenError) {
        if buffer.capacity > Self.reusableCapacity { buffer = ByteBuffer() }
        let limit = self.maximumPayloadLength
        try _WireScratch.withSizes { (sizes) throws(HavenError) in
            let size = message._wireSize(&sizes)
            guard size <= limit else {
                buffer = ByteBuffer()
                throw HavenError(
                    code: .resourceExhausted,
                    message:
                        "\(type(of: message).protoMessageName) of \(size) bytes exceeds the frame limit of \(limit) bytes"
                )
            }
            let needed = Frame.headerLength + size
            Self.clear(&buffer, forFrameOf: needed)
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: needed) { bytes in
                bytes.storeBytes(of: UInt8(0), toByteOffset: 0, as: UInt8.self)
                bytes.storeBytes(of: UInt32(truncatingIfNeeded: size).bigEndian, toByteOffset: 1, as: UInt32.self)
                sizes.rewind()
                message.writeWire(to: bytes.baseAddress! + Frame.headerLength, size: size, &sizes)
                return needed
            }
        }
    }

    /// Empties a connection's outgoing buffer for a frame of `needed` bytes:
    /// its memory is reused when it is large enough and nothing else holds
    /// it (the channel has written the previous frame); a small buffer grows
    /// to the next power of two, so slightly larger frames later fit too.
    static func clear(_ buffer: inout ByteBuffer, forFrameOf needed: Int) {
        if buffer.capacity >= needed {
            buffer.clear()
        } else if needed > Self.reusableCapacity {
            buffer.clear(minimumCapacity: needed)
        } else {
            buffer.clear(minimumCapacity: max(256, 1 << (Int.bitWidth - (needed - 1).leadingZeroBitCount)))
        }
    }

    /// Writes the header of a frame whose payload is already serialized.
    ///
    /// Write the header and the payload as two buffers (the channel gathers
    /// them into one system call) rather than copying the payload.
    ///
    /// - Parameters:
    ///   - payloadLength: The payload's length in bytes.
    ///   - allocator: Where to allocate the five header bytes.
    /// - Returns: The header.
    /// - Throws: ``HavenError`` with RESOURCE_EXHAUSTED over the limit.
    public func header(payloadLength: Int, allocator: ByteBufferAllocator) throws(HavenError) -> ByteBuffer {
        guard payloadLength <= self.maximumPayloadLength else {
            throw HavenError(
                code: .resourceExhausted,
                message:
                    "payload of \(payloadLength) bytes exceeds the frame limit of \(self.maximumPayloadLength) bytes"
            )
        }
        var header = allocator.buffer(capacity: Frame.headerLength)
        header.writeInteger(UInt8(0))
        header.writeInteger(UInt32(payloadLength))
        return header
    }
}

/// The bytes swift-protobuf serializes into: a `ByteBuffer` whose first five
/// bytes are the frame header, so the payload is written in place.
///
/// swift-protobuf sizes the message, creates this with `init(repeating:count:)`
/// and fills it through `withUnsafeMutableBytes`; both see only the payload.
/// `init(repeating:count:)` takes no context, so a buffer to reuse is handed
/// to it through the calling thread's ``FrameLender``.
private struct FramedBytes: SwiftProtobufContiguousBytes {
    var buffer: ByteBuffer

    init(repeating byte: UInt8, count: Int) {
        let needed = Frame.headerLength + count
        if var lent = FrameLender.existing?.buffer.take() {
            FrameEncoder.clear(&lent, forFrameOf: needed)
            self.buffer = lent
        } else {
            self.buffer = ByteBufferAllocator().buffer(capacity: needed)
        }
        // Header and payload in one write: flags 0, big-endian length, then the
        // payload's bytes, which swift-protobuf overwrites.
        self.buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: needed) { bytes in
            bytes.storeBytes(of: UInt8(0), toByteOffset: 0, as: UInt8.self)
            bytes.storeBytes(of: UInt32(truncatingIfNeeded: count).bigEndian, toByteOffset: 1, as: UInt32.self)
            UnsafeMutableRawBufferPointer(rebasing: bytes[Frame.headerLength..<needed]).initializeMemory(
                as: UInt8.self,
                repeating: byte
            )
            return needed
        }
    }

    init<S: Sequence>(_ sequence: S) where S.Element == UInt8 {
        let bytes = Array(sequence)
        self.buffer = ByteBufferAllocator().buffer(capacity: Frame.headerLength + bytes.count)
        self.buffer.writeInteger(UInt8(0))
        self.buffer.writeInteger(UInt32(truncatingIfNeeded: bytes.count))
        self.buffer.writeBytes(bytes)
    }

    var count: Int { self.buffer.readableBytes - Frame.headerLength }

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try self.buffer.withUnsafeReadableBytes { bytes in
            try body(UnsafeRawBufferPointer(rebasing: bytes[Frame.headerLength...]))
        }
    }

    mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try self.buffer.withUnsafeMutableReadableBytes { bytes in
            try body(UnsafeMutableRawBufferPointer(rebasing: bytes[Frame.headerLength...]))
        }
    }
}

/// A buffer lent, for the duration of one `serializedBytes()` call on this
/// thread, to the `FramedBytes` that swift-protobuf creates.
///
/// One per thread (a POSIX thread-specific value), so lending needs no lock;
/// serialization is synchronous, so the loan never crosses threads.
private final class FrameLender {
    var buffer: ByteBuffer?

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let result = pthread_key_create(&key) { pointer in
            guard let pointer = pointer as UnsafeMutableRawPointer? else { return }
            Unmanaged<FrameLender>.fromOpaque(pointer).release()
        }
        precondition(result == 0, "pthread_key_create failed: \(result)")
        return key
    }()

    /// This thread's lender, created on first use.
    static var current: FrameLender {
        if let existing { return existing }
        let lender = FrameLender()
        pthread_setspecific(Self.key, Unmanaged.passRetained(lender).toOpaque())
        return lender
    }

    /// This thread's lender, if it has one.
    static var existing: FrameLender? {
        guard let pointer = pthread_getspecific(Self.key) else { return nil }
        return Unmanaged<FrameLender>.fromOpaque(pointer).takeUnretainedValue()
    }
}
