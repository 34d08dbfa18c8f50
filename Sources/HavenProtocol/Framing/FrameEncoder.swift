import NIOCore
import SwiftProtobuf

/// Serializes messages into frames.
///
/// The message is serialized once, straight into the buffer that goes to the
/// socket, behind a five-byte header reserved up front: there is no
/// intermediate array and no copy of the payload.
///
/// ```swift
/// let encoder = FrameEncoder()
/// let frame = try encoder.encode(envelope)   // header + payload, ready to write
/// ```
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
        return framed.buffer
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
private struct FramedBytes: SwiftProtobufContiguousBytes {
    var buffer: ByteBuffer

    init(repeating byte: UInt8, count: Int) {
        self.buffer = ByteBufferAllocator().buffer(capacity: Frame.headerLength + count)
        self.buffer.writeInteger(UInt8(0))
        self.buffer.writeInteger(UInt32(truncatingIfNeeded: count))
        self.buffer.writeRepeatingByte(byte, count: count)
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
