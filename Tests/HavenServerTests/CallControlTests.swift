import HavenProtocol
import Testing

@testable import HavenServer

/// The call control block's shutdown decisions, directly: open-ended calls
/// (followed feeds) end at a shutdown's start, others are left to finish.
@Suite("Call control")
struct CallControlTests {
    static let shutdown = HavenError(code: .unavailable, message: "server shutting down: resume after your last cursor")

    @Test("an open-ended call ends at a shutdown with its reason, whichever comes first")
    func openEnded() {
        let before = CallControl(credits: 0)
        before.markOpenEnded()
        before.shutDown(Self.shutdown)
        #expect(before.isCancelled && before.reason == Self.shutdown)

        let after = CallControl(credits: 0)
        after.shutDown(Self.shutdown)
        #expect(!after.isCancelled, "not open-ended (yet): left to finish")
        after.markOpenEnded()
        #expect(after.isCancelled && after.reason == Self.shutdown, "becoming open-ended during a shutdown ends it")
    }

    @Test("a client's cancel has no reason, and a later shutdown does not rewrite it")
    func clientCancel() {
        let control = CallControl(credits: 0)
        control.markOpenEnded()
        control.cancel()
        control.shutDown(Self.shutdown)
        #expect(control.isCancelled && control.reason == nil, "ended CANCELLED by its client")
    }

    @Test("a call's end is the first of its handler returning and a cancel; a deadline's reason is kept")
    func firstEndWins() async {
        let returned = CallControl(credits: 0)
        returned.handlerReturned()
        returned.cancel(reason: CallControl.deadlineExceeded)
        #expect(await returned.waitForEnd() == .returned, "a cancel after the handler returned changes nothing")

        let expired = CallControl(credits: 0)
        expired.cancel(reason: CallControl.deadlineExceeded)
        expired.handlerReturned()
        #expect(await expired.waitForEnd() == .cancelled)
        #expect(expired.reason?.code == .deadlineExceeded)
    }

    @Test("a waiting call task is woken by whichever comes first, and its own cancellation cancels the call")
    func waitWakes() async {
        let control = CallControl(credits: 0)
        async let end = control.waitForEnd()
        control.cancel()
        #expect(await end == .cancelled)
        #expect(control.reason == nil, "the client's cancel")

        let finishing = CallControl(credits: 0)
        async let finished = finishing.waitForEnd()
        finishing.handlerReturned()
        #expect(await finished == .returned)

        let abandoned = CallControl(credits: 0)
        let task = Task { await abandoned.waitForEnd() }
        task.cancel()
        #expect(await task.value == .cancelled)
        #expect(abandoned.isCancelled, "the task's cancellation cancels the call")
    }

    @Test("the watchdog's signal keeps a replan and a shutdown until it waits")
    func watchdogSignal() async {
        let signal = WatchdogSignal()
        signal.replan()
        #expect(await signal.wait() == .replan)
        async let next = signal.wait()
        signal.replan()
        #expect(await next == .replan, "woken while waiting")
        signal.shutDown()
        #expect(await signal.wait() == .shutdown)
        signal.replan()
        #expect(await signal.wait() == .shutdown, "a shutdown outranks a replan, and stays")
        #expect(signal.isShutDown)

        let idle = WatchdogSignal()
        let task = Task { await idle.wait() }
        task.cancel()
        #expect(await task.value == .cancelled)
    }
}
