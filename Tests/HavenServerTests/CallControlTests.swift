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
}
