import NIOCore

/// The length-prefixed frame every Haven message travels in.
///
/// A frame is gRPC's Length-Prefixed-Message:
///
/// ```
/// +--------------+---------------------------+-------------------+
/// | flags: UInt8 | length: UInt32 big-endian | payload: length B |
/// +--------------+---------------------------+-------------------+
/// ```
///
/// Flag bit 0 means "compressed"; no compression is defined in protocol
/// version 1, so a peer that sets it fails the connection. Bits 1–7 are
/// reserved and must be 0. The payload is one serialized envelope
/// (`haven.v1.ClientEnvelope` or `haven.v1.ServerEnvelope`).
public enum Frame {
    /// Bytes before the payload: one flags byte and a four-byte length.
    public static let headerLength = 5

    /// The default limit on a payload's length: 4 MiB.
    public static let defaultMaximumPayloadLength = 4 * 1024 * 1024

    /// Flag bit 0: the payload is compressed (not negotiable in version 1).
    public static let compressedFlag: UInt8 = 0b0000_0001

    /// Flag bits 1–7: reserved, must be 0.
    public static let reservedFlags: UInt8 = 0b1111_1110
}

/// The protocol's constants: version, TLS application protocol.
public enum HavenWire {
    /// The protocol version this library speaks.
    public static let protocolVersion: UInt32 = 1

    /// Protocol versions this library accepts in a hello exchange.
    public static let supportedProtocolVersions: [UInt32] = [1]

    /// The TLS ALPN protocol identifier both sides must negotiate.
    public static let alpnIdentifier = "haven/1"
}
