import Foundation

/// Reads protobuf's wire format, for the generated decoders.
///
/// Every read checks its bounds. Anything unusual — a truncated field, a
/// varint of more than ten bytes or with bits past the 64th, a tag beyond
/// 32 bits, invalid UTF-8 — throws ``_WireFallback``, and swift-protobuf
/// decides the input's fate (it rejects most of these, with its own error).
public struct _WireReader {
    @usableFromInline var p: UnsafeRawPointer
    @usableFromInline let end: UnsafeRawPointer

    @usableFromInline
    init(_ base: UnsafeRawPointer, count: Int) {
        self.p = base
        self.end = base + count
    }

    /// Whether every byte has been read.
    @inlinable public var isAtEnd: Bool { self.p >= self.end }

    /// An unsigned varint.
    @inlinable @inline(__always)
    public mutating func varint() throws(_WireFallback) -> UInt64 {
        guard self.p < self.end else { throw _WireFallback() }
        let first = self.p.load(as: UInt8.self)
        if first < 0x80 {
            self.p += 1
            return UInt64(first)
        }
        return try self.longVarint()
    }

    @usableFromInline
    mutating func longVarint() throws(_WireFallback) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        var q = self.p
        while q < self.end {
            let byte = q.load(as: UInt8.self)
            q += 1
            if shift == 63 && byte > 1 { throw _WireFallback() }  // bits past the 64th
            value |= UInt64(byte & 0x7f) &<< shift
            if byte < 0x80 {
                self.p = q
                return value
            }
            shift &+= 7
            if shift > 63 { throw _WireFallback() }  // more than ten bytes
        }
        throw _WireFallback()  // truncated
    }

    /// A field's tag (field number and wire type).
    @inlinable @inline(__always)
    public mutating func tag() throws(_WireFallback) -> UInt32 {
        let tag = try self.varint()
        guard tag <= UInt64(UInt32.max) else { throw _WireFallback() }
        return UInt32(truncatingIfNeeded: tag)
    }

    /// A length that the remaining input holds.
    @inlinable @inline(__always)
    public mutating func length() throws(_WireFallback) -> Int {
        let length = try self.varint()
        guard length <= UInt64(self.end - self.p) else { throw _WireFallback() }
        return Int(truncatingIfNeeded: length)
    }

    /// A boolean (any non-zero varint is true).
    @inlinable @inline(__always)
    public mutating func bool() throws(_WireFallback) -> Bool {
        try self.varint() != 0
    }

    /// Eight little-endian bytes.
    @inlinable @inline(__always)
    public mutating func fixed64() throws(_WireFallback) -> UInt64 {
        guard self.end - self.p >= 8 else { throw _WireFallback() }
        let value = self.p.loadUnaligned(as: UInt64.self)
        self.p += 8
        return UInt64(littleEndian: value)
    }

    /// Four little-endian bytes.
    @inlinable @inline(__always)
    public mutating func fixed32() throws(_WireFallback) -> UInt32 {
        guard self.end - self.p >= 4 else { throw _WireFallback() }
        let value = self.p.loadUnaligned(as: UInt32.self)
        self.p += 4
        return UInt32(littleEndian: value)
    }

    /// A string field's value, validated as UTF-8.
    @inlinable
    public mutating func string() throws(_WireFallback) -> String {
        let count = try self.length()
        guard count > 0 else { return String() }
        guard _UTF8.isValid(self.p, count) else { throw _WireFallback() }
        let utf8 = UnsafeBufferPointer(start: self.p.assumingMemoryBound(to: UInt8.self), count: count)
        self.p += count
        // Valid, so nothing is repaired; this initializer is specialized here,
        // where `String(validating:as:)` is generic and looks up metadata per call.
        return String(decoding: utf8, as: UTF8.self)
    }

    /// A bytes field's value.
    @inlinable
    public mutating func bytes() throws(_WireFallback) -> Data {
        let count = try self.length()
        guard count > 0 else { return Data() }
        let data = Data(bytes: self.p, count: count)
        self.p += count
        return data
    }

    /// A reader over a length-delimited body (a nested message, a packed
    /// field); this reader moves past it.
    @inlinable @inline(__always)
    public mutating func delimited() throws(_WireFallback) -> _WireReader {
        let count = try self.length()
        let body = _WireReader(self.p, count: count)
        self.p += count
        return body
    }

    /// How many varints a packed body holds (its bytes without a continuation bit).
    @inlinable
    public var varintCount: Int {
        var count = 0
        var q = self.p
        while q < self.end {
            if q.load(as: UInt8.self) < 0x80 { count &+= 1 }
            q += 1
        }
        return count
    }
}

extension _WireReader {
    /// How many values of `width` bytes a packed body holds.
    @inlinable
    public func fixedCount(_ width: Int) -> Int {
        (self.end - self.p) / width
    }
}

extension Optional {
    /// The value, or ``_WireFallback`` when there is none (an enum value the
    /// generated type cannot represent).
    @inlinable @inline(__always)
    func orFallback() throws(_WireFallback) -> Wrapped {
        guard let value = self else { throw _WireFallback() }
        return value
    }
}

/// ZigZag encoding of `sint32` and `sint64` fields.
public enum _ZigZag {
    @inlinable public static func encoded(_ value: Int32) -> UInt32 {
        UInt32(bitPattern: (value &<< 1) ^ (value >> 31))
    }

    @inlinable public static func encoded(_ value: Int64) -> UInt64 {
        UInt64(bitPattern: (value &<< 1) ^ (value >> 63))
    }

    @inlinable public static func decoded(_ value: UInt32) -> Int32 {
        Int32(bitPattern: (value >> 1) ^ (0 &- (value & 1)))
    }

    @inlinable public static func decoded(_ value: UInt64) -> Int64 {
        Int64(bitPattern: (value >> 1) ^ (0 &- (value & 1)))
    }
}

/// UTF-8 validation as the Unicode standard defines well-formed UTF-8 (its
/// table 3-7): no overlong forms, no surrogates, nothing above U+10FFFF.
/// Non-generic, with eight ASCII bytes checked at a time.
public enum _UTF8 {
    /// Whether `count` bytes at `start` are well-formed UTF-8.
    @inlinable
    public static func isValid(_ start: UnsafeRawPointer, _ count: Int) -> Bool {
        var p = start
        let end = start + count
        while p < end {
            if end - p >= 8, p.loadUnaligned(as: UInt64.self) & 0x8080_8080_8080_8080 == 0 {
                p += 8
                continue
            }
            if p.load(as: UInt8.self) < 0x80 {
                p += 1
                continue
            }
            let length = Self.sequenceLength(p, end)
            guard length > 0 else { return false }
            p += length
        }
        return true
    }

    /// The length of the well-formed multi-byte sequence at `p`, or 0.
    @usableFromInline
    static func sequenceLength(_ p: UnsafeRawPointer, _ end: UnsafeRawPointer) -> Int {
        func byte(_ offset: Int) -> UInt8 { (p + offset).load(as: UInt8.self) }
        let lead = byte(0)
        let remaining = end - p
        switch lead {
        case 0xC2...0xDF:
            return remaining >= 2 && byte(1) & 0xC0 == 0x80 ? 2 : 0
        case 0xE0...0xEF:
            guard remaining >= 3 else { return 0 }
            let second = byte(1)
            let low: UInt8 = lead == 0xE0 ? 0xA0 : 0x80  // E0: no overlong forms
            let high: UInt8 = lead == 0xED ? 0x9F : 0xBF  // ED: no surrogates
            return second >= low && second <= high && byte(2) & 0xC0 == 0x80 ? 3 : 0
        case 0xF0...0xF4:
            guard remaining >= 4 else { return 0 }
            let second = byte(1)
            let low: UInt8 = lead == 0xF0 ? 0x90 : 0x80  // F0: no overlong forms
            let high: UInt8 = lead == 0xF4 ? 0x8F : 0xBF  // F4: nothing above U+10FFFF
            return second >= low && second <= high && byte(2) & 0xC0 == 0x80 && byte(3) & 0xC0 == 0x80 ? 4 : 0
        default:
            return 0  // a continuation byte first, C0 and C1 (overlong), F5 and above
        }
    }
}
