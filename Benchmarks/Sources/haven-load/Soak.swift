import Foundation
import HavenClient
import HavenProtocol
import Synchronization

/// The soak's side loads: change-feed followers that reconnect, and clients
/// that connect, call and disconnect in the middle of a call.
struct SideLoad: Sendable {
    let configuration: HavenClientConfiguration
    let office: String
    let seeds: Seeds

    final class Counts: Sendable {
        let followerCycles = Atomic<Int>(0)
        let feedItems = Atomic<Int>(0)
        let churnCycles = Atomic<Int>(0)
        /// Failures nobody asked for (not the calls a churning client abandons by disconnecting).
        let errors = Mutex<[String: Int]>([:])

        func failed(_ error: any Error, _ what: String) {
            let code = (error as? HavenError).map { "\($0.code)" } ?? "\(type(of: error))"
            self.errors.withLock { $0["\(what) \(code)", default: 0] += 1 }
        }
    }

    /// Follows the feed on a new connection for 1–5 s, drops that connection
    /// with the stream open, and resumes on a new one after the last cursor,
    /// until `end`.
    func follow(until end: ContinuousClock.Instant, counts: Counts) async {
        /// The cursor of the last item seen, shared with the task that follows.
        final class Cursor: Sendable { let last = Mutex<String?>(nil) }
        let cursor = Cursor()
        while ContinuousClock.now < end {
            let client = HavenClient(configuration: self.configuration)
            let lifetime = Duration.milliseconds(Int.random(in: 1_000...5_000))
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    do {
                        for try await item in client.feed.follow(
                            after: cursor.last.withLock { $0 },
                            officeCodes: [self.office]
                        ) {
                            counts.feedItems.wrappingAdd(1, ordering: .relaxed)
                            cursor.last.withLock { $0 = item.cursor }
                        }
                    } catch is CancellationError {
                    } catch let error as HavenError where error.code == .cancelled {
                    } catch {
                        counts.failed(error, "feed")
                    }
                }
                try? await Task.sleep(for: lifetime)
                // The connection goes first, with the stream open: the server sees a peer vanish.
                client.close()
                group.cancelAll()
            }
            counts.followerCycles.wrappingAdd(1, ordering: .relaxed)
        }
    }

    /// Connects, reads a case, starts another read and disconnects without
    /// waiting for it, until `end`.
    func churn(until end: ContinuousClock.Instant, counts: Counts) async {
        while ContinuousClock.now < end {
            let client = HavenClient(configuration: self.configuration)
            do {
                _ = try await client.cases.get(.with { $0.caseID = self.seeds.cases.randomElement()! })
            } catch {
                counts.failed(error, "churn")
            }
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    // Abandoned by the disconnect below: any outcome is fine.
                    _ = try? await client.survivors.get(.with { $0.survivorID = self.seeds.survivors.randomElement()! })
                }
                try? await Task.sleep(for: .milliseconds(Int.random(in: 0...5)))
                client.close()
            }
            counts.churnCycles.wrappingAdd(1, ordering: .relaxed)
        }
    }
}

/// The server process's resident memory and open descriptors, read from
/// `/proc/<pid>` (haven-load and havend on one machine).
struct ProcessWatch: Sendable {
    let pid: Int32

    struct Sample: Sendable {
        var residentBytes: Int
        var descriptors: Int
        /// Descriptors that are sockets: the listeners and the connections.
        var sockets: Int
    }

    func sample() -> Sample? {
        let directory = "/proc/\(self.pid)/fd"
        guard
            let status = try? String(contentsOfFile: "/proc/\(self.pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kib = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) }),
            let descriptors = try? FileManager.default.contentsOfDirectory(atPath: directory)
        else { return nil }
        let sockets = descriptors.filter {
            (try? FileManager.default.destinationOfSymbolicLink(atPath: directory + "/" + $0))?.hasPrefix("socket:")
                == true
        }
        return Sample(residentBytes: kib * 1024, descriptors: descriptors.count, sockets: sockets.count)
    }

    /// Samples every second until `end`; returns the largest values seen.
    func peak(until end: ContinuousClock.Instant) async -> Sample {
        var peak = Sample(residentBytes: 0, descriptors: 0, sockets: 0)
        while ContinuousClock.now < end {
            if let sample = self.sample() {
                peak.residentBytes = max(peak.residentBytes, sample.residentBytes)
                peak.descriptors = max(peak.descriptors, sample.descriptors)
                peak.sockets = max(peak.sockets, sample.sockets)
            }
            try? await Task.sleep(for: .seconds(1))
        }
        return peak
    }

    /// Waits (at most `patience`) for the open sockets to fall to `limit`; returns the last sample.
    func settle(socketsTo limit: Int, patience: Duration = .seconds(15)) async -> Sample? {
        let deadline = ContinuousClock.now + patience
        var last = self.sample()
        while let sample = last, sample.sockets > limit, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(200))
            last = self.sample()
        }
        return last
    }
}

/// What a soak saw of the server and its side loads, and its verdict.
struct SoakReport {
    var idle: ProcessWatch.Sample?
    var warm: ProcessWatch.Sample?
    var peak: ProcessWatch.Sample?
    var final: ProcessWatch.Sample?
    var followerCycles = 0
    var feedItems = 0
    var churnCycles = 0
    var sideErrors: [String: Int] = [:]

    /// Descriptors the store's read connections may add and keep: 5 readers, database and WAL each.
    static let readerDescriptors = 10

    func mib(_ bytes: Int?) -> String { bytes.map { String(format: "%.1f", Double($0) / 1_048_576) } ?? "?" }

    /// Resident memory grown from the warm server to the end.
    var residentGrowth: Int? {
        guard let warm, let final else { return nil }
        return final.residentBytes - warm.residentBytes
    }

    /// Why the soak failed, empty when it passed.
    func problems(loadErrors: [String: Int], maxResidentGrowthMiB: Int) -> [String] {
        var problems: [String] = []
        if !loadErrors.isEmpty { problems.append("calls failed: \(loadErrors)") }
        if !self.sideErrors.isEmpty { problems.append("feeds or churning clients failed: \(self.sideErrors)") }
        if let growth = self.residentGrowth, growth > maxResidentGrowthMiB << 20 {
            problems.append("server resident memory grew \(self.mib(growth)) MiB (bound \(maxResidentGrowthMiB) MiB)")
        }
        if let idle = self.idle, let final = self.final {
            if final.sockets > idle.sockets {
                problems.append("server sockets \(idle.sockets) before, \(final.sockets) after: connections not closed")
            }
            // The store opens up to 5 read connections on demand (GRDB's pool), 2 files each, and keeps them.
            if final.descriptors > idle.descriptors + SoakReport.readerDescriptors {
                problems.append("server descriptors \(idle.descriptors) before, \(final.descriptors) after")
            }
        }
        return problems
    }

    var text: String {
        var lines = [
            "feeds:      \(self.followerCycles) follower connections, \(self.feedItems) items",
            "churn:      \(self.churnCycles) clients connected, called and dropped mid-call",
        ]
        if let idle, let warm, let peak, let final {
            lines.append(
                "server:     resident MiB idle \(self.mib(idle.residentBytes)), warm \(self.mib(warm.residentBytes)), peak \(self.mib(peak.residentBytes)), final \(self.mib(final.residentBytes)); descriptors idle \(idle.descriptors), peak \(peak.descriptors), final \(final.descriptors); sockets idle \(idle.sockets), peak \(peak.sockets), final \(final.sockets)"
            )
        }
        return lines.joined(separator: "\n")
    }

    var json: [String: Any] {
        var object: [String: Any] = [
            "followerCycles": self.followerCycles, "feedItems": self.feedItems, "churnCycles": self.churnCycles,
            "sideErrors": self.sideErrors,
        ]
        if let idle, let warm, let peak, let final {
            object["server"] = [
                "residentBytes": [
                    "idle": idle.residentBytes, "warm": warm.residentBytes, "peak": peak.residentBytes,
                    "final": final.residentBytes,
                ],
                "descriptors": ["idle": idle.descriptors, "peak": peak.descriptors, "final": final.descriptors],
                "sockets": ["idle": idle.sockets, "peak": peak.sockets, "final": final.sockets],
            ]
        }
        return object
    }
}
