import Foundation
import HavenProtocol
import HavenServer
import HavenStore
import HavenTestSupport
import SwiftProtobuf
import Testing

/// Narrow, in-process checks of the boundary's parts: equal work for
/// NOT_FOUND, file permissions, log escaping, field limits and page bounds.
@Suite("Access boundary parts")
struct BoundaryUnitTests {
    @Test(
        "11. NOT_FOUND for another office's survivor and for one that does not exist does the same store work",
        arguments: ["worker-mnl", "partner-other", "partner-asha", "admin"]
    )
    func notFoundCostsTheSame(account: String) async throws {
        let grid = try await AccessGrid.build()
        let haven = grid.haven
        let principal = try grid.principal(account)
        // A KOL survivor the caller may not see (for partner-asha: one whose referral was declined).
        let hidden = try #require(grid.survivors.first { $0.referral == .declined && $0.consent == .none })
        let existing = try await haven.call(
            MethodCatalog.SurvivorService.getSurvivor,
            .with { $0.survivorID = hidden.id },
            as: try grid.principal("director-kol")
        )
        for (byID, includeIdentity) in [(true, false), (false, false), (true, true)] {
            func probe(_ key: String) async -> [String] {
                var request = Haven_V1_GetSurvivorRequest()
                if byID { request.survivorID = key } else { request.code = key }
                request.includeIdentity = includeIdentity
                _ = haven.recording.take()
                let code = await haven.code(MethodCatalog.SurvivorService.getSurvivor, request, as: principal)
                #expect(code == .notFound)
                return haven.recording.take()
            }
            let notYours = await probe(byID ? existing.id : existing.code)
            let nowhere = await probe(byID ? "srv_00000000000000000000000000000000" : "KOL-S-9999")
            #expect(notYours == nowhere, "as \(account): \(notYours) against \(nowhere)")
            #expect(!notYours.isEmpty)
        }
    }

    @Test("9. init makes an existing directory private; secrets are never readable by others; havend refuses them")
    func filePermissions() throws {
        let temporary = try TemporaryDirectory("haven-permissions")
        defer { temporary.remove() }
        let root = temporary.url.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        chmod(root.path, 0o755)
        let data = DataDirectory(root)
        try data.initialize(development: true)
        func mode(_ path: String) throws -> Int {
            try #require((FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue)
        }
        #expect(try mode(root.path) == 0o700)
        for path in [data.masterKeyFile, data.caKeyFile, data.serverKeyFile, data.databaseFile, data.configurationFile]
        {
            #expect(try mode(path) == 0o600, "\(path)")
        }
        // Everything else too, with the store open: its log and shared memory
        // (which SQLite gives the database file's mode) exist only then.
        let store = try SQLiteStore(path: data.databaseFile)
        try withExtendedLifetime(store) {
            let everything = try FileManager.default.subpathsOfDirectory(atPath: root.path)
            #expect(everything.contains { $0.hasSuffix(".sqlite-wal") }, "the log is there to check: \(everything)")
            for path in everything {
                #expect(try mode(root.appendingPathComponent(path).path) & 0o077 == 0, "\(path)")
            }
        }
        try data.checkPermissions()

        chmod(data.masterKeyFile, 0o644)
        let refusal = try #require(throws: HavenError.self) { try data.checkPermissions() }
        #expect(refusal.message.contains(data.masterKeyFile))
        #expect(refusal.message.contains("chmod 600 \(data.masterKeyFile)"))
        chmod(data.masterKeyFile, 0o600)
        chmod(root.path, 0o750)
        let directory = try #require(throws: HavenError.self) { try data.checkPermissions() }
        #expect(directory.message.contains("chmod 700 \(root.path)"))
    }

    @Test("9b. the built havend refuses to start on a data directory whose master key others can read")
    func havendRefusesReadableSecrets() throws {
        let havend = RepositoryPaths.root.appendingPathComponent(".build/debug/havend")
        guard FileManager.default.isExecutableFile(atPath: havend.path) else {
            #expect(!runningInCI, "CI builds havend with the tests; \(havend.path) is missing")
            print("SKIPPED: \(havend.path) is not built (run `swift build` first)")
            return
        }
        let temporary = try TemporaryDirectory("haven-havend-permissions")
        defer { temporary.remove() }
        let data = DataDirectory(temporary.url.appendingPathComponent("data"))
        try data.initialize(development: true)
        chmod(data.masterKeyFile, 0o644)
        // Under `timeout`: should the check ever regress, havend would serve instead of exiting.
        let result = try run(
            URL(fileURLWithPath: "/usr/bin/timeout"),
            ["20", havend.path, "--data-dir", data.root.path, "--set", "listen_host=127.0.0.1"]
        )
        let message = String(decoding: result.error + result.output, as: UTF8.self)
        #expect(result.status != 0 && result.status != 124, "havend exited with \(result.status)")
        #expect(message.contains("chmod 600 \(data.masterKeyFile)"), "\(message)")
        #expect(!message.contains("listening"))
    }

    @Test("a secret file is written 0600 even over an existing readable file")
    func secretFileMode() throws {
        let temporary = try TemporaryDirectory("haven-secret")
        defer { temporary.remove() }
        let path = temporary.path("key.pem")
        #expect(
            FileManager.default.createFile(
                atPath: path,
                contents: Data("old".utf8),
                attributes: [.posixPermissions: 0o644]
            )
        )
        try writeSecretFile("new secret (fictional)", to: path)
        let mode = (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue
        #expect(mode == 0o600)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "new secret (fictional)")
    }

    @Test(
        "logged client text stays on one line and within its limit",
        arguments: [
            ("plain/1.0", "plain/1.0"), ("a\nb", "a\\u{a}b"), ("a\r\nb", "a\\u{d}\\u{a}b"),
            ("tab\there", "tab\\u{9}here"),
            ("line\u{2028}sep", "line\\u{2028}sep"), ("back\\slash", "back\\u{5c}slash"),
            ("नमस्ते", "\\u{928}\\u{92e}\\u{938}\\u{94d}\\u{924}\\u{947}"),
        ]
    )
    func logText(input: String, escaped: String) {
        #expect(LogText.escaped(input) == escaped)
        #expect(LogText.escaped(String(repeating: "x", count: 500), limit: 100).count == 101)
    }

    @Test("field limits: every string and repeated field of every request has one, and the checker names the field")
    func fieldLimits() throws {
        for method in MethodCatalog.all {
            #expect(HavenFieldLimits.byMessage[method.requestType] != nil, "\(method.requestType) has limits")
        }
        for (message, fields) in HavenFieldLimits.byMessage {
            for (_, field) in fields where field.name.hasSuffix("_ids") || field.name.hasSuffix("_codes") {
                #expect(field.maxItems != nil && field.maxBytes != nil, "\(message).\(field.name)")
            }
        }
        var event = Haven_V1_AppendCaseEventRequest()
        event.event.note.text = String(repeating: "n", count: 16 * 1024)
        #expect(HavenFieldLimits.violation(in: event) == nil, "exactly at the limit is allowed")
        event.event.note.text += "n"
        #expect(
            HavenFieldLimits.violation(in: event)
                == .init(field: "event.note.text", problem: "longer than 16384 bytes")
        )
        var identity = Haven_V1_RegisterSurvivorRequest()
        identity.identity.contacts = [.with { $0.value = String(repeating: "9", count: 201) }]
        #expect(HavenFieldLimits.violation(in: identity)?.field == "identity.contacts[0].value")
        var hello = Haven_V1_Hello()
        hello.protocolVersions = Array(repeating: 1, count: 17)
        #expect(HavenFieldLimits.violation(in: hello)?.problem == "more than 16 items")
        var multibyte = Haven_V1_OpenCaseRequest()
        multibyte.title = String(repeating: "ক", count: 67)  // 3 bytes each: 201 bytes
        #expect(HavenFieldLimits.violation(in: multibyte)?.field == "title", "limits count UTF-8 bytes")
    }

    @Test("a list page stops before 1.5 MiB and continues exactly after its last record")
    func pagesAreBounded() throws {
        func survivor(_ index: Int, bytes: Int) -> Haven_V1_Survivor {
            .with {
                $0.id = "srv_\(index)"
                $0.code = String(format: "KOL-S-%04d", index)
                $0.createdAtUnixMs = Int64(1000 - index)
                $0.services = [.with { $0.detail = String(repeating: "d", count: bytes) }]
            }
        }
        let records = (0..<10).map { survivor($0, bytes: 400 * 1024) }
        let page = RecordPage(records: records, next: nil).bounded(order: .aliasAscending)
        #expect(page.records.count == 3, "three of 400 KiB fit in 1.5 MiB")
        #expect(page.next == PageCursor(alias: "KOL-S-0002", id: "srv_2"))
        let small = RecordPage(records: (0..<10).map { survivor($0, bytes: 10) }, next: nil)
        #expect(small.bounded(order: .newestFirst).records.count == 10)
        #expect(small.bounded(order: .newestFirst).next == nil)
        let huge = RecordPage(records: [survivor(0, bytes: 1_000_000), survivor(1, bytes: 1_000_000)], next: nil)
        #expect(huge.bounded(order: .newestFirst).records.count == 1, "a page always holds one record")
        #expect(huge.bounded(order: .newestFirst).next == PageCursor(sortKey: 1000, id: "srv_0"))
    }
}
