import Dispatch
import Foundation
import HavenProtocol

/// A `havend` process (the built product), listening.
public final class HavendProcess: @unchecked Sendable {
    public let process: ChildProcess
    public let port: Int
    /// The operations listener's port (`/metrics`, `/health/…`).
    public let operationsPort: Int
    let output: Pipe

    /// Starts havend with `arguments` and waits for its "listening on" line.
    /// Its operations listener takes a free port (tests run several havends
    /// at once) unless `arguments` choose one.
    ///
    /// - Throws: ``HavenError`` UNAVAILABLE, with what it printed, when it does not start.
    public init(_ executable: URL = RepositoryPaths.product("havend"), arguments: [String]) throws {
        self.output = Pipe()
        let null = try ChildProcess.nullDevice()
        defer { close(null) }
        self.process = try ChildProcess(
            executable,
            arguments: arguments,
            environment: ProcessInfo.processInfo.environment.merging(["HAVEN_OPS_LISTEN_PORT": "0"]) {
                chosen,
                _ in chosen
            },
            standardInput: null,
            standardOutput: self.output.fileHandleForWriting.fileDescriptor,
            standardError: null
        )
        try self.output.fileHandleForWriting.close()
        // "havend <version> listening on [IPv4]127.0.0.1/127.0.0.1:PORT", once it listens.
        var text = ""
        while !text.contains("listening on") {
            let data = self.output.fileHandleForReading.availableData
            if data.isEmpty { break }
            text += String(decoding: data, as: UTF8.self)
        }
        guard let line = text.split(separator: "\n").first(where: { $0.contains("listening on") }),
            let port = line.split(separator: ":").last.flatMap({ Int($0.trimmingCharacters(in: .whitespaces)) })
        else {
            self.process.terminate()
            throw HavenError(code: .unavailable, message: "havend did not start: \(text)")
        }
        self.port = port
        // "operations (metrics, health) on http://127.0.0.1:PORT"
        self.operationsPort =
            text.split(separator: "\n").first(where: { $0.contains("operations (metrics, health) on") })
            .flatMap { $0.split(separator: ":").last }.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) } ?? 0
    }

    /// Starts havend off Swift's cooperative threads (waiting for it blocks a
    /// thread, and in-process servers of other tests need them).
    public static func start(
        _ executable: URL = RepositoryPaths.product("havend"),
        arguments: [String]
    ) async throws -> HavendProcess {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try HavendProcess(executable, arguments: arguments) })
            }
        }
    }

    /// ``kill()`` off Swift's cooperative threads.
    public func killed() async {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                self.kill()
                continuation.resume()
            }
        }
    }

    /// ``stop()`` off Swift's cooperative threads.
    public func stopped() async -> Int32 {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: self.stop()) }
        }
    }

    /// SIGTERM, and waits for the exit status.
    public func stop() -> Int32 {
        self.process.terminate()
        self.process.waitUntilExit()
        return self.process.terminationStatus
    }

    /// The process's open file descriptors (sockets, the database, pipes), from `/proc`.
    public var openDescriptors: Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(self.process.processIdentifier)/fd").count) ?? -1
    }

    /// The process's open sockets (descriptors that are sockets): what peers'
    /// connections hold.
    public var openSockets: Int {
        let directory = "/proc/\(self.process.processIdentifier)/fd"
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return -1 }
        return entries.filter {
            (try? FileManager.default.destinationOfSymbolicLink(atPath: directory + "/" + $0))?.hasPrefix("socket:")
                == true
        }.count
    }

    /// The process's resident memory in bytes (`VmRSS` in `/proc/<pid>/status`).
    public var residentBytes: Int {
        guard
            let status = try? String(contentsOfFile: "/proc/\(self.process.processIdentifier)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kib = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) })
        else { return -1 }
        return kib * 1024
    }

    /// Whether the process is still running.
    public var isRunning: Bool { self.process.isRunning }

    /// SIGKILL: no shutdown, no flush beyond what was committed.
    public func kill() {
        _ = Foundation.kill(self.process.processIdentifier, SIGKILL)
        self.process.waitUntilExit()
    }
}
