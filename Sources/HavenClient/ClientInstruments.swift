import CoreMetrics
import HavenProtocol
import Synchronization
import Tracing

/// What the client reports on its side, through swift-metrics and
/// swift-distributed-tracing: the same names a partner's dashboard can put
/// beside the server's (docs/OPERATIONS.md lists them).
final class ClientInstruments: Sendable {
    let tracer: any Tracer
    private let factory: any MetricsFactory
    private let reconnects: Counter
    private let connectionFailures: Counter
    private let members = Mutex<[String: any Sendable]>([:])

    enum Name {
        static let calls = "haven_client_calls_total"
        static let callDuration = "haven_client_call_duration_seconds"
        static let streamsOpened = "haven_client_streams_opened_total"
        static let retries = "haven_client_retries_total"
        static let reconnects = "haven_client_reconnects_total"
        static let connectionFailures = "haven_client_connection_failures_total"
    }

    init(_ configuration: HavenClientConfiguration) {
        self.tracer = configuration.tracer ?? InstrumentationSystem.tracer
        self.factory = configuration.metricsFactory ?? MetricsSystem.factory
        self.reconnects = Counter(label: Name.reconnects, factory: self.factory)
        self.connectionFailures = Counter(label: Name.connectionFailures, factory: self.factory)
    }

    private func member<Metric: Sendable>(_ key: String, _ make: () -> Metric) -> Metric {
        self.members.withLock { members in
            if let existing = members[key] as? Metric { return existing }
            let made = make()
            members[key] = made
            return made
        }
    }

    /// A unary call ended with `code` after `duration`, retries included.
    func callEnded(_ method: String, _ code: StatusCode, _ duration: Duration) {
        self.member("calls \(method) \(code.rawValue)") {
            Counter(
                label: Name.calls,
                dimensions: [("method", method), ("code", code.description)],
                factory: self.factory
            )
        }.increment()
        self.member("duration \(method)") {
            CoreMetrics.Timer(label: Name.callDuration, dimensions: [("method", method)], factory: self.factory)
        }.recordNanoseconds(duration.nanoseconds)
    }

    /// A server-streaming call was opened (`OK`), or failed to open with `code`.
    func streamOpened(_ method: String, _ code: StatusCode) {
        self.member("streams \(method) \(code.rawValue)") {
            Counter(
                label: Name.streamsOpened,
                dimensions: [("method", method), ("code", code.description)],
                factory: self.factory
            )
        }.increment()
    }

    /// A call is tried again.
    func retried(_ method: String) {
        self.member("retries \(method)") {
            Counter(label: Name.retries, dimensions: [("method", method)], factory: self.factory)
        }.increment()
    }

    /// A connection was opened again after an earlier one closed or failed.
    func reconnected() { self.reconnects.increment() }

    /// An attempt to connect failed.
    func connectionFailed() { self.connectionFailures.increment() }

    /// The span's context, as the call start carries it to the server.
    func traceContext(of span: any Span) -> [Haven_V1_TraceHeader] {
        var headers: [Haven_V1_TraceHeader] = []
        self.tracer.inject(span.context, into: &headers, using: TraceHeaderInjector())
        return headers
    }
}

/// Writes a propagated trace context into a call start's headers.
struct TraceHeaderInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [Haven_V1_TraceHeader]) {
        var header = Haven_V1_TraceHeader()
        header.name = key
        header.value = value
        carrier.append(header)
    }
}
