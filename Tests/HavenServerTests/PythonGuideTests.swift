import Dispatch
import Foundation
import HavenProtocol
import HavenServer
import HavenTestSupport
import Testing

/// docs/PROTOCOL.md §12's Python client, run exactly as printed against a
/// real server: the guide a partner in another language starts from must work.
@Suite("Conformance: the Python client guide of PROTOCOL.md")
struct PythonGuideTests {
    /// The first ```python block of PROTOCOL.md.
    static func guide() throws -> String {
        let text = try String(
            contentsOf: RepositoryPaths.root.appendingPathComponent("docs/PROTOCOL.md"),
            encoding: .utf8
        )
        let start = try #require(text.range(of: "```python\n"))
        let end = try #require(text.range(of: "\n```", range: start.upperBound..<text.endIndex))
        return String(text[start.upperBound..<end.lowerBound]) + "\n"
    }

    /// python3 with the `protobuf` package, and protoc; nil (with the reason) when missing outside CI.
    static func tools() throws -> (python: URL, protoc: URL)? {
        let python = executableOnPath("python3")
        let protoc = executableOnPath("protoc")
        var usable = false
        if let python {
            usable = (try? run(python, ["-c", "import google.protobuf"]))?.status == 0
        }
        if let python, let protoc, usable { return (python, protoc) }
        let reason = "needs python3 with the protobuf package (pip install protobuf==4.21.12) and protoc"
        if runningInCI { Issue.record("CI must run the Python guide: \(reason)") }
        return nil
    }

    @Test("connects, says hello, makes a unary call, follows the feed to CaughtUp, cancels it and meets a deadline")
    func pythonGuide() async throws {
        guard let (python, protoc) = try Self.tools() else { return }
        let deployment = try TestDeployment()
        let server = try await deployment.start()
        do {
            try await Self.runGuide(deployment, server, python: python, protoc: protoc)
        } catch {
            try? await server.stop()
            throw error
        }
        try await server.stop()
    }

    static func runGuide(_ deployment: TestDeployment, _ server: RunningServer, python: URL, protoc: URL) async throws {
        let admin = try await RawConnection.connect(
            port: server.port,
            credentials: try deployment.credentials(for: "admin")
        )
        try #require(try await admin.hello() != nil)
        _ = try await admin.unary(MethodCatalog.OfficeService.createOffice, ServiceTests.officeRequest("KOL"), id: 1)
        let worker = try deployment.credentials(for: "worker-kol")
        let workerConnection = try await RawConnection.connect(port: server.port, credentials: worker)
        try #require(try await workerConnection.hello() != nil)
        for id: UInt64 in 1...3 {
            _ = try await workerConnection.unary(MethodCatalog.CaseService.openCase, ServiceTests.openCase(), id: id)
        }

        let directory = try TemporaryDirectory()
        let bundle = directory.url.appendingPathComponent("bundle")
        let generated = directory.url.appendingPathComponent("gen")
        for folder in [bundle, generated] {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        }
        try Data(worker.caPEM.utf8).write(to: bundle.appendingPathComponent("ca.pem"))
        try Data(worker.certificatePEM.utf8).write(to: bundle.appendingPathComponent("client.pem"))
        try Data(worker.privateKeyPEM.utf8).write(to: bundle.appendingPathComponent("client-key.pem"))
        let protos = try RepositoryPaths.protoFiles()
        let compiled = try run(
            protoc,
            ["--proto_path=\(RepositoryPaths.protos.path)", "--python_out=\(generated.path)"] + protos
        )
        try #require(compiled.status == 0, "\(String(decoding: compiled.error, as: UTF8.self))")
        let script = directory.url.appendingPathComponent("client.py")
        try Data(try Self.guide().utf8).write(to: script)

        let environment = [
            "PYTHONPATH": generated.path, "HAVEN_HOST": "localhost", "HAVEN_PORT": "\(server.port)",
            "HAVEN_CREDENTIALS": bundle.path,
        ]
        // Off Swift's cooperative threads: the server in this process runs on them.
        let result = try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try run(python, [script.path], environment: environment) })
            }
        }
        let output = String(decoding: result.output, as: UTF8.self)
        let errors = String(decoding: result.error, as: UTF8.self)
        #expect(result.status == 0, "\(output)\n\(errors)")
        #expect(output.contains("hello: havend/"))
        #expect(output.contains("office: KOL field office"))
        #expect(output.contains("caught up after 4 changes"), "the office and three cases, then CaughtUp:\n\(output)")
        #expect(output.contains("feed: STATUS_CODE_CANCELLED"))
        #expect(output.contains("deadline: STATUS_CODE_DEADLINE_EXCEEDED"))
    }
}
