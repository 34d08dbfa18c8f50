import Logging
import Synchronization

/// Logs a recurring event at most once per interval, counting what it held
/// back: a disk that stays full, or a stranger retrying handshakes, writes a
/// line every few seconds rather than one per attempt.
package final class RateLimitedLog: Sendable {
    private struct State {
        var lastLogged: [String: ContinuousClock.Instant] = [:]
        var suppressed: [String: Int] = [:]
    }

    private let interval: Duration
    private let state = Mutex(State())

    package init(interval: Duration = .seconds(10)) {
        self.interval = interval
    }

    /// Whether an event of `kind` may be logged now; when it may, also how
    /// many of its kind were held back since the last line.
    package func admit(_ kind: String, now: ContinuousClock.Instant = .now) -> (log: Bool, suppressed: Int) {
        self.state.withLock { state in
            if let last = state.lastLogged[kind], now - last < self.interval {
                state.suppressed[kind, default: 0] += 1
                return (false, 0)
            }
            state.lastLogged[kind] = now
            let held = state.suppressed.removeValue(forKey: kind) ?? 0
            return (true, held)
        }
    }

    /// Logs `message` at `level` unless one of `kind` was logged within the
    /// interval; the line says how many were held back.
    package func log(
        _ kind: String,
        _ message: @autoclosure () -> Logger.Message,
        level: Logger.Level,
        metadata: @autoclosure () -> Logger.Metadata = [:],
        to logger: Logger
    ) {
        let (admitted, held) = self.admit(kind)
        guard admitted else { return }
        var metadata = metadata()
        metadata["kind"] = "\(kind)"
        if held > 0 { metadata["suppressed"] = "\(held)" }
        logger.log(level: level, message(), metadata: metadata)
    }
}
