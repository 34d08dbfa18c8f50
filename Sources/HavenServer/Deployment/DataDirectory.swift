import Foundation
import HavenProtocol
import HavenStore

/// The files of one Haven deployment.
///
/// ```
/// haven.conf              configuration, every option at its default, commented
/// haven.sqlite            the database (plus -wal and -shm files)
/// master.key              wraps the offices' keys; never in a database backup
/// audit-signing.key       signs the audit chain's checkpoints (Ed25519)
/// tls/ca.pem, ca-key.pem  the deployment's certificate authority
/// tls/server.pem, server-key.pem
/// credentials/NAME/       bundles handed to users and partners:
///     ca.pem client.pem client-key.pem
/// ```
///
/// ``initialize(development:now:)`` is the one place that creates a data
/// directory: `havend` calls it on first run (development), `haven-admin init`
/// for production.
package struct DataDirectory: Sendable {
    package let root: URL

    package init(_ root: URL) {
        self.root = root
    }

    package func path(_ relative: String) -> String { self.root.appendingPathComponent(relative).path }

    package var configurationFile: String { self.path("haven.conf") }
    package var databaseFile: String { self.path("haven.sqlite") }
    package var masterKeyFile: String { self.path("master.key") }
    package var auditSigningKeyFile: String { self.path("audit-signing.key") }
    package var caCertificateFile: String { self.path("tls/ca.pem") }
    package var caKeyFile: String { self.path("tls/ca-key.pem") }
    package var serverCertificateFile: String { self.path("tls/server.pem") }
    package var serverKeyFile: String { self.path("tls/server-key.pem") }
    package func credentialsDirectory(_ name: String) -> String { self.path("credentials/\(name)") }

    /// Whether the directory holds a deployment (its configuration file exists).
    package var isInitialized: Bool { FileManager.default.fileExists(atPath: self.configurationFile) }

    /// What initialization created.
    package struct Report: Sendable {
        package var adminCredentials: String
        package var adminAccountID: String
        package var development: Bool
    }

    /// The account id of the first administrator.
    package static let initialAdminID = "admin"

    /// Creates a new deployment: CA, server certificate for localhost, the
    /// first admin account and its credentials, master key, database and
    /// configuration.
    ///
    /// - Parameter development: Marks the master key and CA as development
    ///   ones, generated for this directory only.
    /// - Throws: ``HavenError`` FAILED_PRECONDITION when the directory already
    ///   holds files (nothing is overwritten).
    @discardableResult
    package func initialize(development: Bool, now: Date = Date()) throws -> Report {
        let files = FileManager.default
        if let existing = try? files.contentsOfDirectory(atPath: self.root.path), !existing.isEmpty {
            throw HavenError(
                code: .failedPrecondition,
                message: "\(self.root.path) is not empty; refusing to initialize over existing files"
            )
        }
        // Everything created from here on (the database and its WAL included)
        // is its owner's only, from the moment it exists.
        let previousMask = umask(0o077)
        defer { umask(previousMask) }
        for directory in ["", "tls", "credentials"] {
            try files.createDirectory(
                atPath: self.path(directory),
                withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700]
            )
            // An existing (empty) directory keeps its mode otherwise.
            guard chmod(self.path(directory), 0o700) == 0 else {
                throw HavenError(code: .unavailable, message: "cannot make \(self.path(directory)) private")
            }
        }

        let label = development ? "Haven development CA (\(self.root.lastPathComponent))" : "Haven deployment CA"
        let year: TimeInterval = 365 * 24 * 3600
        let ca = try CertificateAuthority.create(name: label, validity: 10 * year, now: now)
        try writeSecretFile(try ca.certificatePEM, to: self.caCertificateFile)
        try writeSecretFile(ca.privateKeyPEM, to: self.caKeyFile)

        let server = try ca.issueServerCertificate(
            hostnames: ["localhost"],
            ipAddresses: [[127, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]],
            validity: year,
            now: now
        )
        try writeSecretFile(server.certificatePEM, to: self.serverCertificateFile)
        try writeSecretFile(server.privateKeyPEM, to: self.serverKeyFile)

        _ = try MasterKey.generate(at: self.masterKeyFile, development: development)
        _ = try CheckpointSigner.loadOrCreate(at: self.auditSigningKeyFile, development: development)

        let store = try SQLiteStore(path: self.databaseFile)
        let admin = Account(
            id: Self.initialAdminID,
            displayName: "Administrator",
            role: .admin,
            createdAtUnixMs: Int64(now.timeIntervalSince1970 * 1000)
        )
        try store.writeSynchronously { tx in
            try tx.saveAccount(
                admin,
                auditedAs: development ? "havend" : Self.localOperator,
                action: "accounts.add",
                at: Int64(now.timeIntervalSince1970 * 1000)
            )
        }

        let bundle = try self.writeCredentials(for: admin.id, authority: ca, validity: 90 * 24 * 3600, now: now)
        try writeSecretFile(ServerConfiguration.defaultFileText(), to: self.configurationFile)
        return Report(adminCredentials: bundle, adminAccountID: admin.id, development: development)
    }

    /// Issues a client certificate for an account and writes its bundle.
    ///
    /// - Returns: The bundle's directory.
    package func writeCredentials(
        for accountID: String,
        authority: CertificateAuthority,
        validity: TimeInterval,
        now: Date = Date()
    ) throws -> String {
        let directory = self.credentialsDirectory(accountID)
        try FileManager.default.createDirectory(
            atPath: directory,
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700]
        )
        let credential = try authority.issueClientCertificate(accountID: accountID, validity: validity, now: now)
        try writeSecretFile(try authority.certificatePEM, to: directory + "/ca.pem")
        try writeSecretFile(credential.certificatePEM, to: directory + "/client.pem")
        try writeSecretFile(credential.privateKeyPEM, to: directory + "/client-key.pem")
        return directory
    }

    /// The files and directories only the server's user may read: the data
    /// directory itself, its keys and its database.
    package var privatePaths: [(path: String, directory: Bool)] {
        [
            (self.root.path, true), (self.path("tls"), true), (self.path("credentials"), true),
            (self.masterKeyFile, false), (self.masterKeyFile + ".next", false), (self.auditSigningKeyFile, false),
            (self.caKeyFile, false), (self.serverKeyFile, false),
            (self.databaseFile, false), (self.databaseFile + "-wal", false), (self.databaseFile + "-shm", false),
        ]
    }

    /// Refuses a data directory whose secrets others can read, as ssh and
    /// PostgreSQL refuse theirs.
    ///
    /// - Throws: ``HavenError`` FAILED_PRECONDITION naming the first such path,
    ///   its mode and the `chmod` that fixes it.
    package func checkPermissions() throws(HavenError) {
        for (path, directory) in self.privatePaths {
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
                let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue
            else { continue }  // not created yet
            if mode & 0o077 != 0 {
                let fix = directory ? "700" : "600"
                throw HavenError(
                    code: .failedPrecondition,
                    message:
                        "\(path) can be read by other users (mode \(String(mode, radix: 8))); it holds secrets. Fix it with: chmod \(fix) \(path)"
                )
            }
        }
    }

    /// Who the audit trail names for changes made on the data directory by
    /// the admin tool: `haven-admin:<login name>`.
    package static var localOperator: String {
        // The login name of the process's user (not $USER, which anyone can set).
        let name = getpwuid(getuid()).flatMap { $0.pointee.pw_name.map { String(cString: $0) } }
        return "haven-admin:" + (name ?? "uid\(getuid())")
    }

    /// Loads the deployment's certificate authority.
    package func certificateAuthority() throws -> CertificateAuthority {
        try CertificateAuthority(
            certificatePEM: try String(contentsOfFile: self.caCertificateFile, encoding: .utf8),
            privateKeyPEM: try String(contentsOfFile: self.caKeyFile, encoding: .utf8)
        )
    }

    /// Reads the configuration file (nil when there is none).
    package func configurationText() -> String? {
        try? String(contentsOfFile: self.configurationFile, encoding: .utf8)
    }
}
