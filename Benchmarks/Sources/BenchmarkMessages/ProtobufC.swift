import CHavenProtobufC

/// One message type through protobuf-c (the C baseline).
public struct ProtobufCCodec: @unchecked Sendable {
    let descriptor: UnsafePointer<ProtobufCMessageDescriptor>

    /// The codec of a message by full name, e.g. `haven.v1.Case`.
    public init?(messageName: String) {
        guard let descriptor = haven_pbc_descriptor(messageName) else { return nil }
        self.descriptor = descriptor
    }

    /// Decodes bytes into a C message; nil when they are not a valid message.
    public func unpack(_ bytes: UnsafeRawBufferPointer) -> UnsafeMutablePointer<ProtobufCMessage>? {
        haven_pbc_unpack(self.descriptor, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count)
    }

    /// Decodes and re-encodes `bytes` with protobuf-c.
    public func roundTrip(_ bytes: [UInt8]) -> [UInt8]? {
        guard let message = bytes.withUnsafeBytes({ self.unpack($0) }) else { return nil }
        defer { haven_pbc_free(message) }
        return Self.pack(message)
    }

    /// Encodes a C message.
    public static func pack(_ message: UnsafePointer<ProtobufCMessage>) -> [UInt8] {
        let size = haven_pbc_packed_size(message)
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            count = haven_pbc_pack(message, buffer.baseAddress!)
        }
    }
}
