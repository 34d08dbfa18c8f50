import Benchmark
import BenchmarkMessages
import CHavenProtobufC
import Foundation
import HavenProtocol
import NIOCore
import SwiftProtobuf

/// For every representative message, encode and decode four ways in the same
/// run: Haven's framing (serialize into the outgoing frame, either a fresh
/// buffer or the connection's reused one as the server and client write; decode
/// from the incoming buffer), plain swift-protobuf (`serializedBytes()` /
/// `init(serializedBytes:)`), protobuf-c (`pack` into a fresh buffer /
/// `unpack` + free), and a `memcpy` of the same number of bytes into a fresh
/// buffer, the physical limit.
/// `HAVEN_BENCHMARK_SMOKE=1` runs each benchmark for a few iterations only
/// (CI checks that they build and run; numbers come from full runs).
let benchmarks: @Sendable () -> Void = {
    let smoke = ProcessInfo.processInfo.environment["HAVEN_BENCHMARK_SMOKE"] != nil
    Benchmark.defaultConfiguration = .init(
        metrics: [.throughput, .wallClock, .mallocCountTotal],
        timeUnits: .nanoseconds,
        warmupIterations: smoke ? 1 : 100,
        scalingFactor: .kilo,
        maxDuration: smoke ? .milliseconds(50) : .seconds(3),
        maxIterations: smoke ? 3 : 100_000,
        // Tolerances for `benchmark thresholds check` (p90 against
        // Benchmarks/Thresholds, which holds Haven's benchmarks only: the
        // baselines are there for the ratios) and `baseline check`: time on a
        // shared machine wanders by 10-20 %; allocations are counted per
        // iteration of 1,000 messages, so 500 lets the harness's own few through
        // and catches one more per message.
        thresholds: [
            .wallClock: .init(relative: [.p50: 25, .p90: 25]),
            .throughput: .init(relative: [.p50: 25, .p90: 25]),
            .mallocCountTotal: .init(absolute: [.p50: 500, .p90: 500]),
        ]
    )
    for sample in Representative.all {
        register(sample.name, sample.message)
    }
}

func register(_ name: String, _ message: any HavenWireMessage) {
    func typed<M: HavenWireMessage>(_ message: M) {
        let encoder = FrameEncoder(maximumPayloadLength: 64 << 20)
        let bytes: [UInt8] = try! message.serializedBytes()
        let payload = try! encoder.encode(message).getSlice(at: Frame.headerLength, length: bytes.count)!
        let codec = ProtobufCCodec(messageName: M.protoMessageName)!
        let cMessage = bytes.withUnsafeBytes { codec.unpack($0)! }
        let prefix = "\(name).\(bytes.count)B"

        Benchmark("\(prefix).encode.Haven-frame-fresh-buffer") { benchmark in
            for _ in benchmark.scaledIterations { blackHole(try! encoder.encode(message)) }
        }
        Benchmark("\(prefix).encode.Haven-frame-connection-buffer") { benchmark in
            var outgoing = ByteBuffer()
            for _ in benchmark.scaledIterations {
                try! encoder.encode(message, into: &outgoing)
                blackHole(outgoing)
            }
        }
        Benchmark("\(prefix).encode.swift-protobuf") { benchmark in
            for _ in benchmark.scaledIterations { blackHole(try! message.serializedBytes() as [UInt8]) }
        }
        Benchmark("\(prefix).encode.protobuf-c") { benchmark in
            for _ in benchmark.scaledIterations { blackHole(ProtobufCCodec.pack(cMessage)) }
        }
        Benchmark("\(prefix).encode.memcpy") { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(
                    [UInt8](unsafeUninitializedCapacity: bytes.count) { buffer, count in
                        _ = bytes.withUnsafeBytes { source in
                            memcpy(buffer.baseAddress!, source.baseAddress!, bytes.count)
                        }
                        count = bytes.count
                    }
                )
            }
        }
        Benchmark("\(prefix).decode.Haven-frame") { benchmark in
            for _ in benchmark.scaledIterations { blackHole(try! M(decodingPayload: payload)) }
        }
        Benchmark("\(prefix).decode.swift-protobuf") { benchmark in
            for _ in benchmark.scaledIterations { blackHole(try! M(serializedBytes: bytes)) }
        }
        Benchmark("\(prefix).decode.protobuf-c") { benchmark in
            for _ in benchmark.scaledIterations {
                let decoded = bytes.withUnsafeBytes { codec.unpack($0)! }
                haven_pbc_free(decoded)
            }
        }
    }
    _openExistential(message, do: typed)
}
