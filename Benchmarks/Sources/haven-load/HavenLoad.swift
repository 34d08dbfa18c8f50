import ArgumentParser
import Foundation
import HavenClient
import HavenProtocol
import Histogram
import NIOCore
import SwiftProtobuf
import Synchronization

/// `haven-load`: load-tests a Haven deployment over TLS.
@main
struct HavenLoad: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "haven-load",
        abstract: "Load-tests a Haven server with a mix of real calls over mutual TLS.",
        discussion: """
            The credentials must be a director's or caseworker's of --office. haven-load
            first seeds cases and survivors there (idempotently), warms up, then runs for
            --duration and prints calls/s, errors by code and latency percentiles
            (HdrHistogram; with --rate, latency counts from each call's scheduled start,
            so a slow server cannot hide queueing). It only targets loopback addresses
            unless --i-own-the-target says the operator owns the server.
            """
    )

    @Option(help: ArgumentHelp("The server, host:port.", valueName: "host:port")) var target = Target("localhost", 7443)
    @Option(help: ArgumentHelp("Credentials bundle directory.", valueName: "dir")) var credentials: String
    @Option(help: "TLS name of the server (defaults to the host).") var serverName: String?
    @Option(help: "Office whose records are read and written.") var office = "KOL"
    @Option(help: "TLS connections.") var connections = 1
    @Option(help: "Calls in flight (closed loop) or workers (with --rate).") var concurrency = 16
    @Option(help: "Seconds of measurement (1 to 3600).") var duration = 10
    @Option(help: "Seconds of warm-up before measuring.") var warmup = 2
    @Option(help: "Open loop: calls per second in total. Closed loop when absent.") var rate: Int?
    @Option(help: "Call mix: read, append and register weights, e.g. read=80,append=15,register=5.")
    var mix = "read=80,append=15,register=5"
    @Option(help: "Records seeded for reads.") var seed = 50
    @Option(help: "Soak: change-feed followers, each reconnecting every 1-5 s and resuming after its cursor.")
    var followers = 0
    @Option(help: "Soak: clients that connect, call, and disconnect in the middle of a call, over and over.")
    var churn = 0
    @Option(help: "Soak: the server's process id (same machine): samples its resident memory, descriptors and sockets.")
    var watchPid: Int32?
    @Option(
        help: "Soak: with --check and --watch-pid, the most the server's resident memory may grow from warm to the end."
    )
    var maxResidentGrowthMib = 64
    @Flag(
        help:
            "Exit 1 on any failed call, feed or churn failure, or (with --watch-pid) memory growth above the bound or server sockets not back to idle."
    )
    var check = false
    @Flag(help: "Print the results as JSON.") var json = false
    @Flag(name: .customLong("i-own-the-target"), help: "Allow a target outside loopback: you own that server.")
    var ownsTarget = false

    func validate() throws {
        guard (1...3600).contains(self.duration) else { throw ValidationError("--duration must be 1 to 3600 seconds") }
        guard (0...600).contains(self.warmup) else { throw ValidationError("--warmup must be 0 to 600 seconds") }
        guard (1...256).contains(self.connections) else { throw ValidationError("--connections must be 1 to 256") }
        guard (1...10_000).contains(self.concurrency) else { throw ValidationError("--concurrency must be 1 to 10000") }
        if let rate = self.rate, !(1...1_000_000).contains(rate) {
            throw ValidationError("--rate must be 1 to 1000000")
        }
        guard (1...10_000).contains(self.seed) else { throw ValidationError("--seed must be 1 to 10000") }
        guard (0...256).contains(self.followers) else { throw ValidationError("--followers must be 0 to 256") }
        guard (0...256).contains(self.churn) else { throw ValidationError("--churn must be 0 to 256") }
        guard (1...65536).contains(self.maxResidentGrowthMib) else {
            throw ValidationError("--max-resident-growth-mib must be 1 to 65536")
        }
        if let pid = self.watchPid, ProcessWatch(pid: pid).sample() == nil {
            throw ValidationError("--watch-pid \(pid): no such process readable in /proc")
        }
        _ = try Mix(self.mix)
        if !self.ownsTarget, !self.target.isLoopback {
            throw ValidationError(
                "\(self.target) is not a loopback address; pass --i-own-the-target only for a server you operate"
            )
        }
    }

    func run() async throws {
        var configuration = HavenClientConfiguration(
            host: self.target.host,
            port: self.target.port,
            credentials: try HavenCredentials(bundle: URL(fileURLWithPath: self.credentials, isDirectory: true))
        )
        configuration.serverHostname = self.serverName
        configuration.clientAgent = "haven-load/\(HavenClient.version)"
        configuration.maximumAttempts = 1
        let watch = self.watchPid.map(ProcessWatch.init)
        var report = SoakReport()
        report.idle = watch?.sample()
        let clients = (0..<self.connections).map { _ in HavenClient(configuration: configuration) }
        defer { for client in clients { client.close() } }

        let seeds = try await Seeds.make(clients[0], office: self.office, count: self.seed)
        let mix = try Mix(self.mix)
        let workload = Workload(mix: mix, seeds: seeds, office: self.office)

        if self.warmup > 0 {
            _ = try await self.measure(clients, workload, seconds: self.warmup, label: "warm-up")
        }
        report.warm = watch?.sample()
        let side = SideLoad(configuration: configuration, office: self.office, seeds: seeds)
        let counts = SideLoad.Counts()
        let end = ContinuousClock.now + .seconds(self.duration)
        let (result, peak) = try await withThrowingTaskGroup(of: ProcessWatch.Sample?.self) { group in
            for _ in 0..<self.followers {
                group.addTask {
                    await side.follow(until: end, counts: counts)
                    return nil
                }
            }
            for _ in 0..<self.churn {
                group.addTask {
                    await side.churn(until: end, counts: counts)
                    return nil
                }
            }
            if let watch { group.addTask { await watch.peak(until: end) } }
            let result = try await self.measure(clients, workload, seconds: self.duration, label: "measuring")
            var peak: ProcessWatch.Sample?
            for try await sample in group where sample != nil { peak = sample }
            return (result, peak)
        }
        report.peak = peak
        report.followerCycles = counts.followerCycles.load(ordering: .relaxed)
        report.feedItems = counts.feedItems.load(ordering: .relaxed)
        report.churnCycles = counts.churnCycles.load(ordering: .relaxed)
        report.sideErrors = counts.errors.withLock { $0 }
        if let watch, let idle = report.idle {
            // Every client gone: the server's descriptors must come back to where they were.
            for client in clients { client.close() }
            report.final = await watch.settle(socketsTo: idle.sockets)
        }
        let soak = self.followers > 0 || self.churn > 0 || watch != nil
        if self.json {
            say(
                result.json(
                    target: self.target.description,
                    connections: self.connections,
                    concurrency: self.concurrency,
                    rate: self.rate,
                    mix: self.mix,
                    soak: soak ? report.json : nil
                )
            )
        } else {
            say(
                result.text(
                    connections: self.connections,
                    concurrency: self.concurrency,
                    rate: self.rate,
                    mix: self.mix
                )
            )
            if soak { say(report.text) }
        }
        if self.check {
            let problems = report.problems(loadErrors: result.errors, maxResidentGrowthMiB: self.maxResidentGrowthMib)
            guard problems.isEmpty else {
                FileHandle.standardError.write(Data("check FAILED: \(problems.joined(separator: "; "))\n".utf8))
                throw ExitCode(1)
            }
            FileHandle.standardError.write(Data("check passed\n".utf8))
        }
    }

    func measure(_ clients: [HavenClient], _ workload: Workload, seconds: Int, label: String) async throws -> LoadResult
    {
        let recorder = Recorder()
        let start = ContinuousClock.now
        let end = start + .seconds(seconds)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                while ContinuousClock.now < end {
                    try await Task.sleep(for: .seconds(1))
                    let snapshot = recorder.snapshot()
                    let elapsed = Double((ContinuousClock.now - start).components.seconds)
                    FileHandle.standardError.write(
                        Data(
                            "\r\(label): \(Int(elapsed))s  \(snapshot.calls) calls  \(snapshot.errors) errors  \(Int(Double(snapshot.calls) / max(elapsed, 1))) calls/s   "
                                .utf8
                        )
                    )
                }
                FileHandle.standardError.write(Data("\n".utf8))
            }
            let workers = self.concurrency
            for worker in 0..<workers {
                let client = clients[worker % clients.count]
                let interval: Duration? = self.rate.map {
                    .nanoseconds(Int64(1_000_000_000.0 * Double(workers) / Double($0)))
                }
                group.addTask {
                    var histogram = Histogram<UInt64>(
                        highestTrackableValue: 60_000_000_000,
                        numberOfSignificantValueDigits: .three
                    )
                    var errors: [String: Int] = [:]
                    var intended = ContinuousClock.now
                    var random = SystemRandomNumberGenerator()
                    while ContinuousClock.now < end {
                        if let interval {
                            intended = intended + interval
                            if intended > ContinuousClock.now { try await Task.sleep(until: intended) }
                        } else {
                            intended = .now
                        }
                        var failed = false
                        do {
                            try await workload.call(client, using: &random)
                        } catch let error as HavenError {
                            errors["\(error.code)", default: 0] += 1
                            failed = true
                        }
                        let latency = ContinuousClock.now - intended
                        let nanoseconds =
                            latency.components.seconds * 1_000_000_000 + latency.components.attoseconds / 1_000_000_000
                        _ = histogram.record(UInt64(max(0, nanoseconds)))
                        recorder.count(failed: failed)
                    }
                    recorder.merge(histogram, errors)
                }
            }
            try await group.waitForAll()
        }
        return recorder.result(seconds: Double(seconds))
    }
}

/// `--target`, parsed once: a host (IPv6 without its brackets) and a port.
struct Target: ExpressibleByArgument, CustomStringConvertible, Sendable {
    let host: String
    let port: Int

    init(_ host: String, _ port: Int) {
        self.host = host
        self.port = port
    }

    init?(argument: String) {
        guard let colon = argument.lastIndex(of: ":"), colon != argument.startIndex,
            let port = Int(argument[argument.index(after: colon)...]), (1...65535).contains(port)
        else { return nil }
        self.init(argument[..<colon].trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port)
    }

    var description: String { self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)" }

    /// localhost, 127.0.0.0/8 or ::1.
    var isLoopback: Bool {
        if self.host == "localhost" || self.host == "::1" { return true }
        let parts = self.host.split(separator: ".")
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }
}

func say(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}
