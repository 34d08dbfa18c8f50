import Benchmark
import BenchmarkMessages
import Foundation
import GRDB
import HavenClient
@_spi(AuditCostBaseline) import HavenEmbedding
import HavenProtocol
import SwiftProtobuf
import Synchronization

/// Unary round trips over mutual TLS on loopback, against a Haven server in
/// this process: a read (GetCase) and a write (AppendCaseEvent, which commits
/// with fsync), with 1, 16 and 256 calls in flight on 1 and 8 connections.
/// Each iteration is 1,000 calls: the wall clock per call gives calls/s (the
/// harness's throughput metric counts iterations, too coarse here). Every call's own
/// round-trip time goes into the ``callLatency`` metric, so its percentiles
/// (p50, p90, p99, max) are per call, not per iteration. The same reads are
/// also served by grpc-swift-2 (see `GRPCPeer`), for comparison in one run.
/// `Haven.write.audit-cost…` measures what the audit trail costs a write: the
/// same write with and without it, interleaved in one run.
/// `Haven.postgres…` run the same reads and writes against a server on
/// PostgreSQL, and `Haven.postgres-2-instances…` against two servers on one
/// database with the connections split between them, when
/// `HAVEN_BENCHMARK_POSTGRES_URL` names a loopback cluster (each fixture gets
/// a new database).
let benchmarks: @Sendable () -> Void = {
    let smoke = ProcessInfo.processInfo.environment["HAVEN_BENCHMARK_SMOKE"] != nil
    let configuration = Benchmark.Configuration(
        metrics: [.wallClock, .mallocCountTotal, callLatency],
        warmupIterations: smoke ? 0 : 1,
        scalingFactor: .kilo,
        maxDuration: smoke ? .milliseconds(10) : .seconds(5),
        maxIterations: smoke ? 1 : 20,
        // Tolerances for `benchmark thresholds check` and `baseline check`: round
        // trips through TLS, two servers' threads and a disk on 2 shared cores
        // wander far more than encoding (p90 of 5-20 iterations).
        thresholds: [
            .wallClock: .init(relative: [.p50: 50, .p90: 50]),
            .mallocCountTotal: .init(relative: [.p50: 5, .p90: 5]),
            callLatency: .init(relative: [.p50: 50, .p90: 50]),
        ]
    )
    for connections in [1, 8] {
        for inFlight in [1, 16, 256] {
            let fixture = Fixture()
            Benchmark(
                "grpc-swift-2.read.\(inFlight)-in-flight.\(connections)-connections",
                configuration: configuration,
                closure: { benchmark in
                    let latencies = await fixture.run(
                        kind: "grpc read",
                        calls: benchmark.scaledIterations.count,
                        inFlight: inFlight
                    )
                    record(latencies, in: benchmark)
                },
                setup: { try await fixture.start(connections: connections, peer: true) },
                teardown: { try await fixture.stop() }
            )
        }
    }
    // The audit trail's cost: the same write against a server with the trail
    // and one without (a baseline reachable only through an SPI of the
    // embedded server), in alternating blocks of calls within every
    // iteration, so that the machine's noise falls on both alike.
    let auditCost = pairConfiguration(auditedLatency, unauditedLatency, smoke: smoke)
    for inFlight in [1, 16] {
        let audited = Fixture()
        let unaudited = Fixture()
        Benchmark(
            "Haven.write.audit-cost.\(inFlight)-in-flight.1-connections",
            configuration: auditCost,
            closure: { benchmark in
                await alternatingBlocks(
                    benchmark,
                    (auditedLatency, { await audited.run(kind: "write", calls: $0, inFlight: inFlight) }),
                    (unauditedLatency, { await unaudited.run(kind: "write", calls: $0, inFlight: inFlight) })
                )
            },
            setup: {
                try await audited.start(connections: 1, cases: 100)
                try await unaudited.start(connections: 1, cases: 100, auditing: false)
            },
            teardown: {
                try await audited.stop()
                try await unaudited.stop()
            }
        )
    }
    // The same write to a new record and to one grown long in the
    // benchmark's setup, in alternating blocks (see `newAgainstLong`).
    // Events are rows of their own, so an append to a case with 10,000 of
    // them should cost what one to a new case does.
    newAgainstLong(
        "Haven.write.long-timeline.1-in-flight.1-connections",
        kind: "write",
        metrics: (newCaseLatency, longCaseLatency),
        smoke: smoke
    ) { fixture in
        try await fixture.start(connections: 1, cases: 2)
        _ = await fixture.run(kind: "write", calls: smoke ? 200 : 10_000, inFlight: 16, target: 1)
    }
    // Services are rows of their own too: a survivor with 10,000 of them.
    newAgainstLong(
        "Haven.write.long-services.1-in-flight.1-connections",
        kind: "service",
        metrics: (newSurvivorLatency, longSurvivorLatency),
        smoke: smoke
    ) { fixture in
        try await fixture.start(connections: 1, survivors: 2)
        _ = await fixture.run(kind: "service", calls: smoke ? 200 : 10_000, inFlight: 16, target: 1)
    }
    // An accused person's status history is still inside the case record:
    // notes appended to a case whose accused was arrested 2,000 times
    // measure what carrying it costs.
    newAgainstLong(
        "Haven.write.long-accused-history.1-in-flight.1-connections",
        kind: "write",
        metrics: (newCaseLatency, longHistoryLatency),
        smoke: smoke
    ) { fixture in
        try await fixture.start(connections: 1, cases: 2)
        try await fixture.growAccusedHistory(caseIndex: 1, entries: smoke ? 50 : 2_000)
    }
    // Audit verification of a store with 20,000 appends (and their audit
    // entries, change-log entries and timeline rows) over 100 cases: the
    // whole chain, every record and row it commits to, and the report facts
    // recomputed, as `haven-admin audit verify` runs it.
    let verifiedAppends = smoke ? 200 : 20_000
    let verified = Fixture()
    Benchmark(
        "Haven.audit-verify.\(verifiedAppends)-appends",
        configuration: .init(
            metrics: [.wallClock],
            warmupIterations: smoke ? 0 : 1,
            maxDuration: smoke ? .milliseconds(10) : .seconds(60),
            maxIterations: smoke ? 1 : 5,
            thresholds: [.wallClock: .init(relative: [.p50: 50, .p90: 50])]
        ),
        closure: { _ in
            let verdict = try await verified.verifyAudit()
            guard verdict.intact, verdict.entries > UInt64(verifiedAppends) else {
                fatalError("the audit chain did not verify: \(verdict.problem)")
            }
        },
        setup: {
            try await verified.start(connections: 1, cases: 100)
            _ = await verified.run(kind: "write", calls: verifiedAppends, inFlight: 16)
        },
        teardown: { try await verified.stop() }
    )
    // The durability baseline for writes: raw single-row SQLite commits
    // (WAL, synchronous = FULL) on the same disk, in the same run.
    for inFlight in [1, 16, 256] {
        let baseline = RawSQLiteCommits()
        Benchmark(
            "SQLite.raw-commit.\(inFlight)-in-flight",
            configuration: configuration,
            closure: { benchmark in
                record(await baseline.run(commits: benchmark.scaledIterations.count, inFlight: inFlight), in: benchmark)
            },
            setup: { try baseline.start() },
            teardown: { try baseline.stop() }
        )
    }
    // Issue 14's target, paired: Haven's writes and the raw commits above in
    // alternating blocks within every iteration (the disk's fsync latency
    // drifts by a third within minutes, so two benchmarks run one after the
    // other can compare different disks). Both stores live in the same
    // temporary directory. A block is at least 1,600 calls (100 × 16 in
    // flight, 20 × 256): the depth holds but for a block's first and last
    // calls, whose share costs group commit (and only it) a tenth of a block
    // of 320 (BENCHMARKS.md, "Blocks long enough to hold their depth").
    for inFlight in [16, 256] {
        let fixture = Fixture()
        let baseline = RawSQLiteCommits()
        Benchmark(
            "Haven.write.paired-with-raw-commit.\(inFlight)-in-flight.1-connections",
            configuration: pairConfiguration(
                pairedWriteLatency,
                pairedCommitLatency,
                ratio: writesPerRawCommit,
                smoke: smoke,
                maxDuration: .seconds(90),
                maxIterations: 8
            ),
            closure: { benchmark in
                await alternatingBlocks(
                    benchmark,
                    block: smoke ? 2 * inFlight : max(20 * inFlight, 1_600),
                    ratio: writesPerRawCommit,
                    (pairedWriteLatency, { await fixture.run(kind: "write", calls: $0, inFlight: inFlight) }),
                    (pairedCommitLatency, { await baseline.run(commits: $0, inFlight: inFlight) })
                )
            },
            setup: {
                try await fixture.start(connections: 1, cases: 100)
                try baseline.start()
            },
            teardown: {
                try await fixture.stop()
                try baseline.stop()
            }
        )
    }
    // The same baseline on PostgreSQL: the cluster's own single-row commits.
    if let cluster = BenchmarkDatabase.clusterURL {
        for inFlight in [16, 256] {
            let baseline = RawPostgresCommits()
            Benchmark(
                "PostgreSQL.raw-commit.\(inFlight)-in-flight",
                configuration: configuration,
                closure: { benchmark in
                    record(
                        await baseline.run(commits: benchmark.scaledIterations.count, inFlight: inFlight),
                        in: benchmark
                    )
                },
                setup: { try await baseline.start(cluster: cluster) },
                teardown: { await baseline.stop() }
            )
        }
    }
    // Reads and writes on SQLite, and — when a cluster is named — on a new
    // PostgreSQL database per benchmark, with one instance or two.
    struct Store {
        var name: String
        var postgres: String?
        var instances = 1
        var connections: [Int]
        var inFlight: [Int]
    }
    var stores = [Store(name: "Haven", connections: [1, 8], inFlight: [1, 16, 256])]
    if let cluster = BenchmarkDatabase.clusterURL {
        stores.append(Store(name: "Haven.postgres", postgres: cluster, connections: [1, 8], inFlight: [16, 256]))
        stores.append(
            Store(
                name: "Haven.postgres-2-instances",
                postgres: cluster,
                instances: 2,
                connections: [8],
                inFlight: [16, 256]
            )
        )
    }
    for store in stores {
        for kind in ["read", "write"] {
            for connections in store.connections {
                for inFlight in store.inFlight {
                    let fixture = Fixture()
                    Benchmark(
                        "\(store.name).\(kind).\(inFlight)-in-flight.\(connections)-connections",
                        configuration: configuration,
                        closure: { benchmark in
                            let latencies = await fixture.run(
                                kind: kind,
                                calls: benchmark.scaledIterations.count,
                                inFlight: inFlight
                            )
                            record(latencies, in: benchmark)
                        },
                        setup: {
                            try await fixture.start(
                                connections: connections,
                                cases: kind == "write" ? 100 : 1,
                                postgres: store.postgres,
                                instances: store.instances
                            )
                        },
                        teardown: { try await fixture.stop() }
                    )
                }
            }
        }
    }
}

/// A benchmark of one kind of write to a new record (target 0) against the
/// same write to a record grown long by `start` (target 1), in alternating
/// blocks of calls within every iteration, so that the machine's noise falls
/// on both alike; each side's per-call latency goes to its own metric.
func newAgainstLong(
    _ name: String,
    kind: String,
    metrics: (new: BenchmarkMetric, long: BenchmarkMetric),
    smoke: Bool,
    start: @escaping @Sendable (Fixture) async throws -> Void
) {
    let fixture = Fixture()
    Benchmark(
        name,
        configuration: pairConfiguration(metrics.new, metrics.long, smoke: smoke),
        closure: { benchmark in
            await alternatingBlocks(
                benchmark,
                (metrics.new, { await fixture.run(kind: kind, calls: $0, inFlight: 1, target: 0) }),
                (metrics.long, { await fixture.run(kind: kind, calls: $0, inFlight: 1, target: 1) })
            )
        },
        setup: { try await start(fixture) },
        teardown: { try await fixture.stop() }
    )
}

/// The configuration of a benchmark that measures two latencies side by
/// side, and the ratio of their blocks' times when `ratio` is given.
func pairConfiguration(
    _ first: BenchmarkMetric,
    _ second: BenchmarkMetric,
    ratio: BenchmarkMetric? = nil,
    smoke: Bool,
    maxDuration: Duration = .seconds(30),
    maxIterations: Int = 10
) -> Benchmark.Configuration {
    var thresholds: [BenchmarkMetric: BenchmarkThresholds] = [
        first: .init(relative: [.p50: 50, .p90: 50]),
        second: .init(relative: [.p50: 50, .p90: 50]),
    ]
    if let ratio { thresholds[ratio] = .init(relative: [.p50: 25, .p90: 25]) }
    return Benchmark.Configuration(
        metrics: (ratio.map { [$0] } ?? []) + [first, second],
        warmupIterations: smoke ? 0 : 1,
        scalingFactor: .kilo,
        maxDuration: smoke ? .milliseconds(10) : maxDuration,
        maxIterations: smoke ? 1 : maxIterations,
        thresholds: thresholds
    )
}

/// Runs two kinds of calls in alternating blocks, ten of each per iteration
/// (`block` calls each; by default a twentieth of the iteration's count), so
/// that the machine's noise falls on both alike, then records each call's
/// latency in its side's metric, outside the measured time. With `ratio`,
/// it also records the second side's blocks' wall-clock time over the first
/// side's, as a percentage: the first side's calls per second as a share of
/// the second's.
func alternatingBlocks(
    _ benchmark: Benchmark,
    block: Int? = nil,
    ratio: BenchmarkMetric? = nil,
    _ first: (metric: BenchmarkMetric, calls: (Int) async -> [Duration]),
    _ second: (metric: BenchmarkMetric, calls: (Int) async -> [Duration])
) async {
    let block = block ?? max(1, benchmark.scaledIterations.count / 20)
    let clock = ContinuousClock()
    var (firstTime, secondTime) = (Duration.zero, Duration.zero)
    var firstLatencies: [Duration] = []
    var secondLatencies: [Duration] = []
    for _ in 0..<10 {
        var started = clock.now
        firstLatencies += await first.calls(block)
        firstTime += clock.now - started
        started = clock.now
        secondLatencies += await second.calls(block)
        secondTime += clock.now - started
    }
    benchmark.stopMeasurement()
    if let ratio { benchmark.measurement(ratio, Int((secondTime / firstTime * 100).rounded())) }
    for latency in firstLatencies { benchmark.measurement(first.metric, microseconds(latency)) }
    for latency in secondLatencies { benchmark.measurement(second.metric, microseconds(latency)) }
}

/// Haven's acknowledged writes per second as a percentage of raw SQLite's
/// single-row commits per second, measured in alternating blocks (issue 14's
/// target: at least 100).
let writesPerRawCommit = BenchmarkMetric.custom(
    "Haven writes/s ÷ raw SQLite commits/s (%)",
    polarity: .prefersLarger,
    useScalingFactor: false
)
/// A Haven write's latency in the paired benchmark.
let pairedWriteLatency = latencyMetric("Write latency, Haven (µs)")
/// A raw commit's latency in the paired benchmark.
let pairedCommitLatency = latencyMetric("Commit latency, raw SQLite (µs)")

/// A per-call latency in microseconds (smaller is better, not scaled).
func latencyMetric(_ name: String) -> BenchmarkMetric {
    .custom(name, polarity: .prefersSmaller, useScalingFactor: false)
}

/// Each call's round-trip time in microseconds, from just before the request is
/// handed to the client library to just after the response is decoded.
let callLatency = latencyMetric("Call latency (µs)")

/// Append latency to a case opened for the benchmark (long-timeline benchmark).
let newCaseLatency = latencyMetric("Append latency, new case (µs)")
/// Append latency to a case with 10,000 events (long-timeline benchmark).
let longCaseLatency = latencyMetric("Append latency, 10,000-event case (µs)")

/// Append latency to a case whose accused has 2,000 status changes (long-accused-history benchmark).
let longHistoryLatency = latencyMetric("Append latency, case with a 2,000-entry accused history (µs)")

/// Latency of a service recorded to a survivor registered for the benchmark
/// (long-services benchmark).
let newSurvivorLatency = latencyMetric("Service latency, new survivor (µs)")
/// Latency of a service recorded to a survivor with 10,000 services (long-services benchmark).
let longSurvivorLatency = latencyMetric("Service latency, 10,000-service survivor (µs)")

/// Write latency against the server with the audit trail (audit-cost benchmark).
let auditedLatency = latencyMetric("Write latency, audited (µs)")
/// Write latency against the server without it (audit-cost benchmark).
let unauditedLatency = latencyMetric("Write latency, no audit trail (µs)")

func microseconds(_ duration: Duration) -> Int {
    let (seconds, attoseconds) = duration.components
    return Int(seconds) * 1_000_000 + Int(attoseconds / 1_000_000_000_000)
}

/// Adds an iteration's per-call latencies to ``callLatency``, outside the
/// measured time (the metric's store is not thread-safe, so after the calls).
func record(_ latencies: [Duration], in benchmark: Benchmark) {
    benchmark.stopMeasurement()
    for latency in latencies { benchmark.measurement(callLatency, microseconds(latency)) }
}

/// The next call's index, shared by a run's workers.
final class CallCounter: Sendable {
    private let value = Atomic<Int>(0)
    func take() -> Int { self.value.wrappingAdd(1, ordering: .relaxed).oldValue }
}

/// Makes `calls` calls with `inFlight` of them outstanding at any time and
/// returns each call's round-trip time. Each of `inFlight` workers takes the
/// next call's index as it finishes one, so all stay busy until the last
/// calls (a worker given every `inFlight`-th call could finish its share
/// milliseconds before the slowest, leaving fewer in flight at the end of
/// every run). A call that fails stops the benchmark: a figure with
/// failures in it would mean nothing.
func timedCalls(
    _ calls: Int,
    inFlight: Int,
    _ call: @escaping @Sendable (Int) async throws -> Void
) async -> [Duration] {
    let next = CallCounter()
    return await withTaskGroup(of: [Duration].self) { group in
        for _ in 0..<min(inFlight, calls) {
            group.addTask {
                var latencies: [Duration] = []
                latencies.reserveCapacity(calls / inFlight + 1)
                let clock = ContinuousClock()
                while true {
                    let index = next.take()
                    guard index < calls else { break }
                    let start = clock.now
                    do {
                        try await call(index)
                    } catch {
                        fatalError("benchmark call failed: \(error)")
                    }
                    latencies.append(clock.now - start)
                }
                return latencies
            }
        }
        var all: [Duration] = []
        all.reserveCapacity(calls)
        for await latencies in group { all += latencies }
        return all
    }
}

/// A server, a seeded case and the clients of one benchmark.
final class Fixture: Sendable {
    private struct State {
        var server: EmbeddedServer?
        /// Further instances on the same PostgreSQL database.
        var instances: [EmbeddedServer] = []
        var database: BenchmarkDatabase?
        var directory: URL?
        var clients: [HavenClient] = []
        var caseIDs: [String] = []
        var survivorIDs: [String] = []
        var peer: GRPCPeer?
    }

    private let state = Mutex(State())

    /// Starts a server with `cases` cases and `survivors` survivors in one
    /// office, and `connections` clients. Writes go round-robin over the cases
    /// (services over the survivors) unless one is named.
    /// With `postgres` (a cluster's URL), the server keeps its records in a
    /// new database there, and `instances` servers share it, the clients
    /// spread over them in turn.
    func start(
        connections: Int,
        cases: Int = 1,
        survivors: Int = 0,
        peer usePeer: Bool = false,
        auditing: Bool = true,
        postgres cluster: String? = nil,
        instances: Int = 1
    ) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "haven-bench-\(UUID().uuidString)"
        )
        var database: BenchmarkDatabase?
        if let cluster { database = try await BenchmarkDatabase.create(on: cluster) }
        self.state.withLock { $0.database = database }
        let server = try await EmbeddedServer.start(in: directory, auditing: auditing, storage: database?.url)
        self.state.withLock {
            $0.server = server
            $0.directory = directory
        }
        var servers = [server]
        for _ in 1..<max(1, instances) {
            let instance = try await server.startInstance()
            self.state.withLock { $0.instances.append(instance) }
            servers.append(instance)
        }
        let bundle = try await server.addAccount(id: "bench", role: .caseworker, offices: ["KOL"])
        let admin = HavenClient(configuration: try Self.configuration(server, server.adminCredentials))
        _ = try await admin.offices.create(
            .with {
                $0.office.code = "KOL"
                $0.office.name = "Kolkata field office"
                $0.office.city = "Kolkata"
                $0.office.country = "IN"
                $0.office.timeZone = "Asia/Kolkata"
            }
        )
        admin.close()
        let clients = try (0..<connections).map { index in
            HavenClient(configuration: try Self.configuration(servers[index % servers.count], bundle))
        }
        var caseIDs: [String] = []
        for number in 0..<cases {
            let opened = try await clients[0].cases.open(
                .with {
                    $0.officeCode = "KOL"
                    $0.category = .forcedLabour
                    $0.title = "Benchmark case \(number) (fictional)"
                }
            )
            caseIDs.append(opened.id)
        }
        var survivorIDs: [String] = []
        for number in 0..<survivors {
            survivorIDs.append(try await clients[0].survivors.register(Representative.survivor(number: number)).id)
        }
        for client in clients { _ = try await client.session.whoAmI() }  // connect every client
        var peer: GRPCPeer?
        if usePeer {
            let grpc = GRPCPeer()
            try await grpc.start(server, clientBundle: bundle, connections: connections)
            for index in 0..<connections { _ = try await grpc.read(caseID: caseIDs[0], client: index) }
            peer = grpc
        }
        self.state.withLock { state in
            state.clients = clients
            state.caseIDs = caseIDs
            state.survivorIDs = survivorIDs
            state.peer = peer
        }
    }

    static func configuration(_ server: EmbeddedServer, _ bundle: URL) throws -> HavenClientConfiguration {
        var configuration = HavenClientConfiguration(
            host: "127.0.0.1",
            port: server.port,
            credentials: try HavenCredentials(bundle: bundle)
        )
        configuration.serverHostname = "localhost"
        return configuration
    }

    /// Makes `calls` calls with `inFlight` of them outstanding at any time, and
    /// returns each call's round-trip time. `target` names the case (or, for
    /// services, the survivor) every call goes to; without it they go round.
    func run(
        kind: String,
        calls: Int,
        inFlight: Int,
        target: Int? = nil
    ) async -> [Duration] {
        let (clients, caseIDs, survivorIDs, peer) = self.state.withLock {
            ($0.clients, $0.caseIDs, $0.survivorIDs, $0.peer)
        }
        return await timedCalls(calls, inFlight: inFlight) { call in
            let client = clients[call % clients.count]
            if kind == "service" {
                let survivorID = survivorIDs[target ?? call % survivorIDs.count]
                let service = Representative.service(survivorID: survivorID, detail: "benchmark session (fictional)")
                blackHole(try await client.survivors.recordService(service))
                return
            }
            let caseID = caseIDs[target ?? call % caseIDs.count]
            if let peer, kind == "grpc read" {
                blackHole(try await peer.read(caseID: caseID, client: call))
            } else if kind == "read" {
                blackHole(try await client.cases.get(.with { $0.caseID = caseID }))
            } else {
                let append = Representative.append(caseID: caseID, note: "benchmark note (fictional)")
                blackHole(try await client.cases.appendEvent(append))
            }
        }
    }

    /// Verifies the audit chain as an auditor (an account made for this
    /// verification) and returns the verdict.
    func verifyAudit() async throws -> Haven_V1_AuditVerdict {
        let server = self.state.withLock { $0.server }
        guard let server else { fatalError("the fixture is not started") }
        let bundle = try await server.addAccount(id: "auditor-\(UUID().uuidString.prefix(8))", role: .auditor)
        let auditor = HavenClient(configuration: try Self.configuration(server, bundle))
        defer { auditor.close() }
        var verdict: Haven_V1_AuditVerdict?
        for try await progress in try await auditor.audit.verifyChain() where progress.hasVerdict {
            verdict = progress.verdict
        }
        guard let verdict else { fatalError("no verdict") }
        return verdict
    }

    /// Adds an accused to the case at `caseIndex` and arrests them `entries`
    /// times: each arrest is one more entry of their status history.
    func growAccusedHistory(caseIndex: Int, entries: Int) async throws {
        let (clients, caseIDs) = self.state.withLock { ($0.clients, $0.caseIDs) }
        let caseID = caseIDs[caseIndex]
        let current = try await clients[0].cases.get(.with { $0.caseID = caseID })
        let added = try await clients[0].cases.addAccused(
            Representative.accused(caseID: caseID, version: current.version)
        )
        guard let accusedID = added.accused.last?.id else { fatalError("the accused was not added") }
        _ = await timedCalls(entries, inFlight: 16) { _ in
            blackHole(
                try await clients[0].cases.appendEvent(Representative.arrest(caseID: caseID, accusedID: accusedID))
            )
        }
    }

    func stop() async throws {
        let (server, instances, database, directory, clients, peer) = self.state.withLock { state in
            defer { state = State() }
            return (state.server, state.instances, state.database, state.directory, state.clients, state.peer)
        }
        await peer?.stop()
        for client in clients { client.close() }
        for instance in instances { try await instance.stop() }
        try await server?.stop()
        await database?.drop()
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }
}

/// The durability baseline Haven's writes are compared with: single-row SQLite
/// commits, each its own transaction, WAL with `synchronous = FULL`, on the
/// same disk (the same temporary directory as the servers' data), with
/// `inFlight` tasks committing at once. SQLite commits one transaction at a
/// time, so concurrency adds nothing here; a Haven write batched into a
/// group commit shares its fsync.
final class RawSQLiteCommits: Sendable {
    private let state = Mutex<(pool: DatabasePool?, directory: URL?)>((nil, nil))
    private static let body = Data((0..<256).map { UInt8(truncatingIfNeeded: $0 &* 31) })

    func start() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "haven-bench-sqlite-\(UUID().uuidString)"
        )
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        let pool = try DatabasePool(
            path: directory.appendingPathComponent("raw.sqlite").path,
            configuration: configuration
        )
        try pool.barrierWriteWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            guard try Int.fetchOne(db, sql: "PRAGMA synchronous") == 2 else {
                fatalError("the baseline must commit with synchronous = FULL")
            }
        }
        try pool.write { db in
            try db.execute(sql: "CREATE TABLE row (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        }
        self.state.withLock { $0 = (pool, directory) }
    }

    /// `commits` single-row commits with `inFlight` outstanding; each one's time.
    func run(commits: Int, inFlight: Int) async -> [Duration] {
        let pool = self.state.withLock { $0.pool }!
        return await timedCalls(commits, inFlight: inFlight) { _ in
            try await pool.write { db in
                try db.execute(sql: "INSERT INTO row (body) VALUES (?)", arguments: [Self.body])
            }
        }
    }

    func stop() throws {
        let (pool, directory) = self.state.withLock { ($0.pool, $0.directory) }
        try pool?.close()
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }
}
