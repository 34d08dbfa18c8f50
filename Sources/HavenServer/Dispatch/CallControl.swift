import HavenProtocol
import Synchronization

/// The control block of one call in flight: its cancellation and, for a
/// server-streaming call, its credit.
///
/// The connection's reader calls ``cancel()`` and ``addCredit(_:)`` when the
/// client asks; the call's task waits in ``waitForCancellation()`` and
/// ``consumeCredit()``. Both waits also end when the waiting task is cancelled.
final class CallControl: Sendable {
    private struct State {
        var credits: Int
        var cancelled = false
        /// Why the server, not the client, ended the call (a shutdown).
        var reason: HavenError?
        /// The call runs until it is cancelled (a followed feed).
        var openEnded = false
        /// The server is shutting down: an open-ended call ends with this.
        var shutdown: HavenError?
        var cancelWaiter: CheckedContinuation<Void, Never>?
        var creditWaiter: CheckedContinuation<Void, any Error>?
    }

    private let state: Mutex<State>

    init(credits: Int) {
        self.state = Mutex(State(credits: credits))
    }

    /// Whether the call was cancelled.
    var isCancelled: Bool { self.state.withLock { $0.cancelled } }

    /// Why the server ended the call, when it did (else the client cancelled it).
    var reason: HavenError? { self.state.withLock { $0.reason } }

    /// The call runs until it is cancelled (a followed feed): a graceful
    /// shutdown ends it at once instead of waiting out the grace period.
    func markOpenEnded() {
        let reason = self.state.withLock { state -> HavenError? in
            state.openEnded = true
            return state.shutdown
        }
        if let reason { self.cancel(reason: reason) }
    }

    /// The server is shutting down: ends the call now with `reason` if it
    /// is open-ended (or becomes so later); other calls finish.
    func shutDown(_ reason: HavenError) {
        let openEnded = self.state.withLock { state -> Bool in
            state.shutdown = reason
            return state.openEnded
        }
        if openEnded { self.cancel(reason: reason) }
    }

    /// Cancels the call: wakes ``waitForCancellation()`` and a credit wait.
    ///
    /// - Parameter reason: Why the server ends it; nil when the client cancelled.
    func cancel(reason: HavenError? = nil) {
        let (cancelWaiter, creditWaiter) = self.state.withLock { state in
            if state.reason == nil, !state.cancelled { state.reason = reason }
            state.cancelled = true
            defer {
                state.cancelWaiter = nil
                state.creditWaiter = nil
            }
            return (state.cancelWaiter, state.creditWaiter)
        }
        cancelWaiter?.resume()
        creditWaiter?.resume(throwing: CancellationError())
    }

    /// Returns once the call is cancelled, or the waiting task is.
    func waitForCancellation() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = self.state.withLock { state in
                    if state.cancelled || Task.isCancelled { return true }
                    state.cancelWaiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = self.state.withLock { state in
                defer { state.cancelWaiter = nil }
                return state.cancelWaiter
            }
            waiter?.resume()
        }
    }

    /// Adds stream credit.
    func addCredit(_ messages: Int) {
        let waiter = self.state.withLock { state in
            state.credits += messages
            defer { state.creditWaiter = nil }
            return state.creditWaiter
        }
        waiter?.resume()
    }

    /// Takes one credit, waiting for the client to grant one if none is left.
    ///
    /// - Throws: `CancellationError` when the call or the task is cancelled.
    func consumeCredit() async throws {
        while true {
            let available = try self.state.withLock { state throws -> Bool in
                if state.cancelled { throw CancellationError() }
                guard state.credits > 0 else { return false }
                state.credits -= 1
                return true
            }
            if available { return }
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    let resume: Result<Void, any Error>? = self.state.withLock { state in
                        if state.cancelled || Task.isCancelled { return .failure(CancellationError()) }
                        if state.credits > 0 { return .success(()) }
                        state.creditWaiter = continuation
                        return nil
                    }
                    if let resume { continuation.resume(with: resume) }
                }
            } onCancel: {
                let waiter = self.state.withLock { state in
                    defer { state.creditWaiter = nil }
                    return state.creditWaiter
                }
                waiter?.resume(throwing: CancellationError())
            }
        }
    }
}
