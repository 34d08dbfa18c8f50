import ArgumentParser
import Foundation
import HavenProtocol
import HavenServer
import HavenStore

/// The data directory option of commands that work on it directly.
struct DataDirectoryOption: ParsableArguments {
    @Option(name: .customLong("data-dir"), help: ArgumentHelp("The data directory.", valueName: "path"))
    var path: String = "haven-data"

    var directory: DataDirectory { DataDirectory(URL(fileURLWithPath: self.path, isDirectory: true)) }
}

/// Creates a production data directory.
struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Creates a new deployment in an empty data directory.",
        discussion: """
            Creates the deployment's certificate authority, a server certificate for
            localhost, the first admin account and its credentials, a new master key and
            the database. Nothing is shared with any other deployment. Move tls/ca-key.pem
            to offline storage once you have issued the credentials you need, and back up
            master.key separately from the database.
            """
    )

    @OptionGroup var data: DataDirectoryOption

    func run() throws {
        do {
            let report = try self.data.directory.initialize(development: false)
            say("Created a deployment at \(self.data.directory.root.path)")
            say("Admin credentials (account '\(report.adminAccountID)'): \(report.adminCredentials)")
        } catch let error as HavenError {
            throw ValidationError(error.message)
        }
    }
}

/// Accounts: who may connect.
struct Accounts: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Adds, lists and disables accounts, and issues their credentials.",
        discussion: """
            Works on the data directory's database (safe while havend runs). A running
            havend ends a disabled account's open connections within a second and refuses
            its every new connection, even with a valid certificate.
            """,
        subcommands: [Add.self, List.self, Disable.self]
    )

    static let roles: [String: Haven_V1_Role] = [
        "admin": .admin, "director": .director, "caseworker": .caseworker, "partner": .partner, "auditor": .auditor,
    ]

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Adds an account and writes its credentials bundle.")
        @OptionGroup var data: DataDirectoryOption
        @Option(help: "Account id (also the certificate's common name), e.g. asha-home.") var id: String
        @Option(help: "Display name.") var name: String
        @Option(help: "admin, director, caseworker, partner or auditor.") var role: String
        @Option(help: "Comma-separated office codes (directors, caseworkers).") var offices: String = ""
        @Option(name: .customLong("partner-id"), help: "The partner organisation's id (partners).") var partnerID:
            String = ""
        @Option(name: .customLong("valid-days"), help: "How long the certificate is valid.") var validDays: Int = 30

        func validate() throws {
            guard let role = Accounts.roles[self.role] else {
                throw ValidationError("--role must be one of \(Accounts.roles.keys.sorted().joined(separator: ", "))")
            }
            guard !self.id.isEmpty, self.id.count <= 64,
                self.id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") })
            else {
                throw ValidationError("--id must be 1 to 64 letters, digits or dashes")
            }
            if role == .partner, self.partnerID.isEmpty {
                throw ValidationError("--partner-id is required for a partner")
            }
            if role == .director || role == .caseworker, self.offices.isEmpty {
                throw ValidationError("--offices is required for a \(self.role)")
            }
            guard (1...397).contains(self.validDays) else { throw ValidationError("--valid-days must be 1 to 397") }
        }

        func run() throws {
            let directory = self.data.directory
            umask(0o077)  // the database's WAL and shared-memory files: the owner's only
            let store = try SQLiteStore(path: directory.databaseFile)
            let account = Account(
                id: self.id,
                displayName: self.name,
                role: Accounts.roles[self.role]!,
                officeCodes: self.offices.split(separator: ",").map(String.init),
                partnerID: self.partnerID,
                createdAtUnixMs: Int64(Date().timeIntervalSince1970 * 1000)
            )
            try store.writeSynchronously { tx in
                guard try tx.account(id: account.id) == nil else {
                    throw HavenError(code: .alreadyExists, message: "account \(account.id) already exists")
                }
                try tx.saveAccount(
                    account,
                    auditedAs: DataDirectory.localOperator,
                    action: "accounts.add",
                    at: Int64(Date().timeIntervalSince1970 * 1000)
                )
            }
            let bundle = try directory.writeCredentials(
                for: account.id,
                authority: try directory.certificateAuthority(),
                validity: TimeInterval(self.validDays) * 86400
            )
            say("Added \(self.role) account '\(account.id)'. Credentials: \(bundle)")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Lists accounts.")
        @OptionGroup var data: DataDirectoryOption

        func run() throws {
            umask(0o077)  // the database's WAL and shared-memory files: the owner's only
            let store = try SQLiteStore(path: self.data.directory.databaseFile)
            for account in try store.writeSynchronously({ try $0.accounts() }) {
                let role = Accounts.roles.first { $0.value == account.role }?.key ?? "?"
                say(
                    "\(account.id)\t\(role)\t\(account.enabled ? "enabled" : "DISABLED")\t\(account.officeCodes.joined(separator: ","))\t\(account.partnerID)"
                )
            }
        }
    }

    struct Disable: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Disables an account: it is refused from its next connection on."
        )
        @OptionGroup var data: DataDirectoryOption
        @Option(help: "Account id.") var id: String

        func run() throws {
            umask(0o077)  // the database's WAL and shared-memory files: the owner's only
            let store = try SQLiteStore(path: self.data.directory.databaseFile)
            try store.writeSynchronously { tx in
                guard var account = try tx.account(id: self.id) else {
                    throw HavenError(code: .notFound, message: "no account \(self.id)")
                }
                account.enabled = false
                try tx.saveAccount(
                    account,
                    auditedAs: DataDirectory.localOperator,
                    action: "accounts.disable",
                    at: Int64(Date().timeIntervalSince1970 * 1000)
                )
            }
            say("Disabled '\(self.id)'.")
        }
    }
}
