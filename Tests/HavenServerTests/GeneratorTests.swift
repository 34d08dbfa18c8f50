import Foundation
import HavenTestSupport
import Testing

/// protoc-gen-haven on schemas of its own: what it generates from real
/// descriptors, and the schema rules it enforces (the repository's own
/// output is checked by `scripts/generate-protos.sh --check` in CI).
@Suite("protoc-gen-haven")
struct GeneratorTests {
    /// Runs protoc with the plugin on `proto`; returns its exit status, stderr and the output folder.
    static func generate(_ proto: String) throws -> (status: Int32, error: String, output: URL)? {
        guard let protoc = executableOnPath("protoc") else {
            if runningInCI { Issue.record("CI must have protoc") }
            return nil
        }
        let directory = try TemporaryDirectory()
        let output = directory.url.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        try Data(proto.utf8).write(to: directory.url.appendingPathComponent("thing.proto"))
        let result = try run(
            protoc,
            [
                "--plugin=protoc-gen-haven=\(RepositoryPaths.product("protoc-gen-haven").path)",
                "--haven_out=\(output.path)", "--proto_path=\(directory.url.path)", "thing.proto",
            ]
        )
        return (result.status, String(decoding: result.error, as: UTF8.self), output)
    }

    static func schema(option: String) -> String {
        """
        syntax = "proto3";
        package haven.v1;
        message MakeThingRequest {
          // Names. [max: 3 items of 10 bytes]
          repeated string names = 1;
          string idempotency_key = 2;
        }
        message GetThingRequest { string id = 1; }
        message Thing { string id = 1; }
        // Things, for the test.
        service OfficeService {
          // Makes a thing.
          rpc MakeThing(MakeThingRequest) returns (Thing)\(option)
          // Reads things.
          rpc WatchThings(GetThingRequest) returns (stream Thing) { option idempotency_level = NO_SIDE_EFFECTS; }
        }
        """
    }

    @Test("generates the catalog, limits, handler protocol and sub-client from the descriptors")
    func generates() throws {
        guard let result = try Self.generate(Self.schema(option: " { option idempotency_level = IDEMPOTENT; }")) else {
            return
        }
        #expect(result.status == 0, "\(result.error)")
        let catalog = try String(
            contentsOf: result.output.appendingPathComponent("Sources/HavenProtocol/Generated/Schema+Catalog.swift"),
            encoding: .utf8
        )
        #expect(
            catalog.contains(
                "public static let makeThing = MethodDescriptor<Haven_V1_MakeThingRequest, Haven_V1_Thing>("
            )
        )
        #expect(catalog.contains("kind: .unary,\n            idempotency: .idempotent"))
        #expect(catalog.contains("kind: .serverStreaming,\n            idempotency: .noSideEffects"))
        #expect(catalog.contains("1: HavenFieldLimit(name: \"names\", maxBytes: 10, maxItems: 3),"))
        #expect(catalog.contains("2: HavenFieldLimit(name: \"idempotency_key\", maxBytes: 64),"))
        #expect(catalog.contains("    /// Makes a thing.\n"))
        let handlers = try String(
            contentsOf: result.output.appendingPathComponent("Sources/HavenServer/Generated/Schema+Handlers.swift"),
            encoding: .utf8
        )
        #expect(handlers.contains("package protocol OfficeServiceHandler: Sendable {"))
        #expect(handlers.contains("_ stream: ResponseStream<Haven_V1_Thing>"))
        #expect(
            handlers.contains("router.register(MethodCatalog.OfficeService.watchThings, streaming: self.watchThings)")
        )
        let client = try String(
            contentsOf: result.output.appendingPathComponent(
                "Sources/HavenClient/Generated/HavenClient+Services.swift"
            ),
            encoding: .utf8
        )
        #expect(client.contains("public func makeThing("))
        #expect(client.contains("extension Haven_V1_MakeThingRequest: IdempotentRequest {}"))
    }

    @Test("refuses a request with an idempotency key whose method is not IDEMPOTENT")
    func keyedNeedsIdempotent() throws {
        guard let result = try Self.generate(Self.schema(option: ";")) else { return }
        #expect(result.status != 0)
        #expect(result.error.contains("haven.v1.OfficeService.MakeThing"))
        #expect(result.error.contains("must declare option idempotency_level = IDEMPOTENT"))
    }

    @Test("refuses a malformed limit marker")
    func malformedMarker() throws {
        let proto = Self.schema(option: " { option idempotency_level = IDEMPOTENT; }")
            .replacingOccurrences(of: "[max: 3 items of 10 bytes]", with: "[max: lots]")
        guard let result = try Self.generate(proto) else { return }
        #expect(result.status != 0)
        #expect(result.error.contains("malformed limit marker"))
    }
}
