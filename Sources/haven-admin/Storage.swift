import ArgumentParser
import Foundation
import HavenProtocol
import HavenServer
import HavenStore

/// Moving a deployment's records between stores.
struct StorageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "storage",
        abstract: "Moves a deployment's records between stores.",
        subcommands: [Copy.self]
    )

    struct Copy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copies the data directory's SQLite database into a new PostgreSQL database.",
            discussion: """
                Run it with havend stopped. Every row is copied as stored: records and
                notes stay sealed under the data directory's master key, the change log
                keeps its sequences (feed cursors stay valid) and the audit trail its
                hashes, with an entry store.copy at its end. The PostgreSQL database must
                be new (no records, accounts or audit entries); nothing is written
                otherwise. Then set storage = <the URL> in haven.conf (or HAVEN_STORAGE)
                and start havend: several instances may share the database, each with a
                copy of the data directory (its keys and TLS material).
                """
        )

        @OptionGroup var data: DataDirectoryOption
        @Option(
            help: ArgumentHelp(
                "The PostgreSQL database: postgres://user:password@host:port/database (see havend's storage option).",
                valueName: "url"
            )
        )
        var to: String
        @Flag(help: "Print JSON for scripts.") var json = false

        func validate() throws {
            _ = try CLI.usage { try PostgresLocation(url: self.to) }
        }

        func run() async throws {
            let directory = self.data.directory
            let location = try CLI.usage { try PostgresLocation(url: self.to) }
            umask(0o077)
            try await CLI.runLocally(json: self.json) {
                guard directory.isInitialized else {
                    throw CLIError.local("\(directory.root.path) holds no deployment (haven.conf is missing)")
                }
                let report = try await directory.copyDatabase(
                    into: location,
                    principalID: DataDirectory.localOperator,
                    atUnixMs: Int64(Date().timeIntervalSince1970 * 1000)
                )
                if self.json {
                    let rows = report.rows.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\($0.value)" }
                    say("{\"copied\":{\(rows.joined(separator: ","))},\"to\":\"\(location.redacted)\"}")
                } else {
                    say("Copied \(report.total) rows into \(location.redacted):")
                    CLI.fields(report.rows.sorted { $0.key < $1.key }.map { ($0.key, "\($0.value)") })
                    say("Set storage = <that URL> in haven.conf (or HAVEN_STORAGE) and start havend.")
                }
            }
        }
    }
}

/// Runs `body` with the data directory's store as its `haven.conf` (and
/// `HAVEN_STORAGE`) configure it: the SQLite file, or the PostgreSQL database
/// (its pool run around `body`).
func withDataDirectoryStore(
    _ directory: DataDirectory,
    keys: StoreKeys,
    _ body: (any RecordStore) async throws -> Void
) async throws {
    let text = try? String(contentsOfFile: directory.configurationFile, encoding: .utf8)
    let configuration = try ServerConfiguration.load(
        fileText: text,
        fileName: directory.configurationFile,
        environment: ProcessInfo.processInfo.environment
    )
    guard let location = configuration.postgres else {
        let store = try SQLiteStore(path: directory.databaseFile, keys: keys)
        defer { try? store.close() }
        return try await body(store)
    }
    let store = try await PostgresStore.open(location, keys: keys)
    try await store.whileRunning { try await body(store) }
}
