import Testing

@testable import HavenClient

/// The connection's call deadlines, decided without a connection: which
/// timers to set, and which calls are due when one fires.
@Suite("Call deadlines")
struct CallDeadlinesTests {
    static let start = ContinuousClock.now

    static func at(_ milliseconds: Int) -> ContinuousClock.Instant {
        Self.start + .milliseconds(milliseconds)
    }

    @Test("calls whose deadlines only grow share the first call's timer")
    func growingDeadlinesShareOneTimer() {
        var deadlines = CallDeadlines()
        #expect(deadlines.add(1, deadline: Self.at(1_000)) == Self.at(1_000))
        for call in UInt64(2)...100 {
            #expect(deadlines.add(call, deadline: Self.at(1_000 + Int(call))) == nil)
        }
        #expect(deadlines.timersSet == 1)
        #expect(deadlines.count == 100)
    }

    @Test("a call whose deadline comes before every timer set gets a timer of its own")
    func earlierDeadlineSetsATimer() {
        var deadlines = CallDeadlines()
        #expect(deadlines.add(1, deadline: Self.at(5_000)) == Self.at(5_000))
        #expect(deadlines.add(2, deadline: Self.at(500)) == Self.at(500))
        #expect(deadlines.add(3, deadline: Self.at(500)) == nil)
        #expect(deadlines.add(4, deadline: Self.at(499)) == Self.at(499))
        #expect(deadlines.timersSet == 3)
    }

    @Test("a timer firing returns the calls due and sets the next timer for the earliest still waiting")
    func fireReturnsDueAndNext() {
        var deadlines = CallDeadlines()
        _ = deadlines.add(1, deadline: Self.at(100))
        _ = deadlines.add(2, deadline: Self.at(200))
        _ = deadlines.add(3, deadline: Self.at(300))
        let fired = deadlines.fire(setFor: Self.at(100), now: Self.at(250))
        #expect(fired.due == [1, 2])
        #expect(fired.next == Self.at(300))
        #expect(deadlines.count == 1)
        let last = deadlines.fire(setFor: Self.at(300), now: Self.at(300))
        #expect(last.due == [3])
        #expect(last.next == nil)
        #expect(deadlines.count == 0)
        #expect(deadlines.timersSet == 0)
    }

    @Test("calls that ended are not due, and a timer with nothing left sets none")
    func endedCallsAreNotDue() {
        var deadlines = CallDeadlines()
        _ = deadlines.add(1, deadline: Self.at(100))
        _ = deadlines.add(2, deadline: Self.at(200))
        deadlines.remove(1)
        deadlines.remove(2)
        let fired = deadlines.fire(setFor: Self.at(100), now: Self.at(1_000))
        #expect(fired.due.isEmpty)
        #expect(fired.next == nil)
        #expect(deadlines.timersSet == 0)
    }

    @Test("a timer that fires early for what it covers sets the next one, never a second for the same instant")
    func noDuplicateTimers() {
        var deadlines = CallDeadlines()
        _ = deadlines.add(1, deadline: Self.at(5_000))
        _ = deadlines.add(2, deadline: Self.at(100))
        // The 100 ms timer: call 2 is due, call 1 is covered by the 5 s timer already set.
        let first = deadlines.fire(setFor: Self.at(100), now: Self.at(100))
        #expect(first.due == [2])
        #expect(first.next == nil)
        #expect(deadlines.timersSet == 1)
        // A later call with an earlier deadline than that timer gets its own; the 5 s one then finds call 1 due.
        #expect(deadlines.add(3, deadline: Self.at(4_000)) == Self.at(4_000))
        let second = deadlines.fire(setFor: Self.at(4_000), now: Self.at(4_000))
        #expect(second.due == [3])
        #expect(second.next == nil)
        let third = deadlines.fire(setFor: Self.at(5_000), now: Self.at(5_001))
        #expect(third.due == [1])
        #expect(deadlines.timersSet == 0)
    }

    @Test("a timer that fires while a later call still waits sets one for it")
    func rearmsForTheEarliestWaiting() {
        var deadlines = CallDeadlines()
        _ = deadlines.add(1, deadline: Self.at(100))
        _ = deadlines.add(2, deadline: Self.at(900))  // covered by call 1's timer
        deadlines.remove(1)  // call 1 ended
        let fired = deadlines.fire(setFor: Self.at(100), now: Self.at(101))
        #expect(fired.due.isEmpty)
        #expect(fired.next == Self.at(900))
        let last = deadlines.fire(setFor: Self.at(900), now: Self.at(900))
        #expect(last.due == [2])
        #expect(last.next == nil)
    }

    @Test("forgetting every call leaves nothing due")
    func removeAll() {
        var deadlines = CallDeadlines()
        for call in UInt64(1)...10 { _ = deadlines.add(call, deadline: Self.at(Int(call))) }
        deadlines.removeAll()
        #expect(deadlines.count == 0)
        #expect(deadlines.fire(setFor: Self.at(1), now: Self.at(1_000)).due.isEmpty)
    }
}
