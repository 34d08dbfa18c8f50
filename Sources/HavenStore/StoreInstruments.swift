import CoreMetrics
import HavenProtocol
import Synchronization
import Tracing

/// The names of the store's metrics (docs/OPERATIONS.md lists them).
package enum StoreMetricNames {
    package static let commitDuration = "haven_store_commit_duration_seconds"
    package static let commitBatchSize = "haven_store_commit_batch_size"
    package static let failures = "haven_store_failures_total"
    package static let walCheckpoints = "haven_store_wal_checkpoints_total"
    package static let writerSeconds = "haven_store_writer_seconds_total"
    package static let writerCPUSeconds = "haven_store_writer_cpu_seconds_total"
    package static let cancelledWrites = "haven_store_writes_cancelled_total"
    package static let repeatedWrites = "haven_store_writes_repeated_total"
}

/// What the store reports its work to: a span per read and write
/// transaction (children of the call's span), commit latency and batch size,
/// and failures by kind.
package final class StoreInstruments: Sendable {
    package let tracer: any Tracer
    private let factory: any MetricsFactory
    private let commitDuration: CoreMetrics.Timer
    private let commitBatchSize: Recorder
    private let failures = MetricFamily<Counter>()
    private let walCheckpoints = MetricFamily<Counter>()
    private let writing: FloatingPointCounter
    private let committing: FloatingPointCounter
    private let writingOnCPU: FloatingPointCounter
    private let committingOnCPU: FloatingPointCounter
    private let cancelledWrites: Counter
    private let repeatedWrites: Counter

    /// Reports nowhere.
    package static let none = StoreInstruments()

    package init(tracer: any Tracer = NoOpTracer(), factory: any MetricsFactory = NOOPMetricsHandler.instance) {
        self.tracer = tracer
        self.factory = factory
        self.commitDuration = CoreMetrics.Timer(label: StoreMetricNames.commitDuration, factory: factory)
        self.commitBatchSize = Recorder(label: StoreMetricNames.commitBatchSize, factory: factory)
        /// One phase (`writes` or `commit`) of the writer's time, or of its time on a CPU.
        func phase(_ label: String, _ phase: String) -> FloatingPointCounter {
            FloatingPointCounter(label: label, dimensions: [("phase", phase)], factory: factory)
        }
        self.writing = phase(StoreMetricNames.writerSeconds, "writes")
        self.committing = phase(StoreMetricNames.writerSeconds, "commit")
        self.writingOnCPU = phase(StoreMetricNames.writerCPUSeconds, "writes")
        self.committingOnCPU = phase(StoreMetricNames.writerCPUSeconds, "commit")
        self.cancelledWrites = Counter(label: StoreMetricNames.cancelledWrites, factory: factory)
        self.repeatedWrites = Counter(label: StoreMetricNames.repeatedWrites, factory: factory)
    }

    /// The writer ran a group (``GroupCommit/run(_:on:)``): the group's
    /// commit, timed from its start to durable, if it committed anything,
    /// and where the writer's time went, and how much of it on a CPU,
    /// whatever the outcome.
    func ran(_ outcome: GroupCommitOutcome) {
        if outcome.committed > 0 {
            self.commitDuration.recordNanoseconds((outcome.running + outcome.committing).nanoseconds)
            self.commitBatchSize.record(outcome.committed)
        }
        self.writing.increment(by: Double(outcome.running.nanoseconds) / 1e9)
        self.committing.increment(by: Double(outcome.committing.nanoseconds) / 1e9)
        self.writingOnCPU.increment(by: Double(outcome.runningOnCPU.nanoseconds) / 1e9)
        self.committingOnCPU.increment(by: Double(outcome.committingOnCPU.nanoseconds) / 1e9)
        if outcome.cancelled > 0 { self.cancelledWrites.increment(by: outcome.cancelled) }
        if outcome.repeated > 0 { self.repeatedWrites.increment(by: outcome.repeated) }
    }

    /// A transaction failed; `kind` is one of the store's short names (`full`, `busy`, …).
    func failed(kind: String) {
        let counter = self.failures.member(kind) {
            Counter(label: StoreMetricNames.failures, dimensions: [("kind", kind)], factory: self.factory)
        }
        counter.increment()
    }

    /// The embedded store's write-ahead log was checkpointed `by` the
    /// writer (in a commit) or the `background` checkpointer.
    func checkpointed(by: String) {
        let counter = self.walCheckpoints.member(by) {
            Counter(label: StoreMetricNames.walCheckpoints, dimensions: [("by", by)], factory: self.factory)
        }
        counter.increment()
    }
}

/// Metrics created once per label set and kept: creating one per event would
/// register it anew each time. The store's and the server's labelled metrics use it.
package final class MetricFamily<Metric: Sendable>: Sendable {
    private let members = Mutex<[String: Metric]>([:])

    package init() {}

    /// The member for `key`, made by `make` the first time.
    package func member(_ key: String, _ make: () -> Metric) -> Metric {
        self.members.withLock { members in
            if let existing = members[key] { return existing }
            let made = make()
            members[key] = made
            return made
        }
    }
}
