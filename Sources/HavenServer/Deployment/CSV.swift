import Foundation

/// Comma-separated values for spreadsheets, safe to open: RFC 4180 quoting,
/// and cells that a spreadsheet would run as a formula (beginning with `=`,
/// `+`, `-`, `@`, a tab or a carriage return) prefixed with an apostrophe,
/// as OWASP advises against CSV injection.
package enum CSV {
    /// One cell, escaped.
    package static func cell(_ text: String) -> String {
        var value = text
        if let first = value.unicodeScalars.first, ["=", "+", "-", "@", "\t", "\r"].contains(first) {
            value = "'" + value
        }
        if value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) {
            value = "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        return value
    }

    /// One line of cells.
    package static func line(_ cells: [String]) -> String {
        cells.map(Self.cell).joined(separator: ",")
    }
}
