/// The deadlines of a connection's unary calls, enforced by one event-loop
/// timer at a time rather than one per call.
///
/// A timer per call cost every call two trips into the event loop's
/// scheduler from another thread (a lock and a wake-up of the loop to set
/// it, a lock to cancel it): about a tenth of the client's CPU a call. Here
/// a call's deadline is a dictionary entry, added and removed under the
/// connection's lock; a timer is set only when a call's deadline comes
/// before every timer already set. Calls of one client usually share a
/// timeout and start one after another, so their deadlines only grow: one
/// timer serves them all, and when it fires it finds the calls it was set
/// for long ended and is set again for the earliest deadline still waiting.
///
/// The state only decides; the connection sets the timers it returns and
/// abandons the calls ``fire(setFor:now:)`` says are due.
struct CallDeadlines {
    private var deadlines: [UInt64: ContinuousClock.Instant] = [:]
    /// The instants of the timers set and not yet fired.
    private var timers: [ContinuousClock.Instant] = []

    /// Calls with a deadline.
    var count: Int { self.deadlines.count }

    /// Timers set and not yet fired.
    var timersSet: Int { self.timers.count }

    /// Registers a call's deadline. Returns when a timer must be set, if
    /// none already set fires at or before it.
    mutating func add(_ callID: UInt64, deadline: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        self.deadlines[callID] = deadline
        if let earliest = self.timers.min(), earliest <= deadline { return nil }
        self.timers.append(deadline)
        return deadline
    }

    /// Forgets a call (it ended, failed or was abandoned). Its timer, if it
    /// had one of its own, fires later and finds nothing due.
    mutating func remove(_ callID: UInt64) {
        self.deadlines.removeValue(forKey: callID)
    }

    /// Forgets every call (the connection failed).
    mutating func removeAll() {
        self.deadlines.removeAll()
    }

    /// A timer set for `instant` fired at `now`: the calls whose deadline
    /// has passed (forgotten here), and when a timer must be set for the
    /// earliest deadline still waiting, if no timer set covers it.
    mutating func fire(
        setFor instant: ContinuousClock.Instant,
        now: ContinuousClock.Instant
    )
        -> (due: [UInt64], next: ContinuousClock.Instant?)
    {
        if let index = self.timers.firstIndex(of: instant) { self.timers.remove(at: index) }
        var due: [UInt64] = []
        var earliest: ContinuousClock.Instant?
        for (callID, deadline) in self.deadlines {
            if deadline <= now {
                due.append(callID)
            } else if earliest.map({ deadline < $0 }) ?? true {
                earliest = deadline
            }
        }
        for callID in due { self.deadlines.removeValue(forKey: callID) }
        guard let earliest else { return (due.sorted(), nil) }
        if let set = self.timers.min(), set <= earliest { return (due.sorted(), nil) }
        self.timers.append(earliest)
        return (due.sorted(), earliest)
    }
}
