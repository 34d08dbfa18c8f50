import ArgumentParser
import Foundation
import HavenProtocol
import HavenServer
import HavenStore

/// The data directory option of commands that work on it directly.
struct DataDirectoryOption: ParsableArguments {
    @Option(
        name: .customLong("data-dir"),
        help: ArgumentHelp("The data directory (default: $HAVEN_DATA_DIR, else haven-data).", valueName: "path")
    )
    var path: String = ProcessInfo.processInfo.environment["HAVEN_DATA_DIR"] ?? "haven-data"

    var directory: DataDirectory { DataDirectory(URL(fileURLWithPath: self.path, isDirectory: true)) }
}

/// Creates a production data directory.
struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Creates a new deployment in an empty data directory.",
        discussion: """
            Creates the deployment's root CA (tls/ca.pem; its key tls/ca-key.pem signs
            only issuing CAs: move it to offline storage), the issuing CA the server
            signs certificates with, a server certificate for localhost and the names
            given with --dns and --ip, a master key, the audit signing key, the database,
            and the first admin account 'admin' with a one-time enrolment code (valid 7
            days). Nothing is shared with any other deployment.

            With --storage (or HAVEN_STORAGE) naming a new PostgreSQL database, the records
            are kept there from the start: the first ones are written into it, the data
            directory holds no database, and --storage is written into haven.conf
            (HAVEN_STORAGE is not: set it for havend too). Several havend instances may
            then share the database, each with a copy of the data directory.

            Then start havend on the data directory, and on the administrator's machine:
              haven-admin enroll --server HOST:PORT --ca ca.pem --code CODE --out DIR
            Back up master.key separately from the database.
            """
    )

    @OptionGroup var data: DataDirectoryOption
    @Option(
        name: .customLong("dns"),
        help: ArgumentHelp("A host name for the server certificate (repeatable).", valueName: "name")
    )
    var hostnames: [String] = []
    @Option(
        name: .customLong("ip"),
        help: ArgumentHelp("An IP address for the server certificate (repeatable).", valueName: "address")
    )
    var addresses: [String] = []
    @Option(
        help: ArgumentHelp(
            "Keep the records in this new PostgreSQL database (postgres://user:password@host:port/database); written into haven.conf.",
            valueName: "url"
        )
    )
    var storage: String?
    @Flag(help: "Print JSON for scripts.") var json = false

    func validate() throws {
        _ = try Certs.parse(hostnames: self.hostnames, addresses: self.addresses)
        _ = try CLI.usage { try self.postgres() }
    }

    /// The database --storage, else HAVEN_STORAGE, names (nil: SQLite).
    private func postgres() throws -> (location: PostgresLocation, fromOption: Bool)? {
        if let storage = self.storage { return (try PostgresLocation(url: storage), true) }
        let environment = ProcessInfo.processInfo.environment["HAVEN_STORAGE"] ?? "sqlite"
        guard environment != "sqlite", !environment.isEmpty else { return nil }
        return (try PostgresLocation(url: environment), false)
    }

    func run() async throws {
        try await CLI.run(json: self.json) {
            let (hostnames, addresses) = try Certs.parse(hostnames: self.hostnames, addresses: self.addresses)
            let directory = self.data.directory
            let postgres = try CLI.usage { try self.postgres() }
            umask(0o077)
            let report: DataDirectory.Report
            do {
                if let (location, fromOption) = postgres {
                    report = try await directory.initialize(
                        storage: location,
                        recordInConfiguration: fromOption,
                        hostnames: hostnames,
                        ipAddresses: addresses
                    )
                } else {
                    report = try directory.initialize(development: false, hostnames: hostnames, ipAddresses: addresses)
                }
            } catch let error as HavenError {
                throw CLIError.local(error.message)
            }
            let enrollment = report.adminEnrollment!
            if self.json {
                var result = Haven_V1_CreateAccountResponse()
                result.account.id = report.adminAccountID
                result.account.role = .admin
                result.account.displayName = "Administrator"
                result.account.enabled = true
                result.enrollment = enrollment
                return say(try CLI.json(result))
            }
            say("Created a deployment at \(directory.root.path)")
            CLI.fields([
                ("Root CA", directory.caCertificateFile),
                ("Root CA SHA-256", report.rootFingerprint),
                ("Records", report.database),
                ("Admin account", report.adminAccountID),
                ("Enrolment code", enrollment.code),
                ("Code expires", CLI.date(enrollment.expiresAtUnixMs)),
            ])
            say(
                """

                Next:
                  1. Move \(directory.caKeyFile) to offline storage (it is needed only to renew the issuing CA).
                  2. Start the server:  havend --data-dir \(directory.root.path)\(postgres?.fromOption == false ? "  (with HAVEN_STORAGE set as for this command)" : "")
                  3. On the administrator's machine, with a copy of \(directory.caCertificateFile):
                     haven-admin enroll --server HOST:PORT --ca ca.pem --code \(enrollment.code) --out ~/haven-admin
                """
            )
        }
    }
}
