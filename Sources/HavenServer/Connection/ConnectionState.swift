import HavenProtocol

/// What one connection knows about its calls; guarded by the connection's mutex.
struct ConnectionState {
    enum Phase {
        /// TLS is up; the client's hello has not arrived.
        case awaitingHello
        /// Serving calls.
        case open
        /// A go-away was sent: calls up to `lastCallID` finish, nothing new starts.
        case goingAway(lastCallID: UInt64)
        /// Closed or closing.
        case closed
    }

    var phase: Phase = .awaitingHello
    /// The highest call id started so far.
    var highestCallID: UInt64 = 0
    /// Calls in flight.
    var calls: [UInt64: CallControl] = [:]
    /// Since when no call has been in flight (the idle clock), if none is.
    var idleSince: ContinuousClock.Instant?
    /// When the connection was accepted.
    let openedAt: ContinuousClock.Instant
    /// Calls started whose end has not been written yet (a call leaves
    /// ``calls`` before its end goes out, so that its slot is free when the
    /// client reads the end).
    var unwrittenEnds = 0
    /// Why the server ended the connection's session (account disabled or
    /// changed, certificate expired): the end of every call still in flight.
    var endedBecause: HavenError?
    /// The deadlines of the calls in flight that have one and have not passed
    /// it yet, which the watchdog enforces (``expiredCalls(now:)``).
    private(set) var deadlines: [UInt64: ContinuousClock.Instant] = [:]
    /// When the watchdog will next wake by itself (nil: it is not asleep, or
    /// was already woken to plan again).
    private(set) var watchdogWakesAt: ContinuousClock.Instant?

    init(now: ContinuousClock.Instant) {
        self.openedAt = now
        self.idleSince = now
    }

    /// The decision about a `CallStart`.
    enum StartDecision {
        /// Run the call; when `wakeWatchdog`, its deadline comes before the
        /// watchdog's next wake, which must plan again.
        case start(CallControl, wakeWatchdog: Bool)
        /// Answer this call with an error; the connection stays open.
        case refuse(HavenError)
        /// Ignore it (after a go-away, beyond `lastCallID`).
        case ignore
        /// Fail the connection.
        case violation(HavenError)
    }

    mutating func start(
        callID: UInt64,
        credits: Int,
        deadline: ContinuousClock.Instant?,
        maxConcurrentCalls: Int
    ) -> StartDecision {
        switch self.phase {
        case .awaitingHello:
            return .violation(
                HavenError(code: .invalidArgument, message: "protocol violation: a call started before hello")
            )
        case .closed:
            return .ignore
        case .goingAway(let last) where callID > last:
            return .ignore
        case .open, .goingAway:
            break
        }
        guard callID > self.highestCallID else {
            return .violation(
                HavenError(
                    code: .invalidArgument,
                    message: "protocol violation: call id \(callID) is not greater than \(self.highestCallID)"
                )
            )
        }
        self.highestCallID = callID
        guard self.calls.count < maxConcurrentCalls else {
            // A slot frees as soon as any call ends: a short wait is enough.
            return .refuse(
                HavenError.exhausted(
                    "more than \(maxConcurrentCalls) calls in flight on this connection",
                    retryAfterMs: 100
                )
            )
        }
        let control = CallControl(credits: credits, deadline: deadline)
        self.calls[callID] = control
        self.unwrittenEnds += 1
        self.idleSince = nil
        var wakeWatchdog = false
        if let deadline {
            self.deadlines[callID] = deadline
            if let wakesAt = self.watchdogWakesAt, deadline < wakesAt {
                // One wake is enough: the watchdog plans with every deadline.
                self.watchdogWakesAt = nil
                wakeWatchdog = true
            }
        }
        return .start(control, wakeWatchdog: wakeWatchdog)
    }

    /// A call ended. Returns whether that was the last call in flight of a
    /// connection going away: its drain is over (``drainWake(graceEnds:)``).
    @discardableResult
    mutating func finish(callID: UInt64, now: ContinuousClock.Instant) -> Bool {
        let ended = self.calls.removeValue(forKey: callID) != nil
        self.deadlines.removeValue(forKey: callID)
        guard self.calls.isEmpty else { return false }
        self.idleSince = now
        if ended, case .goingAway = self.phase { return true }
        return false
    }

    /// While a going-away connection drains: when to look at it again, the
    /// end of the grace period or a call's deadline before it (the calls
    /// keep their deadlines through the grace period); nil once no call is
    /// in flight. ``finish(callID:now:)`` tells when the last call ends.
    func drainWake(graceEnds: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        guard !self.calls.isEmpty else { return nil }
        return self.deadlines.values.reduce(graceEnds) { min($0, $1) }
    }

    /// The calls whose deadline is `now` or earlier, to cancel with
    /// ``CallControl/deadlineExceeded``; each is returned once.
    mutating func expiredCalls(now: ContinuousClock.Instant) -> [CallControl] {
        var expired: [CallControl] = []
        for (callID, deadline) in self.deadlines where deadline <= now {
            self.deadlines.removeValue(forKey: callID)
            if let control = self.calls[callID] { expired.append(control) }
        }
        return expired
    }

    /// The watchdog goes to sleep until `wakeAt` for its own timers, or
    /// until the earliest deadline of a call in flight when that is earlier:
    /// returns when it is to wake, and remembers it, so that a call started
    /// with an earlier deadline wakes it (``StartDecision/start(_:wakeWatchdog:)``).
    mutating func watchdogSleeps(until wakeAt: ContinuousClock.Instant) -> ContinuousClock.Instant {
        let wake = self.deadlines.values.reduce(wakeAt) { min($0, $1) }
        self.watchdogWakesAt = wake
        return wake
    }

    /// The watchdog woke (by its timer or because it was asked to).
    mutating func watchdogWoke() {
        self.watchdogWakesAt = nil
    }

    /// A call's end was written (or could not be). Returns true when the
    /// connection is closed and this was the last end it waited for.
    mutating func endWritten() -> Bool {
        self.unwrittenEnds -= 1
        if case .closed = self.phase { return self.unwrittenEnds == 0 }
        return false
    }

    /// Starts going away; returns the last call id that will be processed, or
    /// nil when the connection already goes away or is closed.
    mutating func goAway() -> UInt64? {
        switch self.phase {
        case .awaitingHello, .open:
            self.phase = .goingAway(lastCallID: self.highestCallID)
            return self.highestCallID
        case .goingAway, .closed:
            return nil
        }
    }

    /// Ends the session for `reason`: nothing new starts, and the calls in
    /// flight end with `reason`. Returns false when it already ended or closed.
    mutating func endSession(_ reason: HavenError) -> Bool {
        guard self.endedBecause == nil else { return false }
        if case .closed = self.phase { return false }
        self.endedBecause = reason
        return true
    }

    /// Closes; returns the calls still in flight, to cancel, and whether every
    /// end has already been written (the channel may close at once).
    mutating func close() -> (calls: [CallControl], endsWritten: Bool) {
        self.phase = .closed
        self.deadlines.removeAll()
        defer { self.calls.removeAll() }
        return (Array(self.calls.values), self.unwrittenEnds == 0)
    }
}
