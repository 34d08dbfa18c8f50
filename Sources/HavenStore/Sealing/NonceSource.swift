import Crypto
import HavenProtocol

/// The nonces of the boxes the store seals: 12 random bytes each, from
/// ``RandomBytePool/nonces`` (the kernel's generator read 4 KiB at a time),
/// where each seal asked the system for its own 12 bytes (a system call on
/// the store's one writer for every note appended, 1.2 % of its time). A
/// nonce is no secret — it is stored in its box — and none is handed out twice.
enum NonceSource {
    /// A fresh nonce.
    static func next() -> AES.GCM.Nonce {
        // 12 bytes are always a valid GCM nonce.
        try! AES.GCM.Nonce(data: RandomBytePool.nonces.take(12))
    }
}
