import Foundation
import HavenClient
import HavenProtocol
import HavenServer
import HavenTestSupport
import SwiftProtobuf
import Testing

/// Enrolment, renewal and the errors a partner's program sees, through
/// HavenClient against a real server.
@Suite("Enrolment and renewal through HavenClient")
struct EnrollmentTests {
    static func admin(_ deployment: TestDeployment, _ server: RunningServer) throws -> HavenClientConfiguration {
        var configuration = HavenClientConfiguration(
            host: "127.0.0.1",
            port: server.port,
            credentials: try HavenCredentials(try deployment.credentials(for: "admin"))
        )
        configuration.defaultTimeout = .seconds(10)
        return configuration
    }

    /// Registers KOL and a partner organisation; returns the partner's id.
    static func partner(_ client: HavenClient) async throws -> String {
        _ = try await client.offices.create(HavenClientTests.office("KOL"))
        var register = Haven_V1_RegisterPartnerRequest()
        register.partner.name = "Asha Aftercare Home (fictional)"
        register.partner.kind = .aftercareHome
        register.partner.officeCodes = ["KOL"]
        return try await client.partners.register(register).id
    }

    @Test(
        "a partner's program enrols with the code, writes its bundle, connects by the bundle's server address alone, and renews with a new key"
    )
    func enrolAndRenew() async throws {
        let deployment = try TestDeployment()
        try await deployment.serving { server in
            let created = try await withHavenClient(try Self.admin(deployment, server)) { admin in
                let partnerID = try await Self.partner(admin)
                var create = Haven_V1_CreateAccountRequest()
                create.account.id = "asha-home"
                create.account.displayName = "Asha Home (fictional)"
                create.account.role = .partner
                create.account.partnerID = partnerID
                return try await admin.accounts.create(create)
            }
            #expect(created.account.partnerID.hasPrefix("ptn"))

            // The partner's machine: an IP address as the server (no SNI; the certificate's IP entry is checked).
            let bundle = try await HavenEnrollment.enroll(
                server: "127.0.0.1:\(server.port)",
                caPEM: created.enrollment.caCertificatePem,
                code: created.enrollment.code
            )
            let directory = try TemporaryDirectory("haven-bundle")
            defer { directory.remove() }
            let path = directory.url.appendingPathComponent("asha-home")
            try bundle.write(to: path)
            for name in ["ca.pem", "client.pem", "client-key.pem", "server"] {
                let attributes = try FileManager.default.attributesOfItem(
                    atPath: path.appendingPathComponent(name).path
                )
                #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600, "\(name) is the user's only")
            }

            let credentials = try HavenCredentials(bundle: path)
            #expect(credentials.server == "127.0.0.1:\(server.port)")
            #expect(credentials.serial == bundle.credential.serial)
            #expect(!credentials.isDueForRenewal(), "a new certificate is not due")
            var configuration = try HavenClientConfiguration(credentials: credentials)
            configuration.renewsCredentials = false
            let renewed = try await withHavenClient(configuration) { client in
                let principal = try await client.session.whoAmI()
                #expect(principal.id == "asha-home")
                return try await client.renewCredentials()
            }
            #expect(renewed.credential.serial != bundle.credential.serial)
            #expect(renewed.credential.issuedBy == "renewal")
            #expect(renewed.privateKeyPEM != bundle.privateKeyPEM, "a new key")
            let rewritten = try HavenCredentials(bundle: path)
            #expect(rewritten.serial == renewed.credential.serial, "the bundle holds the new pair")
            #expect(!FileManager.default.fileExists(atPath: path.appendingPathComponent("client.pem.new").path))

            // Both certificates work until the old one expires or is revoked.
            for credentials in [try bundle.credentials(), rewritten] {
                var again = try HavenClientConfiguration(server: "127.0.0.1:\(server.port)", credentials: credentials)
                again.renewsCredentials = false
                #expect(try await withHavenClient(again) { try await $0.session.whoAmI().id } == "asha-home")
            }

            // The code was spent by the first enrolment.
            let spent = await #expect(throws: HavenError.self) {
                try await HavenEnrollment.enroll(
                    server: "127.0.0.1:\(server.port)",
                    caPEM: created.enrollment.caCertificatePem,
                    code: created.enrollment.code
                )
            }
            #expect(spent?.code == .unauthenticated && spent?.source == .server)
        }
    }

    @Test("in the last third of its life, the client renews its certificate by itself and rewrites the bundle")
    func automaticRenewal() async throws {
        let deployment = try TestDeployment()
        try await deployment.serving { server in
            // Issued 3,000 s ago for an hour: 10 minutes left of 65 (the CA back-dates by five minutes).
            let old = try deployment.credentials(
                for: "worker-kol",
                validity: 3600,
                now: Date().addingTimeInterval(-3000)
            )
            let directory = try TemporaryDirectory("haven-bundle")
            defer { directory.remove() }
            let path = directory.url.appendingPathComponent("worker")
            try FileManager.default.createDirectory(at: path, withIntermediateDirectories: true)
            try old.caPEM.write(to: path.appendingPathComponent("ca.pem"), atomically: true, encoding: .utf8)
            try old.certificatePEM.write(
                to: path.appendingPathComponent("client.pem"),
                atomically: true,
                encoding: .utf8
            )
            try old.privateKeyPEM.write(
                to: path.appendingPathComponent("client-key.pem"),
                atomically: true,
                encoding: .utf8
            )
            try "127.0.0.1:\(server.port)\n".write(
                to: path.appendingPathComponent("server"),
                atomically: true,
                encoding: .utf8
            )
            let before = try HavenCredentials(bundle: path)
            #expect(before.isDueForRenewal())

            let after = try await withHavenClient(try HavenClientConfiguration(credentials: before)) { client in
                let principal = try await client.session.whoAmI()
                #expect(principal.id == "worker-kol")
                return client.credentials
            }
            #expect(after.serial != before.serial, "renewed before the call")
            let written = try HavenCredentials(bundle: path)
            #expect(written.serial == after.serial, "and written to the bundle")
            #expect(after.isDueForRenewal() == false)
        }
    }

    @Test("connection failures name the address and the cause; refusals are not retried")
    func failures() async throws {
        let deployment = try TestDeployment()
        let server = try await deployment.start()
        let port = server.port
        let disabled = try deployment.credentials(for: "disabled")
        var configuration = try HavenClientConfiguration(
            server: "127.0.0.1:\(port)",
            credentials: try HavenCredentials(disabled)
        )
        configuration.defaultTimeout = .seconds(20)
        var started = ContinuousClock.now
        let refused = await #expect(throws: HavenError.self) {
            try await withHavenClient(configuration) { try await $0.session.whoAmI() }
        }
        #expect(refused?.code == .unauthenticated, "\(refused?.description ?? "")")
        #expect(
            refused?.message.contains("127.0.0.1:\(port)") == true
                && refused?.message.contains("account disabled") == true,
            "\(refused?.message ?? "")"
        )
        #expect(ContinuousClock.now - started < .seconds(5), "not retried six times until the deadline")

        try await server.stop()
        var down = try HavenClientConfiguration(
            server: "127.0.0.1:\(port)",
            credentials: try HavenCredentials(try deployment.credentials(for: "worker-kol"))
        )
        down.defaultTimeout = .seconds(20)
        started = ContinuousClock.now
        let unreachable = await #expect(throws: HavenError.self) {
            try await withHavenClient(down) { try await $0.session.whoAmI() }
        }
        #expect(unreachable?.code == .unavailable && unreachable?.source == .transport)
        #expect(unreachable?.message.contains("127.0.0.1:\(port)") == true, "\(unreachable?.message ?? "")")
        #expect(unreachable?.message.contains("connection refused") == true, "\(unreachable?.message ?? "")")
        #expect(ContinuousClock.now - started < .seconds(10), "a few attempts with backoff, not the whole deadline")

        let badAddress = #expect(throws: HavenError.self) {
            try HavenClientConfiguration(server: "::1:7443", credentials: try HavenCredentials(disabled))
        }
        #expect(badAddress?.code == .invalidArgument && badAddress?.message.contains("[::1]:7443") == true)
        let v6 = try HavenServerAddress.parse("[::1]:8443")
        #expect(v6.host == "::1" && v6.port == 8443)
        let bare = try HavenServerAddress.parse("haven.example.org")
        #expect(bare.host == "haven.example.org" && bare.port == 7443)
    }
}
