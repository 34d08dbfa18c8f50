import Foundation

/// The idempotency keys the client gives creates that carry none.
///
/// A key is a UUID laid out as version 7 (RFC 9562): the first 48 bits are
/// the Unix time in milliseconds, the rest (but the version and variant bits)
/// random, 74 bits from the system's generator. So keys are unique as random
/// UUIDs are for any practical purpose, and a client's keys sort by the time
/// they were made: the server keeps keys by principal and key, so each new
/// key lands beside the last one instead of on a random page of its index,
/// and a group of writes touches one page of it rather than one each.
/// The key says when the client made the request, which the server records
/// anyway; it says nothing about the request.
enum IdempotencyKey {
    /// A new key, as lower-case hex in the UUID's usual 8-4-4-4-12 form.
    static func make(now: Date = Date()) -> String {
        var generator = SystemRandomNumberGenerator()
        return make(milliseconds: UInt64(max(0, now.timeIntervalSince1970 * 1000)), using: &generator)
    }

    /// A key for the given Unix time in milliseconds (its low 48 bits) and randomness.
    static func make(milliseconds: UInt64, using generator: inout some RandomNumberGenerator) -> String {
        var bytes = [UInt8](repeating: 0, count: 16)
        for index in 0..<6 { bytes[index] = UInt8(truncatingIfNeeded: milliseconds >> (8 * (5 - index))) }
        let high = generator.next()
        let low = generator.next()
        for index in 6..<16 {
            let source = index < 8 ? high : low
            bytes[index] = UInt8(truncatingIfNeeded: source >> (8 * (index % 8)))
        }
        bytes[6] = 0x70 | (bytes[6] & 0x0F)  // version 7
        bytes[8] = 0x80 | (bytes[8] & 0x3F)  // the RFC's variant
        let uuid = UUID(
            uuid: (
                bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]
            )
        )
        return uuid.uuidString.lowercased()
    }
}
