// Runs unary calls against a server in this process (client and server over
// mutual TLS on loopback, a fresh development data directory), for profiles
// of a whole call — client, TLS, server, store — with perf or callgrind:
//
//   swift build --package-path Benchmarks -c release --product profile-calls
//   perf record -F 999 -g Benchmarks/.build/release/profile-calls write 20000 16
//   perf report --no-children --sort symbol | head -60
//
// The calls go round 16 cases, or CASES when given (the end-to-end write
// benchmarks use 100: a write's cost depends on how many cases a group of
// writes touches). It prints the calls per second it made (wall clock, after
// a warm-up of 1,000 calls), which under a profiler is only a rough figure,
// and the process's CPU time per call over the same calls (client and server
// together) with how many of the machine's cores that kept busy on average.
// For writes it adds the store's writer, from the server's own metrics: its
// time a call running the writes and committing them, the share of the run
// it was busy, and how many writes each commit carried.
//
// Two knobs, from the environment:
// - WARMUP=N: the warm-up's calls (1,000). A write adds about four pages to
//   the store's write-ahead log, which grows to 20,000 frames before it first
//   starts over; until then each commit also extends the file, and its fsync
//   writes the file's metadata too (about 95 µs more a commit on this
//   machine's disk). WARMUP=7000 measures the steady state the paired
//   benchmark's measured iterations run in, after its warm-up iteration.
// - SPIN_NS=N: each call first spins N nanoseconds on the client's task: CPU
//   added outside the store's writer, to measure what a microsecond of it
//   costs the calls a second (BENCHMARKS.md).
import BenchmarkMessages
import Foundation
import HavenClient
import HavenEmbedding
import HavenProtocol
import SwiftProtobuf

let arguments = CommandLine.arguments
guard arguments.count == 4 || arguments.count == 5, ["read", "write"].contains(arguments[1]),
    let calls = Int(arguments[2]), let inFlight = Int(arguments[3]),
    let caseCount = arguments.count == 5 ? Int(arguments[4]) : 16, calls > 0, inFlight > 0, caseCount > 0
else {
    print("usage: profile-calls read|write CALLS IN-FLIGHT [CASES (16; the end-to-end write benchmarks use 100)]")
    exit(64)
}
let kind = arguments[1]
let directory = FileManager.default.temporaryDirectory.appendingPathComponent("haven-profile-\(UUID().uuidString)")
defer { try? FileManager.default.removeItem(at: directory) }
let server = try await EmbeddedServer.start(in: directory)
func configuration(_ bundle: URL) throws -> HavenClientConfiguration {
    var configuration = HavenClientConfiguration(
        host: "127.0.0.1",
        port: server.port,
        credentials: try HavenCredentials(bundle: bundle)
    )
    configuration.serverHostname = "localhost"
    return configuration
}
let admin = HavenClient(configuration: try configuration(server.adminCredentials))
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
let client = HavenClient(
    configuration: try configuration(try await server.addAccount(id: "profile", role: .caseworker, offices: ["KOL"]))
)
var caseIDs: [String] = []
for number in 0..<caseCount {
    caseIDs.append(
        try await client.cases.open(
            .with {
                $0.officeCode = "KOL"
                $0.category = .forcedLabour
                $0.title = "Profiled case \(number) (fictional)"
            }
        ).id
    )
}
let cases = caseIDs

/// CPU each call spends on the client's task first (SPIN_NS; none by default).
let spinNanoseconds = UInt64(ProcessInfo.processInfo.environment["SPIN_NS"] ?? "") ?? 0
@Sendable func call(_ index: Int) async throws {
    if spinNanoseconds > 0 {
        let until = DispatchTime.now().uptimeNanoseconds + spinNanoseconds
        while DispatchTime.now().uptimeNanoseconds < until {}
    }
    let caseID = cases[index % cases.count]
    if kind == "read" {
        _ = try await client.cases.get(.with { $0.caseID = caseID })
    } else {
        _ = try await client.cases.appendEvent(Representative.append(caseID: caseID, note: "profiled note (fictional)"))
    }
}

func run(_ count: Int) async throws -> Duration {
    let clock = ContinuousClock()
    let start = clock.now
    try await withThrowingTaskGroup(of: Void.self) { group in
        for worker in 0..<min(inFlight, count) {
            group.addTask {
                for index in stride(from: worker, to: count, by: inFlight) { try await call(index) }
            }
        }
        try await group.waitForAll()
    }
    return clock.now - start
}

/// CPU seconds the process has used, user and system.
func cpuSeconds() -> (user: Double, system: Double) {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
    return (seconds(usage.ru_utime), seconds(usage.ru_stime))
}

/// A sample's value from the server's metrics (0 when it has none yet).
func metric(_ text: String, _ sample: String) -> Double {
    for line in text.split(separator: "\n") where line.hasPrefix(sample + " ") {
        return Double(line.dropFirst(sample.count + 1)) ?? 0
    }
    return 0
}
let writerSamples = [
    "haven_store_writer_seconds_total{phase=\"writes\"}", "haven_store_writer_seconds_total{phase=\"commit\"}",
    "haven_store_commit_batch_size_sum", "haven_store_commit_batch_size_count",
    "haven_store_wal_checkpoints_total{by=\"writer\"}", "haven_store_wal_checkpoints_total{by=\"background\"}",
    "haven_store_writer_cpu_seconds_total{phase=\"writes\"}", "haven_store_writer_cpu_seconds_total{phase=\"commit\"}",
]

_ = try await run(Int(ProcessInfo.processInfo.environment["WARMUP"] ?? "") ?? 1_000)
let metricsBefore = server.metrics()
let cpuBefore = cpuSeconds()
let elapsed = try await run(calls)
let cpuAfter = cpuSeconds()
let metricsAfter = server.metrics()
let writer = writerSamples.map { metric(metricsAfter, $0) - metric(metricsBefore, $0) }
let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
let user = (cpuAfter.user - cpuBefore.user) / Double(calls) * 1e6
let system = (cpuAfter.system - cpuBefore.system) / Double(calls) * 1e6
print(
    "\(kind): \(calls) calls, \(inFlight) in flight: \(Int(Double(calls) / seconds)) calls/s;"
        + " CPU per call \(Int(user + system)) µs (user \(Int(user)), system \(Int(system)));"
        + " \(String(format: "%.2f", (user + system) * Double(calls) / 1e6 / seconds)) cores busy"
)
// Where a call's time goes: as the client sees it (the calls in flight over
// the calls a second, by Little's law), inside the server's call (from its
// task's start to its end written), and the rest (the client, TLS, the event
// loops and the hops between threads); for writes, what a group took.
let method = kind == "read" ? "haven.v1.CaseService/GetCase" : "haven.v1.CaseService/AppendCaseEvent"
let inCall = ["_sum", "_count"].map {
    let sample = "haven_call_duration_seconds\($0){method=\"\(method)\"}"
    return metric(metricsAfter, sample) - metric(metricsBefore, sample)
}
let groups = ["haven_store_commit_duration_seconds_sum", "haven_store_commit_duration_seconds_count"].map {
    metric(metricsAfter, $0) - metric(metricsBefore, $0)
}
let seen = Double(inFlight) * seconds / Double(calls) * 1e6
let inServer = inCall[0] / max(inCall[1], 1) * 1e6
print(
    "a call: \(Int(seen)) µs as the client sees it; \(Int(inServer)) µs in the server's call;"
        + " \(Int(seen - inServer)) µs outside it (client, TLS, event loops)"
        + (kind == "write" ? "; a group \(Int(groups[0] / max(groups[1], 1) * 1e6)) µs from its start to durable" : "")
)
if kind == "write" {
    // The store's one writer: its time a call, running the writes and
    // committing them (each with how much of it was on a CPU), how much of
    // the run it was busy, and its groups' size.
    func perCall(_ seconds: Double) -> Int { Int(seconds / Double(calls) * 1e6) }
    print(
        "writer: \(perCall(writer[0])) µs a call running writes (\(perCall(writer[6])) on a CPU),"
            + " \(perCall(writer[1])) µs committing (\(perCall(writer[7])) on a CPU);"
            + " busy \(Int((writer[0] + writer[1]) / seconds * 100)) % of the time;"
            + " \(String(format: "%.1f", writer[2] / max(writer[3], 1))) writes a commit;"
            + " checkpoints: \(Int(writer[4])) by the writer, \(Int(writer[5])) in the background"
    )
}
client.close()
try await server.stop()
