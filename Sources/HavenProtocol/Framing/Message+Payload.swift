import NIOCore
import SwiftProtobuf

extension SwiftProtobuf.Message {
    /// Decodes a message from a frame payload, reading the buffer in place.
    ///
    /// Unknown fields are kept (a newer peer's additions survive a round trip).
    ///
    /// - Parameter payload: The payload, as ``FrameDecoder`` produces it, or a
    ///   `bytes` field of an envelope.
    /// - Throws: ``HavenError`` with INVALID_ARGUMENT naming the message type
    ///   (never the content) when the bytes are not a valid message.
    public init(decodingPayload payload: ByteBuffer) throws(HavenError) {
        do {
            try self.init(serializedBytes: payload.readableBytesSpan)
        } catch {
            throw HavenError(code: .invalidArgument, message: "undecodable \(Self.protoMessageName) payload")
        }
    }

    /// Decodes a message from serialized bytes (an envelope's `payload` field).
    ///
    /// - Parameter payload: The serialized message.
    /// - Throws: ``HavenError`` with INVALID_ARGUMENT naming the message type.
    public init(decodingPayload payload: some SwiftProtobufContiguousBytes) throws(HavenError) {
        do {
            try self.init(serializedBytes: payload)
        } catch {
            throw HavenError(code: .invalidArgument, message: "undecodable \(Self.protoMessageName) payload")
        }
    }

    /// Serializes the message for an envelope's `payload` field.
    ///
    /// - Returns: The serialized message.
    /// - Throws: ``HavenError`` with INTERNAL when serialization fails.
    public func serializedPayload<Bytes: SwiftProtobufContiguousBytes>() throws(HavenError) -> Bytes {
        do {
            return try self.serializedBytes()
        } catch {
            throw HavenError(code: .internal, message: "could not serialize \(Self.protoMessageName)")
        }
    }
}

extension HavenWireMessage {
    /// Decodes a message from a frame payload with Haven's generated codec,
    /// reading the buffer in place.
    ///
    /// Unknown fields are kept (a newer peer's additions survive a round trip).
    ///
    /// - Parameter payload: The payload, as ``FrameDecoder`` produces it, or a
    ///   `bytes` field of an envelope.
    /// - Throws: ``HavenError`` with INVALID_ARGUMENT naming the message type
    ///   (never the content) when the bytes are not a valid message.
    public init(decodingPayload payload: ByteBuffer) throws(HavenError) {
        do {
            try self.init(wireBytes: payload)
        } catch {
            throw HavenError(code: .invalidArgument, message: "undecodable \(Self.protoMessageName) payload")
        }
    }

    /// Decodes a message from serialized bytes (an envelope's `payload` field)
    /// with Haven's generated codec.
    ///
    /// - Parameter payload: The serialized message.
    /// - Throws: ``HavenError`` with INVALID_ARGUMENT naming the message type.
    public init(decodingPayload payload: some SwiftProtobufContiguousBytes) throws(HavenError) {
        do {
            self = try payload.withUnsafeBytes { try Self(wireBytes: $0) }
        } catch {
            throw HavenError(code: .invalidArgument, message: "undecodable \(Self.protoMessageName) payload")
        }
    }

    /// Serializes the message for an envelope's `payload` field with Haven's
    /// generated codec.
    ///
    /// - Returns: The serialized message (the same bytes as swift-protobuf's).
    public func serializedPayload<Bytes: SwiftProtobufContiguousBytes>() -> Bytes {
        _WireScratch.withSizes { sizes in
            let size = self._wireSize(&sizes)
            var bytes = Bytes(repeating: 0, count: size)
            if size > 0 {
                bytes.withUnsafeMutableBytes { destination in
                    sizes.rewind()
                    self.writeWire(to: destination.baseAddress!, size: size, &sizes)
                }
            }
            return bytes
        }
    }
}
