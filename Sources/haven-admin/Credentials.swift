import ArgumentParser
import Foundation
import HavenClient
import HavenProtocol
import HavenServer

/// Enrols this machine: makes its key here and gets a certificate for it.
struct Enroll: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Enrols this machine with an enrolment code and writes its credentials bundle.",
        discussion: """
            Makes a P-256 key on this machine (it never leaves it), sends a certificate
            signing request with the one-time code, verifying the server against ca.pem,
            and writes DIR/ca.pem, client.pem, client-key.pem and server (the address,
            which later commands read). Give either --invitation FILE (written by
            `accounts create --invitation`) or --server, --ca and --code.
            """
    )
    @Option(help: ArgumentHelp("An invitation file from `accounts create --invitation`.", valueName: "file"))
    var invitation: String?
    @Option(help: ArgumentHelp("The server, host:port.", valueName: "host:port")) var server: String?
    @Option(help: ArgumentHelp("The deployment's root CA certificate.", valueName: "ca.pem")) var ca: String?
    @Option(help: ArgumentHelp("The enrolment code.", valueName: "code")) var code: String?
    @Option(help: ArgumentHelp("Where to write the bundle (a new or empty directory).", valueName: "dir")) var out:
        String
    @Flag(help: "Print JSON for scripts.") var json = false

    func validate() throws {
        guard (self.invitation == nil) != (self.code == nil) else {
            throw ValidationError("give either --invitation or --code (with --server and --ca)")
        }
        if self.code != nil, self.server == nil || self.ca == nil {
            throw ValidationError("--code needs --server and --ca")
        }
        if let server { _ = try CLI.usage { try HavenServerAddress.parse(server) } }
    }

    func run() async throws {
        try await CLI.run(json: self.json) {
            var server = self.server ?? ""
            var caPEM = ""
            var code = self.code ?? ""
            if let invitation {
                guard let data = FileManager.default.contents(atPath: invitation),
                    let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                    let invited = object["server"] as? String, let ca = object["ca_certificate_pem"] as? String,
                    let invitedCode = object["code"] as? String
                else {
                    throw CLIError.local("\(invitation) is not an invitation written by `haven-admin accounts create`")
                }
                server = self.server ?? invited
                caPEM = ca
                code = invitedCode
            } else if let ca {
                guard let text = try? String(contentsOfFile: ca, encoding: .utf8) else {
                    throw CLIError.local("cannot read \(ca)")
                }
                caPEM = text
            }
            let directory = URL(fileURLWithPath: self.out, isDirectory: true)
            if let existing = try? FileManager.default.contentsOfDirectory(atPath: directory.path), !existing.isEmpty {
                throw CLIError.local("\(directory.path) is not empty; choose a new directory for the bundle")
            }
            let bundle = try await HavenEnrollment.enroll(server: server, caPEM: caPEM, code: code)
            try bundle.write(to: directory)
            if self.json { return say(try CLI.json(bundle.credential)) }
            say("Enrolled '\(bundle.credential.accountID)'. Credentials: \(directory.path)")
            CLI.fields([
                ("Server", server), ("Certificate", bundle.credential.serial),
                ("Expires", CLI.date(bundle.credential.notValidAfterUnixMs)),
            ])
            say("Renew before it expires: haven-admin credentials renew --credentials \(directory.path)")
        }
    }
}

/// The credentials of this machine.
struct Credentials: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Shows and renews this machine's credentials bundle.",
        subcommands: [Show.self, Renew.self]
    )

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Shows a bundle's certificate: serial, server, expiry."
        )
        @OptionGroup var server: ServerOptions

        func run() async throws {
            try await CLI.run(json: self.server.json) {
                let path = try self.server.bundlePath
                let credentials = try HavenCredentials(bundle: URL(fileURLWithPath: path, isDirectory: true))
                let expires = credentials.notValidAfter.map { Int64($0.timeIntervalSince1970 * 1000) } ?? 0
                if self.server.json {
                    var credential = Haven_V1_Credential()
                    credential.serial = credentials.serial ?? ""
                    credential.notValidAfterUnixMs = expires
                    credential.state = expires > Int64(Date().timeIntervalSince1970 * 1000) ? .active : .expired
                    return say(try CLI.json(credential))
                }
                CLI.fields([
                    ("Bundle", path), ("Server", credentials.server ?? "(none: use --server or HAVEN_SERVER)"),
                    ("Certificate", credentials.serial ?? ""), ("Expires", CLI.date(expires)),
                    ("Renewal due", credentials.isDueForRenewal() ? "yes" : "no"),
                ])
            }
        }
    }

    struct Renew: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Renews the certificate now, with a new key, and rewrites the bundle.",
            discussion: """
                Authenticated by the current certificate, which stays valid until it expires
                (revoke it with `accounts revoke` to end it sooner). Renew before expiry: an
                expired certificate cannot renew itself; ask an admin for a new enrolment code.
                """
        )
        @OptionGroup var server: ServerOptions

        func run() async throws {
            try await withAdminClient(self.server) { client in
                let renewed = try await client.renewCredentials()
                if self.server.json { return say(try CLI.json(renewed.credential)) }
                say(
                    "Renewed. New certificate \(renewed.credential.serial), expires \(CLI.date(renewed.credential.notValidAfterUnixMs))."
                )
            }
        }
    }
}

/// Certificates of the deployment itself, on the server's machine.
struct Certs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Issues the server's certificate for its real host names.",
        subcommands: [Server.self]
    )

    /// Parses host names and IP addresses for a server certificate.
    static func parse(hostnames: [String], addresses: [String]) throws -> ([String], [[UInt8]]) {
        for name in hostnames {
            guard !name.isEmpty, name.count <= 253,
                name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "." || $0 == "*") })
            else { throw ValidationError("--dns \(name.prefix(60)) is not a host name") }
        }
        let bytes = try addresses.map { text -> [UInt8] in
            var v4 = in_addr()
            var v6 = in6_addr()
            if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
            if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
            throw ValidationError("--ip \(text.prefix(60)) is not an IPv4 or IPv6 address")
        }
        return (hostnames, bytes)
    }

    struct Server: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issues a new server certificate (tls/server.pem) for the given names; restart havend to use it.",
            discussion: """
                Signed by the issuing CA on the data directory (the root key may stay offline).
                localhost, 127.0.0.1 and ::1 are always included. The old certificate is kept
                as tls/server.pem.old.
                """
        )
        @OptionGroup var data: DataDirectoryOption
        @Option(name: .customLong("dns"), help: ArgumentHelp("A host name (repeatable).", valueName: "name"))
        var hostnames: [String] = []
        @Option(name: .customLong("ip"), help: ArgumentHelp("An IP address (repeatable).", valueName: "address"))
        var addresses: [String] = []
        @Option(name: .customLong("valid-days"), help: "How long it is valid: 1 to 397 days.") var validDays = 365
        @Flag(help: "Print JSON for scripts.") var json = false

        func validate() throws {
            guard !self.hostnames.isEmpty || !self.addresses.isEmpty else {
                throw ValidationError("give at least one --dns or --ip")
            }
            _ = try Certs.parse(hostnames: self.hostnames, addresses: self.addresses)
            guard (1...397).contains(self.validDays) else { throw ValidationError("--valid-days must be 1 to 397") }
        }

        func run() async throws {
            try await CLI.run(json: self.json) {
                let (hostnames, addresses) = try Certs.parse(hostnames: self.hostnames, addresses: self.addresses)
                let directory = self.data.directory
                guard directory.isInitialized else {
                    throw CLIError.local(
                        "\(directory.root.path) holds no deployment (create one with `haven-admin init`)"
                    )
                }
                umask(0o077)
                let issued = try directory.issueServerCertificate(
                    hostnames: hostnames,
                    ipAddresses: addresses,
                    validity: TimeInterval(self.validDays) * 86400
                )
                if self.json {
                    var credential = Haven_V1_Credential()
                    credential.serial = issued.certificate.serialHex
                    credential.notValidAfterUnixMs = Int64(issued.notValidAfter.timeIntervalSince1970 * 1000)
                    credential.state = .active
                    credential.issuedBy = "certs-server"
                    return say(try CLI.json(credential))
                }
                say(
                    "Wrote \(directory.serverCertificateFile) for localhost, \((hostnames + self.addresses).joined(separator: ", "))."
                )
                say(
                    "Expires \(CLI.date(Int64(issued.notValidAfter.timeIntervalSince1970 * 1000))). Restart havend to use it."
                )
            }
        }
    }
}
