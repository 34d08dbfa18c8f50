import HavenProtocol
import Testing

@testable import HavenServer

/// The connection's state machine for its calls' deadlines, directly: the
/// watchdog sleeps until the earliest deadline, is woken when a call starts
/// with an earlier one, and ends each expired call once.
@Suite("Connection state: deadlines")
struct ConnectionStateTests {
    static let start = ContinuousClock.now

    static func open() -> ConnectionState {
        var state = ConnectionState(now: Self.start)
        state.phase = .open
        return state
    }

    /// Starts call `id`; returns its control and whether the watchdog must plan again.
    static func begin(
        _ state: inout ConnectionState,
        _ id: UInt64,
        deadline: Duration?
    ) throws -> (CallControl, wake: Bool) {
        let decision = state.start(
            callID: id,
            credits: 0,
            deadline: deadline.map { Self.start + $0 },
            maxConcurrentCalls: 8
        )
        guard case .start(let control, let wake) = decision else {
            Issue.record("call \(id) not started: \(decision)")
            throw HavenError(code: .internal, message: "not started")
        }
        return (control, wake)
    }

    @Test("the watchdog sleeps until the earliest deadline in flight, or its own timer when that is earlier")
    func plansEarliest() throws {
        var state = Self.open()
        _ = try Self.begin(&state, 1, deadline: .seconds(30))
        _ = try Self.begin(&state, 2, deadline: .seconds(10))
        _ = try Self.begin(&state, 3, deadline: nil)
        #expect(state.watchdogSleeps(until: Self.start + .seconds(300)) == Self.start + .seconds(10))
        #expect(state.watchdogSleeps(until: Self.start + .seconds(5)) == Self.start + .seconds(5))
        state.finish(callID: 2, now: Self.start + .seconds(1))
        #expect(
            state.watchdogSleeps(until: Self.start + .seconds(300)) == Self.start + .seconds(30),
            "a finished call's deadline no longer counts"
        )
    }

    @Test("a call with a deadline before the watchdog's wake wakes it, once until it plans again")
    func wakesWatchdog() throws {
        var state = Self.open()
        #expect(try Self.begin(&state, 1, deadline: .seconds(30)).wake == false, "the watchdog is awake: no wake")
        _ = state.watchdogSleeps(until: Self.start + .seconds(300))  // sleeps until 30 s
        #expect(try Self.begin(&state, 2, deadline: .seconds(40)).wake == false, "later than planned")
        #expect(try Self.begin(&state, 3, deadline: nil).wake == false, "no deadline")
        #expect(try Self.begin(&state, 4, deadline: .seconds(1)).wake == true, "earlier than planned")
        #expect(try Self.begin(&state, 5, deadline: .milliseconds(500)).wake == false, "already woken")
        state.watchdogWoke()
        #expect(state.watchdogSleeps(until: Self.start + .seconds(300)) == Self.start + .milliseconds(500))
        #expect(try Self.begin(&state, 6, deadline: .milliseconds(100)).wake == true)
    }

    @Test("expired calls are returned once each, and only those whose deadline passed")
    func expires() throws {
        var state = Self.open()
        let (first, _) = try Self.begin(&state, 1, deadline: .seconds(1))
        let (second, _) = try Self.begin(&state, 2, deadline: .seconds(2))
        _ = try Self.begin(&state, 3, deadline: nil)
        #expect(state.expiredCalls(now: Self.start + .milliseconds(999)).isEmpty)
        #expect(
            state.expiredCalls(now: Self.start + .seconds(1)).map(ObjectIdentifier.init) == [ObjectIdentifier(first)]
        )
        #expect(state.expiredCalls(now: Self.start + .seconds(1)).isEmpty, "not twice")
        let later = state.expiredCalls(now: Self.start + .seconds(60))
        #expect(later.map(ObjectIdentifier.init) == [ObjectIdentifier(second)], "never the call without a deadline")
        #expect(state.calls.count == 3, "an expired call stays in flight until its handler ends")
        #expect(
            state.watchdogSleeps(until: Self.start + .seconds(300)) == Self.start + .seconds(300),
            "expired deadlines are not planned for again"
        )
    }

    @Test("a call that finished before its deadline is never expired; closing forgets every deadline")
    func finishedAndClosed() throws {
        var state = Self.open()
        _ = try Self.begin(&state, 1, deadline: .seconds(1))
        state.finish(callID: 1, now: Self.start)
        #expect(state.expiredCalls(now: Self.start + .seconds(5)).isEmpty)
        _ = try Self.begin(&state, 2, deadline: .seconds(1))
        _ = state.close()
        #expect(state.expiredCalls(now: Self.start + .seconds(5)).isEmpty)
    }

    @Test(
        "a drain wakes at the earliest deadline before the grace period's end; the last call's end ends it, only once going away"
    )
    func drains() throws {
        var state = Self.open()
        let graceEnds = Self.start + .seconds(10)
        _ = try Self.begin(&state, 1, deadline: nil)
        _ = try Self.begin(&state, 2, deadline: .seconds(3))
        _ = try Self.begin(&state, 3, deadline: .seconds(30))
        let whileOpen = state.finish(callID: 1, now: Self.start)
        #expect(!whileOpen, "open: not a drain")
        let last = state.goAway()
        #expect(last == 3)
        #expect(state.drainWake(graceEnds: graceEnds) == Self.start + .seconds(3), "the earlier deadline")
        _ = state.expiredCalls(now: Self.start + .seconds(3))
        #expect(state.drainWake(graceEnds: graceEnds) == graceEnds, "an expired deadline is not waited for again")
        let second = state.finish(callID: 2, now: Self.start + .seconds(4))
        #expect(!second, "a call still in flight")
        let third = state.finish(callID: 3, now: Self.start + .seconds(5))
        #expect(third, "the last one")
        #expect(state.drainWake(graceEnds: graceEnds) == nil)
        let again = state.finish(callID: 3, now: Self.start + .seconds(6))
        #expect(!again, "an end told twice counts once")
    }
}
