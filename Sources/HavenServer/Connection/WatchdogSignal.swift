import Synchronization

/// What wakes a connection's watchdog before its timer: the server shutting
/// down (for good) or a call whose deadline comes before the watchdog's next
/// wake (once; the watchdog then plans again).
///
/// Both are kept until the watchdog next waits, so a wake that comes while
/// it is awake (planning, or between planning and sleeping) is not lost.
final class WatchdogSignal: Sendable {
    /// Why ``wait()`` returned.
    enum Wake: Sendable, Equatable {
        /// The server shuts down: drain the connection.
        case shutdown
        /// A call's deadline comes earlier than planned: plan again.
        case replan
        /// The waiting task was cancelled.
        case cancelled
    }

    private struct State {
        var shutdown = false
        var replan = false
        var waiter: CheckedContinuation<Wake, Never>?
    }

    private let state = Mutex(State())

    /// Whether the server shuts down.
    var isShutDown: Bool { self.state.withLock { $0.shutdown } }

    /// The server shuts down: this and every later ``wait()`` returns ``Wake/shutdown``.
    func shutDown() {
        let waiter = self.state.withLock { state in
            state.shutdown = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: .shutdown)
    }

    /// A deadline earlier than planned: the next ``wait()`` (or the current one) returns ``Wake/replan``.
    func replan() {
        let waiter = self.state.withLock { state -> CheckedContinuation<Wake, Never>? in
            guard let waiter = state.waiter else {
                state.replan = true
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume(returning: .replan)
    }

    /// Returns at a shutdown, a replan asked for since the last wait, or the
    /// waiting task's cancellation. One task waits at a time (the watchdog).
    func wait() async -> Wake {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Wake, Never>) in
                let now: Wake? = self.state.withLock { state in
                    if state.shutdown { return .shutdown }
                    if state.replan {
                        state.replan = false
                        return .replan
                    }
                    if Task.isCancelled { return .cancelled }
                    state.waiter = continuation
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            let waiter = self.state.withLock { state in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(returning: .cancelled)
        }
    }
}
