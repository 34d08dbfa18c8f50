import Foundation
import Logging

/// `log_format = json`: one JSON object a line —
/// `{"time":"2026-12-03T20:48:40.123Z","level":"info","label":"havend","message":"…","metadata":{…}}` —
/// for log shippers that index fields. What is logged is the same as in the
/// text format: metadata never carries identities (docs/SECURITY.md).
package struct JSONLogHandler: LogHandler {
    package var logLevel: Logger.Level = .info
    package var metadata: Logger.Metadata = [:]
    package var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let output: @Sendable (String) -> Void

    /// - Parameter output: Receives each line, newline included (standard error by default).
    package init(label: String, output: @escaping @Sendable (String) -> Void = JSONLogHandler.standardError) {
        self.label = label
        self.output = output
    }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    package func log(event: LogEvent) {
        var merged = self.metadata
        if let provided = self.metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let metadata = event.metadata { merged.merge(metadata) { _, new in new } }
        var line = "{\"time\":\(JSONText.quoted(Self.timestamp(Date())))"
        line += ",\"level\":\(JSONText.quoted(event.level.rawValue))"
        line += ",\"label\":\(JSONText.quoted(self.label))"
        line += ",\"message\":\(JSONText.quoted(event.message.description))"
        if !merged.isEmpty { line += ",\"metadata\":" + Self.json(.dictionary(merged)) }
        line += "}\n"
        self.output(line)
    }

    static func json(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let text): return JSONText.quoted(text)
        case .stringConvertible(let convertible): return JSONText.quoted(convertible.description)
        case .array(let values): return "[" + values.map(Self.json).joined(separator: ",") + "]"
        case .dictionary(let values):
            let fields = values.sorted { $0.key < $1.key }.map { "\(JSONText.quoted($0.key)):\(Self.json($0.value))" }
            return "{" + fields.joined(separator: ",") + "}"
        }
    }

    /// RFC 3339 in UTC with milliseconds.
    static func timestamp(_ date: Date) -> String {
        date.formatted(
            .iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted)
        )
    }

    /// Writes a line to standard error in one `write(2)`, so lines from several threads never interleave.
    package static let standardError: @Sendable (String) -> Void = { line in
        var line = line
        line.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = write(2, bytes.baseAddress! + offset, bytes.count - offset)
                if written <= 0 { return }
                offset += written
            }
        }
    }
}
