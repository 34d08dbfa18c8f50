import Foundation
import HavenProtocol

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
        TimeOrderedUUID.lowercasedString(TimeOrderedUUID.make(now: now))
    }

    /// A key for the given Unix time in milliseconds (its low 48 bits) and randomness.
    static func make(milliseconds: UInt64, using generator: inout some RandomNumberGenerator) -> String {
        TimeOrderedUUID.lowercasedString(TimeOrderedUUID.make(milliseconds: milliseconds, using: &generator))
    }
}
