import Foundation
import HavenProtocol
import HavenStore
import SwiftASN1
import X509

/// The files of one Haven deployment.
///
/// ```
/// haven.conf              configuration, every option at its default, commented
/// haven.sqlite            the database (plus -wal and -shm files)
/// master.key              wraps the offices' keys; never in a database backup
/// audit-signing.key       signs the audit chain's checkpoints (Ed25519)
/// tls/ca.pem              the deployment's root CA: the only trust anchor
/// tls/ca-key.pem          its key: signs issuing CAs only; keep it offline
/// tls/issuing.pem, issuing-key.pem
///                         the issuing CA: signs users', partners' and the
///                         server's certificates (the server holds its key)
/// tls/server.pem, server-key.pem
///                         the server's certificate (and the issuing CA's), key
/// credentials/admin/      development deployments only: the first admin's
///     ca.pem client.pem client-key.pem   bundle (production admins enrol)
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
    package var issuingCertificateFile: String { self.path("tls/issuing.pem") }
    package var issuingKeyFile: String { self.path("tls/issuing-key.pem") }
    package var serverCertificateFile: String { self.path("tls/server.pem") }
    package var serverKeyFile: String { self.path("tls/server-key.pem") }
    package func credentialsDirectory(_ name: String) -> String { self.path("credentials/\(name)") }

    /// Whether the directory holds a deployment (its configuration file exists).
    package var isInitialized: Bool { FileManager.default.fileExists(atPath: self.configurationFile) }

    /// What initialization created.
    package struct Report: Sendable {
        /// The first admin's credentials bundle (development deployments).
        package var adminCredentials: String?
        /// The first admin's enrolment code (production deployments).
        package var adminEnrollment: Haven_V1_Enrollment?
        package var adminAccountID: String
        package var development: Bool
        /// SHA-256 of the root CA certificate (DER), hex: what an enrolling
        /// machine can compare with the `ca.pem` it was given.
        package var rootFingerprint: String
        /// Where the records are: `haven.sqlite`, or the PostgreSQL database (its URL without the password).
        package var database = "haven.sqlite"
    }

    /// The account id of the first administrator.
    package static let initialAdminID = "admin"

    /// Creates a new deployment: root and issuing CA, server certificate for
    /// localhost (and `hostnames`, `ipAddresses`), the first admin account,
    /// master key, audit signing key, database and configuration.
    ///
    /// - Parameter development: Marks the master key and CA as development
    ///   ones, generated for this directory only, and writes the first admin's
    ///   credentials bundle into `credentials/admin`. A production deployment
    ///   instead gets an enrolment code for its first admin, whose machine
    ///   makes its own key (`haven-admin enroll`).
    /// - Throws: ``HavenError`` FAILED_PRECONDITION when the directory already
    ///   holds files (nothing is overwritten).
    @discardableResult
    package func initialize(
        development: Bool,
        hostnames: [String] = [],
        ipAddresses: [[UInt8]] = [],
        now: Date = Date()
    ) throws -> Report {
        let files = FileManager.default
        if let existing = try? files.contentsOfDirectory(atPath: self.root.path), !existing.isEmpty {
            throw HavenError(
                code: .failedPrecondition,
                message: "\(self.root.path) is not empty; refusing to initialize over existing files"
            )
        }
        // Everything created from here on is its owner's only from the moment
        // it exists, each file by its own mode: not by the process's umask,
        // which is shared by every thread (two initialisations at once, as
        // in the tests, restored each other's umask while the other created
        // its database: one was created 0644).
        // Production deployments hold nobody's private key: no credentials/ directory.
        for directory in development ? ["", "tls", "credentials"] : ["", "tls"] {
            do {
                try files.createDirectory(
                    atPath: self.path(directory),
                    withIntermediateDirectories: true,
                    attributes: [.posixPermissions: 0o700]
                )
            } catch {
                throw HavenError(
                    code: .failedPrecondition,
                    message: "cannot create \(self.path(directory)); check the path and its permissions"
                )
            }
            // An existing (empty) directory keeps its mode otherwise.
            guard chmod(self.path(directory), 0o700) == 0 else {
                throw HavenError(code: .unavailable, message: "cannot make \(self.path(directory)) private")
            }
        }

        let year: TimeInterval = 365 * 24 * 3600
        let suffix = development ? " (development, \(self.root.lastPathComponent))" : ""
        let root = try CertificateAuthority.createRoot(name: "Haven root CA" + suffix, validity: 10 * year, now: now)
        let issuing = try root.createIssuing(name: "Haven issuing CA" + suffix, validity: 5 * year, now: now)
        try writeSecretFile(try root.certificatePEM, to: self.caCertificateFile)
        try writeSecretFile(root.privateKeyPEM, to: self.caKeyFile)
        try writeSecretFile(try issuing.certificatePEM, to: self.issuingCertificateFile)
        try writeSecretFile(issuing.privateKeyPEM, to: self.issuingKeyFile)

        _ = try self.issueServerCertificate(
            hostnames: hostnames,
            ipAddresses: ipAddresses,
            validity: year,
            now: now
        )

        _ = try MasterKey.generate(at: self.masterKeyFile, development: development)
        _ = try CheckpointSigner.loadOrCreate(at: self.auditSigningKeyFile, development: development)

        // An empty file is a new database to SQLite; its log and shared-memory
        // files take the database file's mode when SQLite creates them.
        try writeSecretFile("", to: self.databaseFile)
        let store = try SQLiteStore(path: self.databaseFile)
        let admin = Account(
            id: Self.initialAdminID,
            displayName: "Administrator",
            role: .admin,
            createdAtUnixMs: Int64(now.timeIntervalSince1970 * 1000)
        )
        let operatorID = development ? "havend" : Self.localOperator
        let at = Int64(now.timeIntervalSince1970 * 1000)
        var report = Report(
            adminAccountID: admin.id,
            development: development,
            rootFingerprint: try root.certificate.fingerprint
        )
        if development {
            try store.writeSynchronously { tx in
                try tx.saveAccount(admin, auditedAs: operatorID, action: "accounts.add", at: at)
            }
            report.adminCredentials = try self.issueLocalCredentials(
                for: admin.id,
                store: store,
                issuing: issuing,
                validity: 90 * 24 * 3600,
                auditedAs: operatorID,
                now: now
            )
        } else {
            let code = EnrollmentCode.generate()
            let enrollment = StoredEnrollment(
                id: "enr_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: ""),
                codeHash: EnrollmentCode.hash(code),
                accountID: admin.id,
                createdAtUnixMs: at,
                expiresAtUnixMs: at + 7 * 24 * 3_600_000,
                certificateValidDays: 90
            )
            try store.writeSynchronously { tx in
                try tx.saveAccount(admin)
                try tx.saveEnrollment(enrollment)
                try tx.appendAudit(NewAuditEntry(atUnixMs: at, principalID: operatorID, action: "accounts.add"))
            }
            var wire = Haven_V1_Enrollment()
            wire.code = code
            wire.accountID = admin.id
            wire.expiresAtUnixMs = enrollment.expiresAtUnixMs
            wire.caCertificatePem = try root.certificatePEM
            report.adminEnrollment = wire
        }
        try writeSecretFile(ServerConfiguration.defaultFileText(), to: self.configurationFile)
        return report
    }

    /// Issues a client certificate and key *on this machine* for an account,
    /// records it, and writes the bundle into `credentials/<account>`. Only
    /// for development deployments and the embedded server: users and
    /// partners of a real deployment enrol with keys of their own.
    ///
    /// - Returns: The bundle's directory.
    package func issueLocalCredentials(
        for accountID: String,
        store: SQLiteStore,
        issuing: CertificateAuthority? = nil,
        validity: TimeInterval,
        auditedAs operatorID: String,
        server: String = "localhost:7443",
        now: Date = Date()
    ) throws -> String {
        let (directory, stored) = try self.writeLocalCredentials(
            for: accountID,
            issuing: issuing,
            validity: validity,
            server: server,
            now: now
        )
        try store.writeSynchronously { tx in try Self.register(stored, auditedAs: operatorID, in: tx) }
        return directory
    }

    /// Issues a client certificate for an account and writes its bundle to
    /// `credentials/<account>/`; the caller registers the returned
    /// credential in its store (``register(_:auditedAs:in:)``).
    ///
    /// - Returns: The bundle's directory, and the credential to register.
    package func writeLocalCredentials(
        for accountID: String,
        issuing: CertificateAuthority? = nil,
        validity: TimeInterval,
        server: String = "localhost:7443",
        now: Date = Date()
    ) throws -> (directory: String, credential: StoredCredential) {
        let issuing = try issuing ?? self.issuingAuthority()
        let directory = self.credentialsDirectory(accountID)
        try FileManager.default.createDirectory(
            atPath: directory,
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700]
        )
        let credential = try issuing.issueClientCertificate(accountID: accountID, validity: validity, now: now)
        try writeSecretFile(
            try String(contentsOfFile: self.caCertificateFile, encoding: .utf8),
            to: directory + "/ca.pem"
        )
        try writeSecretFile(credential.certificatePEM, to: directory + "/client.pem")
        try writeSecretFile(credential.privateKeyPEM, to: directory + "/client-key.pem")
        // The server the bundle is for, as enrolment writes it (HAVEN_SERVER or --server override it).
        try writeSecretFile(server + "\n", to: directory + "/server")
        return (directory, StoredCredential(credential.certificate, accountID: accountID, issuedBy: "init", now: now))
    }

    /// Binds a locally issued credential to its account, with its audit entry.
    package static func register(
        _ credential: StoredCredential,
        auditedAs operatorID: String,
        in tx: any StoreWriter
    ) throws {
        try tx.saveCredential(credential)
        try tx.appendAudit(
            NewAuditEntry(
                atUnixMs: credential.issuedAtUnixMs,
                principalID: operatorID,
                action: "credentials.issue"
            )
        )
    }

    /// Issues a new server certificate for `hostnames` and `ipAddresses`
    /// (localhost and the loopback addresses always included), signed by the
    /// issuing CA, keeping the old pair as `.old`.
    package func issueServerCertificate(
        hostnames: [String],
        ipAddresses: [[UInt8]],
        validity: TimeInterval,
        now: Date = Date()
    ) throws -> IssuedCredential {
        let issued = try self.issuingAuthority().issueServerCertificate(
            hostnames: ["localhost"] + hostnames.filter { $0 != "localhost" },
            ipAddresses: [[127, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]] + ipAddresses,
            validity: validity,
            now: now
        )
        for file in [self.serverCertificateFile, self.serverKeyFile] {
            _ = rename(file, file + ".old")
        }
        try writeSecretFile(issued.privateKeyPEM, to: self.serverKeyFile)
        try writeSecretFile(issued.certificatePEM, to: self.serverCertificateFile)
        return issued
    }

    /// Registers the client certificates of a deployment created before
    /// certificates were bound to accounts: each bundle under `credentials/`
    /// signed by this deployment's root and naming an existing account (by
    /// common name, as they were then) is bound to that account, once. Runs
    /// only while no certificate at all is registered (right after the upgrade).
    ///
    /// - Returns: How many were adopted.
    @discardableResult
    package func adoptLegacyCredentials(store: SQLiteStore, now: Date = Date()) throws -> Int {
        // Bundles were signed by the root (before the issuing CA existed) or by the issuing CA.
        let signers = [
            try Certificate(pemEncoded: try String(contentsOfFile: self.caCertificateFile, encoding: .utf8)).publicKey,
            try self.issuingAuthority().certificate.publicKey,
        ]
        let bundles = (try? FileManager.default.contentsOfDirectory(atPath: self.path("credentials"))) ?? []
        guard !bundles.isEmpty else { return 0 }
        return try store.writeSynchronously { tx -> Int in
            let accounts = try tx.accounts()
            guard try accounts.allSatisfy({ try tx.credentials(accountID: $0.id).isEmpty }) else { return 0 }
            let known = Set(accounts.map(\.id))
            var adopted = 0
            for name in bundles.sorted() {
                guard
                    let pem = try? String(
                        contentsOfFile: self.credentialsDirectory(name) + "/client.pem",
                        encoding: .utf8
                    ),
                    let certificate = try? Certificate(firstPEMIn: pem),
                    signers.contains(where: { $0.isValidSignature(certificate.signature, for: certificate) }),
                    let accountID = certificate.subjectCommonName, known.contains(accountID),
                    try tx.credential(serial: certificate.serialHex) == nil
                else { continue }
                try tx.saveCredential(StoredCredential(certificate, accountID: accountID, issuedBy: "legacy", now: now))
                adopted += 1
            }
            if adopted > 0 {
                try tx.appendAudit(
                    NewAuditEntry(
                        atUnixMs: Int64(now.timeIntervalSince1970 * 1000),
                        principalID: "havend",
                        action: "store.adopt",
                        detail: "bound \(adopted) certificates issued before the upgrade to their accounts"
                    )
                )
            }
            return adopted
        }
    }

    /// The files and directories only the server's user may read: the data
    /// directory itself, its keys and its database.
    package var privatePaths: [(path: String, directory: Bool)] {
        [
            (self.root.path, true), (self.path("tls"), true), (self.path("credentials"), true),
            (self.masterKeyFile, false), (self.masterKeyFile + ".next", false), (self.auditSigningKeyFile, false),
            (self.caKeyFile, false), (self.issuingKeyFile, false), (self.serverKeyFile, false),
            (self.serverKeyFile + ".old", false),
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

    /// Loads the CA the server issues with: the issuing CA, or for a
    /// deployment created before the split, the root itself.
    package func issuingAuthority() throws -> CertificateAuthority {
        func read(_ path: String) throws -> String {
            do {
                return try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw HavenError(code: .failedPrecondition, message: "cannot read \(path)")
            }
        }
        if FileManager.default.fileExists(atPath: self.issuingCertificateFile) {
            return try CertificateAuthority(
                certificatePEM: try read(self.issuingCertificateFile),
                privateKeyPEM: try read(self.issuingKeyFile),
                intermediate: true
            )
        }
        return try CertificateAuthority(
            certificatePEM: try read(self.caCertificateFile),
            privateKeyPEM: try read(self.caKeyFile)
        )
    }

    /// The issuing CA and the root certificate, for a running server.
    package func credentialAuthority() throws -> CredentialAuthority {
        CredentialAuthority(
            issuing: try self.issuingAuthority(),
            rootCertificatePEM: try String(contentsOfFile: self.caCertificateFile, encoding: .utf8)
        )
    }

    /// An exclusive lock on a data directory, held while a server (or a
    /// restore) uses it; released when this value is dropped or the process ends.
    package final class Lock: Sendable {
        private let descriptor: Int32

        fileprivate init(descriptor: Int32) {
            self.descriptor = descriptor
        }

        deinit {
            _ = flock(self.descriptor, LOCK_UN)
            _ = close(self.descriptor)
        }
    }

    /// The lock file, beside the database.
    package var lockFile: String { self.path("havend.lock") }

    /// Locks the data directory against a second server.
    ///
    /// - Throws: ``HavenError`` FAILED_PRECONDITION naming the process that
    ///   holds it.
    package func lock() throws(HavenError) -> Lock {
        let descriptor = open(self.lockFile, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw HavenError(code: .failedPrecondition, message: "cannot open \(self.lockFile) (errno \(errno))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            var buffer = [UInt8](repeating: 0, count: 32)
            let count = read(descriptor, &buffer, buffer.count)
            _ = close(descriptor)
            let holder =
                count > 0
                ? String(decoding: buffer[..<count], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                : "?"
            throw HavenError(
                code: .failedPrecondition,
                message:
                    "\(self.root.path) is in use by another process (pid \(holder)): one havend (or restore) at a time"
            )
        }
        _ = ftruncate(descriptor, 0)
        let pid = Array("\(getpid())\n".utf8)
        _ = pid.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
        return Lock(descriptor: descriptor)
    }

    /// Reads the configuration file (nil when there is none).
    package func configurationText() -> String? {
        try? String(contentsOfFile: self.configurationFile, encoding: .utf8)
    }
}

extension DataDirectory {
    /// Copies this data directory's SQLite database, opened with its master
    /// key, into a new PostgreSQL database (``PostgresStore/copy(from:principalID:atUnixMs:)``),
    /// and closes both: `haven-admin storage copy` and `init --storage`, the
    /// embedded server on PostgreSQL.
    package func copyDatabase(
        into location: PostgresLocation,
        principalID: String,
        atUnixMs: Int64
    ) async throws -> PostgresStore.CopyReport {
        let custodian = try KeyCustodian.load(masterKeyFile: self.masterKeyFile)
        let source = try SQLiteStore(path: self.databaseFile, keys: custodian.keys)
        defer { try? source.close() }
        return try await PostgresStore.using(location, keys: custodian.keys) { target in
            try await target.copy(from: source, principalID: principalID, atUnixMs: atUnixMs)
        }
    }

    /// Creates a new production deployment whose records live in a new
    /// PostgreSQL database: the data directory (keys, TLS files,
    /// configuration) is made in a staging directory beside this one, its
    /// first records (the admin account and its enrolment code, the audit
    /// trail's first entries) are copied into the database — which must be
    /// new — and only then is it renamed into place, without a SQLite file.
    ///
    /// - Parameter recordInConfiguration: Whether `haven.conf` names the
    ///   database (`storage = …`, its password in a file of mode 0600), or the
    ///   operator keeps it in `HAVEN_STORAGE`.
    /// - Throws: ``HavenError`` FAILED_PRECONDITION for a directory that is
    ///   not empty or a database that is not new; UNAVAILABLE when the
    ///   database cannot be reached. Nothing is left behind in the directory.
    package func initialize(
        storage location: PostgresLocation,
        recordInConfiguration: Bool,
        hostnames: [String] = [],
        ipAddresses: [[UInt8]] = [],
        now: Date = Date()
    ) async throws -> Report {
        let files = FileManager.default
        let existing = try? files.contentsOfDirectory(atPath: self.root.path)
        if let existing, !existing.isEmpty {
            throw HavenError(
                code: .failedPrecondition,
                message: "\(self.root.path) is not empty; refusing to initialize over existing files"
            )
        }
        let staging = DataDirectory(URL(fileURLWithPath: self.root.path + ".init-\(getpid())", isDirectory: true))
        try? files.removeItem(at: staging.root)
        do {
            var report = try staging.initialize(
                development: false,
                hostnames: hostnames,
                ipAddresses: ipAddresses,
                now: now
            )
            do {
                _ = try await staging.copyDatabase(
                    into: location,
                    principalID: Self.localOperator,
                    atUnixMs: Int64(now.timeIntervalSince1970 * 1000)
                )
            } catch let error as HavenError where error.code == .failedPrecondition {
                throw HavenError(
                    code: .failedPrecondition,
                    message:
                        "\(error.message) (\(location.redacted)): a new deployment needs a new database; create one and name it"
                )
            }
            for suffix in ["", "-wal", "-shm"] { try? files.removeItem(atPath: staging.databaseFile + suffix) }
            if recordInConfiguration {
                let text = try String(contentsOfFile: staging.configurationFile, encoding: .utf8)
                try writeSecretFile(
                    text
                        + "\n# Records are kept in this PostgreSQL database (haven-admin init).\nstorage = \(location.url)\n",
                    to: staging.configurationFile
                )
            }
            if existing != nil { _ = rmdir(self.root.path) }
            guard rename(staging.root.path, self.root.path) == 0 else {
                throw HavenError(
                    code: .unavailable,
                    message:
                        "cannot move the new deployment into \(self.root.path) (errno \(errno)); its records are already in \(location.redacted): drop that database before trying again"
                )
            }
            report.database = location.redacted
            return report
        } catch {
            try? files.removeItem(at: staging.root)
            throw error
        }
    }
}
