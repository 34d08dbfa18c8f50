import Foundation
import HavenProtocol
import Synchronization
import Testing

@testable import HavenStore

/// ``GroupCommit`` against a scripted connection: what each write of a group
/// comes to when writes fail, the database aborts, or the commit fails.
@Suite("Group commit")
struct GroupCommitTests {
    struct Failure: Error, Equatable {
        var reason: String
    }

    /// A database in miniature: committed rows, the open transaction's rows,
    /// one savepoint mark, and failures on cue.
    final class ScriptedConnection: GroupCommitConnection, @unchecked Sendable {
        var committed: [String] = []
        var transaction: [String]?
        var mark: Int?
        var failBegins = 0
        var failCommit = false
        var log: [String] = []
        /// Rows written so far, rolled back or not (what SQLite's total changes count).
        var changes = 0
        /// How many times each write's body ran.
        var runs: [String: Int] = [:]
        /// How much CPU time a write's body (by name), or the commit (`commit`),
        /// keeps the writer busy: at least that long by the wall clock too.
        var takes: [String: Duration] = [:]
        /// How long the commit then waits off the CPU, as an fsync waits for the disk.
        var commitWaits: Duration?

        /// Keeps the calling thread on a CPU until it has used `takes[name]`
        /// of CPU time, as a slow body or commit would.
        func busy(_ name: String) {
            guard let duration = self.takes[name] else { return }
            let until = ThreadCPUTime.now() + duration
            while ThreadCPUTime.now() < until {}
        }

        func begin() throws {
            #expect(self.transaction == nil, "no transaction left open")
            if self.failBegins > 0 {
                self.failBegins -= 1
                throw Failure(reason: "busy")
            }
            self.transaction = []
            self.log.append("begin")
        }
        func savepoint() throws { self.mark = self.transaction!.count }
        func releaseSavepoint() throws { self.mark = nil }
        func rollbackToSavepoint() throws {
            self.transaction!.removeSubrange(self.mark!...)
            self.mark = nil
        }
        var isInsideTransaction: Bool { self.transaction != nil }
        func commit() throws {
            self.busy("commit")
            // Stands in for an fsync: the thread waits, off the CPU.
            if let wait = self.commitWaits { Thread.sleep(forTimeInterval: Double(wait.nanoseconds) / 1e9) }
            if self.failCommit { throw Failure(reason: "I/O error at commit") }
            self.committed += self.transaction!
            self.transaction = nil
            self.log.append("commit")
        }
        func rollback() {
            if self.transaction != nil { self.log.append("rollback") }
            self.transaction = nil
        }
    }

    enum Script {
        case succeeds(String)
        /// Throws before writing anything (a stale version, a refused permission).
        case refuses(String)
        /// Writes, then its body throws (a business rule): the transaction survives.
        case `throws`(String)
        /// Writes, then the database aborts the whole transaction (a full disk).
        case aborts(String)
    }

    /// What each write's caller was told, by name.
    final class Outcomes: Sendable {
        let told = Mutex<[String: String]>([:])
        subscript(_ name: String) -> String? { self.told.withLock { $0[name] } }
    }

    func group(
        _ script: [Script],
        _ outcomes: Outcomes,
        cancelled: Set<String> = []
    ) -> [PendingWrite<ScriptedConnection>] {
        script.map { step in
            let name: String
            switch step {
            case .succeeds(let n), .refuses(let n), .throws(let n), .aborts(let n): name = n
            }
            return PendingWrite<ScriptedConnection>(
                run: { connection in
                    connection.runs[name, default: 0] += 1
                    connection.busy(name)
                    if case .refuses = step { throw Failure(reason: "\(name) refused") }
                    connection.transaction!.append(name)
                    connection.changes += 1
                    let run = connection.runs[name]!
                    switch step {
                    case .succeeds, .refuses: break
                    case .throws: throw Failure(reason: "rule broken by \(name)")
                    case .aborts:
                        connection.transaction = nil
                        throw Failure(reason: "disk full under \(name)")
                    }
                    return {
                        outcomes.told.withLock { $0[name] = run == 1 ? "acknowledged" : "acknowledged (run \(run))" }
                    }
                },
                fail: { error in
                    let reason = (error as? Failure)?.reason ?? "\((error as? HavenError)?.code.description ?? "?")"
                    outcomes.told.withLock { $0[name] = "failed: \(reason)" }
                },
                cancellation: {
                    let cancellation = WriteCancellation()
                    if cancelled.contains(name) { cancellation.cancel() }
                    return cancellation
                }()
            )
        }
    }

    @Test("writes that arrive together commit in one transaction, and are acknowledged only after it")
    func oneTransaction() {
        let connection = ScriptedConnection()
        let outcomes = Outcomes()
        let outcome = GroupCommit.run(
            self.group([.succeeds("a"), .succeeds("b"), .succeeds("c")], outcomes),
            on: connection
        )
        #expect(connection.log == ["begin", "commit"])
        #expect(connection.committed == ["a", "b", "c"])
        #expect(outcome.transactions == 1 && outcome.committed == 3 && outcome.failed == 0)
        // Nothing is acknowledged inside run: the store publishes the changes first.
        #expect(outcomes["a"] == nil && outcomes["c"] == nil)
        for acknowledge in outcome.acknowledgements { acknowledge() }
        #expect(["a", "b", "c"].allSatisfy { outcomes[$0] == "acknowledged" })
    }

    @Test("a write refused before it changed anything fails alone, and the group goes on in the same transaction")
    func refusedWrite() {
        let connection = ScriptedConnection()
        let outcomes = Outcomes()
        let outcome = GroupCommit.run(
            self.group([.succeeds("a"), .refuses("b"), .succeeds("c")], outcomes),
            on: connection
        )
        #expect(connection.committed == ["a", "c"])
        #expect(connection.log == ["begin", "commit"])
        #expect(connection.runs == ["a": 1, "b": 1, "c": 1])
        #expect(outcomes["b"] == "failed: b refused")
        #expect(outcome.transactions == 1 && outcome.committed == 2 && outcome.failed == 1 && outcome.repeated == 0)
        for acknowledge in outcome.acknowledgements { acknowledge() }
        #expect(outcomes["a"] == "acknowledged" && outcomes["c"] == "acknowledged")
    }

    @Test(
        "a write that throws after changing something fails alone: its transaction is rolled back, the writes before it run again, and the rest of the group runs in savepoints"
    )
    func failedBodyAlone() {
        let connection = ScriptedConnection()
        let outcomes = Outcomes()
        let outcome = GroupCommit.run(
            self.group(
                [
                    .succeeds("a"), .succeeds("b"), .throws("c"), .succeeds("d"), .throws("e"), .refuses("f"),
                    .succeeds("g"),
                ],
                outcomes
            ),
            on: connection
        )
        #expect(connection.committed == ["a", "b", "d", "g"])
        // One rollback for c; e and f are rolled back to their savepoints.
        #expect(connection.log == ["begin", "rollback", "begin", "commit"])
        #expect(connection.runs == ["a": 2, "b": 2, "c": 1, "d": 1, "e": 1, "f": 1, "g": 1])
        #expect(outcomes["c"] == "failed: rule broken by c")
        #expect(outcomes["e"] == "failed: rule broken by e")
        #expect(outcomes["f"] == "failed: f refused")
        #expect(outcome.transactions == 1 && outcome.committed == 4 && outcome.failed == 3 && outcome.repeated == 2)
        // Nothing of a first run is acknowledged: each write once, with its last run's result.
        #expect(outcome.acknowledgements.count == 4)
        for acknowledge in outcome.acknowledgements { acknowledge() }
        #expect(outcomes["a"] == "acknowledged (run 2)" && outcomes["b"] == "acknowledged (run 2)")
        #expect(outcomes["d"] == "acknowledged" && outcomes["g"] == "acknowledged")
    }

    @Test("a write that throws after changing something as the group's first write takes nothing else down")
    func firstWriteFails() {
        let connection = ScriptedConnection()
        let outcomes = Outcomes()
        let outcome = GroupCommit.run(self.group([.throws("a"), .succeeds("b")], outcomes), on: connection)
        #expect(connection.committed == ["b"])
        #expect(connection.log == ["begin", "rollback", "begin", "commit"])
        #expect(outcome.committed == 1 && outcome.failed == 1 && outcome.repeated == 0)
    }

    @Test("when the database aborts the transaction, the group's writes so far fail with it and the rest start anew")
    func abortedTransaction() {
        let connection = ScriptedConnection()
        let outcomes = Outcomes()
        let outcome = GroupCommit.run(
            self.group([.succeeds("a"), .succeeds("b"), .aborts("c"), .succeeds("d")], outcomes),
            on: connection
        )
        #expect(connection.committed == ["d"])
        #expect(connection.log == ["begin", "begin", "commit"])
        #expect(outcomes["a"] == "failed: disk full under c")
        #expect(outcomes["b"] == "failed: disk full under c")
        #expect(outcomes["c"] == "failed: disk full under c")
        #expect(outcome.transactions == 1 && outcome.committed == 1 && outcome.failed == 3)
        for acknowledge in outcome.acknowledgements { acknowledge() }
        #expect(outcomes["d"] == "acknowledged")
    }

    @Test("when the commit fails, every write of the group fails and nothing is left open")
    func failedCommit() {
        let connection = ScriptedConnection()
        connection.failCommit = true
        let outcomes = Outcomes()
        let outcome = GroupCommit.run(
            self.group([.succeeds("a"), .throws("b"), .succeeds("c")], outcomes),
            on: connection
        )
        #expect(connection.committed.isEmpty)
        #expect(!connection.isInsideTransaction)
        // b's failure rolled back the first transaction; the failed commit, the second.
        #expect(connection.log == ["begin", "rollback", "begin", "rollback"])
        #expect(outcome.acknowledgements.isEmpty && outcome.committed == 0 && outcome.failed == 3)
        #expect(outcomes["a"] == "failed: I/O error at commit")
        #expect(outcomes["b"] == "failed: rule broken by b")
        #expect(outcomes["c"] == "failed: I/O error at commit")
    }

    @Test("a write that cannot begin a transaction fails alone; the next begins again")
    func failedBegin() {
        let connection = ScriptedConnection()
        connection.failBegins = 1
        let outcomes = Outcomes()
        let outcome = GroupCommit.run(self.group([.succeeds("a"), .succeeds("b")], outcomes), on: connection)
        #expect(outcomes["a"] == "failed: busy")
        #expect(connection.committed == ["b"])
        #expect(outcome.committed == 1 && outcome.failed == 1)
    }

    @Test("a write whose caller gave up before the writer took it up is not run; the group goes on without it")
    func cancelledWrite() {
        let connection = ScriptedConnection()
        let outcomes = Outcomes()
        let outcome = GroupCommit.run(
            self.group([.succeeds("a"), .succeeds("b"), .succeeds("c")], outcomes, cancelled: ["b"]),
            on: connection
        )
        #expect(connection.runs["b"] == nil, "its body never ran")
        #expect(connection.log == ["begin", "commit"])
        #expect(connection.committed == ["a", "c"])
        #expect(outcome.committed == 2 && outcome.failed == 1 && outcome.cancelled == 1)
        #expect(outcomes["b"] == "failed: \(StatusCode.cancelled.description)")
        for acknowledge in outcome.acknowledgements { acknowledge() }
        #expect(outcomes["a"] == "acknowledged" && outcomes["c"] == "acknowledged")

        let alone = ScriptedConnection()
        let lone = GroupCommit.run(self.group([.succeeds("d")], Outcomes(), cancelled: ["d"]), on: alone)
        #expect(alone.log.isEmpty, "no transaction for a group of cancelled writes")
        #expect(lone.transactions == 0 && lone.failed == 1)
    }

    @Test("the writer's time is told apart: running the writes, then committing them")
    func writerTime() {
        let connection = ScriptedConnection()
        connection.takes = ["a": .milliseconds(200), "commit": .milliseconds(20)]
        let clock = ContinuousClock()
        let started = clock.now
        let outcome = GroupCommit.run(self.group([.succeeds("a"), .succeeds("b")], Outcomes()), on: connection)
        let held = clock.now - started
        #expect(outcome.running >= .milliseconds(200), "the slow body is the writes' time")
        #expect(outcome.committing >= .milliseconds(20), "the slow commit is the commit's time")
        #expect(outcome.committing < outcome.running, "the body's time is not the commit's")
        #expect(outcome.running + outcome.committing <= held)

        // A failed commit held the writer too.
        let failing = ScriptedConnection()
        failing.failCommit = true
        failing.takes = ["commit": .milliseconds(20)]
        let failed = GroupCommit.run(self.group([.succeeds("c")], Outcomes()), on: failing)
        #expect(failed.committed == 0 && failed.committing >= .milliseconds(20))
    }

    @Test("the writer's time on a CPU is told apart from its waits: the writes' work, the commit's wait for the disk")
    func writerCPUTime() {
        let connection = ScriptedConnection()
        connection.takes = ["a": .milliseconds(60), "commit": .milliseconds(10)]
        connection.commitWaits = .milliseconds(150)
        let outcome = GroupCommit.run(self.group([.succeeds("a"), .succeeds("b")], Outcomes()), on: connection)
        #expect(connection.committed == ["a", "b"])
        #expect(outcome.runningOnCPU >= .milliseconds(60), "the body's work is on the CPU")
        // The two clocks are read one after the other, so allow for the few instructions between.
        #expect(
            outcome.runningOnCPU <= outcome.running + .milliseconds(1),
            "a thread's CPU time fits in its wall-clock time"
        )
        #expect(outcome.committingOnCPU >= .milliseconds(10))
        #expect(outcome.committing >= .milliseconds(160), "the commit's wait is the writer's time")
        #expect(
            outcome.committingOnCPU < .milliseconds(10) + .milliseconds(75),
            "but not its CPU time: \(outcome.committingOnCPU)"
        )
    }

    @Test("an empty group touches nothing")
    func emptyGroup() {
        let connection = ScriptedConnection()
        let outcome = GroupCommit.run([], on: connection)
        #expect(connection.log.isEmpty && outcome.transactions == 0)
    }

    @Test(
        "the queue hands out the oldest writes first, at most a group at a time, each once; the writer is asked once for the writes that arrive while it works"
    )
    func queue() {
        var queue = GroupCommitQueue<Int>(maxGroupSize: 3)
        // (#expect cannot call a mutating method: each answer is taken first.)
        var taken = queue.takeGroup()
        #expect(taken.group.isEmpty && !taken.more, "a request that finds nothing")
        // The first write asks the writer; the others wait for that request.
        var asks = queue.enqueue(1)
        #expect(asks)
        for write in 2...7 {
            asks = queue.enqueue(write)
            #expect(!asks)
        }
        #expect(queue.count == 7)
        // More than a group waits: the writer asks itself again.
        taken = queue.takeGroup()
        #expect(taken.group == [1, 2, 3] && taken.more)
        asks = queue.enqueue(8)
        #expect(!asks, "a request is still outstanding")
        taken = queue.takeGroup()
        #expect(taken.group == [4, 5, 6] && taken.more)
        taken = queue.takeGroup()
        #expect(taken.group == [7, 8] && !taken.more)
        #expect(queue.count == 0)
        // That request took everything: the next write asks anew, once.
        asks = queue.enqueue(9)
        #expect(asks)
        asks = queue.enqueue(10)
        #expect(!asks)
        taken = queue.takeGroup()
        #expect(taken.group == [9, 10] && !taken.more)

        // Long runs of partial takes keep the order and lose nothing, and
        // whenever writes wait, exactly one request is outstanding.
        var all: [Int] = []
        var outstanding = 0
        for write in 1...5_000 {
            if queue.enqueue(write) { outstanding += 1 }
            #expect(outstanding == 1)
            if write % 4 == 0 {
                taken = queue.takeGroup()
                all += taken.group
                if !taken.more { outstanding -= 1 }
            }
        }
        while outstanding > 0 {
            taken = queue.takeGroup()
            all += taken.group
            if !taken.more { outstanding -= 1 }
        }
        #expect(queue.count == 0)
        #expect(all == Array(1...5_000))
    }
}
