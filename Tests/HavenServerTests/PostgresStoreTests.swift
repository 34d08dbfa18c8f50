import Foundation
import HavenProtocol
import HavenServer
import HavenStore
import HavenTestSupport
import SwiftProtobuf
import Testing

/// What only a PostgreSQL store can do or suffer: several instances on one
/// database, its connections killed, its URL. (What every store does is the
/// conformance suite's, which runs its PostgreSQL cases under the same
/// condition.)
@Suite("PostgreSQL store", .serialized, .heavy, .enabled(if: TestPostgres.isEnabled, TestPostgres.skipped))
struct PostgresStoreTests {
    /// Two stores (two havend instances' worth) on one fresh database.
    func withTwoInstances(_ body: (PostgresStore, PostgresStore, PostgresLocation) async throws -> Void) async throws {
        let keys = freshStoreKeys()
        try await TestPostgres.withStore(keys: keys) { first, location in
            let second = try await PostgresStore.open(location, keys: keys)
            try await second.whileRunning { try await body(first, second, location) }
        }
    }

    @Test(
        "a write through one instance is read through the other; of two updates from one version through different instances, one wins and the other learns the current version"
    )
    func twoInstances() async throws {
        try await self.withTwoInstances { first, second, _ in
            try await first.audited { tx in try tx.insert(StoreConformanceTests.office("KOL")) }
            let seen = try await second.read { try $0.load(Haven_V1_Office.self, id: "KOL") }
            #expect(seen?.name == "KOL field office")

            var one = StoreConformanceTests.office("KOL")
            one.name = "through the first"
            one.version = 2
            var other = one
            other.name = "through the second"
            async let a: String = Self.outcome {
                try await first.audited { [one] tx in try tx.update(one, expectedVersion: 1) }
            }
            async let b: String = Self.outcome {
                try await second.audited { [other] tx in try tx.update(other, expectedVersion: 1) }
            }
            let outcomes = [try await a, try await b].sorted()
            #expect(outcomes == ["\(HavenError.Code.failedPrecondition) 2", "won"])
            let stored = try await first.read { try $0.load(Haven_V1_Office.self, id: "KOL") }
            #expect(stored?.version == 2)
        }
    }

    static func outcome(_ write: () async throws -> Void) async throws -> String {
        do {
            try await write()
            return "won"
        } catch let error as HavenError {
            return "\(error.code) \(error.currentVersion ?? 0)"
        }
    }

    @Test("concurrent writes through both instances leave one linear audit chain that verifies, and gap-free counters")
    func oneChain() async throws {
        try await self.withTwoInstances { first, second, _ in
            let values = try await withThrowingTaskGroup(of: UInt64.self) { group in
                for index in 0..<80 {
                    let store = index.isMultiple(of: 2) ? first : second
                    group.addTask {
                        try await store.audited { tx in
                            try tx.insert(StoreConformanceTests.office("O\(index)"))
                            return try tx.nextCounterValue("shared")
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(values.sorted() == Array(1...80))
            let verdict = try await AuditVerifier(store: second, publicKey: Data()).verify()
            #expect(verdict.intact, "\(verdict.problem)")
            let size = try await first.read { try $0.auditSize() }
            #expect(size == 80)
        }
    }

    @Test(
        "a feed subscriber on one instance learns of changes committed through the other, and reads them without gap or duplicate"
    )
    func feedAcrossInstances() async throws {
        try await self.withTwoInstances { first, second, _ in
            var notifications = first.changeNotifications().makeAsyncIterator()
            _ = await notifications.next()  // what was committed when it subscribed
            for index in 1...5 {
                _ = try await second.audited { tx in
                    try tx.appendChange(
                        NewChange(
                            event: Haven_V1_ChangeEvent.with { $0.committedAtUnixMs = Int64(index) },
                            officeCode: "KOL"
                        )
                    )
                }
            }
            var latest: UInt64 = 0
            let deadline = ContinuousClock.now + .seconds(5)
            while latest < 5, ContinuousClock.now < deadline {
                latest = await notifications.next() ?? latest
            }
            #expect(latest == 5)
            let changes = try await first.read { try $0.changes(after: 0, limit: 100) }
            #expect(changes.map(\.sequence) == [1, 2, 3, 4, 5])
        }
    }

    @Test(
        "with its connections killed under load, calls fail UNAVAILABLE, nothing acknowledged is lost, and the store recovers"
    )
    func connectionsKilled() async throws {
        try await TestPostgres.withStore(keys: freshStoreKeys()) { store, location in
            let base = try PostgresLocation(url: try #require(TestPostgres.url))
            // Each writer: the ids acknowledged, and the codes of the calls that failed.
            let outcomes = try await withThrowingTaskGroup(of: ([String], [HavenError.Code]).self) { group in
                for writer in 0..<8 {
                    group.addTask {
                        var acknowledged: [String] = []
                        var failed: [HavenError.Code] = []
                        for index in 0..<40 {
                            let id = "W\(writer)-\(index)"
                            do {
                                try await store.audited { tx in try tx.insert(StoreConformanceTests.office(id)) }
                                acknowledged.append(id)
                            } catch let error as HavenError {
                                failed.append(error.code)
                            }
                        }
                        return (acknowledged, failed)
                    }
                }
                group.addTask {
                    for _ in 0..<4 {
                        try await Task.sleep(for: .milliseconds(60))
                        try await TestPostgres.onServer(
                            base,
                            """
                            SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                            WHERE datname = '\(location.database)' AND pid <> pg_backend_pid()
                            """
                        )
                    }
                    return ([], [])
                }
                return try await group.reduce(into: [([String], [HavenError.Code])]()) { $0.append($1) }
            }
            let acknowledged = outcomes.flatMap(\.0)
            let failed = outcomes.flatMap(\.1)
            #expect(!failed.isEmpty, "the kills interrupted no call")
            #expect(failed.allSatisfy { $0 == .unavailable }, "\(failed)")
            // Recovered: a write and a read succeed again.
            try await store.audited { tx in try tx.insert(StoreConformanceTests.office("AFTER")) }
            let stored = Set(
                try await store.read {
                    try $0.page(Haven_V1_Office.self, RecordQuery(order: .idAscending, limit: 1000)).records.map(\.code)
                }
            )
            let lost = acknowledged.filter { !stored.contains($0) }
            #expect(lost.isEmpty, "acknowledged and lost: \(lost)")
            #expect(stored.contains("AFTER"))
            let verdict = try await AuditVerifier(store: store, publicKey: Data()).verify()
            #expect(verdict.intact, "\(verdict.problem)")
        }
    }

    @Test(
        "the writer and the read pool prepare their statements once per connection and run them again; a table changed under them: a read runs again by itself, one write fails UNAVAILABLE and the next prepares anew; a new connection starts with none"
    )
    func preparedStatements() async throws {
        try await TestPostgres.withStore(keys: freshStoreKeys()) { store, location in
            @Sendable func rename(_ code: String, to name: String) async throws {
                try await store.audited { tx in
                    guard var office = try tx.load(Haven_V1_Office.self, id: code) else {
                        throw HavenError(code: .notFound, message: "no office \(code)")
                    }
                    office.name = name
                    office.version += 1
                    try tx.update(office, expectedVersion: office.version - 1)
                }
            }
            try await store.audited { tx in try tx.insert(StoreConformanceTests.office("KOL")) }
            try await rename("KOL", to: "Kolkata")
            let prepared = store.preparedStatements
            #expect(prepared > 0)
            // The same writes again, for this office and another.
            for index in 0..<5 { try await rename("KOL", to: "Kolkata \(index)") }
            try await store.audited { tx in try tx.insert(StoreConformanceTests.office("MUM")) }
            try await rename("MUM", to: "Mumbai")
            #expect(store.preparedStatements == prepared, "statements run again, not prepared again")
            for _ in 0..<20 {
                let name = try await store.read { try $0.load(Haven_V1_Office.self, id: "MUM")?.name }
                #expect(name == "Mumbai")
            }
            let preparedReads = store.preparedReadStatements
            #expect(preparedReads > 0)

            // What a prepared statement selects changes type under it. A read
            // on any pooled connection runs again by itself; a write fails once.
            try await TestPostgres.onServer(location, "ALTER TABLE record ALTER COLUMN officeCode TYPE varchar(64)")
            for _ in 0..<20 {
                let name = try await store.read { try $0.load(Haven_V1_Office.self, id: "MUM")?.name }
                #expect(name == "Mumbai")
            }
            let failed = await #expect(throws: HavenError.self) { try await rename("KOL", to: "Kolkata field office") }
            #expect(failed?.code == .unavailable)
            try await rename("KOL", to: "Kolkata field office")
            let stored = try await store.read { try $0.load(Haven_V1_Office.self, id: "KOL") }
            #expect(stored?.name == "Kolkata field office" && stored?.version == 8)

            // A new connection prepares its own.
            try await TestPostgres.onServer(
                location,
                """
                SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                WHERE datname = '\(location.database)' AND pid <> pg_backend_pid()
                """
            )
            // Writes fail UNAVAILABLE until the writer has connected again.
            var recovered = false
            let deadline = ContinuousClock.now + .seconds(10)
            while !recovered, ContinuousClock.now < deadline {
                recovered = (try? await rename("MUM", to: "Mumbai field office")) != nil
                if !recovered { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(recovered)
            #expect(store.preparedStatements > 0 && store.preparedStatements <= prepared)
            let verdict = try await AuditVerifier(store: store, publicKey: Data()).verify()
            #expect(verdict.intact, "\(verdict.problem)")
        }
    }

    @Test(
        "readiness: while the database refuses connections, writes fail UNAVAILABLE and readiness says the database is unreachable; once it takes them again, writes succeed and readiness clears"
    )
    func readiness() async throws {
        try await TestPostgres.withStore(keys: freshStoreKeys()) { store, location in
            #expect(await store.unwritableReason() == nil)
            try await store.audited { tx in try tx.insert(StoreConformanceTests.office("KOL")) }
            var maintenance = location
            maintenance.database = "postgres"
            try await TestPostgres.onServer(
                maintenance,
                "ALTER DATABASE \(location.database) WITH ALLOW_CONNECTIONS false"
            )
            try await TestPostgres.onServer(
                maintenance,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '\(location.database)'"
            )
            // The first write may meet the killed connection, the next must fail to connect.
            var codes: [HavenError.Code] = []
            for attempt in 0..<3 {
                do {
                    try await store.audited { tx in try tx.insert(StoreConformanceTests.office("M\(attempt)")) }
                } catch let error as HavenError {
                    codes.append(error.code)
                }
            }
            #expect(codes.count == 3 && codes.allSatisfy { $0 == .unavailable }, "\(codes)")
            let reason = await store.unwritableReason()
            #expect(reason == "the last write failed: database unreachable", "\(reason ?? "ready")")

            try await TestPostgres.onServer(
                maintenance,
                "ALTER DATABASE \(location.database) WITH ALLOW_CONNECTIONS true"
            )
            try await store.audited { tx in try tx.insert(StoreConformanceTests.office("MUM")) }
            #expect(await store.unwritableReason() == nil)
            let stored = try await store.read { tx in
                try ["KOL", "M0", "M1", "M2", "MUM"].filter { try tx.load(Haven_V1_Office.self, id: $0) != nil }
            }
            #expect(stored == ["KOL", "MUM"], "nothing of the failed writes")
        }
    }

    /// A survivor of office KOL with a (fictional) sealed identity.
    static func survivor() -> (Haven_V1_Survivor, Haven_V1_SurvivorIdentity) {
        var survivor = Haven_V1_Survivor()
        survivor.id = "s1"
        survivor.code = "KOL-S-0001"
        survivor.officeCode = "KOL"
        survivor.version = 1
        var identity = Haven_V1_SurvivorIdentity()
        identity.legalName = "Fictional Name"
        return (survivor, identity)
    }

    @Test(
        "a SQLite store copied into a new database: the same records, sealed notes and identities, change sequences, and an audit chain that verifies across the move; a second copy is refused"
    )
    func copyFromSQLite() async throws {
        let directory = try TemporaryDirectory("haven-copy")
        defer { directory.remove() }
        let keys = freshStoreKeys()
        let source = try SQLiteStore(path: directory.path("haven.sqlite"), keys: keys)
        defer { try? source.close() }
        var head = StoreConformanceTests.caseRecord("c1", reference: "KOL-2026-0001", openedAt: 5)
        head.events = [
            StoreConformanceTests.note("raid fictional lane", on: 2),
            StoreConformanceTests.note("statement taken", on: 3),
        ]
        for (index, _) in head.events.enumerated() { head.events[index].sequence = UInt32(index + 1) }
        head.eventCount = 2
        let (survivor, identity) = Self.survivor()
        try await source.audited { [head, survivor, identity] tx in
            try tx.insert(StoreConformanceTests.office("KOL"))
            try tx.insert(head)
            try tx.insert(survivor, identity: identity)
            try tx.appendChange(
                NewChange(event: Haven_V1_ChangeEvent.with { $0.committedAtUnixMs = 5 }, officeCode: "KOL")
            )
            try tx.saveAccount(
                Account(
                    id: "worker-kol",
                    displayName: "Caseworker (fictional)",
                    role: .caseworker,
                    officeCodes: ["KOL"],
                    createdAtUnixMs: 1
                )
            )
        }
        let sourceAudit = try await source.read { try $0.auditSize() }

        try await TestPostgres.withStore(keys: keys) { target, _ in
            let report = try await target.copy(from: source, principalID: "test", atUnixMs: 9)
            #expect(report.rows["record"] == 3)
            #expect(report.rows["caseEvent"] == 2)
            #expect(report.rows["audit"] == Int(sourceAudit))
            let copied = try await target.read { try $0.load(Haven_V1_Case.self, id: "c1") }
            #expect(copied?.reference == "KOL-2026-0001")
            let notes = try await target.read { try $0.caseEvents(.timeline("c1", limit: 10)) }.map(\.event.note.text)
            #expect(notes == ["raid fictional lane", "statement taken"])
            let opened = try await target.read { try $0.identity(survivorID: "s1") }
            #expect(opened?.legalName == "Fictional Name")
            let account = try await target.read { try $0.account(id: "worker-kol") }
            #expect(account?.enabled == true)
            let verdict = try await AuditVerifier(store: target, publicKey: Data()).verify()
            #expect(verdict.intact, "\(verdict.problem)")
            let size = try await target.read { try $0.auditSize() }
            #expect(size == sourceAudit + 1)
            var newest = AuditQuery(limit: 1)
            newest.newestFirst = true
            let last = try await target.read { [newest] in try $0.auditEntries(newest) }.first
            #expect(last?.action == "store.copy")
            // The change log goes on after the copied sequences.
            let next = try await target.audited { tx in
                try tx.appendChange(
                    NewChange(event: Haven_V1_ChangeEvent.with { $0.committedAtUnixMs = 6 }, officeCode: "KOL")
                )
            }
            #expect(next == 2)
            let again = await #expect(throws: HavenError.self) {
                try await target.copy(from: source, principalID: "test", atUnixMs: 10)
            }
            #expect(again?.code == .failedPrecondition)
            let unchanged = try await target.read { try $0.auditSize() }
            #expect(unchanged == sourceAudit + 2)
        }
    }

    @Test(
        "a snapshot for a backup: every table in one SQLite file of the embedded schema, more rows than one scan batch, sealed fields opening with the same keys, the chain verifying there; a write racing it is either wholly in it or not at all"
    )
    func snapshot() async throws {
        let directory = try TemporaryDirectory("haven-pg-snapshot")
        defer { directory.remove() }
        let keys = freshStoreKeys()
        try await TestPostgres.withStore(keys: keys) { store, _ in
            let (survivor, identity) = Self.survivor()
            try await store.audited { [survivor, identity] tx in
                try tx.insert(StoreConformanceTests.office("KOL"))
                try tx.insert(survivor, identity: identity)
            }
            // More than one scan batch of offices, each with its audit entry.
            let offices = 1_250  // scans fetch 1,000 rows at a time
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<offices {
                    group.addTask {
                        try await store.audited { tx in try tx.insert(StoreConformanceTests.office("P\(index)")) }
                    }
                }
                try await group.waitForAll()
            }
            // One more write racing the snapshot.
            async let racing: Void = store.audited { tx in try tx.insert(StoreConformanceTests.office("RACE")) }
            let path = directory.path("snapshot.sqlite")
            let info = try await store.snapshot(to: path)
            try await racing
            #expect(
                !FileManager.default.fileExists(atPath: path + "-wal")
                    || (try? Data(contentsOf: URL(fileURLWithPath: path + "-wal")))?.isEmpty == true,
                "one file"
            )

            let copy = try SQLiteStore(path: path, keys: keys)
            defer { try? copy.close() }
            let size = try await copy.read { try $0.auditSize() }
            #expect(info.auditEntries == size)
            #expect(size == UInt64(offices + 1) || size == UInt64(offices + 2))
            let racedIn = try await copy.read { try $0.load(Haven_V1_Office.self, id: "RACE") } != nil
            #expect(racedIn == (size == UInt64(offices + 2)), "the racing write with its audit entry, or neither")
            let opened = try await copy.read { try $0.identity(survivorID: "s1") }
            #expect(opened?.legalName == "Fictional Name")
            let verdict = try await AuditVerifier(store: copy, publicKey: Data()).verify()
            #expect(verdict.intact, "\(verdict.problem)")
            #expect(try copy.integrityCheck() == "ok")
        }
    }

    @Test("instances starting together migrate once; a schema newer than the software is refused as DATA_LOSS")
    func migrations() async throws {
        let (location, drop) = try await TestPostgres.freshDatabase()
        do {
            async let a = PostgresStore.open(location)
            async let b = PostgresStore.open(location)
            let stores = [try await a, try await b]
            try await withThrowingTaskGroup { group in
                for store in stores { group.addTask { try await store.run() } }
                group.cancelAll()
                try await group.waitForAll()
            }
            let applied = try await TestPostgres.count(location, "SELECT COUNT(*) FROM havenMigration")
            #expect(applied == Int64(PostgresStore.migrations.count))
            let epochs = try await TestPostgres.count(location, "SELECT COUNT(*) FROM meta WHERE name = 'feed-epoch'")
            #expect(epochs == 1)
            // v8: the reports' index of events orders a day's events by their (time-ordered) id.
            let byDayInOrder = try await TestPostgres.count(
                location,
                """
                SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'caseevent_office_day'
                    AND indexdef LIKE '%(officecode, occurredon, id)'
                """
            )
            #expect(byDayInOrder == 1)
            // v9: the change log's index by record holds only entries with sealed fields.
            let sealedOnly = try await TestPostgres.count(
                location,
                """
                SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'change_record'
                    AND indexdef LIKE '%WHERE (sealed IS NOT NULL)'
                """
            )
            #expect(sealedOnly == 1)
            // v10: an appended event's row names the audit entry that appended it.
            let auditSequence = try await TestPostgres.count(
                location,
                """
                SELECT COUNT(*) FROM information_schema.columns
                    WHERE table_name = 'caseevent' AND column_name = 'auditsequence' AND data_type = 'bigint'
                """
            )
            #expect(auditSequence == 1)
            try await TestPostgres.onServer(
                location,
                "INSERT INTO havenMigration (name, appliedAt) VALUES ('v99-from-the-future', 0)"
            )
            let refused = await #expect(throws: HavenError.self) { _ = try await PostgresStore.open(location) }
            #expect(refused?.code == .dataLoss)
        } catch {
            await drop()
            throw error
        }
        await drop()
    }

    @Test("its URL: TLS verified by default off loopback, no plaintext to a remote host, the password never repeated")
    func location() throws {
        let local = try PostgresLocation(url: "postgres://haven:s3cret@127.0.0.1:5433/haven")
        #expect(local.tls == .disable)
        #expect(local.port == 5433)
        #expect(!local.redacted.contains("s3cret"))
        let remote = try PostgresLocation(url: "postgres://haven:s3cret@db.example.org/haven")
        #expect(remote.tls == .verifyFull)
        #expect(remote.port == 5432)
        let plaintext = #expect(throws: HavenError.self) {
            try PostgresLocation(url: "postgres://haven:s3cret@db.example.org/haven?sslmode=disable")
        }
        #expect(plaintext?.code == .invalidArgument)
        #expect(plaintext?.message.contains("s3cret") == false)
        for bad in [
            "mysql://haven@h/db", "postgres://h/db", "postgres://u@h/", "postgres://u@h/db?sslmode=prefer",
            "postgres://u@h/db?x=1",
        ] {
            let error = #expect(throws: HavenError.self) { try PostgresLocation(url: bad) }
            #expect(error?.code == .invalidArgument)
        }
    }
}
