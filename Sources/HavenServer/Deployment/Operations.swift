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
        /// Calls started in each of the last 60 seconds, by second.
        var seconds = [UInt64](repeating: 0, count: 60)
        var current: Int64 = 0

        mutating func advance(to second: Int64) {
            if second - self.current >= 60 {
                self.seconds = [UInt64](repeating: 0, count: 60)
            } else if second > self.current {
                for passed in (self.current + 1)...second { self.seconds[Int(passed % 60)] = 0 }
            }
            self.current = max(self.current, second)
        }
    }

    private let state = Mutex(State())
    /// When the process started serving.
    package let startedAt: Date

    package init(startedAt: Date = Date()) {
        self.startedAt = startedAt
    }

    package func callStarted(at now: Date = Date()) {
        let second = Int64(now.timeIntervalSince1970)
        self.state.withLock { state in
            state.advance(to: second)
            state.callsTotal += 1
            state.seconds[Int(second % 60)] += 1
        }
    }

    package func connectionOpened() { self.state.withLock { $0.connections += 1 } }
    package func handshakeFailed() { self.state.withLock { $0.handshakeFailures += 1 } }
    package func connectionRefused() { self.state.withLock { $0.connectionsRefused += 1 } }
    package func writeStalled() { self.state.withLock { $0.writeStalls += 1 } }
    /// Connections closed because their peer stopped reading, since the start.
    package var writeStalls: UInt64 { self.state.withLock { $0.writeStalls } }

    /// TLS handshakes failed and connections refused after it, since the start.
    package var refusals: (handshakeFailures: UInt64, connectionsRefused: UInt64) {
        self.state.withLock { ($0.handshakeFailures, $0.connectionsRefused) }
    }
    package func connectionClosed() { self.state.withLock { $0.connections -= 1 } }

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
    package var database: SQLiteStore?
    /// The operator's backup key (`backup_public_key`); nil: backups are off.
    package var backupRecipient: Curve25519.KeyAgreement.PublicKey?
    package var statistics: ServerStatistics
    package var development: Bool

    package init(
        directory: DataDirectory? = nil,
        database: SQLiteStore? = nil,
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
