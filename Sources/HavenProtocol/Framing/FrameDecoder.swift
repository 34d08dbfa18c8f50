import NIOCore

/// Splits a byte stream into frame payloads.
///
/// The decoder reads the five-byte header as soon as it has arrived and
/// checks it before waiting for a single byte of payload: a declared length
/// over ``maximumPayloadLength`` fails with RESOURCE_EXHAUSTED while only the
/// header is buffered, so a peer cannot make the receiver allocate what it
/// declares. Reserved flag bits and the compressed bit fail with
/// INVALID_ARGUMENT. Each decoded payload is a slice of the receive buffer,
/// not a copy. At end of stream, a partial header or payload fails with
/// INVALID_ARGUMENT ("truncated").
///
/// Any error thrown by this decoder means the stream can no longer be framed:
/// the connection must be closed.
///
/// ```swift
/// try channel.pipeline.syncOperations.addHandler(
///     ByteToMessageHandler(FrameDecoder(maximumPayloadLength: 4 << 20))
/// )
/// ```
public struct FrameDecoder: NIOSingleStepByteToMessageDecoder, Sendable {
    /// A frame's payload, still serialized.
    public typealias InboundOut = ByteBuffer

    /// The largest payload accepted, in bytes.
    public let maximumPayloadLength: Int

    /// Creates a decoder.
    ///
    /// - Parameter maximumPayloadLength: The largest payload accepted, in bytes
    ///   (default 4 MiB). At most `UInt32.max`.
    public init(maximumPayloadLength: Int = Frame.defaultMaximumPayloadLength) {
        precondition(
            maximumPayloadLength >= 0 && UInt64(maximumPayloadLength) <= UInt64(UInt32.max),
            "maximumPayloadLength must fit in a frame's UInt32 length"
        )
        self.maximumPayloadLength = maximumPayloadLength
    }

    /// Decodes the next payload once it has fully arrived.
    ///
    /// - Parameter buffer: The bytes received and not yet consumed.
    /// - Returns: The payload, or `nil` until more bytes arrive.
    /// - Throws: ``HavenError`` when the header is invalid or the length is
    ///   over the limit.
    public mutating func decode(buffer: inout ByteBuffer) throws -> ByteBuffer? {
        guard let header = try self.header(in: buffer) else { return nil }
        guard buffer.readableBytes >= Frame.headerLength + header.length else { return nil }
        buffer.moveReaderIndex(forwardBy: Frame.headerLength)
        return buffer.readSlice(length: header.length)
    }

    /// Decodes what is left once no more bytes will arrive.
    ///
    /// - Parameters:
    ///   - buffer: The bytes received and not yet consumed.
    ///   - seenEOF: Whether the stream ended (as opposed to the handler being
    ///     removed).
    /// - Returns: A last complete payload, or `nil` when none is left.
    /// - Throws: ``HavenError`` when the stream ended inside a frame.
    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> ByteBuffer? {
        if let payload = try self.decode(buffer: &buffer) {
            return payload
        }
        guard buffer.readableBytes > 0 else { return nil }
        let partial = buffer.readableBytes
        if partial < Frame.headerLength {
            throw HavenError(
                code: .invalidArgument,
                message: "truncated frame: stream ended after \(partial) of \(Frame.headerLength) header bytes"
            )
        }
        let declared = Int(buffer.getInteger(at: buffer.readerIndex + 1, as: UInt32.self)!)
        throw HavenError(
            code: .invalidArgument,
            message:
                "truncated frame: stream ended after \(partial - Frame.headerLength) of \(declared) payload bytes"
        )
    }

    /// Reads and checks the header at the start of `buffer` without consuming it.
    private func header(in buffer: ByteBuffer) throws -> (flags: UInt8, length: Int)? {
        guard
            let flags = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
            let length = buffer.getInteger(at: buffer.readerIndex + 1, as: UInt32.self)
        else { return nil }
        if flags & Frame.reservedFlags != 0 {
            throw HavenError(
                code: .invalidArgument,
                message: "frame flags 0x\(String(flags, radix: 16)) set reserved bits (only bit 0 is defined)"
            )
        }
        if flags & Frame.compressedFlag != 0 {
            throw HavenError(
                code: .invalidArgument,
                message: "frame is marked compressed, but no compression was negotiated"
            )
        }
        if UInt64(length) > UInt64(self.maximumPayloadLength) {
            throw HavenError(
                code: .resourceExhausted,
                message: "frame payload of \(length) bytes exceeds the limit of \(self.maximumPayloadLength) bytes"
            )
        }
        return (flags, Int(length))
    }
}
