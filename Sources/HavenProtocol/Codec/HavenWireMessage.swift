import Foundation
import NIOCore
import SwiftProtobuf

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A message with Haven's generated codec: a specialised encoder and decoder
/// that protoc-gen-haven writes for every message of `Protos/`, beside
/// swift-protobuf's generated code.
///
/// The generated codec produces exactly the bytes swift-protobuf produces
/// (fields in number order, unknown fields last, packed repeated scalars) and
/// decodes every input to the value swift-protobuf decodes, accepting and
/// rejecting the same inputs. It is faster because it is concrete: a message
/// is sized once, with each nested message's size kept for the write that
/// follows, then written straight into the destination's memory; decoding
/// runs non-generic code per message.
///
/// swift-protobuf stays the reference, and the fallback: the generated
/// decoder handles well-formed input of the schema it was generated from, and
/// hands anything else — an unknown field (a newer peer's), a field with an
/// unexpected wire type, malformed bytes — to swift-protobuf, which decides.
/// So unknown fields survive a round trip exactly as swift-protobuf keeps
/// them, and an input is rejected with swift-protobuf's own error.
///
/// ```swift
/// var buffer = ByteBuffer()
/// survivor.writeWire(into: &buffer)                  // appends the encoding
/// let copy = try Haven_V1_Survivor(wireBytes: buffer) // decodes it back
/// ```
///
/// The underscored requirements are written by the generator; code outside
/// the generated files uses the extension's methods.
public protocol HavenWireMessage: SwiftProtobuf.Message {
    /// Returns the encoded size, keeping each nested message's size (and each
    /// packed field's length) in `sizes`, in the order the write reads them.
    func _wireSize(_ sizes: inout _WireSizes) -> Int

    /// Writes the encoding, reading the sizes ``_wireSize(_:)`` kept.
    func _wireWrite(_ writer: inout _WireWriter, _ sizes: inout _WireSizes)

    /// Merges fields read from `reader` into the message.
    ///
    /// - Throws: ``_WireFallback`` when the input holds anything the
    ///   generated decoder leaves to swift-protobuf.
    mutating func _wireMerge(_ reader: inout _WireReader) throws(_WireFallback)
}

extension HavenWireMessage {
    /// The size of the message's encoding, in bytes.
    public var wireSize: Int {
        _WireScratch.withSizes { sizes in self._wireSize(&sizes) }
    }

    /// Appends the message's encoding to `buffer`: the same bytes as
    /// swift-protobuf's `serializedBytes()`, written in place with no
    /// intermediate copy.
    ///
    /// - Parameter buffer: Where the encoding is appended.
    public func writeWire(into buffer: inout ByteBuffer) {
        _WireScratch.withSizes { sizes in
            let size = self._wireSize(&sizes)
            guard size > 0 else { return }
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { destination in
                sizes.rewind()
                self.writeWire(to: destination.baseAddress!, size: size, &sizes)
                return size
            }
        }
    }

    /// Writes the encoding to memory of exactly ``wireSize`` bytes.
    ///
    /// - Parameters:
    ///   - destination: At least `size` writable bytes.
    ///   - size: What ``wireSize`` returned for this message, unchanged since.
    ///   - sizes: The sizes kept when `size` was computed, rewound.
    func writeWire(to destination: UnsafeMutableRawPointer, size: Int, _ sizes: inout _WireSizes) {
        var writer = _WireWriter(destination, count: size)
        self._wireWrite(&writer, &sizes)
        writer.finish()
    }

    /// The message's encoding as an array (the same bytes as
    /// swift-protobuf's `serializedBytes()`).
    public func wireBytes() -> [UInt8] {
        _WireScratch.withSizes { sizes in
            let size = self._wireSize(&sizes)
            return [UInt8](unsafeUninitializedCapacity: size) { bytes, count in
                sizes.rewind()
                if size > 0 { self.writeWire(to: bytes.baseAddress!, size: size, &sizes) }
                count = size
            }
        }
    }

    /// Decodes a message from its encoding.
    ///
    /// - Parameter bytes: The encoding.
    /// - Throws: swift-protobuf's `BinaryDecodingError` for input that
    ///   swift-protobuf rejects (and only for such input).
    public init(wireBytes bytes: UnsafeRawBufferPointer) throws {
        do {
            try self.init(_generatedOnly: bytes)
        } catch {
            // The reference decides everything the generated decoder does not handle itself.
            self = try Self(serializedBytes: [UInt8](bytes))
        }
    }

    /// Decodes with the generated decoder alone, without swift-protobuf's
    /// fallback: for the differential fuzzer, which holds what it accepts to
    /// what swift-protobuf makes of the same bytes.
    ///
    /// - Throws: ``_WireFallback`` for input the generated decoder leaves to swift-protobuf.
    public init(_generatedOnly bytes: UnsafeRawBufferPointer) throws(_WireFallback) {
        self.init()
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        var reader = _WireReader(base, count: bytes.count)
        try self._wireMerge(&reader)
    }

    /// Decodes a message from a buffer's readable bytes, in place.
    ///
    /// - Parameter buffer: The encoding (a frame's payload).
    /// - Throws: swift-protobuf's `BinaryDecodingError` for input that
    ///   swift-protobuf rejects.
    public init(wireBytes buffer: ByteBuffer) throws {
        self = try buffer.withUnsafeReadableBytes { try Self(wireBytes: $0) }
    }

    /// Decodes a message from its encoding.
    ///
    /// - Parameter bytes: The encoding.
    /// - Throws: swift-protobuf's `BinaryDecodingError` for input that
    ///   swift-protobuf rejects.
    public init(wireBytes bytes: some ContiguousBytes) throws {
        self = try bytes.withUnsafeBytes { try Self(wireBytes: $0) }
    }
}

/// Thrown by generated decoders for input they leave to swift-protobuf.
public struct _WireFallback: Error {
    @inlinable public init() {}
}

/// The sizes of a message's nested messages and packed fields, kept by the
/// sizing pass in the order the writing pass reads them.
///
/// Memory comes from a per-thread scratch area (``_WireScratch``), so
/// encoding allocates nothing once a thread has encoded its largest message.
public struct _WireSizes {
    @usableFromInline var base: UnsafeMutablePointer<Int>
    @usableFromInline var capacity: Int
    @usableFromInline var index = 0
    /// How many sizes the sizing pass kept (set by ``rewind()``).
    @usableFromInline var count = 0

    init(base: UnsafeMutablePointer<Int>, capacity: Int) {
        self.base = base
        self.capacity = capacity
    }

    /// A slot for a size the sizing pass computes next.
    @inlinable @inline(__always)
    public mutating func reserve() -> Int {
        if self.index == self.capacity { self.grow() }
        let slot = self.index
        self.index &+= 1
        return slot
    }

    /// Keeps the size of a reserved slot.
    @inlinable @inline(__always)
    public func set(_ slot: Int, _ size: Int) {
        self.base[slot] = size
    }

    /// The next size, in the order they were reserved.
    @inlinable @inline(__always)
    public mutating func next() -> Int {
        precondition(self.index < self.count, "wire sizes read past what the sizing pass kept")
        let size = self.base[self.index]
        self.index &+= 1
        return size
    }

    /// Starts reading from the first size.
    mutating func rewind() {
        self.count = self.index
        self.index = 0
    }

    @usableFromInline mutating func grow() {
        let capacity = self.capacity * 2
        let base = UnsafeMutablePointer<Int>.allocate(capacity: capacity)
        base.update(from: self.base, count: self.capacity)
        self.base.deallocate()
        self.base = base
        self.capacity = capacity
    }
}

/// The per-thread memory the sizes of nested messages are kept in.
///
/// Encoding is synchronous, so a thread's scratch is never used by two
/// encodings at once; a nested use (none exists) would get memory of its own.
final class _WireScratch {
    private var base: UnsafeMutablePointer<Int>?
    private var capacity = 0
    private var inUse = false

    /// Memory beyond this many sizes is given back after use.
    static let keptCapacity = 16 * 1024

    static func withSizes<R, E: Error>(_ body: (inout _WireSizes) throws(E) -> R) throws(E) -> R {
        let scratch = Self.current
        if scratch.inUse {
            var sizes = _WireSizes(base: .allocate(capacity: 64), capacity: 64)
            defer { sizes.base.deallocate() }
            return try body(&sizes)
        }
        scratch.inUse = true
        if scratch.base == nil {
            scratch.capacity = 256
            scratch.base = .allocate(capacity: scratch.capacity)
        }
        var sizes = _WireSizes(base: scratch.base!, capacity: scratch.capacity)
        defer {
            if sizes.capacity > Self.keptCapacity {
                sizes.base.deallocate()
                scratch.base = nil
                scratch.capacity = 0
            } else {
                scratch.base = sizes.base
                scratch.capacity = sizes.capacity
            }
            scratch.inUse = false
        }
        return try body(&sizes)
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let result = pthread_key_create(&key) { pointer in
            guard let pointer = pointer as UnsafeMutableRawPointer? else { return }
            let scratch = Unmanaged<_WireScratch>.fromOpaque(pointer).takeRetainedValue()
            scratch.base?.deallocate()
        }
        precondition(result == 0, "pthread_key_create failed: \(result)")
        return key
    }()

    private static var current: _WireScratch {
        if let pointer = pthread_getspecific(Self.key) {
            return Unmanaged<_WireScratch>.fromOpaque(pointer).takeUnretainedValue()
        }
        let scratch = _WireScratch()
        pthread_setspecific(Self.key, Unmanaged.passRetained(scratch).toOpaque())
        return scratch
    }
}
