import Testing

/// Keeps two kinds of suites apart on CI's two cores: those that time a
/// promise against a bound (a session cut off within a second) and those
/// that load the machine with another server (PostgreSQL's tests, whose
/// cluster and connections take CPU and disk; the floods of hostile peers
/// against a `havend` of their own) or hold the threads of Swift's
/// concurrency, which the servers under test share, with long work that
/// rarely suspends (the fuzzing corpus, the wire codec's comparisons).
/// Suites of one kind run together; a suite of the other kind waits until
/// none is running. Every other suite runs as before.
///
/// Without it, a cut-off measured while the PostgreSQL suites start took
/// 3.0–3.6 s against its 3 s bound in about one full run of four.
package actor LoadGate {
    package enum Kind: Sendable { case timed, heavy }

    package static let shared = LoadGate()

    private var running: [Kind: Int] = [:]
    private var waiting: [(kind: Kind, continuation: CheckedContinuation<Void, Never>)] = []

    private func admits(_ kind: Kind) -> Bool {
        self.running[kind == .timed ? .heavy : .timed, default: 0] == 0
    }

    func enter(_ kind: Kind) async {
        if self.admits(kind) && self.waiting.isEmpty {
            self.running[kind, default: 0] += 1
            return
        }
        await withCheckedContinuation { self.waiting.append((kind, $0)) }
    }

    func leave(_ kind: Kind) {
        self.running[kind, default: 0] -= 1
        // In arrival order, each that may run now; the first that may not stops the rest.
        while let next = self.waiting.first, self.admits(next.kind) {
            self.waiting.removeFirst()
            self.running[next.kind, default: 0] += 1
            next.continuation.resume()
        }
    }

    /// Runs `body` as a suite of `kind`.
    package func run(_ kind: Kind, _ body: @Sendable () async throws -> Void) async throws {
        await self.enter(kind)
        do {
            try await body()
        } catch {
            self.leave(kind)
            throw error
        }
        self.leave(kind)
    }
}

/// The ``LoadGate`` as a suite trait: `.timed` or `.heavy`.
package struct LoadGateTrait: TestTrait, SuiteTrait, TestScoping {
    let kind: LoadGate.Kind

    package func provideScope(
        for test: Test,
        testCase: Test.Case?,
        performing function: @Sendable () async throws -> Void
    ) async throws {
        try await LoadGate.shared.run(self.kind, function)
    }
}

extension Trait where Self == LoadGateTrait {
    /// A suite that times a promise against a bound: never beside a `.heavy` one.
    package static var timed: Self { LoadGateTrait(kind: .timed) }
    /// A suite that loads the machine (another server, long work that rarely
    /// suspends): never beside a `.timed` one.
    package static var heavy: Self { LoadGateTrait(kind: .heavy) }
}
