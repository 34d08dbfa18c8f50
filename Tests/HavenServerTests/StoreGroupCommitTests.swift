import Dispatch
import Foundation
import HavenProtocol
import HavenServer
import HavenStore
import HavenTestSupport
import MetricsTestKit
import Synchronization
import Testing

/// Group commit in the SQLite store, end to end below the server: writes
/// lined up behind a busy writer commit together, each audited, each
/// acknowledged with its own outcome.
@Suite("SQLite group commit", .serialized)
struct StoreGroupCommitTests {
    static func office(_ code: String) -> Haven_V1_Office {
        var office = Haven_V1_Office()
        office.code = code
        office.name = "\(code) field office"
        office.status = .active
        office.version = 1
        office.createdAtUnixMs = 1
        office.updatedAtUnixMs = 1
        return office
    }

    /// What each caller was told.
    final class Told<Key: Hashable & Sendable>: Sendable {
        let values = Mutex<[Key: String]>([:])
        func record(_ key: Key, _ outcome: String) { self.values.withLock { $0[key] = outcome } }
        var all: [Key: String] { self.values.withLock { $0 } }
    }

    /// How many times each write's body ran.
    final class Runs: Sendable {
        private let values = Mutex<[Int: Int]>([:])
        func count(_ key: Int) { self.values.withLock { $0[key, default: 0] += 1 } }
        var all: [Int: Int] { self.values.withLock { $0 } }
    }

    struct Fixture {
        let store: SQLiteStore
        let metrics: TestMetrics
        let directory: TemporaryDirectory

        /// Commits recorded so far, each as the number of writes it committed.
        func groups() throws -> [Double] {
            try self.metrics.expectRecorder(StoreMetricNames.commitBatchSize).values
        }

        func verdict() async throws -> Haven_V1_AuditVerdict {
            try await AuditVerifier(store: self.store, publicKey: .init()).verify()
        }
    }

    func withStore(_ body: (Fixture) async throws -> Void) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let metrics = TestMetrics()
        let store = try SQLiteStore(
            path: directory.path("haven.sqlite"),
            keys: freshStoreKeys(),
            instruments: StoreInstruments(factory: metrics)
        )
        defer { try? store.close() }
        try await body(Fixture(store: store, metrics: metrics, directory: directory))
    }

    /// Inserts an office with its audit entry, as a call's write does.
    static func insertAudited(_ tx: any StoreWriter, _ code: String) throws {
        try tx.insert(Self.office(code))
        try tx.appendAudit(NewAuditEntry(atUnixMs: 1, principalID: "test", action: "test.write"))
    }

    @Test("writes that wait together commit together, each durable and in the audit chain")
    func writesShareCommits() async throws {
        try await self.withStore { fixture in
            let store = fixture.store
            try await store.holdingTheWriter { release in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for index in 0..<200 {
                        group.addTask { try await store.audited { tx in try tx.insert(Self.office("O\(index)")) } }
                    }
                    try await store.untilWaiting(200)
                    release()
                    try await group.waitForAll()
                }
            }
            // The held write alone, then the 200 in groups of at most 128.
            #expect(try fixture.groups() == [1, 128, 72])
            let stored = try await store.read { tx in
                (0..<200).compactMap { try? tx.load(Haven_V1_Office.self, id: "O\($0)") }
            }
            #expect(stored.count == 200)
            #expect(try await store.read { try $0.auditSize() } == 200)
            let verdict = try await fixture.verdict()
            #expect(verdict.intact, "\(verdict.problem)")
            #expect(verdict.entries == 200)

            // Reopened, everything acknowledged is there.
            try store.close()
            let reopened = try SQLiteStore(path: fixture.directory.path("haven.sqlite"), keys: store.keys)
            defer { try? reopened.close() }
            #expect(try await reopened.read { try $0.auditSize() } == 200)
        }
    }

    @Test("a write that fails in a group is rolled back alone; the others commit and say so")
    func failureStaysWithItsWrite() async throws {
        try await self.withStore { fixture in
            let store = fixture.store
            let results = Told<Int>()
            try await store.holdingTheWriter { release in
                await withTaskGroup(of: Void.self) { group in
                    for index in 0..<10 {
                        group.addTask {
                            do {
                                try await store.audited { tx in
                                    try tx.insert(Self.office("F\(index)"))
                                    if index % 2 == 1 {
                                        throw HavenError(code: .failedPrecondition, message: "refused \(index)")
                                    }
                                }
                                results.record(index, "ok")
                            } catch let error as HavenError {
                                results.record(index, error.message)
                            } catch {
                                results.record(index, "\(error)")
                            }
                        }
                    }
                    try? await store.untilWaiting(10)
                    release()
                }
            }
            let told = results.all
            for index in 0..<10 {
                #expect(told[index] == (index % 2 == 0 ? "ok" : "refused \(index)"))
            }
            let stored = try await store.read { tx in
                try (0..<10).filter { try tx.load(Haven_V1_Office.self, id: "F\($0)") != nil }
            }
            #expect(stored == [0, 2, 4, 6, 8])
            #expect(try fixture.groups() == [1, 5])
            let verdict = try await fixture.verdict()
            #expect(verdict.intact, "\(verdict.problem)")
            #expect(verdict.entries == 5)
        }
    }

    @Test(
        "in a group, a write refused before it changed anything leaves the transaction as it was; one that fails after changing something has the writes before it run again, once, and each write is answered once"
    )
    func runsOfEachBody() async throws {
        try await self.withStore { fixture in
            let store = fixture.store
            let runs = Runs()
            let results = Told<Int>()
            let refused: Set<Int> = [1, 5]
            let failsAfterWriting = 3
            try await store.holdingTheWriter { release in
                await withTaskGroup(of: Void.self) { group in
                    // One at a time, so that the group runs them in this order.
                    for index in 0..<6 {
                        group.addTask {
                            do {
                                try await store.audited { tx in
                                    runs.count(index)
                                    if refused.contains(index) {
                                        throw HavenError(code: .failedPrecondition, message: "refused \(index)")
                                    }
                                    try tx.insert(Self.office("R\(index)"))
                                    if index == failsAfterWriting {
                                        throw HavenError(code: .failedPrecondition, message: "failed after writing")
                                    }
                                }
                                results.record(index, "ok")
                            } catch let error as HavenError {
                                results.record(index, error.message)
                            } catch {
                                results.record(index, "\(error)")
                            }
                        }
                        try? await store.untilWaiting(index + 1)
                    }
                    release()
                }
            }
            #expect(
                results.all == [
                    0: "ok", 1: "refused 1", 2: "ok", 3: "failed after writing", 4: "ok", 5: "refused 5",
                ]
            )
            // 0 and 2 ran again after 3 took their transaction down; nothing else did.
            #expect(runs.all == [0: 2, 1: 1, 2: 2, 3: 1, 4: 1, 5: 1])
            #expect(try fixture.metrics.expectCounter(StoreMetricNames.repeatedWrites).totalValue == 2)
            let stored = try await store.read { tx in
                try (0..<6).filter { try tx.load(Haven_V1_Office.self, id: "R\($0)") != nil }
            }
            #expect(stored == [0, 2, 4])
            #expect(try fixture.groups() == [1, 3])
            let verdict = try await fixture.verdict()
            #expect(verdict.intact && verdict.entries == 3, "\(verdict.problem)")
        }
    }

    @Test(
        "record keys unwrapped in a group serve the writes after them, but not past a rolled-back write that created one, nor past an erasure"
    )
    func recordKeysWithinAGroup() async throws {
        @Sendable func survivor(_ id: String, version: UInt64) -> Haven_V1_Survivor {
            var survivor = Haven_V1_Survivor()
            survivor.id = id
            survivor.code = "KOL-S-\(id)"
            survivor.officeCode = "KOL"
            survivor.version = version
            return survivor
        }
        @Sendable func identity(_ name: String) -> Haven_V1_SurvivorIdentity {
            var identity = Haven_V1_SurvivorIdentity()
            identity.legalName = name
            return identity
        }
        try await self.withStore { fixture in
            let store = fixture.store
            let writes: [@Sendable (any StoreWriter) throws -> Void] = [
                // s1: created with a new key, then rolled back; created again.
                { tx in
                    try tx.insert(survivor("s1", version: 1), identity: identity("Fictional Rolled Back"))
                    throw HavenError(code: .failedPrecondition, message: "refused")
                },
                { tx in try tx.insert(survivor("s1", version: 1), identity: identity("Fictional Two")) },
                // s2: created, erased, then given an identity again (a new key).
                { tx in try tx.insert(survivor("s2", version: 1), identity: identity("Fictional Three")) },
                { tx in try tx.update(survivor("s2", version: 2), expectedVersion: 1, sealed: .erase) },
                { tx in
                    try tx.update(
                        survivor("s2", version: 3),
                        expectedVersion: 2,
                        sealed: .identity(identity("Fictional Five"))
                    )
                },
            ]
            let results = Told<Int>()
            try await store.holdingTheWriter { release in
                await withTaskGroup(of: Void.self) { group in
                    for (index, write) in writes.enumerated() {
                        group.addTask {
                            do {
                                try await store.audited { tx in try write(tx) }
                                results.record(index, "ok")
                            } catch {
                                results.record(index, "\(error)")
                            }
                        }
                        // In this order in the group.
                        try? await store.untilWaiting(index + 1)
                    }
                    release()
                }
            }
            // The held write, then one group: its four writes that committed.
            #expect(try fixture.groups() == [1, 4])
            #expect(results.all[0] != "ok")
            #expect((1..<5).map { results.all[$0] } == ["ok", "ok", "ok", "ok"])
            let identities = try await store.read { tx in
                (try tx.identity(survivorID: "s1")?.legalName, try tx.identity(survivorID: "s2")?.legalName)
            }
            #expect(identities.0 == "Fictional Two")
            #expect(identities.1 == "Fictional Five")
            let verdict = try await fixture.verdict()
            #expect(verdict.intact, "\(verdict.problem)")
        }
    }

    @Test(
        "an account read in a group serves the writes after it, but not past a write that saves it, nor past a rolled-back write"
    )
    func accountsWithinAGroup() async throws {
        @Sendable func caseworker(enabled: Bool) -> Account {
            Account(
                id: "cw-1",
                displayName: "Fictional Caseworker",
                role: .caseworker,
                officeCodes: ["KOL"],
                enabled: enabled,
                createdAtUnixMs: 1
            )
        }
        try await self.withStore { fixture in
            let store = fixture.store
            try await store.audited { tx in try tx.saveAccount(caseworker(enabled: true)) }
            let read = Told<Int>()
            @Sendable func enabled(_ tx: any StoreWriter) throws -> String {
                try tx.account(id: "cw-1").map { $0.enabled ? "enabled" : "disabled" } ?? "none"
            }
            let writes: [@Sendable (Int, any StoreWriter) throws -> Void] = [
                { index, tx in read.record(index, try enabled(tx)) },
                { index, tx in read.record(index, try enabled(tx)) },
                // Disabled: the writes after it see it disabled.
                { _, tx in try tx.saveAccount(caseworker(enabled: false)) },
                { index, tx in read.record(index, try enabled(tx)) },
                // Enabled again, read back within the write, and rolled back.
                { index, tx in
                    try tx.saveAccount(caseworker(enabled: true))
                    read.record(index, try enabled(tx))
                    throw HavenError(code: .failedPrecondition, message: "refused")
                },
                { index, tx in read.record(index, try enabled(tx)) },
                { index, tx in read.record(index, try tx.account(id: "cw-2") == nil ? "none" : "some") },
            ]
            try await store.holdingTheWriter { release in
                await withTaskGroup(of: Void.self) { group in
                    for (index, write) in writes.enumerated() {
                        group.addTask { try? await store.audited { tx in try write(index, tx) } }
                        // In this order in the group.
                        try? await store.untilWaiting(index + 1)
                    }
                    release()
                }
            }
            // The first write, the held one, then one group: its six writes that committed.
            #expect(try fixture.groups() == [1, 1, 6])
            #expect(
                read.all == [
                    0: "enabled", 1: "enabled", 3: "disabled", 4: "enabled", 5: "disabled", 6: "none",
                ]
            )
            #expect(try await store.read { try $0.account(id: "cw-1")?.enabled } == false)
        }
    }

    @Test(
        "a call's write cancelled while it waits for the writer is told CANCELLED and nothing of it is written; a plain write (an audit entry's) and the rest of the group commit"
    )
    func cancelledWhileWaiting() async throws {
        try await self.withStore { fixture in
            let store = fixture.store
            try await store.holdingTheWriter { release in
                let cancelled = Task { try await store.writeUnlessCancelled { tx in try Self.insertAudited(tx, "C1") } }
                let other = Task { try await store.writeUnlessCancelled { tx in try Self.insertAudited(tx, "C2") } }
                let audit = Task { try await store.audited { tx in try tx.insert(Self.office("C3")) } }
                try await store.untilWaiting(3)
                cancelled.cancel()
                audit.cancel()
                release()
                let error = await #expect(throws: HavenError.self) { try await cancelled.value }
                #expect(error?.code == .cancelled)
                try await other.value
                try await audit.value
            }
            let stored = try await store.read { tx in
                ["C1", "C2", "C3"].map { try? tx.load(Haven_V1_Office.self, id: $0) }
            }
            #expect(stored[0] == nil, "the cancelled call's write was not run")
            #expect(stored[1] != nil)
            #expect(stored[2] != nil, "a plain write (an audit entry's) is made whatever its caller does")
            #expect(try fixture.groups() == [1, 2], "the held write, then C2 and C3")
            #expect(try await store.read { try $0.auditSize() } == 2, "C2's and C3's entries")
            #expect(try fixture.metrics.expectCounter(StoreMetricNames.cancelledWrites).totalValue == 1)
            let verdict = try await fixture.verdict()
            #expect(verdict.intact, "\(verdict.problem)")
        }
    }

    @Test("a call's write cancelled after the writer took it up is not interrupted: it commits with its group")
    func cancelledWhileRunning() async throws {
        try await self.withStore { fixture in
            let store = fixture.store
            let running = DispatchSemaphore(value: 0)
            let proceed = DispatchSemaphore(value: 0)
            let write = Task {
                try await store.writeUnlessCancelled { tx in
                    running.signal()
                    proceed.wait()
                    try Self.insertAudited(tx, "R1")
                }
            }
            await withCheckedContinuation { continuation in
                DispatchQueue.global().async {
                    running.wait()
                    continuation.resume()
                }
            }
            write.cancel()
            proceed.signal()
            try await write.value
            #expect(try await store.read { try $0.load(Haven_V1_Office.self, id: "R1") } != nil)
        }
    }

    @Test("a full disk fails the writes it reaches with RESOURCE_EXHAUSTED, and the store writes again once freed")
    func fullDiskInAGroup() async throws {
        try await self.withStore { fixture in
            let store = fixture.store
            try await store.audited { tx in try tx.insert(Self.office("KOL")) }
            try store.limitPages(0)
            let padding = String(repeating: "x", count: 64 * 1024)
            let outcomes = Told<Int>()
            try await store.holdingTheWriter { release in
                await withTaskGroup(of: Void.self) { group in
                    for index in 0..<4 {
                        group.addTask {
                            do {
                                try await store.audited { tx in
                                    var office = Self.office("D\(index)")
                                    office.name = padding
                                    try tx.insert(office)
                                }
                                outcomes.record(index, "ok")
                            } catch let error as HavenError {
                                outcomes.record(index, "\(error.code)")
                            } catch {
                                outcomes.record(index, "\(error)")
                            }
                        }
                    }
                    try? await store.untilWaiting(4)
                    release()
                }
            }
            #expect(outcomes.all.count == 4)
            #expect(outcomes.all.values.allSatisfy { $0 == "\(HavenError.Code.resourceExhausted)" }, "\(outcomes.all)")
            try store.limitPages(nil)
            try await store.audited { tx in try tx.insert(Self.office("AFTER")) }
            let verdict = try await fixture.verdict()
            #expect(verdict.intact, "\(verdict.problem)")
        }
    }
}
