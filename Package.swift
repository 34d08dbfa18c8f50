// swift-tools-version: 6.2
//
// Haven: secure case management for anti-trafficking field offices.
//
// Dependency direction (never the other way):
//   HavenProtocol <- HavenClient <- haven-admin
//   HavenProtocol + HavenStore <- HavenServer <- havend
// A partner who links HavenClient pulls in NIO, NIOSSL and SwiftProtobuf only.

import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "Haven",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "HavenProtocol", targets: ["HavenProtocol"]),
        .library(name: "HavenClient", targets: ["HavenClient"]),
        .executable(name: "havend", targets: ["havend"]),
        .executable(name: "haven-admin", targets: ["haven-admin"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    ],
    targets: [
        .target(
            name: "HavenProtocol",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            exclude: ["Generated/PROTOS.sha256"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "HavenStore",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "HavenServer",
            dependencies: [
                "HavenProtocol",
                "HavenStore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "HavenClient",
            dependencies: [
                "HavenProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "havend",
            dependencies: [
                "HavenServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "haven-admin",
            dependencies: [
                "HavenClient",
                "HavenProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "HavenTestSupport",
            dependencies: [
                "HavenProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Tests/HavenTestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "HavenProtocolTests",
            dependencies: [
                "HavenProtocol",
                "HavenTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            exclude: ["Fixtures"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "HavenStoreTests",
            dependencies: ["HavenStore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "HavenServerTests",
            dependencies: ["HavenServer", "HavenProtocol", "HavenTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "HavenClientTests",
            dependencies: ["HavenClient", "HavenProtocol", "HavenTestSupport"],
            swiftSettings: swiftSettings
        ),
    ]
)
