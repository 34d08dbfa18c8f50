import Foundation
import HavenProtocol
import HavenServer
import HavenStore
import HavenTestSupport
import SwiftASN1
import SwiftProtobuf
import Testing
import X509

@Suite("Configuration and data directory")
struct DeploymentTests {
    @Test("reads haven.conf, then HAVEN_* variables, then --set, each overriding the one before")
    func precedence() throws {
        let file = """
            # comment
            listen_port = 8000
            max_concurrent_calls = 7
            idle_timeout_ms = 1500
            """
        let configuration = try ServerConfiguration.load(
            fileText: file,
            environment: ["HAVEN_LISTEN_PORT": "9000", "HAVEN_LOG_LEVEL": "debug", "UNRELATED": "x"],
            overrides: ["listen_port=9100"]
        )
        #expect(configuration.listenPort == 9100)
        #expect(configuration.maxConcurrentCalls == 7)
        #expect(configuration.idleTimeout == .milliseconds(1500))
        #expect(configuration.logLevel == "debug")
        #expect(configuration.listenHost == "127.0.0.1")
        #expect(configuration.connectionLimits.maxConcurrentCalls == 7)
    }

    @Test(
        "refuses bad options with a message naming them and where they came from",
        arguments: [
            ("listen_port = 99999", "haven.conf:1: listen_port must be a whole number from 0 to 65535"),
            ("colour = blue", "haven.conf:1: unknown option 'colour'"),
            ("just words", "haven.conf:1: expected 'name = value'"),
            ("log_level = chatty", "haven.conf:1: log_level must be one of"),
            ("frame_timeout_ms = 0", "haven.conf:1: frame_timeout_ms must be 1 to 86400000 milliseconds"),
            ("storage = mysql://haven@db/haven", "haven.conf:1: storage: not a postgres:// URL"),
            (
                "storage = postgres://haven:pw@db.example.org/haven?sslmode=disable",
                "haven.conf:1: storage: sslmode=disable is only accepted for a loopback host",
            ),
        ]
    )
    func badOptions(line: String, message: String) {
        let error = #expect(throws: HavenError.self) { try ServerConfiguration.load(fileText: line) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.hasPrefix(message) == true, "\(error?.message ?? "")")
    }

    @Test(
        "storage: sqlite by default; a postgres:// URL from the file, the environment or --set, its password never in an error"
    )
    func storage() throws {
        #expect(try ServerConfiguration.load(fileText: nil).postgres == nil)
        let configured = try ServerConfiguration.load(
            fileText: "storage = sqlite",
            environment: [
                "HAVEN_STORAGE": "postgres://haven:s3cret@10.0.0.5:5433/haven?sslrootcert=/etc/haven/pg-ca.pem"
            ]
        )
        let location = try #require(configured.postgres)
        #expect(location.host == "10.0.0.5" && location.port == 5433 && location.database == "haven")
        #expect(location.tls == .verifyFull)
        #expect(location.rootCertificate == "/etc/haven/pg-ca.pem")
        #expect(!location.redacted.contains("s3cret"))
        #expect(try PostgresLocation(url: location.url) == location, "its URL reads back as itself")
        let bad = #expect(throws: HavenError.self) {
            try ServerConfiguration.load(
                fileText: nil,
                overrides: ["storage=postgres://haven:s3cret@db.example.org/haven?sslmode=prefer"]
            )
        }
        #expect(bad?.message.contains("s3cret") == false)
        #expect(bad?.message.hasPrefix("--set storage:") == true, "\(bad?.message ?? "")")
    }

    @Test("a bad --set or environment value names its source")
    func badOverride() {
        let fromFlag = #expect(throws: HavenError.self) {
            try ServerConfiguration.load(fileText: nil, overrides: ["listen_port"])
        }
        #expect(fromFlag?.message.contains("expected name=value") == true)
        let fromEnvironment = #expect(throws: HavenError.self) {
            try ServerConfiguration.load(fileText: nil, environment: ["HAVEN_MAX_CONNECTIONS": "many"])
        }
        #expect(fromEnvironment?.message.hasPrefix("HAVEN_MAX_CONNECTIONS:") == true)
    }

    @Test("the generated haven.conf lists every option at its default and reads back as the defaults")
    func defaultFile() throws {
        let text = ServerConfiguration.defaultFileText()
        for option in ServerConfiguration.options {
            #expect(text.contains("# \(option.name) = "), "\(option.name)")
        }
        let uncommented = text.split(separator: "\n").map { line in
            line.hasPrefix("# ") && line.contains(" = ") ? String(line.dropFirst(2)) : String(line)
        }.joined(separator: "\n")
        #expect(try ServerConfiguration.load(fileText: uncommented) == ServerConfiguration())
    }

    @Test("docs/OPERATIONS.md documents every option with its default")
    func documented() throws {
        let document = try String(
            contentsOf: RepositoryPaths.root.appendingPathComponent("docs/OPERATIONS.md"),
            encoding: .utf8
        )
        for option in ServerConfiguration.options {
            let value = ServerConfiguration.defaultFileText().split(separator: "\n")
                .first { $0.hasPrefix("# \(option.name) = ") }!.dropFirst("# \(option.name) = ".count)
            #expect(document.contains("| `\(option.name)` | `\(value)` |"), "\(option.name)")
        }
    }

    @Test("initializes a data directory once: CA, server and admin certificates, master key, database, config")
    func initialize() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let data = DataDirectory(directory.url.appendingPathComponent("data"))
        #expect(!data.isInitialized)
        let report = try data.initialize(development: true)
        #expect(data.isInitialized)
        #expect(report.adminAccountID == "admin")
        for file in [
            data.caCertificateFile, data.caKeyFile, data.issuingCertificateFile, data.issuingKeyFile,
            data.serverCertificateFile, data.serverKeyFile, data.masterKeyFile, data.configurationFile,
        ] {
            let attributes = try FileManager.default.attributesOfItem(atPath: file)
            #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600, "\(file)")
        }
        let master = try MasterKey.load(from: data.masterKeyFile)
        #expect(master.isDevelopmentKey)
        #expect(try String(contentsOfFile: data.masterKeyFile, encoding: .utf8).contains("DEVELOPMENT KEY"))

        // The root signs the issuing CA only; the issuing CA signs the server's and the admin's certificates.
        let root = try Certificate(pemEncoded: try String(contentsOfFile: data.caCertificateFile, encoding: .utf8))
        let issuing = try Certificate(
            pemEncoded: try String(contentsOfFile: data.issuingCertificateFile, encoding: .utf8)
        )
        let server = try Certificate(
            firstPEMIn: try String(contentsOfFile: data.serverCertificateFile, encoding: .utf8)
        )
        let bundle = try #require(report.adminCredentials)
        let admin = try Certificate(firstPEMIn: try String(contentsOfFile: bundle + "/client.pem", encoding: .utf8))
        #expect(admin.subjectCommonName == "admin")
        #expect(issuing.issuer == root.subject)
        #expect(root.publicKey.isValidSignature(issuing.signature, for: issuing))
        #expect(server.issuer == issuing.subject && admin.issuer == issuing.subject)
        #expect(issuing.publicKey.isValidSignature(admin.signature, for: admin))
        #expect(try root.extensions.basicConstraints == .isCertificateAuthority(maxPathLength: 1))
        #expect(try issuing.extensions.basicConstraints == .isCertificateAuthority(maxPathLength: 0))
        // The server presents its certificate and the issuing CA's; the admin's bundle likewise.
        #expect(
            try String(contentsOfFile: data.serverCertificateFile, encoding: .utf8).components(
                separatedBy: "BEGIN CERTIFICATE"
            ).count == 3
        )
        #expect(
            try String(contentsOfFile: bundle + "/client.pem", encoding: .utf8).components(
                separatedBy: "BEGIN CERTIFICATE"
            ).count == 3
        )
        // The admin's certificate is bound to the account by serial and key.
        let store = try SQLiteStore(path: data.databaseFile)
        let bound = try store.writeSynchronously { try $0.credential(serial: admin.serialHex) }
        #expect(bound?.accountID == "admin" && bound?.publicKeySHA256 == admin.publicKeySHA256)

        // A second initialization refuses rather than overwrite anything.
        let again = #expect(throws: HavenError.self) { try data.initialize(development: true) }
        #expect(again?.code == .failedPrecondition)
        #expect(try MasterKey.load(from: data.masterKeyFile).key == master.key)

        // Two deployments never share a key or a CA.
        let other = DataDirectory(directory.url.appendingPathComponent("other"))
        try other.initialize(development: true)
        #expect(try MasterKey.load(from: other.masterKeyFile).key != master.key)
        #expect(
            try String(contentsOfFile: other.caCertificateFile, encoding: .utf8)
                != String(contentsOfFile: data.caCertificateFile, encoding: .utf8)
        )
    }

    @Test("seals identities so that only the right record, version, office and master key open them")
    func vault() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let keys = freshStoreKeys()
        let store = try SQLiteStore(path: directory.path("haven.sqlite"), keys: keys)
        let identity = Haven_V1_SurvivorIdentity.with { $0.legalName = "Fictional Sealed Name" }
        var survivor = Haven_V1_Survivor()
        survivor.id = "s1"
        survivor.code = "KOL-S-0001"
        survivor.officeCode = "KOL"
        survivor.version = 1
        try await store.audited { [survivor] tx in try tx.insert(survivor, identity: identity) }
        #expect(try await store.read { try $0.identity(survivorID: "s1") } == identity)
        let file = try Data(contentsOf: URL(fileURLWithPath: directory.path("haven.sqlite")))
        let wal = (try? Data(contentsOf: URL(fileURLWithPath: directory.path("haven.sqlite-wal")))) ?? Data()
        #expect(file.range(of: Data("Fictional".utf8)) == nil)
        #expect(wal.range(of: Data("Fictional".utf8)) == nil)

        // Another master key opens nothing, and says why without content.
        let other = try SQLiteStore(path: directory.path("haven.sqlite"), keys: freshStoreKeys())
        let wrongKey = await #expect(throws: HavenError.self) {
            try await other.read { try $0.identity(survivorID: "s1") }
        }
        #expect(wrongKey?.message.contains("master key") == true)
        #expect(wrongKey?.message.contains("Fictional") == false)
    }

    @Test("refuses connections beyond max_connections with RESOURCE_EXHAUSTED")
    func connectionCap() async throws {
        let deployment = try TestDeployment()
        let server = try await deployment.start { $0.maxConnections = 2 }
        let first = try await RawConnection.connect(
            port: server.port,
            credentials: try deployment.credentials(for: "admin")
        )
        let second = try await RawConnection.connect(
            port: server.port,
            credentials: try deployment.credentials(for: "admin")
        )
        try await first.hello()
        try await second.hello()
        let third = try await RawConnection.connect(
            port: server.port,
            credentials: try deployment.credentials(for: "admin")
        )
        let away = try #require(try await third.next())
        #expect(StatusCode(wire: away.goAway.code) == .resourceExhausted)
        #expect(await third.closed())
        await first.close()
        // A slot frees when a connection closes.
        var admitted = false
        for _ in 0..<50 where !admitted {
            let fourth = try await RawConnection.connect(
                port: server.port,
                credentials: try deployment.credentials(for: "admin")
            )
            // A connection refused while the slot is still taken may be closed before its hello is sent.
            if let answer = try? await fourth.hello(), case .hello = answer.kind { admitted = true }
            await fourth.close()
            if !admitted { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(admitted)
        try await server.stop()
    }
}
