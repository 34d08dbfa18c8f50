import ArgumentParser
import Crypto
import Foundation
import HavenClient
import HavenProtocol
import HavenServer
import SwiftProtobuf

/// Online backups, through the server, encrypted to the operator's key.
struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Makes the operator's backup key, and takes online backups of the running server.",
        discussion: """
            A backup is one file: the database (a consistent snapshot, taken while the server
            runs; on PostgreSQL, one snapshot of every table written in SQLite's format), master.key, audit-signing.key, haven.conf and the TLS files — everything
            a restore needs except the root CA's key, which stays offline. It is encrypted
            to the operator's backup key: `backup keygen` makes it; its public half goes in
            haven.conf (backup_public_key); its private half stays with the operator, away
            from the server, and only `haven-admin restore` uses it.
            """,
        subcommands: [Keygen.self, Create.self]
    )

    struct Keygen: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Makes a backup key: writes the private key file and prints the line for haven.conf."
        )
        @Option(help: ArgumentHelp("Where to write the private key (a new file, kept offline).", valueName: "file"))
        var out: String
        @Flag(help: "Print JSON for scripts.") var json = false

        func run() async throws {
            try await CLI.run(json: self.json) {
                guard !FileManager.default.fileExists(atPath: self.out) else {
                    throw CLIError.local("\(self.out) exists; choose a new file (an old key still opens old backups)")
                }
                let key = BackupKey()
                guard
                    FileManager.default.createFile(
                        atPath: self.out,
                        contents: Data(key.fileText.utf8),
                        attributes: [.posixPermissions: 0o600]
                    )
                else { throw CLIError.local("cannot write \(self.out)") }
                let fingerprint = BackupKey.fingerprint(key.privateKey.publicKey)
                if self.json {
                    let object = [
                        "backup_public_key": key.publicKeyBase64, "fingerprint": fingerprint, "key_file": self.out,
                    ]
                    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                    return say(String(decoding: data, as: UTF8.self))
                }
                say(
                    "Wrote the backup key to \(self.out) (fingerprint \(fingerprint)). Keep it offline: it opens every backup."
                )
                say("Add this line to haven.conf and restart havend:")
                say("backup_public_key = \(key.publicKeyBase64)")
            }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Takes an online backup of the running server into one encrypted file."
        )
        @OptionGroup var server: ServerOptions
        @Option(help: ArgumentHelp("The backup file to write (new).", valueName: "file")) var out: String

        func run() async throws {
            try await withAdminClient(self.server) { client in
                guard !FileManager.default.fileExists(atPath: self.out) else {
                    throw CLIError.local("\(self.out) exists; choose a new file")
                }
                let partial = self.out + ".partial"
                guard
                    FileManager.default.createFile(
                        atPath: partial,
                        contents: nil,
                        attributes: [.posixPermissions: 0o600]
                    ),
                    let handle = FileHandle(forWritingAtPath: partial)
                else { throw CLIError.local("cannot write \(partial)") }
                var completed = false
                defer {
                    try? handle.close()
                    if !completed { try? FileManager.default.removeItem(atPath: partial) }
                }
                let progress = ProgressBar(unit: "bytes")
                var written: UInt64 = 0
                var hash = BackupDigest()
                var summary: Haven_V1_BackupSummary?
                var options = CallOptions()
                options.timeout = .seconds(3600)
                for try await chunk in try await client.operations.createBackup(.init(), options: options) {
                    if chunk.hasSummary { summary = chunk.summary }
                    guard !chunk.data.isEmpty else { continue }
                    try handle.write(contentsOf: chunk.data)
                    hash.update(chunk.data)
                    written += UInt64(chunk.data.count)
                    progress.show(written, max(written, summary?.bytes ?? written), step: "backup")
                }
                progress.finish()
                guard let summary, summary.bytes == written, summary.sha256 == hash.hex else {
                    throw HavenError(
                        code: .dataLoss,
                        message: "the backup arrived incomplete or altered; nothing was kept",
                        source: .transport
                    )
                }
                try handle.synchronize()
                guard rename(partial, self.out) == 0 else {
                    throw CLIError.local("cannot rename \(partial) to \(self.out)")
                }
                completed = true
                if self.server.json { return try self.server.print(summary) }
                say("Wrote \(self.out): \(summary.bytes) bytes, SHA-256 \(summary.sha256)")
                CLI.table(["FILE", "BYTES", "SHA-256"], summary.files.map { [$0.path, "\($0.bytes)", $0.sha256] })
                say("Audit trail: \(summary.auditEntries) entries, head \(summary.auditHeadSha256)")
                for missing in summary.notIncluded { say("Not included: \(missing)") }
                say("Encrypted to backup key \(summary.backupKeyFingerprint).")
            }
        }
    }
}

/// Restores a backup into the data directory of a stopped server.
struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Restores a backup into a data directory (a new machine, or replacing a stopped server's).",
        discussion: """
            Decrypts the backup with the operator's key, checks every file against its
            manifest, the database with SQLite's integrity check, and the audit chain with
            the backup's signing key — all in a staging directory — and only then moves it
            into place. The restored database starts a new feed lineage: partners' feed
            cursors from before are answered OUT_OF_RANGE with a FeedReset detail telling
            them where to resubscribe. With --replace, the existing data directory (whose
            server must be stopped) is moved aside, never deleted. When the restored haven.conf
            (or HAVEN_STORAGE) names a PostgreSQL database, the verified records are copied into
            it — it must be new — and its audit chain verified there; a backup of either store
            restores into either.
            """
    )
    @Option(help: ArgumentHelp("The backup file.", valueName: "file")) var from: String
    @Option(help: ArgumentHelp("The operator's backup key file.", valueName: "file")) var key: String
    @OptionGroup var data: DataDirectoryOption
    @Flag(help: "Replace an existing data directory (moved aside; its server must be stopped).") var replace = false
    @Flag(help: "Do not ask for confirmation.") var yes = false
    @Flag(help: "Print JSON for scripts.") var json = false

    func run() async throws {
        try await CLI.runLocally(json: self.json) {
            let key = try BackupKey(file: self.key)
            let target = self.data.directory
            if self.replace {
                try CLI.confirm("Replace the deployment at \(target.root.path) (it is moved aside)?", yes: self.yes)
            }
            umask(0o077)
            let progress = ProgressBar(unit: "")
            let report: BackupRestore.Report
            do {
                report = try await BackupRestore.restore(
                    file: self.from,
                    key: key,
                    target: target,
                    replace: self.replace,
                    operatorID: DataDirectory.localOperator,
                    now: Int64(Date().timeIntervalSince1970 * 1000)
                ) { step, done, total in progress.show(done, total, step: step) }
            } catch let error as HavenError where error.code == .dataLoss {
                progress.finish()
                throw ExitCodeError(message: error.message, code: CLI.Exit.notIntact)
            }
            progress.finish()
            if self.json {
                var summary = Haven_V1_BackupSummary()
                summary.createdAtUnixMs = report.manifest.createdAtUnixMs
                summary.auditEntries = report.manifest.auditEntries
                summary.auditHeadSha256 = report.manifest.auditHeadSHA256
                summary.files = report.manifest.files.map { file in
                    Haven_V1_BackupFile.with {
                        $0.path = file.path
                        $0.bytes = file.bytes
                        $0.sha256 = file.sha256
                    }
                }
                summary.notIncluded = report.manifest.notIncluded
                return say(try CLI.json(summary))
            }
            say("Restored \(target.root.path) from a backup taken \(CLI.date(report.manifest.createdAtUnixMs)).")
            say(
                "Verified: \(report.manifest.files.count) files, database integrity, audit chain of \(report.verdict.entries) entries."
            )
            say("Records restored into \(report.database).")
            if let previous = report.previous { say("The previous data directory is at \(previous).") }
            for missing in report.manifest.notIncluded { say("Not included: \(missing)") }
            say("Start the server: havend --data-dir \(target.root.path)")
        }
    }
}

/// A failure that exits with a given code after its message.
struct ExitCodeError: Error {
    var message: String
    var code: Int32
}

/// SHA-256 of what arrived, to compare with the summary.
struct BackupDigest {
    private var hash = SHA256()
    mutating func update(_ data: Data) { self.hash.update(data: data) }
    var hex: String { self.hash.finalize().map { String(format: "%02x", $0) }.joined() }
}
