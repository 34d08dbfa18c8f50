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
}
