import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Random bytes from the kernel's generator, read 4 KiB at a time, each
/// handed out once: for values that must be unpredictable and unique but are
/// no secret, where asking the system for each one cost a system call apiece.
///
/// - The store's nonces (``nonces``), which are kept in their boxes: one
///   for every sealed note, 1.2 % of the store writer's time.
/// - Identifiers (``identifiers``, through ``IdentifierRandomness``): record
///   and event ids and idempotency keys, which every client allowed to see
///   the record is sent. `SystemRandomNumberGenerator` makes a system call for
///   every 8 bytes: four for each write (two for the client's key, two for
///   the server's event id), about 1 µs of its CPU, where at 16 writes in
///   flight each microsecond costs about 1 % of the writes a second
///   (BENCHMARKS.md).
///
/// Never for keys: those are made by the crypto library, from the system's
/// generator, when they are needed. The bytes here only wait in memory until
/// a nonce or an identifier — public once used — takes them.
package final class RandomBytePool: Sendable {
    /// The store's nonces.
    package static let nonces = RandomBytePool()
    /// Identifiers (``IdentifierRandomness``).
    package static let identifiers = RandomBytePool()

    /// Bytes read from the system at once.
    package static let size = 4096

    private let buffer = Mutex(Buffer())

    /// The bytes read last, and where the next unused one is.
    private struct Buffer {
        var bytes: [UInt8] = []
        var next = RandomBytePool.size

        /// The offset of `count` unused bytes, reading a fresh batch when
        /// too few are left; they count as used from here on.
        mutating func claim(_ count: Int) -> Int {
            if self.next + count > RandomBytePool.size {
                self.bytes = RandomBytePool.random(RandomBytePool.size)
                self.next = 0
            }
            defer { self.next += count }
            return self.next
        }
    }

    private init() {}

    /// `count` fresh bytes (at most ``size``), never handed out before.
    package func take(_ count: Int) -> ArraySlice<UInt8> {
        precondition(count > 0 && count <= Self.size)
        return self.buffer.withLock { buffer in
            let start = buffer.claim(count)
            return buffer.bytes[start..<start + count]
        }
    }

    /// Eight fresh bytes as a word, without an array of their own.
    package func word() -> UInt64 {
        self.buffer.withLock { buffer in
            let start = buffer.claim(8)
            return buffer.bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: start, as: UInt64.self) }
        }
    }

    /// `count` bytes from the kernel's generator (`/dev/urandom`, kept open),
    /// or from the standard library's (the same generator, a system call for
    /// each 8 bytes) when that cannot be read.
    fileprivate static func random(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var filled = 0
        #if canImport(Glibc)
        if Self.urandom >= 0 {
            bytes.withUnsafeMutableBytes { buffer in
                while filled < count {
                    let got = read(Self.urandom, buffer.baseAddress! + filled, count - filled)
                    if got > 0 {
                        filled += got
                    } else if got == 0 || errno != EINTR {
                        break
                    }
                }
            }
        }
        #endif
        if filled < count {
            var generator = SystemRandomNumberGenerator()
            for start in stride(from: filled, to: count, by: 8) {
                withUnsafeBytes(of: generator.next() as UInt64) { word in
                    for offset in 0..<min(8, count - start) { bytes[start + offset] = word[offset] }
                }
            }
        }
        return bytes
    }

    #if canImport(Glibc)
    private static let urandom = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
    #endif
}

/// The random bits of identifiers — record and event ids, idempotency keys —
/// from ``RandomBytePool/identifiers``. Never for keys or anything secret.
package struct IdentifierRandomness: RandomNumberGenerator {
    package init() {}

    package mutating func next() -> UInt64 {
        RandomBytePool.identifiers.word()
    }
}
