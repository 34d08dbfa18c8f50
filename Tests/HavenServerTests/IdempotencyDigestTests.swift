import Crypto
import Foundation
import HavenProtocol
import HavenWireTesting
import SwiftProtobuf
import Testing

@testable import HavenServer

/// The digest an idempotency key is stored with: SHA-256 of the request's
/// deterministic protobuf, as swift-protobuf writes it, whichever codec
/// writes the bytes. Stored digests outlive releases: a retry of a request
/// made before an upgrade must match its own.
@Suite("Idempotency digests")
struct IdempotencyDigestTests {
    static let deterministic: BinaryEncodingOptions = {
        var options = BinaryEncodingOptions()
        options.useDeterministicOrdering = true
        return options
    }()

    @Test(
        "the digest of random values of every message, unknown fields included, is that of swift-protobuf's deterministic bytes"
    )
    func matchesSwiftProtobuf() throws {
        for schema in _WireSchema.messages {
            // A seed of the name's bytes (FNV-1a): the same values in every run.
            let seed = schema.name.utf8.reduce(0xcbf2_9ce4_8422_2325 as UInt64) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
            var random = RandomMessages(seed: seed, unknownFields: true)
            for _ in 0..<40 {
                let request = try schema.type.init(serializedBytes: random.encoding(of: schema.name, style: .canonical))
                let reference: [UInt8] = try request.serializedBytes(options: Self.deterministic)
                #expect(
                    RecordWriter.requestDigest(request) == Array(SHA256.hash(data: reference)),
                    "\(schema.name)"
                )
            }
        }
    }

    @Test("a known request's digest stays what releases before stored")
    func pinned() {
        var request = Haven_V1_AppendCaseEventRequest()
        request.caseID = "cas_0001"
        request.idempotencyKey = "01938f2a-1b3c-7fff-bfff-ffffffffffff"
        request.event.occurredOn = .with {
            $0.year = 2026
            $0.month = 3
            $0.day = 9
        }
        request.event.note = .with { $0.text = "Fictional note" }
        let hex = RecordWriter.requestDigest(request).map { String(format: "%02x", $0) }.joined()
        // SHA-256 of swift-protobuf's deterministic bytes of this request, as
        // the releases before the generated codec wrote the digest.
        #expect(hex == "10bc58e7a065206071762eea9de0f8ce6a6914e4fb8bd946d9d51bfe63b80944")
    }
}
