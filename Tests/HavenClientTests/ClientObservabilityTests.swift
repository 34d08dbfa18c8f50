import CoreMetrics
import Foundation
import HavenClient
import HavenProtocol
import HavenServer
import HavenTestSupport
import InMemoryTracing
import Logging
import MetricsTestKit
import SwiftProtobuf
import Testing
import Tracing

/// HavenClient's own logger, metrics and spans, against a real server.
@Suite("HavenClient observability")
struct ClientObservabilityTests {
    @Test(
        "calls, latency, reconnects and failed connection attempts counted; the client's span continued by the server's"
    )
    func metricsAndTraces() async throws {
        let deployment = try TestDeployment()
        let serverTracer = InMemoryTracer()
        var server = try await deployment.start(tracer: serverTracer)
        let port = server.port
        let metrics = TestMetrics()
        let clientTracer = InMemoryTracer()
        let capture = LogCapture()
        var configuration = HavenClientConfiguration(
            host: "127.0.0.1",
            port: port,
            credentials: try HavenCredentials(try deployment.credentials(for: "admin"))
        )
        configuration.serverHostname = "localhost"
        configuration.metricsFactory = metrics
        configuration.tracer = clientTracer
        configuration.initialBackoff = .milliseconds(20)
        configuration.logger = capture.logger(label: "partner", level: .debug)

        try await withHavenClient(configuration) { client in
            // The partner's own span around its work: the client's span is its child, the server's the client's.
            try await clientTracer.withSpan("partner-sync") { _ in
                _ = try await client.offices.create(HavenClientTests.office("KOL"))
            }
            await #expect(throws: HavenError.self) { _ = try await client.offices.get(.with { $0.code = "ZZZ" }) }

            // The server goes away and comes back on the same port: the next call reconnects.
            try await server.stop()
            await #expect(throws: HavenError.self) { _ = try await client.offices.list(.init()) }
            server = try await deployment.start(configure: { $0.listenPort = port }, tracer: serverTracer)
            _ = try await client.offices.list(.init())
        }
        try await server.stop()

        let create = MethodCatalog.OfficeService.createOffice.fullName
        let get = MethodCatalog.OfficeService.getOffice.fullName
        let list = MethodCatalog.OfficeService.listOffices.fullName
        #expect(
            metrics.counterTotal(label: "haven_client_calls_total", dimensions: [("method", create), ("code", "OK")])
                == 1
        )
        #expect(
            metrics.counterTotal(
                label: "haven_client_calls_total",
                dimensions: [("method", get), ("code", "NOT_FOUND")]
            ) == 1
        )
        #expect(
            metrics.counterTotal(label: "haven_client_calls_total", dimensions: [("method", list), ("code", "OK")]) == 1
        )
        #expect(
            metrics.counterTotal(
                label: "haven_client_calls_total",
                dimensions: [("method", list), ("code", "UNAVAILABLE")]
            ) == 1
        )
        #expect(
            metrics.timers(label: "haven_client_call_duration_seconds", dimensions: [("method", create)]).first?.values
                .count == 1
        )
        // ListOffices is a read: tried again while the server was away.
        #expect(metrics.counterTotal(label: "haven_client_retries_total", dimensions: [("method", list)]) >= 1)
        #expect(metrics.counterTotal(label: "haven_client_connection_failures_total") >= 1)
        #expect(metrics.counterTotal(label: "haven_client_reconnects_total") == 1)

        let partner = try #require(clientTracer.finishedSpans.first { $0.operationName == "partner-sync" })
        let clientSpan = try #require(clientTracer.finishedSpans.first { $0.operationName == create })
        #expect(clientSpan.kind == .client)
        #expect(clientSpan.spanContext.parentSpanID == partner.spanContext.spanID)
        let serverSpan = try #require(serverTracer.finishedSpans.first { $0.operationName == create })
        #expect(
            serverSpan.spanContext.traceID == partner.spanContext.traceID,
            "one trace from the partner's work to the server"
        )
        #expect(serverSpan.spanContext.parentSpanID == clientSpan.spanContext.spanID)
        // What the client logged names no record content.
        #expect(capture.all.allSatisfy { !$0.contains("field office") })
    }
}
