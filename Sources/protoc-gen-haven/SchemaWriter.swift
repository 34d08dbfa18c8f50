/// One kind of output of the generator.
protocol SchemaWriter {
    /// The files to write, by path relative to `--haven_out`, and their contents.
    func files(for schema: Schema) throws -> [(path: String, contents: String)]
}

/// A failure that names what in the schema is wrong.
struct GeneratorError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Builds a file line by line.
struct Lines {
    private(set) var lines: [String] = []

    mutating func add(_ line: String = "") {
        self.lines.append(line)
    }

    /// Doc comment lines (`///`), indented; an empty comment line stays `///`.
    mutating func doc(_ comment: [String], indent: String) {
        for line in comment {
            self.add("\(indent)/// \(line)".trimmingTrailingSpaces())
        }
    }

    var text: String { self.lines.joined(separator: "\n") + "\n" }
}

extension String {
    func trimmingTrailingSpaces() -> String {
        var result = self
        while result.last == " " { result.removeLast() }
        return result
    }

    /// `OpenCase` → `openCase`.
    var lowerCamel: String { self.prefix(1).lowercased() + self.dropFirst() }
}
