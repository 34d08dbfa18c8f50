import HavenProtocol
import NIOCore
import Synchronization

/// A few connections to the server, opened on demand, replaced when they
/// break, with exponential backoff and jitter between failed attempts.
final class ConnectionPool: Sendable {
    private struct Slot {
        var connection: ClientConnection?
        var connecting: EventLoopFuture<ClientConnection>?
        var failures = 0
        /// Whether the slot has had a connection before: the next one is a reconnect.
        var connectedBefore = false
        var nextAttempt = ContinuousClock.now
        /// Why the last attempt failed: what a call that cannot wait for the next one reports.
        var lastError: HavenError?
    }

    private struct State {
        var slots: [Slot]
        var next = 0
        var closed = false
    }

    private let configuration: HavenClientConfiguration
    private let instruments: ClientInstruments
    private let group: any EventLoopGroup
    private let state: Mutex<State>
    /// The credentials new connections use (renewal replaces them).
    private let credentials: Mutex<HavenCredentials>

    init(configuration: HavenClientConfiguration, group: any EventLoopGroup, instruments: ClientInstruments) {
        self.instruments = instruments
        self.configuration = configuration
        self.group = group
        self.state = Mutex(State(slots: Array(repeating: Slot(), count: max(1, configuration.poolSize))))
        self.credentials = Mutex(configuration.credentials)
    }

    /// Connections opened from now on use `credentials`; open ones go on
    /// with theirs until they close.
    func replaceCredentials(_ credentials: HavenCredentials) {
        self.credentials.withLock { $0 = credentials }
    }

    /// The credentials new connections use.
    var currentCredentials: HavenCredentials { self.credentials.withLock { $0 } }

    private enum Step {
        case use(ClientConnection)
        case await(EventLoopFuture<ClientConnection>, slot: Int)
        case wait(until: ContinuousClock.Instant, lastError: HavenError?)
        case closed
    }

    /// A usable connection, opening one if needed, waiting out the backoff of
    /// a failed slot, until `deadline`.
    ///
    /// - Throws: ``CallFailure`` (not processed) when no connection can be
    ///   had before the deadline.
    func connection(before deadline: ContinuousClock.Instant) async throws -> ClientConnection {
        // Built only on the paths that fail: a call that finds its connection
        // open (nearly every call) formats no address.
        var lastError: HavenError?
        while true {
            let now = ContinuousClock.now
            let step = self.state.withLock { state -> Step in
                if state.closed { return .closed }
                let index = state.next % state.slots.count
                state.next &+= 1
                // The usual case, without copying the slot out and back.
                if let connection = state.slots[index].connection, connection.isUsable { return .use(connection) }
                var slot = state.slots[index]
                defer { state.slots[index] = slot }
                slot.connection = nil
                if let connecting = slot.connecting { return .await(connecting, slot: index) }
                if slot.nextAttempt > now { return .wait(until: slot.nextAttempt, lastError: slot.lastError) }
                let promise = self.group.next().makePromise(of: ClientConnection.self)
                var chosen = self.configuration
                chosen.credentials = self.currentCredentials
                let configuration = chosen
                let group = self.group
                promise.completeWithTask { try await ClientConnection.connect(configuration, group: group) }
                slot.connecting = promise.futureResult
                return .await(promise.futureResult, slot: index)
            }
            switch step {
            case .closed:
                throw CallFailure(
                    error: HavenError(code: .unavailable, message: "client closed", source: .client),
                    notProcessed: true
                )
            case .use(let connection):
                return connection
            case .wait(let instant, let slotError):
                guard instant < deadline else {
                    throw CallFailure(error: slotError ?? lastError ?? self.notConnectedYet, notProcessed: true)
                }
                try await Task.sleep(until: instant)
            case .await(let future, let index):
                do {
                    let connection = try await future.get()
                    let reconnected = self.state.withLock { state -> Bool in
                        guard state.slots[index].connecting == future else { return false }
                        state.slots[index].connecting = nil
                        state.slots[index].connection = connection
                        state.slots[index].failures = 0
                        defer { state.slots[index].connectedBefore = true }
                        return state.slots[index].connectedBefore
                    }
                    if reconnected { self.instruments.reconnected() }
                    if self.state.withLock({ $0.closed }) {
                        connection.close()
                        continue
                    }
                    return connection
                } catch {
                    if let failure = error as? CallFailure { lastError = failure.error }
                    self.instruments.connectionFailed()
                    self.state.withLock { state in
                        guard state.slots[index].connecting == future else { return }
                        state.slots[index].connecting = nil
                        state.slots[index].failures += 1
                        state.slots[index].lastError = (error as? CallFailure)?.error
                        state.slots[index].nextAttempt = .now + self.backoff(failures: state.slots[index].failures)
                    }
                    // One attempt per call here: the caller's retry loop decides
                    // whether (and after what backoff) to try again; a
                    // permanent failure (``CallFailure/permanent``) it does not retry.
                    throw (error as? CallFailure)
                        ?? CallFailure(error: lastError ?? self.notConnectedYet, notProcessed: true)
                }
            }
        }
    }

    /// What a call that could not wait for a reconnection reports when no
    /// attempt has failed in a way it can name.
    private var notConnectedYet: HavenError {
        HavenError(
            code: .unavailable,
            message:
                "no connection to \(ClientConnection.display(host: self.configuration.host, port: self.configuration.port))"
                + " yet (waiting to reconnect after an earlier failure)",
            source: .transport
        )
    }

    /// Exponential backoff with full jitter: a random delay up to
    /// min(maximum, initial × 2^(failures-1)), so many clients reconnecting
    /// after a server restart do not arrive all at once.
    func backoff(failures: Int) -> Duration {
        let exponent = min(failures - 1, 30)
        let ceiling = min(self.configuration.maximumBackoff, self.configuration.initialBackoff * (1 << exponent))
        let nanoseconds = ceiling.components.seconds * 1_000_000_000 + ceiling.components.attoseconds / 1_000_000_000
        return .nanoseconds(Int64.random(in: (nanoseconds / 2)...max(nanoseconds / 2, nanoseconds)))
    }

    /// Closes every connection; calls in flight fail with UNAVAILABLE.
    func close() {
        let connections = self.state.withLock { state in
            state.closed = true
            return state.slots.compactMap(\.connection)
        }
        for connection in connections { connection.close() }
    }
}
