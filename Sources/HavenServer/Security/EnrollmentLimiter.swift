import Synchronization

/// Bounds failed enrolments server-wide, since anyone who can reach the port
/// may try a code: after `limit` failures within a window, enrolment answers
/// RESOURCE_EXHAUSTED (with a retry delay) until the window ends, before
/// reading the store or writing an audit entry.
///
/// A code has 130 random bits, so the limit protects the audit trail and the
/// store from floods, not the codes from guessing.
package final class EnrollmentLimiter: Sendable {
    /// The decision for one attempt.
    package enum Decision: Equatable, Sendable {
        case admit
        case refuse(retryAfterMs: UInt64)
    }

    private struct State {
        /// When the current window began (its first failure); nil before any.
        var windowStart: Int64?
        var failures = 0

        /// Starts a new window when the current one is over.
        mutating func roll(_ now: Int64, _ windowMs: Int64) {
            if let start = self.windowStart, now - start < windowMs { return }
            self = State(windowStart: nil, failures: 0)
        }
    }

    private let limit: Int
    private let windowMs: Int64
    private let state = Mutex(State())

    package init(limit: Int = 30, windowMs: Int64 = 60_000) {
        self.limit = limit
        self.windowMs = windowMs
    }

    /// Whether an attempt at `now` may go ahead.
    package func admit(atUnixMs now: Int64) -> Decision {
        self.state.withLock { state in
            state.roll(now, self.windowMs)
            guard state.failures >= self.limit, let start = state.windowStart else { return .admit }
            return .refuse(retryAfterMs: UInt64(max(1, start + self.windowMs - now)))
        }
    }

    /// Counts a failed attempt at `now`.
    package func failed(atUnixMs now: Int64) {
        self.state.withLock { state in
            state.roll(now, self.windowMs)
            if state.windowStart == nil { state.windowStart = now }
            state.failures += 1
        }
    }
}
