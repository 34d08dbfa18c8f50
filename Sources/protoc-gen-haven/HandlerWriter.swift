/// HavenServer's handler protocols: one per service, one requirement per
/// method, and the registration of all of them in the router. A service
/// that leaves a method out does not compile.
struct HandlerWriter: SchemaWriter {
    static let path = "Sources/HavenServer/Generated/Schema+Handlers.swift"

    func files(for schema: Schema) throws -> [(path: String, contents: String)] {
        var out = Lines.swiftFile(importing: "HavenProtocol")
        for service in schema.services {
            out.add()
            out.doc(service.doc, indent: "")
            out.add("///")
            out.add("/// The handlers of `\(service.name.full)`.")
            out.add("package protocol \(service.name.short)Handler: Sendable {")
            for (index, method) in service.methods.enumerated() {
                if index > 0 { out.add() }
                out.doc(method.doc, indent: "    ")
                if method.streaming {
                    out.add("    func \(method.name.lowerCamel)(")
                    out.add("        _ request: \(method.requestType),")
                    out.add("        _ context: CallContext,")
                    out.add("        _ stream: ResponseStream<\(method.responseType)>")
                    out.add("    ) async throws")
                } else {
                    out.add("    func \(method.name.lowerCamel)(")
                    out.add("        _ request: \(method.requestType),")
                    out.add("        _ context: CallContext")
                    out.add("    ) async throws -> \(method.responseType)")
                }
            }
            out.add("}")
            out.add()
            out.add("extension \(service.name.short)Handler {")
            out.add("    /// Registers every method of `\(service.name.full)` in `router`.")
            out.add("    package func register(into router: inout Router) {")
            for method in service.methods {
                let descriptor = "MethodCatalog.\(service.name.short).\(method.name.lowerCamel)"
                if method.streaming {
                    out.add("        router.register(\(descriptor), streaming: self.\(method.name.lowerCamel))")
                } else {
                    out.add("        router.register(\(descriptor), self.\(method.name.lowerCamel))")
                }
            }
            out.add("    }")
            out.add("}")
        }
        out.add()
        out.add("/// Every service's handlers, for the router.")
        out.add("package struct HavenServiceHandlers {")
        for service in schema.services {
            out.add("    package var \(service.name.short.lowerCamel): any \(service.name.short)Handler")
        }
        out.add()
        out.add("    /// A router serving every method of ``MethodCatalog``.")
        out.add("    package func register(into router: inout Router) {")
        for service in schema.services {
            out.add("        self.\(service.name.short.lowerCamel).register(into: &router)")
        }
        out.add("    }")
        out.add("}")
        return [(Self.path, out.text)]
    }
}
