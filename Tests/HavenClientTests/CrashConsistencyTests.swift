import Foundation
import HavenClient
import HavenProtocol
import HavenServer
import HavenStore
import HavenTestSupport
import Synchronization
import Testing

/// Crash consistency, as a test: writes through HavenClient on several
/// connections while havend is SIGKILLed at random moments, then restarted.
/// Every write a client saw acknowledged must be there, no write half-applied,
/// the database intact and the audit chain whole. A few kills in the suite;
/// `HAVEN_LONG=1` runs twenty-five.
@Suite("Crash consistency")
struct CrashConsistencyTests {
    static let long = ProcessInfo.processInfo.environment["HAVEN_LONG"] != nil
    static let kills = Self.long ? 25 : 3
    /// Connections per writing account: three by hand; one in the suite, which shares two cores with every other test.
    static let connectionsPerAccount = Self.long ? 3 : 1

    /// What the writers saw acknowledged: case ids, and (case id, event id) pairs.
    final class Acknowledged: Sendable {
        let cases = Mutex<Set<String>>([])
        let events = Mutex<[(caseID: String, eventID: String)]>([])
    }

    static func configuration(
        port: Int,
        credentials: TestCredentials,
        timeout: Duration = .seconds(5)
    ) throws -> HavenClientConfiguration {
        var configuration = HavenClientConfiguration(
            host: "127.0.0.1",
            port: port,
            credentials: try HavenCredentials(
                caPEM: credentials.caPEM,
                certificatePEM: credentials.certificatePEM,
                privateKeyPEM: credentials.privateKeyPEM
            )
        )
        configuration.serverHostname = "localhost"
        configuration.defaultTimeout = timeout
        configuration.maximumAttempts = 1  // a kill ends the writer; nothing is retried into the next life
        return configuration
    }

    /// Opens cases and appends to them until the server goes away.
    static func write(_ client: HavenClient, _ acknowledged: Acknowledged) async {
        while true {
            do {
                var open = Haven_V1_OpenCaseRequest()
                open.officeCode = "KOL"
                open.category = .sexTrafficking
                open.title = "Raid, fictional lane"
                let opened = try await client.cases.open(open)
                acknowledged.cases.withLock { _ = $0.insert(opened.id) }
                for _ in 0..<3 {
                    var append = Haven_V1_AppendCaseEventRequest()
                    append.caseID = opened.id
                    append.event.occurredOn.year = 2026
                    append.event.occurredOn.month = 3
                    append.event.occurredOn.day = 14
                    append.event.rescueOperation.place = "Fictional lane"
                    append.event.rescueOperation.peopleRescued = 1
                    let appended = try await client.cases.appendEvent(append)
                    let eventID = try #require(appended.events.last?.id)
                    acknowledged.events.withLock { $0.append((opened.id, eventID)) }
                }
            } catch {
                return
            }
        }
    }

    /// The state letter (R, S, D, T, …) of each of a process's threads, from
    /// `/proc/PID/task/TID/stat`; empty when it cannot be read.
    static func threadStates(_ pid: pid_t) -> [Character] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.compactMap { task in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return nil }
            return stat[close...].dropFirst().first(where: { !$0.isWhitespace })
        }
    }

    /// havend as CI builds it with the tests, and its arguments for
    /// `deployment`'s data directory; nil (by hand only) when it is not built.
    static func havend(for deployment: TestDeployment) -> (executable: URL, arguments: [String])? {
        let havend = RepositoryPaths.product("havend")
        guard FileManager.default.isExecutableFile(atPath: havend.path) else {
            #expect(!runningInCI, "CI builds havend with the tests")
            return nil
        }
        return (havend, ["--data-dir", deployment.dataDirectory.root.path, "--set", "listen_port=0"])
    }

    @Test("SIGKILL under a write load loses nothing acknowledged and half-applies nothing")
    func killsUnderLoad() async throws {
        let deployment = try TestDeployment()
        guard let (havend, arguments) = Self.havend(for: deployment) else { return }
        let admin = try deployment.credentials(for: "admin")
        let writers = try ["worker-kol", "director-kol"].map { try deployment.credentials(for: $0) }
        let acknowledged = Acknowledged()

        var server = try await HavendProcess.start(havend, arguments: arguments)
        try await withHavenClient(
            try Self.configuration(port: server.port, credentials: admin, timeout: .seconds(60))
        ) { client in
            var office = Haven_V1_CreateOfficeRequest()
            office.office.code = "KOL"
            office.office.name = "Kolkata field office"
            office.office.city = "Kolkata"
            office.office.country = "IN"
            office.office.timeZone = "Asia/Kolkata"
            office.idempotencyKey = "crash-office"
            _ = try await client.offices.create(office)
        }
        for kill in 1...Self.kills {
            let port = server.port
            // Connections for two accounts (six in the long mode), each writing as fast as it can.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for credentials in writers {
                    for _ in 0..<Self.connectionsPerAccount {
                        group.addTask {
                            try await withHavenClient(try Self.configuration(port: port, credentials: credentials)) {
                                await Self.write($0, acknowledged)
                            }
                        }
                    }
                }
                // Kill mid-load: once this life has acknowledged some writes (however slow the
                // machine), then after a random moment more.
                let before = acknowledged.events.withLock { $0.count }
                let patience = ContinuousClock.now + .seconds(20)
                while acknowledged.events.withLock({ $0.count }) < before + 10, ContinuousClock.now < patience {
                    try await Task.sleep(for: .milliseconds(10))
                }
                try await Task.sleep(for: .milliseconds(Int.random(in: 0...400)))
                await server.killed()
                try await group.waitForAll()
            }
            print("kill \(kill): \(acknowledged.cases.withLock { $0.count }) cases acknowledged so far")
            server = try await HavendProcess.start(havend, arguments: arguments)
        }

        // Everything acknowledged is there, whole.
        let cases = acknowledged.cases.withLock { $0 }
        let events = acknowledged.events.withLock { $0 }
        try #require(cases.count > 0, "the load wrote something")
        var lost = 0
        try await withHavenClient(
            try Self.configuration(port: server.port, credentials: writers[0], timeout: .seconds(60))
        ) { client in
            var stored: [String: Haven_V1_Case] = [:]
            for id in cases {
                var get = Haven_V1_GetCaseRequest()
                get.caseID = id
                do {
                    stored[id] = try await client.cases.get(get)
                } catch {
                    lost += 1
                }
            }
            for (caseID, eventID) in events where stored[caseID]?.events.contains(where: { $0.id == eventID }) != true {
                lost += 1
            }
            for record in stored.values {
                // No write half-applied: every version is one committed write (the open, then each append).
                #expect(record.version == 1 + UInt64(record.events.count), "\(record.id)")
                #expect(record.eventCount == UInt32(record.events.count))
            }
        }
        #expect(await server.stopped() == 0)
        print("\(Self.kills) kills, \(cases.count + events.count) acknowledged writes, \(lost) lost")
        #expect(lost == 0)

        // The files as havend left them: intact, and the audit chain whole.
        let directory = deployment.dataDirectory
        let custodian = try KeyCustodian.load(masterKeyFile: directory.masterKeyFile)
        let store = try SQLiteStore(path: directory.databaseFile, keys: custodian.keys)
        defer { try? store.close() }
        #expect(try store.integrityCheck() == "ok")
        let signer = try CheckpointSigner.loadOrCreate(
            at: directory.auditSigningKeyFile,
            development: custodian.development
        )
        let verdict = try await AuditVerifier(store: store, publicKey: signer.publicKey).verify()
        #expect(verdict.intact, "\(verdict.problem)")
    }

    /// The client's own deadlines, which nothing from the server can stand
    /// in for: a frozen server (SIGSTOP) writes no DEADLINE_EXCEEDED of its
    /// own. Calls in flight on one connection, the later with the earlier
    /// deadline, each fail at theirs; the connection's deadline timer serves
    /// them all (``CallDeadlines``).
    @Test("a server that stops answering: each call in flight fails at its own deadline")
    func frozenServer() async throws {
        let deployment = try TestDeployment()
        guard let (havend, arguments) = Self.havend(for: deployment) else { return }
        let server = try await HavendProcess.start(havend, arguments: arguments)
        let pid = server.process.processIdentifier
        let worker = try deployment.credentials(for: "worker-kol")
        try await withHavenClient(try Self.configuration(port: server.port, credentials: worker)) { client in
            _ = try await client.session.whoAmI()  // connected
            #expect(kill(pid, SIGSTOP) == 0)
            defer { kill(pid, SIGCONT) }
            // Stopped before the calls start: every thread of it in state T.
            let stopped = try await eventually {
                let states = Self.threadStates(pid)
                return !states.isEmpty && states.allSatisfy { $0 == "T" }
            }
            #expect(stopped, "havend stopped")
            let started = ContinuousClock.now
            try await withThrowingTaskGroup(of: (Duration, HavenError.Code?).self) { group in
                for (delay, timeout) in [(0, 3_000), (100, 600), (200, 1_500)] {
                    group.addTask {
                        try await Task.sleep(for: .milliseconds(delay))
                        do {
                            _ = try await client.session.whoAmI(options: CallOptions(timeout: .milliseconds(timeout)))
                            return (ContinuousClock.now - started, nil)
                        } catch let error as HavenError {
                            return (ContinuousClock.now - started, error.code)
                        }
                    }
                }
                var ended: [Duration] = []
                for try await (after, code) in group {
                    #expect(code == .deadlineExceeded)
                    ended.append(after)
                }
                ended.sort()
                // Each at its deadline (0.7, 1.7 and 3 s after the start), not at the 3 s call's, nor never.
                #expect(ended.count == 3)
                #expect(ended[0] >= .milliseconds(650) && ended[0] < .milliseconds(2_500))
                #expect(ended[1] >= .milliseconds(1_650) && ended[1] < .milliseconds(2_950))
                #expect(ended[2] >= .milliseconds(2_950) && ended[2] < .seconds(10))
            }
        }
        #expect(await server.stopped() == 0)
    }
}
