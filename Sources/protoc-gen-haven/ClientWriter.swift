/// HavenClient's typed sub-clients (`client.cases.open(…)`) and the
/// conformances that let it fill in idempotency keys.
struct ClientWriter: SchemaWriter {
    static let path = "Sources/HavenClient/Generated/HavenClient+Services.swift"

    /// The property and type of each service's sub-client: English plurals
    /// and collective nouns are not derivable from the service names.
    static let subClients: [String: (property: String, type: String)] = [
        "OfficeService": ("offices", "Offices"),
        "CaseService": ("cases", "Cases"),
        "SurvivorService": ("survivors", "Survivors"),
        "PartnerService": ("partners", "Partners"),
        "ReferralService": ("referrals", "Referrals"),
        "AlertService": ("alerts", "Alerts"),
        "FeedService": ("feed", "Feed"),
        "ReportService": ("reports", "Reports"),
        "SessionService": ("session", "Session"),
        "AuditService": ("audit", "Audit"),
        "AccountService": ("accounts", "Accounts"),
        "EnrollmentService": ("enrollment", "Enrollment"),
        "OperationsService": ("operations", "Operations"),
    ]
    static let methodNames = ["GetOfficeReport": "officeReport", "WhoAmI": "whoAmI"]

    /// `OpenCase` in `CaseService` → `open`; `UpdateCaseStatus` → `updateStatus`.
    static func clientMethodName(service: String, method: String) -> String {
        if let name = Self.methodNames[method] { return name }
        let noun = String(service.dropLast("Service".count))
        var words: [String] = []
        for character in method {
            if character.isUppercase || words.isEmpty { words.append("") }
            words[words.count - 1].append(character)
        }
        let kept = words.filter { $0 != noun && $0 != noun + "s" }
        return (kept.isEmpty ? words : kept).joined().lowerCamel
    }

    func files(for schema: Schema) throws -> [(path: String, contents: String)] {
        var out = Lines.swiftFile(importing: "HavenProtocol")
        out.add()
        for service in schema.services {
            guard let names = Self.subClients[service.name.short] else {
                throw GeneratorError(
                    "\(service.name.full): name its sub-client in ClientWriter.subClients (Sources/protoc-gen-haven)"
                )
            }
            out.add("extension HavenClient {")
            out.doc(service.doc, indent: "    ")
            out.add("    ///")
            out.add("    /// The calls of `\(service.name.full)`.")
            out.add("    public struct \(names.type): Sendable {")
            out.add("        let client: HavenClient")
            for method in service.methods {
                let descriptor = "MethodCatalog.\(service.name.short).\(method.name.lowerCamel)"
                let name = Self.clientMethodName(service: service.name.short, method: method.name)
                out.add()
                out.doc(method.doc, indent: "        ")
                out.add("        ///")
                switch method.idempotency {
                case .noSideEffects:
                    out.add("        /// A read: retried after a lost connection.")
                    out.add("        ///")
                case .idempotent:
                    out.add("        /// Idempotent: an empty `idempotency_key` is filled in, and the call is")
                    out.add("        /// retried with the same key after a lost connection.")
                    out.add("        ///")
                case .unknown:
                    break
                }
                out.add("        /// - Parameters:")
                out.add("        ///   - request: The `\(service.package).\(method.requestName)`.")
                out.add("        ///   - options: The call's deadline.")
                if method.streaming {
                    out.add("        /// - Returns: The stream of responses.")
                    out.add("        /// - Throws: `HavenError` if the call cannot start.")
                    out.add("        public func \(name)(")
                    out.add(
                        "            _ request: \(method.requestType) = \(method.requestType)(), options: CallOptions = CallOptions()"
                    )
                    out.add("        ) async throws -> HavenResponseStream<\(method.responseType)> {")
                    out.add(
                        "            try await self.client.serverStreaming(\(descriptor), request, options: options)"
                    )
                } else {
                    out.add("        /// - Returns: The response.")
                    out.add("        /// - Throws: `HavenError`.")
                    out.add("        public func \(name)(")
                    out.add(
                        "            _ request: \(method.requestType) = \(method.requestType)(), options: CallOptions = CallOptions()"
                    )
                    out.add("        ) async throws -> \(method.responseType) {")
                    out.add("            try await self.client.unary(\(descriptor), request, options: options)")
                }
                out.add("        }")
            }
            out.add("    }")
            out.add()
            out.add("    /// The calls of `\(service.name.full)`.")
            out.add("    public var \(names.property): \(names.type) { \(names.type)(client: self) }")
            out.add("}")
            out.add()
        }
        var keyed: [String] = []
        for service in schema.services {
            for method in service.methods where method.keyed && !keyed.contains(method.requestType) {
                keyed.append(method.requestType)
            }
        }
        out.add("// The requests of IDEMPOTENT methods that carry an idempotency key.")
        for type in keyed {
            out.add("extension \(type): IdempotentRequest {}")
        }
        return [(Self.path, out.text)]
    }
}
