import HavenProtocol
import Synchronization

/// The control block of one call in flight: its deadline, its cancellation
/// and, for a server-streaming call, its credit.
///
/// The connection's reader calls ``cancel(reason:)`` and ``addCredit(_:)``
/// when the client asks, and its watchdog cancels the call with
/// ``deadlineExceeded`` once ``deadline`` passes. The call's task waits in
/// ``waitForEnd()`` for the first of its handler returning and the call
/// being cancelled; the handler waits in ``consumeCredit()``. Both waits
/// also end when the waiting task is cancelled.
final class CallControl: Sendable {
    /// How a call's wait for its end ended: the first of these wins.
    enum End: Sendable, Equatable {
        /// The handler returned (``handlerReturned()``).
        case returned
        /// The call was cancelled: by its client, by the server (``reason``), or its deadline passed.
        case cancelled
    }

    /// Why a call whose deadline passed ends.
    static let deadlineExceeded = HavenError(code: .deadlineExceeded, message: "deadline exceeded")

    private struct State {
        var credits: Int
        var cancelled = false
        /// The first of the handler returning and a cancel.
        var end: End?
        var endWaiter: CheckedContinuation<End, Never>?
        /// Why the server, not the client, ended the call (a shutdown, its deadline).
        var reason: HavenError?
        /// The call runs until it is cancelled (a followed feed).
        var openEnded = false
        /// The server is shutting down: an open-ended call ends with this.
        var shutdown: HavenError?
        var creditWaiter: CheckedContinuation<Void, any Error>?
    }

    private let state: Mutex<State>
    /// When the call must have ended (nil: never, a stream without a timeout).
    let deadline: ContinuousClock.Instant?

    init(credits: Int, deadline: ContinuousClock.Instant? = nil) {
        self.state = Mutex(State(credits: credits))
        self.deadline = deadline
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

    /// Cancels the call: ends ``waitForEnd()`` (unless the handler returned
    /// first) and a credit wait.
    ///
    /// - Parameter reason: Why the server ends it; nil when the client cancelled.
    func cancel(reason: HavenError? = nil) {
        let (creditWaiter, endWaiter) = self.state.withLock { state in
            if state.reason == nil, !state.cancelled { state.reason = reason }
            state.cancelled = true
            if state.end == nil { state.end = .cancelled }
            defer {
                state.creditWaiter = nil
                state.endWaiter = nil
            }
            return (state.creditWaiter, state.endWaiter)
        }
        creditWaiter?.resume(throwing: CancellationError())
        endWaiter?.resume(returning: .cancelled)
    }

    /// The call's handler returned: ends ``waitForEnd()`` unless the call
    /// was cancelled first.
    func handlerReturned() {
        let waiter = self.state.withLock { state in
            guard state.end == nil else { return nil as CheckedContinuation<End, Never>? }
            state.end = .returned
            defer { state.endWaiter = nil }
            return state.endWaiter
        }
        waiter?.resume(returning: .returned)
    }

    /// Returns the first of the handler returning (``handlerReturned()``)
    /// and the call being cancelled; the waiting task's cancellation cancels
    /// the call.
    func waitForEnd() async -> End {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<End, Never>) in
                let end = self.state.withLock { state in
                    if state.end == nil { state.endWaiter = continuation }
                    return state.end
                }
                if let end { continuation.resume(returning: end) }
            }
        } onCancel: {
            self.cancel()
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
