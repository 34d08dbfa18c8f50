/// HavenProtocol's method catalog, field limits and message types.
struct CatalogWriter: SchemaWriter {
    static let path = "Sources/HavenProtocol/Generated/Schema+Catalog.swift"

    func files(for schema: Schema) throws -> [(path: String, contents: String)] {
        var out = Lines.swiftFile(importing: "SwiftProtobuf")
        out.add()
        for service in schema.services {
            out.add("extension MethodCatalog {")
            out.doc(service.doc, indent: "    ")
            out.add("    public enum \(service.name.short) {")
            out.add("        /// `\(service.name.full)`")
            out.add("        public static let name = \"\(service.name.full)\"")
            for method in service.methods {
                out.add()
                out.doc(method.doc, indent: "        ")
                out.add(
                    "        public static let \(method.name.lowerCamel) = MethodDescriptor<\(method.requestType), \(method.responseType)>("
                )
                out.add("            service: name,")
                out.add("            method: \"\(method.name)\",")
                out.add("            kind: \(method.streaming ? ".serverStreaming" : ".unary"),")
                out.add("            idempotency: .\(method.idempotency.rawValue)")
                out.add("        )")
            }
            out.add("    }")
            out.add("}")
            out.add()
        }
        out.add("extension MethodCatalog {")
        out.add("    /// Every method of the protocol, in schema order.")
        out.add("    public static let all: [MethodInfo] = [")
        for service in schema.services {
            for method in service.methods {
                out.add("        \(service.name.short).\(method.name.lowerCamel).info,")
            }
        }
        out.add("    ]")
        out.add("}")
        out.add()
        out.add("extension HavenFieldLimits {")
        out.add("    /// Every field of every message a request can carry (and of `Hello`), by message")
        out.add("    /// full name and field number, with its maximum: from the `[max: ...]` markers in")
        out.add("    /// Protos/ and the defaults stated in common.proto.")
        out.add("    public static let byMessage: [String: [Int: HavenFieldLimit]] = [")
        for message in schema.limitedMessages {
            guard !message.fields.isEmpty else {
                out.add("        \"\(message.fullName)\": [:],")
                continue
            }
            out.add("        \"\(message.fullName)\": [")
            for field in message.fields {
                var arguments = ["name: \"\(field.name)\""]
                if let bytes = field.maxBytes { arguments.append("maxBytes: \(bytes)") }
                if let items = field.maxItems { arguments.append("maxItems: \(items)") }
                out.add("            \(field.number): HavenFieldLimit(\(arguments.joined(separator: ", "))),")
            }
            out.add("        ],")
        }
        out.add("    ]")
        out.add("}")
        out.add()
        out.add("extension HavenSchema {")
        out.add("    /// Every message type of the schema, in file and declaration order.")
        out.add("    public static let messageTypes: [any HavenWireMessage.Type] = [")
        for type in schema.messageTypes {
            out.add("        \(type).self,")
        }
        out.add("    ]")
        out.add("}")
        return [(Self.path, out.text)]
    }
}
