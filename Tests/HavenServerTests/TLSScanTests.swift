import Dispatch
import Foundation
import HavenProtocol
import HavenServer
import HavenTestSupport
import Testing

/// A TLS scanner's view of havend: Debian's `testssl.sh` (installed by
/// `.ci/run`) against the built server, trusting the deployment's root as
/// its clients do. Fails on any protocol but TLS 1.3 and on any finding
/// rated HIGH or CRITICAL that is not in ``accepted``. The report is kept in
/// `.ci/artifacts/` (`tls-scan.json`, `tls-scan.txt`).
@Suite("TLS scan")
struct TLSScanTests {
    /// HIGH or CRITICAL findings accepted, each with the reason (docs/SECURITY.md
    /// repeats it). An accepted finding that no longer appears fails the test
    /// too, so the list never outlives its reason.
    static let accepted: [String: String] = [
        "cert_revocation":
            "the server's certificate names no CRL or OCSP responder: its clients trust only this deployment's root, and the issuing CA's key lives beside the server's key, so whoever could misuse the one holds the other; a compromised server is answered with a new issuing CA, not by revoking one certificate"
    ]

    static var artifacts: URL { RepositoryPaths.root.appendingPathComponent(".ci/artifacts") }

    @Test(
        "testssl.sh finds TLS 1.3 only, forward-secret AEAD ciphers, and no HIGH or CRITICAL finding but the accepted ones"
    )
    func scan() async throws {
        let havend = RepositoryPaths.product("havend")
        guard let testssl = executableOnPath("testssl") ?? executableOnPath("testssl.sh"),
            FileManager.default.isExecutableFile(atPath: havend.path)
        else {
            #expect(!runningInCI, "CI installs testssl.sh (Debian's testssl.sh package) and builds havend")
            print("SKIPPED: the TLS scan needs testssl.sh (apt-get install testssl.sh) and a built havend")
            return
        }
        let deployment = try TestDeployment()
        let server = try await HavendProcess.start(
            havend,
            arguments: ["--data-dir", deployment.dataDirectory.root.path, "--set", "listen_port=0"]
        )
        try FileManager.default.createDirectory(at: Self.artifacts, withIntermediateDirectories: true)
        let json = Self.artifacts.appendingPathComponent("tls-scan.json")
        let text = Self.artifacts.appendingPathComponent("tls-scan.txt")
        for file in [json, text] { try? FileManager.default.removeItem(at: file) }
        let root = deployment.dataDirectory.root.appendingPathComponent("tls/ca.pem").path
        let arguments = [
            "--quiet", "--color", "0", "--warnings", "off", "--openssl-timeout", "10",
            "--add-ca", root, "--jsonfile-pretty", json.path, "--logfile", text.path,
            "127.0.0.1:\(server.port)",
        ]
        let result = try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try run(testssl, arguments) })
            }
        }
        #expect(await server.stopped() == 0)
        let report = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any],
            "testssl.sh wrote no report (exit \(result.status)): \(String(decoding: result.error, as: UTF8.self))"
        )
        let findings = Self.findings(report)
        try #require(!findings.isEmpty, "the report has findings")
        func finding(_ id: String) -> String { findings.first { $0.id == id }?.finding ?? "(absent)" }

        for old in ["SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2"] {
            #expect(finding(old).hasPrefix("not offered"), "\(old): \(finding(old))")
        }
        #expect(finding("TLS1_3").hasPrefix("offered"), "TLS1_3: \(finding("TLS1_3"))")
        #expect(finding("cert_chain_of_trust").hasPrefix("passed"), "chain: \(finding("cert_chain_of_trust"))")
        for weak in ["NULL", "aNULL", "EXPORT", "LOW", "3DES_IDEA", "AVERAGE"] {
            #expect(finding("cipherlist_\(weak)") == "not offered", "\(weak) ciphers: \(finding("cipherlist_\(weak)"))")
        }
        let ciphers = finding("PFS_ciphers").split(separator: " ")
        #expect(
            !ciphers.isEmpty
                && ciphers.allSatisfy {
                    $0.hasSuffix("_GCM_SHA256") || $0.hasSuffix("_GCM_SHA384") || $0 == "TLS_CHACHA20_POLY1305_SHA256"
                },
            "forward-secret AEAD ciphers only: \(ciphers)"
        )

        let serious = findings.filter { ["HIGH", "CRITICAL"].contains($0.severity) }
        for item in serious where Self.accepted[item.id] == nil {
            Issue.record("\(item.severity) \(item.id): \(item.finding)")
        }
        for id in Self.accepted.keys where !serious.contains(where: { $0.id == id }) {
            Issue.record("\(id) is accepted but no longer found: remove it from TLSScanTests.accepted and SECURITY.md")
        }
        let counts = Dictionary(grouping: findings, by: \.severity).mapValues(\.count)
        print(
            "TLS scan: \(findings.count) findings by severity \(counts.sorted { $0.key < $1.key }); report in \(json.path)"
        )
    }

    struct Finding {
        var id: String
        var severity: String
        var finding: String
    }

    /// Every finding of the report's first (only) target.
    static func findings(_ report: [String: Any]) -> [Finding] {
        guard let results = report["scanResult"] as? [[String: Any]], let target = results.first else { return [] }
        return target.values.compactMap { $0 as? [[String: Any]] }.joined().compactMap { item in
            guard let id = item["id"] as? String, let severity = item["severity"] as? String else { return nil }
            return Finding(id: id, severity: severity, finding: item["finding"] as? String ?? "")
        }
    }
}
