import NIOCore
import NIOEmbedded
import Synchronization
import Testing

@testable import HavenServer

/// The write-stall cut-off on its own: a channel that stays unwritable past
/// the timeout is closed and counted once; one that becomes writable in time
/// is left open; a timer that found the channel writable does not keep the
/// next stall from being caught.
@Suite("Write stall")
struct WriteStallTests {
    private final class Stalls: Sendable {
        let count = Mutex(0)
    }

    private final class Harness {
        let channel = EmbeddedChannel()
        let stalls = Stalls()
        var loop: EmbeddedEventLoop { self.channel.embeddedEventLoop }

        init(addWhileUnwritable: Bool = false) throws {
            try self.channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            if addWhileUnwritable { self.channel.isWritable = false }
            let stalls = self.stalls
            try self.channel.pipeline.syncOperations.addHandler(
                WriteStallHandler(timeout: .seconds(1)) { stalls.count.withLock { $0 += 1 } }
            )
        }

        func writable(_ writable: Bool, tell: Bool = true) {
            self.channel.isWritable = writable
            if tell { self.channel.pipeline.fireChannelWritabilityChanged() }
        }

        var isOpen: Bool { self.channel.isActive }
        var stallCount: Int { self.stalls.count.withLock { $0 } }

        /// Closed for a stall, counted once.
        func expectCutOff(sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(!self.isOpen, "closed", sourceLocation: sourceLocation)
            #expect(self.stallCount == 1, sourceLocation: sourceLocation)
        }
    }

    @Test("unwritable for longer than the timeout: closed, one stall counted")
    func closesAfterTimeout() throws {
        let harness = try Harness()
        harness.writable(false)
        harness.loop.advanceTime(by: .milliseconds(999))
        #expect(harness.isOpen, "not before the timeout")
        harness.loop.advanceTime(by: .milliseconds(2))
        harness.expectCutOff()
    }

    @Test("writable again within the timeout: left open; each stall is timed from its own start")
    func writableInTime() throws {
        let harness = try Harness()
        harness.writable(false)
        harness.loop.advanceTime(by: .milliseconds(800))
        harness.writable(true)
        harness.loop.advanceTime(by: .milliseconds(500))
        harness.writable(false)
        harness.loop.advanceTime(by: .milliseconds(800))
        #expect(harness.isOpen, "1.3 s unwritable in all, never 1 s at a stretch")
        #expect(harness.stallCount == 0)
        harness.loop.advanceTime(by: .milliseconds(300))
        harness.expectCutOff()
    }

    @Test("a timer that finds the channel writable is spent: the next stall arms a new one")
    func spentTimerRearms() throws {
        let harness = try Harness()
        harness.writable(false)
        // Writable again, the handler not (yet) told: the timer must not close it.
        harness.writable(true, tell: false)
        harness.loop.advanceTime(by: .seconds(2))
        #expect(harness.isOpen)
        #expect(harness.stallCount == 0)
        harness.writable(false)
        harness.loop.advanceTime(by: .seconds(2))
        harness.expectCutOff()  // the second stall was caught
    }

    @Test("a handler taken out of the pipeline while the channel is unwritable closes nothing")
    func removedWhileArmed() throws {
        let harness = try Harness()
        harness.writable(false)
        let handler = try harness.channel.pipeline.syncOperations.handler(type: WriteStallHandler.self)
        let removed = harness.channel.pipeline.syncOperations.removeHandler(handler)
        harness.loop.run()
        try removed.wait()
        harness.loop.advanceTime(by: .seconds(2))
        #expect(harness.isOpen)
        #expect(harness.stallCount == 0)
    }

    @Test("a channel already unwritable when the handler joins it is timed from then")
    func unwritableWhenAdded() throws {
        let harness = try Harness(addWhileUnwritable: true)
        harness.loop.advanceTime(by: .milliseconds(1_100))
        harness.expectCutOff()
    }
}
