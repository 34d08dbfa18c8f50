import ArgumentParser
import Foundation
import HavenProtocol
import SwiftProtobuf

/// A failure of the tool itself, before or beside the server.
enum CLIError: Error {
    /// The command was used wrongly (exit 64).
    case usage(String)
    /// A local file or directory problem (exit 5).
    case local(String)
}

/// The conventions every command follows (docs/OPERATIONS.md, "haven-admin"):
/// aligned tables with headers, readable roles and dates, `--json` with one
/// object on standard output, errors on standard error, documented exit codes.
enum CLI {
    /// Exit codes.
    enum Exit {
        /// The audit chain is not intact (`audit verify`), or a restore check failed.
        static let notIntact: Int32 = 1
        /// The server refused the request (invalid, not found, conflict…).
        static let refused: Int32 = 2
        /// The server cannot be reached (refused, timed out, TLS failed).
        static let unreachable: Int32 = 3
        /// Not authenticated or not allowed (certificate, account, role).
        static let denied: Int32 = 4
        /// A local problem: a file or directory that cannot be read or written.
        static let local: Int32 = 5
        /// Wrong usage: an unknown flag, a bad value.
        static let usage: Int32 = 64
    }

    /// The exit code of a failure.
    static func exitCode(for error: any Error) -> Int32 {
        switch error {
        case let error as HavenError:
            switch error.code {
            case .unauthenticated, .permissionDenied: Exit.denied
            case .unavailable: Exit.unreachable
            case .deadlineExceeded where error.source != .server: Exit.unreachable
            case .invalidArgument where error.source == .client: Exit.usage
            default: error.source == .client ? Exit.local : Exit.refused
            }
        case CLIError.usage: Exit.usage
        case let error as ExitCodeError: error.code
        default: Exit.local
        }
    }

    /// Runs a command body: prints a failure as `haven-admin: …` (or as JSON)
    /// on standard error and exits with its code.
    static func run(json: Bool, _ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let exit as ExitCode {
            throw exit
        } catch {
            Self.report(error, json: json)
            throw ExitCode(Self.exitCode(for: error))
        }
    }

    /// Writes a failure to standard error.
    static func report(_ error: any Error, json: Bool) {
        let (code, message, source): (String, String, String) =
            switch error {
            case let error as HavenError: (error.code.description, error.message, error.source.description)
            case CLIError.usage(let text): ("USAGE", text, "client")
            case CLIError.local(let text): ("LOCAL", text, "client")
            case let error as ExitCodeError:
                (error.code == Exit.notIntact ? "NOT_INTACT" : "FAILED", error.message, "client")
            default: ("LOCAL", Self.describe(error), "client")
            }
        let text: String
        if json {
            let object: [String: Any] = ["error": ["code": code, "message": message, "source": source]]
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            text = String(decoding: data, as: UTF8.self)
        } else {
            text = "haven-admin: \(message) [\(code)]"
        }
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    /// A system error for people: what failed and on which path, without
    /// Foundation's internal domains and codes.
    static func describe(_ error: any Error) -> String {
        let error = error as NSError
        let path = error.userInfo[NSFilePathErrorKey] as? String
        let underlying = (error.userInfo[NSUnderlyingErrorKey] as? NSError)?.localizedDescription
        var text = error.localizedDescription
        if let path, !text.contains(path) { text += " (\(path))" }
        if let underlying, !text.contains(underlying) { text += ": \(underlying)" }
        return text
    }

    /// Runs a command body that works on local files (a data directory, a
    /// backup): a HavenError there is a local failure (exit 5), or with
    /// DATA_LOSS a file that does not verify (exit 1).
    static func runLocally(json: Bool, _ body: () async throws -> Void) async throws {
        try await Self.run(json: json) {
            do {
                try await body()
            } catch let error as HavenError where error.code == .dataLoss {
                throw ExitCodeError(message: error.message, code: Exit.notIntact)
            } catch let error as HavenError {
                throw CLIError.local(error.message)
            }
        }
    }

    /// Runs `body`, turning a HavenError into a usage error.
    static func usage<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as HavenError {
            throw ValidationError(error.message)
        }
    }

    /// A message as the documented JSON shape.
    static func json(_ message: some SwiftProtobuf.Message) throws -> String {
        var options = JSONEncodingOptions()
        options.preserveProtoFieldNames = true
        options.useDeterministicOrdering = true
        return try message.jsonString(options: options)
    }

    /// Prints an aligned table with a header row.
    static func table(_ header: [String], _ rows: [[String]]) {
        let widths = header.indices.map { column in
            ([header] + rows).map { $0.indices.contains(column) ? $0[column].count : 0 }.max() ?? 0
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        say(line(header))
        for row in rows { say(line(row)) }
        if rows.isEmpty { say("(none)") }
    }

    /// Prints `label: value` lines, aligned.
    static func fields(_ pairs: [(String, String)]) {
        let width = pairs.map(\.0.count).max() ?? 0
        for (label, value) in pairs where !value.isEmpty {
            say((label + ":").padding(toLength: width + 1, withPad: " ", startingAt: 0) + " " + value)
        }
    }

    /// A role as people write it.
    static func role(_ role: Haven_V1_Role) -> String {
        Self.roles.first { $0.value == role }?.key ?? "unknown"
    }

    /// Roles by the names the CLI takes.
    static let roles: [String: Haven_V1_Role] = [
        "admin": .admin, "director": .director, "caseworker": .caseworker, "partner": .partner, "auditor": .auditor,
    ]

    /// An instant in Unix milliseconds, as UTC `2026-11-29 16:49`; empty for 0.
    static func date(_ unixMs: Int64) -> String {
        guard unixMs != 0 else { return "" }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm 'UTC'"
        return formatter.string(from: Date(timeIntervalSince1970: TimeInterval(unixMs) / 1000))
    }

    /// Asks before a destructive step, unless `--yes` was given.
    ///
    /// - Throws: ``CLIError/usage(_:)`` when standard input is not a terminal
    ///   (a script must pass --yes) or the answer is not yes.
    static func confirm(_ question: String, yes: Bool) throws {
        if yes { return }
        guard isatty(STDIN_FILENO) != 0 else {
            throw CLIError.usage("\(question) — not asked, standard input is not a terminal: pass --yes")
        }
        FileHandle.standardError.write(Data("\(question) [y/N] ".utf8))
        guard let answer = readLine(), ["y", "yes"].contains(answer.lowercased()) else {
            throw CLIError.usage("declined; nothing was changed")
        }
    }
}
