import Crypto
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The nonces of the boxes the store seals: 12 random bytes each, from the
/// system's generator taken 4 KiB at a time, where each seal asked the
/// system for its own 12 bytes (a system call on the store's one writer for
/// every note appended, 1.2 % of its time). A nonce is no secret — it is
/// stored in its box — and none is handed out twice: the buffer moves on past
/// every nonce it gives, and is refilled whole.
enum NonceSource {
    private static let size = 4096
    private static let buffer = Mutex<(bytes: [UInt8], next: Int)>(([], Self.size))

    /// A fresh nonce.
    static func next() -> AES.GCM.Nonce {
        let bytes = Self.buffer.withLock { buffer -> ArraySlice<UInt8> in
            if buffer.next + 12 > Self.size {
                buffer.bytes = Self.random(Self.size)
                buffer.next = 0
            }
            defer { buffer.next += 12 }
            return buffer.bytes[buffer.next..<buffer.next + 12]
        }
        // 12 bytes are always a valid GCM nonce.
        return try! AES.GCM.Nonce(data: bytes)
    }

    /// `count` bytes from the kernel's generator (`/dev/urandom`, kept open),
    /// or from the standard library's (the same generator, a system call for
    /// each 8 bytes) when that cannot be read.
    private static func random(_ count: Int) -> [UInt8] {
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
