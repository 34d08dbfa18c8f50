/// Who may hold a socket of the server, and for how long: the state behind
/// ``TLSServer``'s limits, kept apart from NIO so its decisions are tested
/// directly.
///
/// Three kinds of connection are bounded separately, so that strangers cannot
/// take what authenticated clients need:
/// - **pending handshakes** (accepted, TLS not yet done): at most
///   `maxPending`; the next one evicts the *oldest* pending handshake. A
///   well-behaved client finishes its handshake in milliseconds, so a flood
///   of idle sockets costs the flooder its own sockets, not anyone else's.
/// - **enrolling connections** (TLS done without a client certificate): at
///   most `maxEnrolling`; more are refused.
/// - **authenticated connections**: at most `maxConnections`; more are refused.
struct ConnectionSlots<Pending, Connection> {
    let maxPending: Int
    let maxEnrolling: Int
    let maxConnections: Int

    private(set) var shuttingDown = false
    /// Pending handshakes by accept order.
    private var pending: [Int: Pending] = [:]
    private var nextPendingID = 0
    /// No pending id below this one is still pending.
    private var oldestPendingID = 1
    private var open: [ObjectIdentifier: (connection: Connection, enrolling: Bool)] = [:]
    private(set) var enrolling = 0

    init(maxPending: Int, maxEnrolling: Int, maxConnections: Int) {
        precondition(maxPending > 0 && maxEnrolling >= 0 && maxConnections > 0)
        self.maxPending = maxPending
        self.maxEnrolling = maxEnrolling
        self.maxConnections = maxConnections
    }

    var pendingCount: Int { self.pending.count }
    var openConnections: [Connection] { self.open.values.map(\.connection) }
    var authenticated: Int { self.open.count - self.enrolling }

    /// A socket was accepted: returns its pending id, and the pending
    /// handshake it evicts (to be failed and closed) when there are too many.
    mutating func accepted(_ connection: Pending) -> (id: Int, evicted: Pending?) {
        self.nextPendingID += 1
        if self.shuttingDown { return (self.nextPendingID, connection) }
        self.pending[self.nextPendingID] = connection
        guard self.pending.count > self.maxPending else { return (self.nextPendingID, nil) }
        while self.pending[self.oldestPendingID] == nil { self.oldestPendingID += 1 }
        let evicted = self.pending.removeValue(forKey: self.oldestPendingID)
        self.oldestPendingID += 1
        return (self.nextPendingID, evicted)
    }

    /// The handshake of pending `id` finished (or failed, or it was evicted).
    mutating func handshakeEnded(_ id: Int) {
        self.pending.removeValue(forKey: id)
    }

    /// Why a connection whose handshake succeeded may not open, or nil
    /// once it holds a slot (until ``closed(_:)``).
    mutating func admit(_ key: ObjectIdentifier, _ connection: Connection, enrolling: Bool) -> RefusalReason? {
        if self.shuttingDown { return .shuttingDown }
        if enrolling {
            guard self.enrolling < self.maxEnrolling else { return .tooManyEnrolling }
            self.enrolling += 1
        } else {
            guard self.authenticated < self.maxConnections else { return .tooManyConnections }
        }
        self.open[key] = (connection, enrolling)
        return nil
    }

    /// A connection that held a slot closed. Returns whether it was the last
    /// one of a server shutting down (the drain is complete).
    mutating func closed(_ key: ObjectIdentifier) -> Bool {
        if let closed = self.open.removeValue(forKey: key), closed.enrolling { self.enrolling -= 1 }
        return self.shuttingDown && self.open.isEmpty
    }

    /// The server stops accepting: returns the open connections to drain,
    /// and the pending handshakes to close (no new session starts now, and
    /// an idle socket must not hold the shutdown for its handshake timeout).
    mutating func shutDown() -> (open: [Connection], pending: [Pending]) {
        self.shuttingDown = true
        let pending = self.pending.sorted { $0.key < $1.key }.map(\.value)
        self.pending.removeAll()
        return (self.openConnections, pending)
    }
}
