import Foundation
import HavenProtocol

/// Random encodings of Haven's messages, from the schema's own table
/// (`_WireSchema`), for differential tests of codecs: every field kind, empty
/// and maximal values, negative numbers, nested and repeated fields, unknown
/// enum values and unknown fields.
///
/// The bytes are written here, by an encoder independent of both swift-protobuf
/// and the generated codec. ``Style/canonical`` writes what a protobuf encoder
/// writes (fields in number order, packed where the schema packs, no
/// duplicates); ``Style/noisy`` writes what a decoder must also accept (fields
/// in any order, repeated singular fields, packed and unpacked forms mixed,
/// overlong varints, empty packed runs).
///
/// ```swift
/// var random = RandomMessages(seed: 42)
/// let bytes = random.encoding(of: "haven.v1.Case", style: .canonical)
/// ```
public struct RandomMessages {
    /// How the fields of an encoding are laid out.
    public enum Style: Sendable {
        /// As an encoder writes them.
        case canonical
        /// As a decoder must also accept them.
        case noisy
    }

    private var rng: SplitMix64
    /// Whether unknown fields (numbers the schema does not use) are added.
    public var unknownFields: Bool
    /// How deep nested messages go before they are left empty.
    public var maximumDepth = 4
    /// Whether doubles and floats may be −0.0. protoc's C++ and swift-protobuf
    /// write a −0.0 (its bits are not zero); protobuf-c 1.4 omits it as if it
    /// were +0.0, so a comparison with protobuf-c leaves it out.
    public var negativeZero = true

    /// - Parameters:
    ///   - seed: The same seed gives the same sequence of encodings.
    ///   - unknownFields: Whether encodings may carry unknown fields.
    public init(seed: UInt64, unknownFields: Bool = false) {
        self.rng = SplitMix64(seed: seed)
        self.unknownFields = unknownFields
    }

    /// A random encoding of the message named `name` (e.g. `haven.v1.Case`).
    public mutating func encoding(of name: String, style: Style) -> [UInt8] {
        var out: [UInt8] = []
        self.message(_WireSchema.byName[name]!, style: style, depth: 0, into: &out)
        return out
    }

    /// A random number in `0..<bound`.
    public mutating func next(_ bound: Int) -> Int {
        Int(self.rng.next() % UInt64(bound))
    }

    // MARK: Messages

    private mutating func message(_ message: _WireSchema.Message, style: Style, depth: Int, into out: inout [UInt8]) {
        // Most fields are set; a few messages are empty, and deep ones thin out.
        let density = depth >= self.maximumDepth ? 0 : [0, 30, 70, 100, 100][self.next(5)]
        var chosenOneof: [Int: Int32] = [:]
        var fields: [(_WireSchema.Field, [UInt8])] = []
        for field in message.fields {
            guard self.next(100) < density else { continue }
            if let oneof = field.oneof, style == .canonical {
                // One member of each oneof, as an encoder writes.
                if chosenOneof[oneof] != nil { continue }
                chosenOneof[oneof] = field.number
            }
            var bytes: [UInt8] = []
            self.field(field, style: style, depth: depth, into: &bytes)
            fields.append((field, bytes))
        }
        if style == .noisy {
            // Shuffled, and some fields repeated (the last value wins, messages merge).
            for index in fields.indices.reversed() where index > 0 {
                fields.swapAt(index, self.next(index + 1))
            }
            for _ in 0..<self.next(3) where !fields.isEmpty {
                let (field, _) = fields[self.next(fields.count)]
                var bytes: [UInt8] = []
                self.field(field, style: style, depth: depth, into: &bytes)
                fields.append((field, bytes))
            }
        }
        for (_, bytes) in fields { out += bytes }
        if self.unknownFields, self.next(3) == 0 {
            let used = Set(message.fields.map(\.number))
            for _ in 0..<(1 + self.next(3)) {
                var number = Int32(1 + self.next(40))
                while used.contains(number) { number += 100 }
                self.unknownField(number: number, into: &out)
            }
        }
    }

    private mutating func field(_ field: _WireSchema.Field, style: Style, depth: Int, into out: inout [UInt8]) {
        let count = field.repeated ? [0, 1, 2, 3, 5, 20][self.next(depth > 1 ? 4 : 6)] : 1
        if field.repeated && count == 0 && !(style == .noisy && field.packed) { return }
        if field.repeated, let wireType = Self.scalarWireType(field.kind) {
            let packed = style == .canonical ? field.packed : self.next(2) == 0
            if packed {
                var body: [UInt8] = []
                for _ in 0..<count { self.scalar(field.kind, style: style, into: &body) }
                Self.varint(UInt64(field.number) << 3 | 2, into: &out)
                Self.varint(UInt64(body.count), into: &out)
                out += body
                return
            }
            for _ in 0..<count {
                Self.varint(UInt64(field.number) << 3 | wireType, into: &out)
                self.scalar(field.kind, style: style, into: &out)
            }
            return
        }
        for _ in 0..<count {
            if let wireType = Self.scalarWireType(field.kind) {
                self.tag(field.number, wireType, style: style, into: &out)
                self.scalar(field.kind, style: style, into: &out)
                continue
            }
            self.tag(field.number, 2, style: style, into: &out)
            var body: [UInt8] = []
            switch field.kind {
            case .string: body = self.string()
            case .bytes: body = self.bytes()
            case .message(let name):
                self.message(_WireSchema.byName[name]!, style: style, depth: depth + 1, into: &body)
            default: preconditionFailure("\(field.kind) has a scalar wire type")
            }
            Self.varint(UInt64(body.count), into: &out)
            out += body
        }
    }

    private mutating func tag(_ number: Int32, _ wireType: UInt64, style: Style, into out: inout [UInt8]) {
        let tag = UInt64(number) << 3 | wireType
        if style == .noisy, self.next(20) == 0 {
            Self.overlongVarint(tag, into: &out)
        } else {
            Self.varint(tag, into: &out)
        }
    }

    private mutating func unknownField(number: Int32, into out: inout [UInt8]) {
        switch self.next(4) {
        case 0:
            Self.varint(UInt64(number) << 3 | 0, into: &out)
            Self.varint(self.rng.next() >> UInt64(self.next(64)), into: &out)
        case 1:
            Self.varint(UInt64(number) << 3 | 1, into: &out)
            for _ in 0..<8 { out.append(UInt8(truncatingIfNeeded: self.rng.next())) }
        case 2:
            Self.varint(UInt64(number) << 3 | 5, into: &out)
            for _ in 0..<4 { out.append(UInt8(truncatingIfNeeded: self.rng.next())) }
        default:
            Self.varint(UInt64(number) << 3 | 2, into: &out)
            let body = self.bytes()
            Self.varint(UInt64(body.count), into: &out)
            out += body
        }
    }

    // MARK: Values

    static func scalarWireType(_ kind: _WireSchema.Kind) -> UInt64? {
        switch kind {
        case .int32, .int64, .uint32, .uint64, .sint32, .sint64, .bool, .enumeration: 0
        case .double, .fixed64, .sfixed64: 1
        case .float, .fixed32, .sfixed32: 5
        case .string, .bytes, .message, .group: nil
        }
    }

    private mutating func scalar(_ kind: _WireSchema.Kind, style: Style, into out: inout [UInt8]) {
        func varint(_ value: UInt64) {
            if style == .noisy, self.next(20) == 0, value >> 56 == 0 {
                Self.overlongVarint(value, into: &out)
            } else {
                Self.varint(value, into: &out)
            }
        }
        switch kind {
        case .int32, .enumeration:
            var value: Int32
            if case .enumeration(let known) = kind, self.next(8) != 0 {
                value = known[self.next(known.count)]
            } else {
                value = Int32(truncatingIfNeeded: self.integer())
            }
            if style == .canonical, value == 0, self.next(2) == 0 { value = 1 }
            varint(UInt64(bitPattern: Int64(value)))
        case .int64: varint(UInt64(bitPattern: self.integer()))
        case .uint32: varint(UInt64(UInt32(truncatingIfNeeded: self.integer())))
        case .uint64: varint(UInt64(bitPattern: self.integer()))
        case .sint32:
            let value = Int32(truncatingIfNeeded: self.integer())
            varint(UInt64(UInt32(bitPattern: (value &<< 1) ^ (value >> 31))))
        case .sint64:
            let value = self.integer()
            varint(UInt64(bitPattern: (value &<< 1) ^ (value >> 63)))
        case .bool: varint(self.next(4) == 0 ? 0 : 1)
        case .double, .fixed64, .sfixed64:
            let bits = kind == .double ? self.double().bitPattern : UInt64(bitPattern: self.integer())
            withUnsafeBytes(of: bits.littleEndian) { out += $0 }
        case .float, .fixed32, .sfixed32:
            let bits = kind == .float ? Float(self.double()).bitPattern : UInt32(truncatingIfNeeded: self.integer())
            if kind == .float, Float(bitPattern: bits).isNaN {
                withUnsafeBytes(of: Float(1).bitPattern.littleEndian) { out += $0 }
            } else {
                withUnsafeBytes(of: bits.littleEndian) { out += $0 }
            }
        case .string, .bytes, .message, .group:
            preconditionFailure("\(kind) is not a scalar")
        }
    }

    /// Edges (zero, ±1, the extremes of each width) half the time, any bits otherwise.
    private mutating func integer() -> Int64 {
        let edges: [Int64] = [
            0, 1, -1, 127, 128, 16_383, 16_384, Int64(Int32.max), Int64(Int32.min), Int64(UInt32.max), .max, .min,
        ]
        if self.next(2) == 0 { return edges[self.next(edges.count)] }
        return Int64(bitPattern: self.rng.next() >> UInt64(self.next(64)))
    }

    /// Any double but NaN (which is not equal to itself, so values holding it
    /// cannot be compared): zeros of both signs, infinities, the extremes.
    private mutating func double() -> Double {
        let edges: [Double] = [
            0, -0.0, 1.5, -2.25, .infinity, -.infinity, .leastNonzeroMagnitude, .greatestFiniteMagnitude, 1e-300,
        ]
        var value = self.next(2) == 0 ? edges[self.next(edges.count)] : Double(bitPattern: self.rng.next())
        if value.isNaN { value = 3.0 }
        if value == 0, !self.negativeZero { value = 0 }
        return value
    }

    /// Empty, ASCII, and text in the scripts Haven's offices write (Bengali,
    /// Devanagari, Tagalog's Latin), with characters of every UTF-8 length.
    private mutating func string() -> [UInt8] {
        let pieces = ["", "a", "KOL-2026-0001", "é", "অ", "मुंबई", "Maynila", "𝄞", "\u{7f}", "\u{80}", "\u{ffff}", " "]
        var text = ""
        let length = [0, 1, 3, 10, 60][self.next(5)]
        for _ in 0..<length { text += pieces[self.next(pieces.count)] }
        return Array(text.utf8)
    }

    private mutating func bytes() -> [UInt8] {
        let length = [0, 1, 8, 32, 200][self.next(5)]
        return (0..<length).map { _ in UInt8(truncatingIfNeeded: self.rng.next()) }
    }

    // MARK: Wire format

    static func varint(_ value: UInt64, into out: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        out.append(UInt8(value))
    }

    /// The same value in more bytes than it needs (decoders accept it).
    static func overlongVarint(_ value: UInt64, into out: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        out.append(UInt8(value) | 0x80)
        out.append(0)
    }
}

/// A small, fast, seedable generator (Steele, Lea and Flood's SplitMix64):
/// the same values for the same seed, so a failing case can be replayed.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { self.state = seed }

    public mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
