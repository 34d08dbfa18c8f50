import Testing

@testable import HavenServer

/// The listener's connection limits, directly: pending handshakes evict the
/// oldest, enrolling and authenticated connections are capped apart.
@Suite("Connection slots")
struct ConnectionSlotsTests {
    final class Connection {}
    typealias Slots = ConnectionSlots<String, Connection>

    @Test("past the pending-handshake cap, each new socket evicts the one that has waited longest")
    func pendingEvictsOldest() {
        var slots = Slots(maxPending: 3, maxEnrolling: 1, maxConnections: 1)
        let a = slots.accepted("a")
        let b = slots.accepted("b")
        let c = slots.accepted("c")
        #expect(a.evicted == nil && b.evicted == nil && c.evicted == nil)
        #expect(slots.accepted("d").evicted == "a")
        // b finished its handshake: it is no longer pending, c is now the oldest.
        slots.handshakeEnded(b.id)
        #expect(slots.pendingCount == 2)
        #expect(slots.accepted("e").evicted == nil)
        #expect(slots.accepted("f").evicted == "c")
        #expect(slots.accepted("g").evicted == "d")
        #expect(slots.pendingCount == 3)
        // Ending an evicted handshake (its failure arrives later) changes nothing.
        slots.handshakeEnded(a.id)
        #expect(slots.pendingCount == 3)
    }

    @Test("a flood of sockets keeps at most the cap pending, the newest ones")
    func flood() {
        var slots = Slots(maxPending: 64, maxEnrolling: 1, maxConnections: 1)
        var evicted: [String] = []
        for index in 0..<10_000 {
            if let old = slots.accepted("\(index)").evicted { evicted.append(old) }
        }
        #expect(slots.pendingCount == 64)
        #expect(evicted == (0..<(10_000 - 64)).map { "\($0)" })
    }

    @Test("enrolling connections have their own cap: they never take an authenticated client's slot")
    func enrollingApart() {
        var slots = Slots(maxPending: 8, maxEnrolling: 2, maxConnections: 2)
        let connections = (0..<6).map { _ in Connection() }
        let keys = connections.map(ObjectIdentifier.init)
        #expect(slots.admit(keys[0], connections[0], enrolling: true) == nil)
        #expect(slots.admit(keys[1], connections[1], enrolling: true) == nil)
        #expect(slots.admit(keys[2], connections[2], enrolling: true) == .tooManyEnrolling)
        #expect(slots.admit(keys[3], connections[3], enrolling: false) == nil)
        #expect(slots.admit(keys[4], connections[4], enrolling: false) == nil)
        #expect(slots.admit(keys[5], connections[5], enrolling: false) == .tooManyConnections)
        #expect(slots.enrolling == 2 && slots.authenticated == 2)
        // A closed enrolling connection frees an enrolling slot, not an authenticated one.
        #expect(slots.closed(keys[0]) == false)
        #expect(slots.admit(keys[5], connections[5], enrolling: false) == .tooManyConnections)
        #expect(slots.admit(keys[2], connections[2], enrolling: true) == nil)
        #expect(slots.closed(keys[3]) == false)
        #expect(slots.admit(keys[5], connections[5], enrolling: false) == nil)
    }

    @Test("a shutdown refuses new sessions, hands back the pending handshakes to close, and reports the drain")
    func shutdown() {
        var slots = Slots(maxPending: 4, maxEnrolling: 1, maxConnections: 2)
        let open = Connection()
        #expect(slots.admit(ObjectIdentifier(open), open, enrolling: false) == nil)
        _ = slots.accepted("p1")
        _ = slots.accepted("p2")
        let drain = slots.shutDown()
        #expect(drain.open.count == 1 && drain.pending == ["p1", "p2"])
        #expect(slots.pendingCount == 0)
        // A socket accepted in the race is evicted at once.
        #expect(slots.accepted("late").evicted == "late")
        let late = Connection()
        #expect(slots.admit(ObjectIdentifier(late), late, enrolling: false) == .shuttingDown)
        #expect(slots.closed(ObjectIdentifier(open)) == true)
    }
}
