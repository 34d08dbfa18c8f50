import Dispatch
import HavenStore

extension GroupCommittedStore {
    /// Holds the writer with a write of its own (it writes nothing) until
    /// `body` calls `release`, so that the writes submitted meanwhile wait
    /// together behind it.
    package func holdingTheWriter(_ body: (_ release: @Sendable () -> Void) async throws -> Void) async throws {
        let started = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        async let held: Void = self.write { _ in
            started.signal()
            release.wait()
        }
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                started.wait()
                continuation.resume()
            }
        }
        try await body { release.signal() }
        try await held
    }

    /// Waits until `count` writes are queued behind the writer.
    package func untilWaiting(_ count: Int) async throws {
        while self.waitingWrites < count { try await Task.sleep(for: .milliseconds(2)) }
    }
}
