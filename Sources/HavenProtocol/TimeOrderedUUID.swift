import Foundation

/// A UUID laid out as version 7 (RFC 9562): the first 48 bits are the Unix
/// time in milliseconds, the rest (but the version and variant bits) random,
/// 74 bits from the generator given.
///
/// Such ids are unique as random UUIDs are for any practical purpose, and
/// sort by the time they were made: an index keyed by them gains its new
/// entries beside the last ones, not on a random page. They say when they
/// were made and nothing else.
package enum TimeOrderedUUID {
    /// A new one for the given Unix time in milliseconds (its low 48 bits).
    package static func make(milliseconds: UInt64, using generator: inout some RandomNumberGenerator) -> UUID {
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
        return UUID(
            uuid: (
                bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]
            )
        )
    }

    /// A new one for the given time (to the nearest millisecond, as the
    /// server's timestamps), from the system's generator
    /// (``IdentifierRandomness``).
    package static func make(now: Date) -> UUID {
        var generator = IdentifierRandomness()
        let milliseconds = UInt64(max(0, (now.timeIntervalSince1970 * 1000).rounded()))
        return self.make(milliseconds: milliseconds, using: &generator)
    }

    /// `uuid.uuidString.lowercased()`, written directly: the 8-4-4-4-12 form
    /// in lower-case hex, without Foundation's upper-case text and a second
    /// string to lower it (5 % of a client's CPU a call, for its keys).
    package static func lowercasedString(_ uuid: UUID) -> String {
        self.lowercasedHex(uuid, dashes: true)
    }

    /// A UUID's 16 bytes in lower-case hex, in the 8-4-4-4-12 form with
    /// `dashes`, else as 32 digits (the server's record and event ids).
    package static func lowercasedHex(_ uuid: UUID, dashes: Bool) -> String {
        let digits: StaticString = "0123456789abcdef"
        return withUnsafeBytes(of: uuid.uuid) { bytes in
            String(unsafeUninitializedCapacity: dashes ? 36 : 32) { text in
                var at = 0
                for (index, byte) in bytes.enumerated() {
                    if dashes && (index == 4 || index == 6 || index == 8 || index == 10) {
                        text[at] = UInt8(ascii: "-")
                        at += 1
                    }
                    text[at] = digits.utf8Start[Int(byte >> 4)]
                    text[at + 1] = digits.utf8Start[Int(byte & 0x0F)]
                    at += 2
                }
                return at
            }
        }
    }
}
