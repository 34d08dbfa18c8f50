import HavenServer
import Testing

@Suite("Signal")
struct SignalTests {
    @Test("fire wakes every waiter, and later waiters return at once")
    func wakesEveryWaiter() async {
        let signal = Signal()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<8 { group.addTask { await signal.wait() } }
            #expect(!signal.hasFired)
            signal.fire()
            await group.waitForAll()
        }
        #expect(signal.hasFired)
        await signal.wait()
    }

    @Test("a cancelled waiter stops waiting; the others still wait for the signal")
    func cancellation() async {
        let signal = Signal()
        let cancelled = Task { await signal.wait() }
        let patient = Task { await signal.wait() }
        cancelled.cancel()
        await cancelled.value
        #expect(!signal.hasFired)
        signal.fire()
        await patient.value
    }

    @Test("a wait with a deadline returns at the deadline when nothing fires, and at once when the signal fires")
    func deadline() async {
        let signal = Signal()
        let clock = ContinuousClock()
        let started = clock.now
        await signal.wait(until: started + .milliseconds(100))
        #expect(clock.now - started >= .milliseconds(100), "returned before its deadline")
        #expect(!signal.hasFired)

        let waiting = Task { await signal.wait(until: clock.now + .seconds(600)) }
        signal.fire()
        let fired = clock.now
        await waiting.value
        #expect(clock.now - fired < .seconds(60), "waited for its deadline after the signal fired")
    }
}
