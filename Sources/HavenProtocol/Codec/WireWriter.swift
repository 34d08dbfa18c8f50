import Foundation

/// Writes protobuf's wire format into memory sized beforehand, for the
/// generated encoders.
///
/// The sizing pass has computed exactly how many bytes the message takes, so
/// single bytes and varints are stored without a bounds check; copies of
/// strings and bytes check theirs, and ``finish()`` checks that the write
/// filled exactly what was sized.
public struct _WireWriter {
    @usableFromInline var p: UnsafeMutableRawPointer
    @usableFromInline let end: UnsafeMutableRawPointer

    init(_ base: UnsafeMutableRawPointer, count: Int) {
        self.p = base
        self.end = base + count
    }

    /// Stops the process if the write did not fill exactly what the sizing
    /// pass measured (a defect of the generator, never of the input).
    func finish() {
        precondition(self.p == self.end, "a generated encoder wrote \(self.p - (self.end)) bytes off its size")
    }

    /// One byte (a one-byte tag, a boolean).
    @inlinable @inline(__always)
    public mutating func byte(_ byte: UInt8) {
        self.p.storeBytes(of: byte, as: UInt8.self)
        self.p += 1
    }

    /// A two-byte tag.
    @inlinable @inline(__always)
    public mutating func tag(_ first: UInt8, _ second: UInt8) {
        self.p.storeBytes(of: first, as: UInt8.self)
        self.p.storeBytes(of: second, toByteOffset: 1, as: UInt8.self)
        self.p += 2
    }

    /// An unsigned varint.
    @inlinable @inline(__always)
    public mutating func varint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            self.p.storeBytes(of: UInt8(truncatingIfNeeded: value) | 0x80, as: UInt8.self)
            self.p += 1
            value &>>= 7
        }
        self.p.storeBytes(of: UInt8(truncatingIfNeeded: value), as: UInt8.self)
        self.p += 1
    }

    /// A length or a size (a non-negative `Int`) as a varint.
    @inlinable @inline(__always)
    public mutating func length(_ value: Int) {
        self.varint(UInt64(truncatingIfNeeded: value))
    }

    /// A signed 32-bit value (or an enum's), sign-extended to ten bytes when
    /// negative, as protobuf requires.
    @inlinable @inline(__always)
    public mutating func int32(_ value: Int32) {
        self.varint(UInt64(bitPattern: Int64(value)))
    }

    /// A signed 64-bit value.
    @inlinable @inline(__always)
    public mutating func int64(_ value: Int64) {
        self.varint(UInt64(bitPattern: value))
    }

    /// Eight little-endian bytes.
    @inlinable @inline(__always)
    public mutating func fixed64(_ value: UInt64) {
        self.p.storeBytes(of: value.littleEndian, as: UInt64.self)
        self.p += 8
    }

    /// Four little-endian bytes.
    @inlinable @inline(__always)
    public mutating func fixed32(_ value: UInt32) {
        self.p.storeBytes(of: value.littleEndian, as: UInt32.self)
        self.p += 4
    }

    /// A string's length and UTF-8 bytes.
    @inlinable
    public mutating func string(_ value: String) {
        let utf8 = value.utf8
        self.length(utf8.count)
        // In place for native strings (small ones from the stack); the
        // element-wise path only for strings bridged from elsewhere.
        let copied: Void? = utf8.withContiguousStorageIfAvailable { self.copy(UnsafeRawBufferPointer($0)) }
        if copied == nil {
            precondition(self.end - self.p >= utf8.count, "a generated encoder wrote past its size")
            for byte in utf8 {
                self.p.storeBytes(of: byte, as: UInt8.self)
                self.p += 1
            }
        }
    }

    /// A bytes field's length and bytes.
    @inlinable
    public mutating func bytes(_ value: Data) {
        self.length(value.count)
        value.withUnsafeBytes { self.copy($0) }
    }

    /// Bytes as they are (unknown fields kept from decoding).
    @inlinable
    public mutating func raw(_ value: Data) {
        value.withUnsafeBytes { self.copy($0) }
    }

    @inlinable @inline(__always)
    mutating func copy(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
        precondition(self.end - self.p >= bytes.count, "a generated encoder wrote past its size")
        self.p.copyMemory(from: source, byteCount: bytes.count)
        self.p += bytes.count
    }
}

/// Sizes of protobuf's wire format, for the generated sizing passes.
public enum _WireSize {
    /// The size of an unsigned varint.
    @inlinable @inline(__always)
    public static func varint(_ value: UInt64) -> Int {
        // 1 + floor(highest set bit / 7), without a loop.
        ((63 &- (value | 1).leadingZeroBitCount) &* 9 &+ 73) &>> 6
    }

    /// The size of a non-negative `Int` (a length) as a varint.
    @inlinable @inline(__always)
    public static func length(_ value: Int) -> Int {
        Self.varint(UInt64(truncatingIfNeeded: value))
    }

    /// The size of a signed 32-bit value (ten bytes when negative).
    @inlinable @inline(__always)
    public static func int32(_ value: Int32) -> Int {
        Self.varint(UInt64(bitPattern: Int64(value)))
    }

    /// The size of a signed 64-bit value.
    @inlinable @inline(__always)
    public static func int64(_ value: Int64) -> Int {
        Self.varint(UInt64(bitPattern: value))
    }

    /// The size of a length-delimited body of `count` bytes, with its length.
    @inlinable @inline(__always)
    public static func delimited(_ count: Int) -> Int {
        Self.length(count) &+ count
    }
}
