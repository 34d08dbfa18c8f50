import Foundation

/// The method reference (§9) and the field-limit table (§10.1) of
/// docs/PROTOCOL.md, spliced between their markers in the existing file.
struct DocsWriter: SchemaWriter {
    let path: String

    static let methodsBegin = "<!-- BEGIN GENERATED METHODS: protoc-gen-haven -->"
    static let methodsEnd = "<!-- END GENERATED METHODS -->"
    static let limitsBegin = "<!-- BEGIN GENERATED LIMITS: protoc-gen-haven -->"
    static let limitsEnd = "<!-- END GENERATED LIMITS -->"

    func files(for schema: Schema) throws -> [(path: String, contents: String)] {
        guard let text = FileManager.default.contents(atPath: self.path).flatMap({ String(data: $0, encoding: .utf8) })
        else {
            throw GeneratorError("\(self.path): cannot read it (run protoc from the repository's root)")
        }
        var spliced = try Self.splice(text, Self.methodsBegin, Self.methodsEnd, Self.methods(schema))
        spliced = try Self.splice(spliced, Self.limitsBegin, Self.limitsEnd, Self.limits(schema))
        return [(self.path, spliced)]
    }

    static func splice(_ text: String, _ begin: String, _ end: String, _ body: String) throws -> String {
        guard let start = text.range(of: begin),
            let finish = text.range(of: end, range: start.upperBound..<text.endIndex)
        else {
            throw GeneratorError("the markers \(begin) … \(end) are missing")
        }
        return String(text[..<start.lowerBound]) + body + String(text[finish.upperBound...])
    }

    static func retry(_ method: Schema.Method) -> String {
        switch method.idempotency {
        case .noSideEffects: "read: always"
        case .idempotent: "with the same `idempotency_key`"
        case .unknown: "no: re-read, decide"
        }
    }

    static func methods(_ schema: Schema) -> String {
        var out = [Self.methodsBegin, ""]
        for service in schema.services {
            out.append("### `\(service.name.full)`")
            out.append("")
            out.append(service.doc.joined(separator: " ") + " Schema: `Protos/\(service.file)`.")
            out.append("")
            out.append("| Method | Request → Response | Retry after UNAVAILABLE | What it does; errors |")
            out.append("|---|---|---|---|")
            for method in service.methods {
                let stream = method.streaming ? "stream " : ""
                out.append(
                    "| `\(service.name.full)/\(method.name)` | `\(method.requestName)` → `\(stream)\(method.responseName)` | \(Self.retry(method)) | \(method.doc.joined(separator: " ")) |"
                )
            }
            out.append("")
        }
        out.append(Self.methodsEnd)
        return out.joined(separator: "\n")
    }

    static func limits(_ schema: Schema) -> String {
        var out = [Self.limitsBegin, "", "| Message | Field | Maximum |", "|---|---|---|"]
        for message in schema.limitedMessages {
            for field in message.fields {
                var parts: [String] = []
                if let items = field.maxItems { parts.append("\(items) items") }
                if let bytes = field.maxBytes {
                    let size = bytes % 1024 == 0 ? "\(bytes / 1024) KiB" : "\(bytes) bytes"
                    parts.append((field.maxItems != nil ? "each " : "") + size)
                }
                if !parts.isEmpty {
                    out.append("| `\(message.name)` | `\(field.name)` | \(parts.joined(separator: ", ")) |")
                }
            }
        }
        out += ["", Self.limitsEnd]
        return out.joined(separator: "\n")
    }
}
