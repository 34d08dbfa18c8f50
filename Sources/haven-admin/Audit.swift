import ArgumentParser
import Foundation
import HavenClient
import HavenProtocol
import HavenServer
import HavenStore
import SwiftProtobuf

/// The audit trail: read it, verify it, export checkpoints. Through the
/// server with an auditor's credentials; `verify` also works on the data
/// directory itself (`--data-dir`), with the server running or stopped.
struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Reads, searches and verifies the audit trail; exports checkpoints.",
        subcommands: [Tail.self, Search.self, Verify.self, Checkpoint.self]
    )

    /// Column widths of the entries' lines: fixed, so that `tail --follow`
    /// can print each entry as it comes, aligned under the header.
    static let columns: [(String, Int)] = [
        ("SEQ", 8), ("TIME", 20), ("PRINCIPAL", 28), ("ACTION", 44), ("OUTCOME", 18), ("RESOURCES, DETAIL", 0),
    ]

    static func aligned(_ cells: [String]) -> String {
        zip(cells, Self.columns).map { cell, column in
            column.1 == 0 ? cell : cell.padding(toLength: max(column.1, cell.count), withPad: " ", startingAt: 0)
        }.joined(separator: "  ")
    }

    /// The header line.
    static var header: String { Self.aligned(Self.columns.map(\.0)) }

    /// One entry as a line for people, under ``header``.
    static func line(_ entry: Haven_V1_AuditEntry) -> String {
        let role = entry.principalRole == .unspecified ? "" : " (\(CLI.role(entry.principalRole)))"
        let outcome = StatusCode(wire: entry.outcome).description
        var resources =
            entry.resources.prefix(3).map { resource in
                "\(resource.kind)/\(resource.id)" + (resource.disclosed.isEmpty ? "" : "[\(resource.disclosed)]")
            }.joined(separator: ",") + (entry.resources.count > 3 ? ",+\(entry.resources.count - 3)" : "")
        if !entry.detail.isEmpty { resources += (resources.isEmpty ? "" : "  ") + entry.detail }
        return Self.aligned([
            "\(entry.sequence)", CLI.date(entry.atUnixMs), entry.principalID + role, entry.action, outcome, resources,
        ])
    }

    /// Prints entries: lines under a header for people (the header once:
    /// `header` is true for the first batch), one JSON object a line with `--json`.
    static func show(_ entries: [Haven_V1_AuditEntry], _ server: ServerOptions, header: Bool = false) throws {
        if header, !server.json { say(Self.header) }
        for entry in entries {
            if server.json { say(try CLI.json(entry)) } else { say(Self.line(entry)) }
        }
    }

    struct Tail: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Shows the newest entries, and with --follow every new one as it is appended."
        )
        @OptionGroup var server: ServerOptions
        @Option(help: "How many of the newest entries to show first (1 to 500).") var count = 20
        @Flag(help: "Keep showing new entries until interrupted.") var follow = false

        func validate() throws {
            guard (1...500).contains(self.count) else { throw ValidationError("--count must be 1 to 500") }
        }

        func run() async throws {
            try await withAdminClient(self.server) { client in
                var request = Haven_V1_ListAuditEntriesRequest()
                request.newestFirst = true
                request.page.pageSize = UInt32(self.count)
                let newest = try await client.audit.listEntries(request)
                try Audit.show(newest.entries.reversed(), self.server, header: true)
                var last = newest.entries.first?.sequence ?? 0
                while self.follow {
                    try await Task.sleep(for: .seconds(1))
                    var next = Haven_V1_ListAuditEntriesRequest()
                    next.afterSequence = last
                    next.page.pageSize = 500
                    let page = try await client.audit.listEntries(next)
                    try Audit.show(page.entries, self.server)
                    last = page.entries.last?.sequence ?? last
                }
            }
        }
    }

    struct Search: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Finds entries, oldest first.")
        @OptionGroup var server: ServerOptions
        @Option(help: "Only entries by this account id.") var principal: String?
        @Option(help: "Only this action, e.g. haven.v1.SurvivorService/GetSurvivor or accounts.add.") var action:
            String?
        @Option(name: .customLong("resource-kind"), help: "Only entries about this kind: survivor, case, account, …")
        var resourceKind: String?
        @Option(name: .customLong("resource-id"), help: "Only entries about this record or account id.")
        var resourceID: String?
        @Option(help: "From this instant (ISO 8601, e.g. 2026-11-01T00:00:00Z).") var from: String?
        @Option(help: "Before this instant (ISO 8601).") var to: String?
        @Option(help: "Only this outcome: OK, PERMISSION_DENIED, NOT_FOUND, UNAUTHENTICATED, …") var outcome: String?
        @Option(help: "At most this many entries (1 to 100000).") var limit = 1000

        func validate() throws {
            guard (1...100_000).contains(self.limit) else { throw ValidationError("--limit must be 1 to 100000") }
            for (name, value) in [("--from", self.from), ("--to", self.to)] {
                if let value, ISO8601DateFormatter().date(from: value) == nil {
                    throw ValidationError("\(name) must be an ISO 8601 instant, e.g. 2026-11-01T00:00:00Z")
                }
            }
            if let outcome = self.outcome, StatusCode.allCases.first(where: { $0.description == outcome }) == nil {
                throw ValidationError(
                    "--outcome must be one of \(StatusCode.allCases.map(\.description).joined(separator: ", "))"
                )
            }
        }

        func run() async throws {
            var request = Haven_V1_ListAuditEntriesRequest()
            request.principalID = self.principal ?? ""
            request.action = self.action ?? ""
            request.resourceKind = self.resourceKind ?? ""
            request.resourceID = self.resourceID ?? ""
            let milliseconds = { (text: String) in
                Int64(ISO8601DateFormatter().date(from: text)!.timeIntervalSince1970 * 1000)
            }
            if let from = self.from { request.fromUnixMs = milliseconds(from) }
            if let to = self.to { request.toUnixMs = milliseconds(to) }
            if let outcome = self.outcome, let code = StatusCode.allCases.first(where: { $0.description == outcome }) {
                request.outcomes = [code.wire]
            }
            request.page.pageSize = 500
            try await withAdminClient(self.server) { client in
                var shown = 0
                repeat {
                    let page = try await client.audit.listEntries(request)
                    let entries = Array(page.entries.prefix(self.limit - shown))
                    try Audit.show(entries, self.server, header: shown == 0)
                    shown += entries.count
                    request.page.pageToken = page.page.nextPageToken
                } while !request.page.pageToken.isEmpty && shown < self.limit
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verifies the chain and what it commits to. Exits 0 only if intact.",
            discussion: """
                Through the server (--credentials, an auditor's) or on the data directory
                (--data-dir, on the machine that holds it; needs master.key and
                audit-signing.key). Pass checkpoints exported earlier with --checkpoint to
                catch a chain rewritten since. On failure, names the first bad entry and
                what is wrong with it, and exits 1.
                """
        )
        @Option(help: ArgumentHelp("The credentials bundle directory.", valueName: "dir")) var credentials: String?
        @Option(
            help: ArgumentHelp(
                "The server, host:port (default: $HAVEN_SERVER, else the bundle's).",
                valueName: "host:port"
            )
        )
        var server: String?
        @Option(
            name: .customLong("data-dir"),
            help: ArgumentHelp("Verify this data directory's files.", valueName: "dir")
        )
        var dataDirectory: String?
        @Option(help: ArgumentHelp("A checkpoint file written by `audit checkpoint`.", valueName: "file"))
        var checkpoint: [String] = []
        @Flag(help: "Print the verdict as JSON.") var json = false

        func validate() throws {
            guard (self.credentials == nil) != (self.dataDirectory == nil) else {
                throw ValidationError("give exactly one of --credentials (through the server) and --data-dir")
            }
            guard self.checkpoint.count <= 16 else { throw ValidationError("at most 16 --checkpoint files") }
        }

        func run() async throws {
            var trusted: [Haven_V1_AuditCheckpoint] = []
            for file in self.checkpoint {
                guard let text = try? String(contentsOfFile: file, encoding: .utf8),
                    let checkpoint = try? Haven_V1_AuditCheckpoint(jsonString: text)
                else { throw ValidationError("\(file) is not a checkpoint written by `haven-admin audit checkpoint`") }
                trusted.append(checkpoint)
            }
            let progress = ProgressBar()
            let verdict: Haven_V1_AuditVerdict
            if let dataDirectory {
                let directory = DataDirectory(URL(fileURLWithPath: dataDirectory))
                umask(0o077)
                var local = Haven_V1_AuditVerdict()
                try await CLI.runLocally(json: self.json) {
                    guard directory.isInitialized else {
                        throw CLIError.local("\(directory.root.path) holds no deployment (haven.conf is missing)")
                    }
                    let custodian = try KeyCustodian.load(masterKeyFile: directory.masterKeyFile)
                    let signer = try CheckpointSigner.loadExisting(at: directory.auditSigningKeyFile)
                    // The store haven.conf names: SQLite's file, or the PostgreSQL database.
                    try await withDataDirectoryStore(directory, keys: custodian.keys) { store in
                        local = try await AuditVerifier(store: store, publicKey: signer.publicKey).verify(
                            trusted: trusted
                        ) {
                            progress.show($0, $1)
                        }
                    }
                }
                verdict = local
            } else {
                var options = ServerOptions()
                options.credentials = self.credentials!
                options.server = self.server
                options.timeout = 3600
                var last = Haven_V1_AuditVerdict()
                try await withAdminClient(options) { client in
                    var request = Haven_V1_VerifyAuditChainRequest()
                    request.trustedCheckpoints = trusted
                    for try await message in try await client.audit.verifyChain(request) {
                        progress.show(message.checked, message.total)
                        if message.hasVerdict { last = message.verdict }
                    }
                }
                verdict = last
            }
            progress.finish()
            if self.json {
                var options = JSONEncodingOptions()
                options.preserveProtoFieldNames = true
                say(try verdict.jsonString(options: options))
            } else if verdict.intact {
                say(
                    "intact: \(verdict.entries) entries, \(verdict.recordsChecked) records and changes, \(verdict.checkpointsChecked) checkpoints; head \(verdict.headHash.base64EncodedString())"
                )
            } else {
                say("NOT INTACT: first bad entry \(verdict.firstBadSequence): \(verdict.problem)")
            }
            if !verdict.intact { throw ExitCode(1) }
        }
    }

    struct Checkpoint: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Has the server sign a checkpoint now and writes it out, to keep somewhere else."
        )
        @OptionGroup var server: ServerOptions
        @Option(help: ArgumentHelp("Write it to this file (JSON) instead of standard output.", valueName: "file"))
        var out: String?

        func run() async throws {
            try await withAdminClient(self.server) { client in
                let checkpoint = try await client.audit.signCheckpoint()
                var options = JSONEncodingOptions()
                options.preserveProtoFieldNames = true
                let text = try checkpoint.jsonString(options: options)
                if let out = self.out {
                    try Data((text + "\n").utf8).write(to: URL(fileURLWithPath: out))
                    say("checkpoint of \(checkpoint.size) entries written to \(out)")
                } else {
                    say(text)
                }
            }
        }
    }
}

/// A progress bar on standard error (when it is a terminal), for long verifications.
final class ProgressBar: @unchecked Sendable {
    private let terminal = isatty(2) != 0
    private var shown = false
    private let unit: String
    private var label = ""

    /// - Parameter unit: What is counted (`entries`, `bytes`).
    init(unit: String = "entries") {
        self.unit = unit
    }

    /// Shows progress of a step (`decrypt`, `verify`), on a terminal only.
    func show(_ done: UInt64, _ total: UInt64, step: String = "") {
        guard self.terminal, total > 0 else { return }
        if step != self.label, self.shown {
            FileHandle.standardError.write(Data("\n".utf8))
        }
        self.label = step
        let width = 40
        let filled = Int(Double(width) * Double(min(done, total)) / Double(total))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let prefix = step.isEmpty ? "" : "\(step) "
        FileHandle.standardError.write(Data("\r\(prefix)[\(bar)] \(done)/\(total) \(self.unit)".utf8))
        self.shown = true
    }

    func finish() {
        if self.shown { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
