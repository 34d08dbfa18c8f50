import Crypto
import Foundation
import HavenProtocol
import HavenStore
import Synchronization

/// Counts what the status shows: calls (in total, and per second over the
/// last minute) and open connections.
package final class ServerStatistics: Sendable {
    private struct State {
        var callsTotal: UInt64 = 0
        var connections = 0
        var handshakeFailures: UInt64 = 0
        var connectionsRefused: UInt64 = 0
        var writeStalls: UInt64 = 0
        var callsInFlight = 0
        var accepting = false
        /// Calls that ended with a server fault in each of the last 60 seconds.
        var faults = [UInt64](repeating: 0, count: 60)
        /// Calls started in each of the last 60 seconds, by second.
        var seconds = [UInt64](repeating: 0, count: 60)
        var current: Int64 = 0

        mutating func advance(to second: Int64) {
            if second - self.current >= 60 {
                self.seconds = [UInt64](repeating: 0, count: 60)
                self.faults = [UInt64](repeating: 0, count: 60)
            } else if second > self.current {
                for passed in (self.current + 1)...second {
                    self.seconds[Int(passed % 60)] = 0
                    self.faults[Int(passed % 60)] = 0
                }
            }
            self.current = max(self.current, second)
        }
    }

    private let state = Mutex(State())
    /// When the process started serving.
    package let startedAt: Date
    /// The same events, and more, for the metrics scraped at `/metrics`.
    package let metrics: ServerMetrics

    package init(startedAt: Date = Date(), metrics: ServerMetrics = ServerMetrics()) {
        self.startedAt = startedAt
        self.metrics = metrics
    }

    /// A call accepted for running.
    package func callStarted(at now: Date = Date()) {
        let second = Int64(now.timeIntervalSince1970)
        self.state.withLock { state in
            state.advance(to: second)
            state.callsTotal += 1
            state.callsInFlight += 1
            state.seconds[Int(second % 60)] += 1
        }
        self.metrics.callStarted()
    }

    /// A call that ran ended with `code` after `duration`.
    package func callEnded(method: String, code: StatusCode, duration: Duration, at now: Date = Date()) {
        let second = Int64(now.timeIntervalSince1970)
        self.state.withLock { state in
            state.advance(to: second)
            state.callsInFlight -= 1
            if ServerStatistics.serverFaults.contains(code) { state.faults[Int(second % 60)] += 1 }
        }
        self.metrics.callEnded(method: method, code: code, duration: duration)
    }

    /// The codes that count as the server's faults (a client's mistake or a
    /// refusal is not one), as OpenTelemetry's conventions for RPC servers count them.
    package static let serverFaults: Set<StatusCode> = [
        .unknown, .deadlineExceeded, .unimplemented, .internal, .unavailable, .dataLoss,
    ]

    /// Whether the RPC listener accepts connections (bound and not shutting down).
    package var isAccepting: Bool {
        get { self.state.withLock { $0.accepting } }
        set { self.state.withLock { $0.accepting = newValue } }
    }

    /// Calls in flight, and calls that ended with a server fault in the last minute.
    package func load(at now: Date = Date()) -> (inFlight: Int, faultsLastMinute: UInt64) {
        let second = Int64(now.timeIntervalSince1970)
        return self.state.withLock { state in
            state.advance(to: second)
            return (state.callsInFlight, state.faults.reduce(0, +))
        }
    }

    package func connectionOpened() {
        self.state.withLock { $0.connections += 1 }
        self.metrics.connectionOpened()
    }

    package func handshakeFailed(reason: String) {
        self.state.withLock { $0.handshakeFailures += 1 }
        self.metrics.handshakeFailed(reason: reason)
    }

    package func connectionRefused(_ reason: RefusalReason) {
        self.state.withLock { $0.connectionsRefused += 1 }
        self.metrics.connectionRefused(reason)
    }

    package func writeStalled() {
        self.state.withLock { $0.writeStalls += 1 }
        self.metrics.writeStalled()
    }

    /// Connections closed because their peer stopped reading, since the start.
    package var writeStalls: UInt64 { self.state.withLock { $0.writeStalls } }

    /// TLS handshakes failed and connections refused after it, since the start.
    package var refusals: (handshakeFailures: UInt64, connectionsRefused: UInt64) {
        self.state.withLock { ($0.handshakeFailures, $0.connectionsRefused) }
    }
    package func connectionClosed() {
        self.state.withLock { $0.connections -= 1 }
        self.metrics.connectionClosed()
    }

    /// Open connections, calls in total, and calls per second over the last minute.
    package func snapshot(at now: Date = Date()) -> (connections: Int, callsTotal: UInt64, callsPerSecond: Double) {
        let second = Int64(now.timeIntervalSince1970)
        return self.state.withLock { state in
            state.advance(to: second)
            let window = min(60.0, max(1.0, now.timeIntervalSince(self.startedAt)))
            return (state.connections, state.callsTotal, Double(state.seconds.reduce(0, +)) / window)
        }
    }
}

/// What the operations methods (status, backup) work on.
package struct Operations: Sendable {
    /// The data directory (nil in process, where there is none).
    package var directory: DataDirectory?
    /// The live database, for snapshots and its size.
    package var database: (any StoreMaintenance)?
    /// The operator's backup key (`backup_public_key`); nil: backups are off.
    package var backupRecipient: Curve25519.KeyAgreement.PublicKey?
    package var statistics: ServerStatistics
    package var development: Bool

    package init(
        directory: DataDirectory? = nil,
        database: (any StoreMaintenance)? = nil,
        backupRecipient: Curve25519.KeyAgreement.PublicKey? = nil,
        statistics: ServerStatistics = ServerStatistics(),
        development: Bool = false
    ) {
        self.directory = directory
        self.database = database
        self.backupRecipient = backupRecipient
        self.statistics = statistics
        self.development = development
    }
}
