/// Client-supplied text made safe to log or echo.
///
/// A peer chooses its client agent, method names and other strings; written
/// raw, a newline in one forges whole log lines. Everything but printable
/// ASCII (and the backslash itself) is escaped as `\u{…}`, so one logged value
/// stays one value on one line, and the text is cut to `limit` characters.
package enum LogText {
    package static func escaped(_ text: String, limit: Int = 100) -> String {
        var result = ""
        var count = 0
        for scalar in text.unicodeScalars {
            guard count < limit else {
                result += "…"
                break
            }
            if scalar.value >= 0x20 && scalar.value < 0x7F && scalar != "\\" {
                result.unicodeScalars.append(scalar)
            } else {
                result += "\\u{\(String(scalar.value, radix: 16))}"
            }
            count += 1
        }
        return result
    }
}
