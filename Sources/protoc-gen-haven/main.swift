// protoc-gen-haven: generates Haven's code from the descriptors of Protos/.
//
//   protoc --plugin=protoc-gen-haven=PATH --haven_out=. \
//       --haven_opt=docs=docs/PROTOCOL.md --proto_path=Protos Protos/haven/v1/*.proto
//
// It writes, from one reading of the schema (``Schema``):
// - HavenProtocol's method catalog, the field limits and the message types;
// - HavenProtocol's wire codec: a specialised encoder and decoder per message;
// - HavenServer's handler protocols, one per service (a method without a
//   handler does not compile);
// - HavenClient's typed sub-clients and its idempotent-request conformances;
// - the method and limit tables of docs/PROTOCOL.md (spliced between markers).
//
// Each output is a ``SchemaWriter``.

import SwiftProtobufPluginLibrary

struct HavenGenerator: CodeGenerator {
    func generate(
        files: [FileDescriptor],
        parameter: any CodeGeneratorParameter,
        protoCompilerContext: any ProtoCompilerContext,
        generatorOutputs: any GeneratorOutputs
    ) throws {
        let options = Dictionary(
            parameter.parsedPairs.map { ($0.key, $0.value) },
            uniquingKeysWith: { _, last in last }
        )
        let schema = try Schema(files: files.sorted { $0.name < $1.name })
        var writers: [any SchemaWriter] = [CatalogWriter(), CodecWriter(), HandlerWriter(), ClientWriter()]
        if let docs = options["docs"] {
            writers.append(DocsWriter(path: docs))
        }
        for writer in writers {
            for (path, contents) in try writer.files(for: schema) {
                try generatorOutputs.add(fileName: path, contents: contents)
            }
        }
    }

    var supportedFeatures: [Google_Protobuf_Compiler_CodeGeneratorResponse.Feature] { [.proto3Optional] }
    var version: String? { "1" }
    var projectURL: String? { "Haven: scripts/generate-protos.sh" }
}

HavenGenerator().main(nil)
