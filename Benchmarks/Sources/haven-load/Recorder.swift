import Foundation
import Histogram
import Synchronization

/// Collects the workers' histograms and error counts.
final class Recorder: Sendable {
    private struct State {
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
        var errors: [String: Int] = [:]
    }

    private let state = Mutex(State())
    // Counted on every call by every worker, so atomics rather than the lock.
    private let calls = Atomic<Int>(0)
    private let failures = Atomic<Int>(0)

    /// Counts one call for the progress line.
    func count(failed: Bool) {
        self.calls.wrappingAdd(1, ordering: .relaxed)
        if failed { self.failures.wrappingAdd(1, ordering: .relaxed) }
    }

    func merge(_ histogram: Histogram<UInt64>, _ errors: [String: Int]) {
        self.state.withLock { state in
            state.histogram.add(histogram)
            for (code, count) in errors { state.errors[code, default: 0] += count }
        }
    }

    func snapshot() -> (calls: Int, errors: Int) {
        (self.calls.load(ordering: .relaxed), self.failures.load(ordering: .relaxed))
    }

    func result(seconds: Double) -> LoadResult {
        self.state.withLock { state in
            LoadResult(histogram: state.histogram, errors: state.errors, seconds: seconds)
        }
    }
}

/// What a run measured.
struct LoadResult {
    let histogram: Histogram<UInt64>
    let errors: [String: Int]
    let seconds: Double

    var calls: UInt64 { self.histogram.totalCount }
    var callsPerSecond: Double { Double(self.calls) / self.seconds }

    func microseconds(_ percentile: Double) -> Double { Double(self.histogram.valueAtPercentile(percentile)) / 1000 }

    func text(connections: Int, concurrency: Int, rate: Int?, mix: String) -> String {
        let errors =
            self.errors.isEmpty
            ? "none" : self.errors.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        return """
            \(rate.map { "open loop at \($0) calls/s" } ?? "closed loop"), \(connections) connection(s), \(concurrency) in flight, mix \(mix)
            calls:      \(self.calls) in \(Int(self.seconds)) s = \(String(format: "%.0f", self.callsPerSecond)) calls/s
            errors:     \(errors)
            latency µs: p50 \(String(format: "%.0f", self.microseconds(50)))  p90 \(String(format: "%.0f", self.microseconds(90)))  p99 \(String(format: "%.0f", self.microseconds(99)))  p99.9 \(String(format: "%.0f", self.microseconds(99.9)))  max \(String(format: "%.0f", Double(self.histogram.max) / 1000))
            """
    }

    func json(
        target: String,
        connections: Int,
        concurrency: Int,
        rate: Int?,
        mix: String,
        soak: [String: Any]?
    ) -> String {
        var object: [String: Any] = [
            "target": target, "connections": connections, "concurrency": concurrency, "mix": mix,
            "seconds": self.seconds, "calls": self.calls, "callsPerSecond": self.callsPerSecond, "errors": self.errors,
            "latencyMicroseconds": [
                "p50": self.microseconds(50), "p90": self.microseconds(90), "p99": self.microseconds(99),
                "p99.9": self.microseconds(99.9), "max": Double(self.histogram.max) / 1000,
            ],
        ]
        if let rate { object["rate"] = rate }
        if let soak { object["soak"] = soak }
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }
}
