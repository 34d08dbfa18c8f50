// swift-tools-version: 6.2
//
// Haven's benchmarks (ordo-one/benchmark): encoding throughput of Haven's
// framing beside plain swift-protobuf, protobuf-c and memcpy, all measured in
// the same run. Depends on the root package by path.
//
//   swift package --package-path Benchmarks benchmark
//   swift test --package-path Benchmarks      # cross-language wire compatibility
//   swift run --package-path Benchmarks -c release haven-load --help

import PackageDescription

let package = Package(
    name: "HavenBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Haven", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        // The peer Haven is compared with: grpc-swift-2 over HTTP/2 + TLS.
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
        // The raw-SQLite durability baseline of the write benchmarks.
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        // A new database per PostgreSQL benchmark.
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        // protobuf-c code generated from Protos/ (scripts/generate-protos.sh); needs libprotobuf-c-dev.
        .target(
            name: "CHavenProtobufC",
            exclude: [],
            cSettings: [.headerSearchPath("include")],
            linkerSettings: [.linkedLibrary("protobuf-c")]
        ),
        .target(
            name: "BenchmarkMessages",
            dependencies: [
                "CHavenProtobufC",
                .product(name: "HavenProtocol", package: "Haven"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "EncodingBenchmarks",
            dependencies: [
                "BenchmarkMessages",
                "CHavenProtobufC",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "HavenProtocol", package: "Haven"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Benchmarks/EncodingBenchmarks",
            swiftSettings: [.swiftLanguageMode(.v6)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "EndToEndBenchmarks",
            dependencies: [
                "BenchmarkMessages",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "HavenClient", package: "Haven"),
                .product(name: "HavenEmbedding", package: "Haven"),
                .product(name: "HavenProtocol", package: "Haven"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Benchmarks/EndToEndBenchmarks",
            swiftSettings: [.swiftLanguageMode(.v6)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // A loop over the medium case's encode or decode, for callgrind profiles.
        .executableTarget(
            name: "profile-encoding",
            dependencies: [
                "BenchmarkMessages",
                "CHavenProtobufC",
                .product(name: "HavenProtocol", package: "Haven"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // Unary calls against a server in the same process, for whole-call profiles.
        .executableTarget(
            name: "profile-calls",
            dependencies: [
                "BenchmarkMessages",
                .product(name: "HavenClient", package: "Haven"),
                .product(name: "HavenEmbedding", package: "Haven"),
                .product(name: "HavenProtocol", package: "Haven"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // The load generator operators point at a deployment (loopback by default).
        .executableTarget(
            name: "haven-load",
            dependencies: [
                .product(name: "HavenClient", package: "Haven"),
                .product(name: "HavenProtocol", package: "Haven"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .testTarget(
            name: "BenchmarkMessagesTests",
            dependencies: [
                "BenchmarkMessages",
                "CHavenProtobufC",
                .product(name: "HavenProtocol", package: "Haven"),
                .product(name: "HavenWireTesting", package: "Haven"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
