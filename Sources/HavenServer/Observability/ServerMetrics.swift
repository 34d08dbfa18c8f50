import CoreMetrics
import Foundation
import HavenProtocol
import HavenStore
import Synchronization

/// The server's metrics, through swift-metrics, into the factory it is given
/// (in havend, swift-prometheus's, scraped at the operations listener's
/// `/metrics`). docs/OPERATIONS.md lists every one.
///
/// Labels come from fixed sets only — method names of the catalog, status
/// codes, reasons this code names — never from identities, record ids or
/// anything a client typed: a method the catalog does not know counts as
/// `unknown`, so a stranger cannot grow the label space.
package final class ServerMetrics: Sendable {
    private let factory: any MetricsFactory

    private let callsInFlight: Meter
    private let connectionsOpen: Meter
    private let connectionsAccepted: Counter
    private let framesReceived: Counter
    private let framesSent: Counter
    private let bytesReceived: Counter
    private let bytesSent: Counter
    private let writeStalls: Counter
    private let feedSubscribers: Meter
    private let feedLag: CoreMetrics.Timer

    private let calls = MetricFamily<Counter>()
    private let durations = MetricFamily<CoreMetrics.Timer>()
    private let refusals = MetricFamily<Counter>()
    private let handshakeFailures = MetricFamily<Counter>()
    private let goAways = MetricFamily<Counter>()
    private let gauges = MetricFamily<Gauge>()

    /// The metric names, as docs/OPERATIONS.md lists them.
    package enum Name {
        package static let buildInfo = "haven_build_info"
        package static let startTime = "haven_start_time_seconds"
        package static let ready = "haven_ready"
        package static let calls = "haven_calls_total"
        package static let callDuration = "haven_call_duration_seconds"
        package static let callsInFlight = "haven_calls_in_flight"
        package static let connectionsOpen = "haven_connections_open"
        package static let connectionsAccepted = "haven_connections_accepted_total"
        package static let connectionsRefused = "haven_connections_refused_total"
        package static let handshakeFailures = "haven_handshake_failures_total"
        package static let framesReceived = "haven_frames_received_total"
        package static let framesSent = "haven_frames_sent_total"
        package static let bytesReceived = "haven_bytes_received_total"
        package static let bytesSent = "haven_bytes_sent_total"
        package static let goAways = "haven_go_aways_sent_total"
        package static let writeStalls = "haven_write_stalls_total"
        package static let feedSubscribers = "haven_feed_subscribers"
        package static let feedLag = "haven_feed_lag_seconds"
        package static let databaseBytes = "haven_database_bytes"
        package static let auditEntries = "haven_audit_chain_length"
        package static let serverCertificateExpiry = "haven_server_certificate_expiry_timestamp_seconds"
        package static let accountCertificateExpiry = "haven_account_certificate_soonest_expiry_timestamp_seconds"
    }

    /// Metrics into `factory` (`NOOPMetricsHandler.instance`: counted nowhere).
    package init(factory: any MetricsFactory = NOOPMetricsHandler.instance, version: String = HavenRelease.version) {
        self.factory = factory
        self.callsInFlight = Meter(label: Name.callsInFlight, factory: factory)
        self.connectionsOpen = Meter(label: Name.connectionsOpen, factory: factory)
        self.connectionsAccepted = Counter(label: Name.connectionsAccepted, factory: factory)
        self.framesReceived = Counter(label: Name.framesReceived, factory: factory)
        self.framesSent = Counter(label: Name.framesSent, factory: factory)
        self.bytesReceived = Counter(label: Name.bytesReceived, factory: factory)
        self.bytesSent = Counter(label: Name.bytesSent, factory: factory)
        self.writeStalls = Counter(label: Name.writeStalls, factory: factory)
        self.feedSubscribers = Meter(label: Name.feedSubscribers, factory: factory)
        self.feedLag = CoreMetrics.Timer(label: Name.feedLag, factory: factory)
        self.gauge(Name.buildInfo, [("version", version)]).record(1)
        self.gauge(Name.startTime).record(Date().timeIntervalSince1970)
        // Present from the start, so that a dashboard shows zero rather than nothing.
        self.callsInFlight.set(0)
        self.connectionsOpen.set(0)
        self.feedSubscribers.set(0)
    }

    /// The histogram buckets the server's timers and recorders use, for the
    /// Prometheus factory: calls from a millisecond to ten seconds, commits
    /// from half a millisecond, feed lag from ten milliseconds to a minute.
    package static let durationBuckets: [String: [Duration]] = [
        Name.callDuration: [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000].map { .milliseconds($0) },
        StoreMetricNames.commitDuration: [0.5, 1, 2, 5, 10, 25, 50, 100, 250, 1000].map { .milliseconds($0) },
        Name.feedLag: [10, 50, 100, 250, 500, 1000, 5000, 15000, 60000].map { .milliseconds($0) },
    ]
    package static let valueBuckets: [String: [Double]] = [
        StoreMetricNames.commitBatchSize: [1, 2, 4, 8, 16, 32, 64, 128, 256]
    ]

    // MARK: Calls

    /// The label a method name gets: its own when the catalog has it, else `unknown`.
    static func methodLabel(_ method: String) -> String {
        MethodCatalog.method(named: method) == nil ? "unknown" : method
    }

    /// A call accepted for running.
    package func callStarted() {
        self.callsInFlight.increment()
    }

    /// A call that ran has ended with `code` after `duration`.
    package func callEnded(method: String, code: StatusCode, duration: Duration) {
        self.callsInFlight.decrement()
        let method = self.count(method, code)
        self.durations.member(method) {
            CoreMetrics.Timer(label: Name.callDuration, dimensions: [("method", method)], factory: self.factory)
        }.recordNanoseconds(duration.nanoseconds)
    }

    /// A call answered without running (unknown method, too many in flight, not allowed on this connection).
    package func callRefused(method: String, code: StatusCode) {
        self.count(method, code)
    }

    /// Counts a call in `haven_calls_total`; returns its method label.
    @discardableResult
    private func count(_ method: String, _ code: StatusCode) -> String {
        let method = Self.methodLabel(method)
        self.calls.member("\(method) \(code.rawValue)") {
            Counter(
                label: Name.calls,
                dimensions: [("method", method), ("code", code.description)],
                factory: self.factory
            )
        }.increment()
        return method
    }

    // MARK: Connections

    package func connectionAccepted() { self.connectionsAccepted.increment() }
    package func connectionOpened() { self.connectionsOpen.increment() }
    package func connectionClosed() { self.connectionsOpen.decrement() }

    /// A connection refused after its handshake; `reason` is one of a fixed set (``RefusalReason``).
    package func connectionRefused(_ reason: RefusalReason) {
        self.refusals.member(reason.rawValue) {
            Counter(label: Name.connectionsRefused, dimensions: [("reason", reason.rawValue)], factory: self.factory)
        }.increment()
    }

    /// A failed TLS handshake, by its short reason (``HandshakeFailure``'s fixed set).
    package func handshakeFailed(reason: String) {
        let label = Self.slug(reason)
        self.handshakeFailures.member(label) {
            Counter(label: Name.handshakeFailures, dimensions: [("reason", label)], factory: self.factory)
        }.increment()
    }

    package func frameReceived(bytes: Int) {
        self.framesReceived.increment()
        self.bytesReceived.increment(by: Int64(bytes))
    }

    package func frameSent(bytes: Int) {
        self.framesSent.increment()
        self.bytesSent.increment(by: Int64(bytes))
    }

    package func goAwaySent(code: StatusCode) {
        self.goAways.member(code.description) {
            Counter(label: Name.goAways, dimensions: [("code", code.description)], factory: self.factory)
        }.increment()
    }

    package func writeStalled() { self.writeStalls.increment() }

    // MARK: Feeds

    package func feedSubscribed() { self.feedSubscribers.increment() }
    package func feedUnsubscribed() { self.feedSubscribers.decrement() }

    /// A change delivered to a live follower `lag` after it was committed.
    package func feedDelivered(lag: Duration) {
        self.feedLag.recordNanoseconds(max(0, lag.nanoseconds))
    }

    // MARK: Facts read when scraped

    /// What the operations listener reads from the deployment before each scrape.
    package struct Facts: Sendable {
        package var ready: Bool
        package var databaseBytes: Int64?
        package var auditEntries: UInt64?
        package var serverCertificateExpiry: Date?
        package var soonestAccountCertificateExpiry: Date?

        package init(
            ready: Bool,
            databaseBytes: Int64? = nil,
            auditEntries: UInt64? = nil,
            serverCertificateExpiry: Date? = nil,
            soonestAccountCertificateExpiry: Date? = nil
        ) {
            self.ready = ready
            self.databaseBytes = databaseBytes
            self.auditEntries = auditEntries
            self.serverCertificateExpiry = serverCertificateExpiry
            self.soonestAccountCertificateExpiry = soonestAccountCertificateExpiry
        }
    }

    package func record(_ facts: Facts) {
        self.gauge(Name.ready).record(facts.ready ? 1 : 0)
        if let bytes = facts.databaseBytes { self.gauge(Name.databaseBytes).record(bytes) }
        if let entries = facts.auditEntries { self.gauge(Name.auditEntries).record(Int64(clamping: entries)) }
        if let expiry = facts.serverCertificateExpiry {
            self.gauge(Name.serverCertificateExpiry).record(expiry.timeIntervalSince1970)
        }
        if let expiry = facts.soonestAccountCertificateExpiry {
            self.gauge(Name.accountCertificateExpiry).record(expiry.timeIntervalSince1970)
        }
    }

    private func gauge(_ name: String, _ dimensions: [(String, String)] = []) -> Gauge {
        self.gauges.member(name + dimensions.map { " \($0.1)" }.joined()) {
            Gauge(label: name, dimensions: dimensions, factory: self.factory)
        }
    }

    /// `unknown CA` → `unknown_ca`: a label from a fixed reason text.
    static func slug(_ text: String) -> String {
        var slug = ""
        var gap = false
        for character in text.lowercased().prefix(60) {
            if character.isASCII, character.isLetter || character.isNumber {
                if gap, !slug.isEmpty { slug.append("_") }
                slug.append(character)
                gap = false
            } else {
                gap = true
            }
        }
        return slug.isEmpty ? "other" : slug
    }
}

/// Why a connection was refused after its handshake: the label of
/// `haven_connections_refused_total`.
package enum RefusalReason: String, Sendable, CaseIterable {
    case tooManyConnections = "too_many_connections"
    case tooManyEnrolling = "too_many_enrolling"
    case shuttingDown = "shutting_down"
    case unknownCertificate = "unknown_certificate"
    case revoked = "certificate_revoked"
    case accountDisabled = "account_disabled"
    case partnerDeactivated = "partner_deactivated"
    /// The store could not be read to authenticate the connection (the client may retry).
    case storageUnavailable = "storage_unavailable"
}
