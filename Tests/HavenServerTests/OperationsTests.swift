import Foundation
import HavenProtocol
import HavenServer
import HavenStore
import HavenTestSupport
import InMemoryTracing
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import SwiftProtobuf
import Synchronization
import Testing
import Tracing

/// What an operator's machines read: metrics after a known sequence of calls,
/// health that flips with the store, JSON logs, and a span per call.
@Suite("Operations: metrics, health, logs, traces", .serialized)
struct OperationsTests {
    /// Scrapes until `series` reaches `value` (counters of closing connections and
    /// failed handshakes are counted as the server gets to them), or 10 s pass.
    static func scrape(_ url: String, until series: String, reaches value: Double) async throws -> String {
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            let text = try await HTTPProbe.request(url, "/metrics").body
            if HTTPProbe.sample(text, series) == value || ContinuousClock.now > deadline { return text }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// An admin's connection that has created office KOL (its call id 1), and a KOL caseworker's; both past hello.
    static func officeAndCaseworker(
        _ deployment: TestDeployment,
        _ server: RunningServer
    ) async throws -> (admin: RawConnection, worker: RawConnection) {
        let admin = try await RawConnection.connect(
            port: server.port,
            credentials: try deployment.credentials(for: "admin")
        )
        try #require(try await admin.hello() != nil)
        _ = try await admin.unary(MethodCatalog.OfficeService.createOffice, ServiceTests.officeRequest("KOL"), id: 1)
        let worker = try await RawConnection.connect(
            port: server.port,
            credentials: try deployment.credentials(for: "worker-kol")
        )
        try #require(try await worker.hello() != nil)
        return (admin, worker)
    }

    @Test(
        "/metrics after a known sequence of calls: counters by method and code, latency histograms, connections, frames, refusals, commits; no label from what a client sent"
    )
    func metricsAfterKnownCalls() async throws {
        let deployment = try TestDeployment()
        try await deployment.serving { server in
            let url = server.operationsURL

            let (admin, worker) = try await Self.officeAndCaseworker(deployment, server)
            for id in 1...2 {
                _ = try await worker.unary(MethodCatalog.CaseService.openCase, ServiceTests.openCase(), id: UInt64(id))
            }
            let missing = try await worker.call(
                MethodCatalog.CaseService.getCase,
                .with { $0.caseID = "case-nope" },
                id: 3
            )
            #expect(missing.statusCode == .notFound)
            // A method no catalog has, named with a canary: counted as `unknown`, its name nowhere.
            var unknown = Haven_V1_ClientEnvelope()
            unknown.callID = 4
            unknown.start.method = "haven.v1.CanaryService/ZenobiaCanary"
            try await worker.send(unknown)
            #expect(try await worker.end(of: 4).statusCode == .unimplemented)
            // A stranger speaking plain HTTP to the RPC port: a failed handshake, by reason.
            try await HandshakeFailureTests.garbage("GET / HTTP/1.1\r\nHost: x\r\n\r\n", port: server.port)

            let text = try await Self.scrape(
                url,
                until: #"haven_handshake_failures_total{reason="not_tls_plain_http"}"#,
                reaches: 1
            )
            func value(_ series: String) -> Double? { HTTPProbe.sample(text, series) }
            #expect(value(#"haven_calls_total{method="haven.v1.OfficeService/CreateOffice",code="OK"}"#) == 1)
            #expect(value(#"haven_calls_total{method="haven.v1.CaseService/OpenCase",code="OK"}"#) == 2)
            #expect(value(#"haven_calls_total{method="haven.v1.CaseService/GetCase",code="NOT_FOUND"}"#) == 1)
            #expect(value(#"haven_calls_total{method="unknown",code="UNIMPLEMENTED"}"#) == 1)
            #expect(value(#"haven_call_duration_seconds_count{method="haven.v1.CaseService/OpenCase"}"#) == 2)
            #expect(
                value(#"haven_call_duration_seconds_bucket{method="haven.v1.CaseService/OpenCase",le="+Inf"}"#) == 2
            )
            #expect(value(#"haven_call_duration_seconds_count{method="haven.v1.CaseService/GetCase"}"#) == 1)
            #expect(value("haven_calls_in_flight") == 0)
            #expect(value(#"haven_handshake_failures_total{reason="not_tls_plain_http"}"#) == 1)
            #expect(value("haven_connections_accepted_total") == 3)
            #expect(value("haven_connections_open") == 2)
            // Frames in: 2 hellos and 5 call starts; out: 2 hellos and 5 ends.
            #expect(value("haven_frames_received_total") == 7)
            #expect(value("haven_frames_sent_total") == 7)
            #expect((value("haven_bytes_received_total") ?? 0) > 7 * 5)
            #expect((value("haven_bytes_sent_total") ?? 0) > 7 * 5)
            // The office, two cases, and the refused read's audit entry: at least four commits, each of one write.
            let commits = value("haven_store_commit_duration_seconds_count") ?? 0
            #expect(commits >= 4)
            #expect(value("haven_store_commit_batch_size_count") == commits)
            #expect(value("haven_store_commit_batch_size_sum") == commits)
            // The writer's time, split into its two parts; they are counted after the group's
            // commit duration is recorded, so a scrape never sees more of them than of it.
            let writing = value(#"haven_store_writer_seconds_total{phase="writes"}"#) ?? 0
            let committing = value(#"haven_store_writer_seconds_total{phase="commit"}"#) ?? 0
            #expect(writing > 0 && committing > 0)
            #expect(writing + committing <= (value("haven_store_commit_duration_seconds_sum") ?? 0) + 1e-6)
            // And how much of each its thread spent on a CPU: some, never more than the time itself.
            let writingOnCPU = value(#"haven_store_writer_cpu_seconds_total{phase="writes"}"#) ?? 0
            let committingOnCPU = value(#"haven_store_writer_cpu_seconds_total{phase="commit"}"#) ?? 0
            #expect(writingOnCPU > 0 && committingOnCPU > 0)
            #expect(writingOnCPU <= writing + 1e-3 && committingOnCPU <= committing + 1e-3)
            #expect(value("haven_store_writes_cancelled_total") == 0)
            #expect(value("haven_store_writes_repeated_total") == 0)
            #expect(value("haven_ready") == 1)
            #expect((value("haven_audit_chain_length") ?? 0) >= 4)
            #expect((value("haven_database_bytes") ?? 0) > 0)
            #expect((value("haven_server_certificate_expiry_timestamp_seconds") ?? 0) > Date().timeIntervalSince1970)
            #expect(
                (value("haven_account_certificate_soonest_expiry_timestamp_seconds") ?? 0)
                    > Date().timeIntervalSince1970
            )
            #expect(value(#"haven_build_info{version="\#(HavenRelease.version)"}"#) == 1)
            #expect(
                !text.contains("Canary") && !text.contains("worker-kol") && !text.contains("case-"),
                "no label from a client"
            )

            // A second connection closing is seen at once in the gauge.
            await admin.close()
            let after = try await Self.scrape(url, until: "haven_connections_open", reaches: 1)
            #expect(HTTPProbe.sample(after, "haven_connections_open") == 1)

            // The listener's other answers.
            let live = try await HTTPProbe.request(url, "/health/live")
            #expect(live.status == 200)
            let post = try await HTTPProbe.request(url, "/metrics", method: .POST)
            #expect(post.status == 405 && post.headers["allow"] == "GET, HEAD")
            #expect(try await HTTPProbe.request(url, "/admin").status == 404)
            let metrics = try await HTTPProbe.request(url, "/metrics")
            #expect(metrics.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)
        }
    }

    @Test(
        "readiness flips when the store cannot grow, stays down while the last write failed, and comes back after a write succeeds; liveness stays up; a shutting-down listener is not ready"
    )
    func readinessFollowsTheStore() async throws {
        let deployment = try TestDeployment()
        let server = try await deployment.start()
        let url = server.operationsURL
        let ready = try await HTTPProbe.request(url, "/health/ready")
        #expect(ready.status == 200)
        #expect(ready.body.contains(#""status":"ready""#))
        #expect(ready.headers["content-type"] == "application/json")

        let (admin, worker) = try await Self.officeAndCaseworker(deployment, server)

        try server.sqlite.limitPages(0)
        let full = try await HTTPProbe.request(url, "/health/ready")
        #expect(full.status == 503)
        #expect(full.body.contains(#""store":"the database reached its size limit""#), "\(full.body)")
        #expect(full.body.contains(#""keys":"ok""#) && full.body.contains(#""listener":"ok""#))
        #expect(try await HTTPProbe.request(url, "/health/live").status == 200)

        // A write fails on the full store; space returns, but the failure keeps readiness down until a write succeeds.
        var id: UInt64 = 1
        var failed = false
        while !failed, id < 200 {
            let end = try await worker.call(MethodCatalog.CaseService.openCase, ServiceTests.openCase(), id: id)
            failed = end.statusCode == .resourceExhausted
            id += 1
        }
        try #require(failed, "the capped store filled up")
        try server.sqlite.limitPages(nil)
        let recovering = try await HTTPProbe.request(url, "/health/ready")
        #expect(recovering.status == 503)
        #expect(recovering.body.contains("the last write failed: storage full"), "\(recovering.body)")
        let scraped = try await HTTPProbe.request(url, "/metrics").body
        #expect(HTTPProbe.sample(scraped, "haven_ready") == 0)
        #expect((HTTPProbe.sample(scraped, #"haven_store_failures_total{kind="full"}"#) ?? 0) >= 1)
        _ = try await admin.unary(MethodCatalog.OfficeService.createOffice, ServiceTests.officeRequest("MUM"), id: 500)
        #expect(try await HTTPProbe.request(url, "/health/ready").status == 200)

        // Shutting down: the RPC listener stops accepting, so not ready; the operations listener still answers.
        server.server.initiateShutdown()
        let draining = try await HTTPProbe.request(url, "/health/ready")
        #expect(draining.status == 503)
        #expect(draining.body.contains(#""listener":"not accepting connections""#))
        try await server.stop()
    }

    @Test(
        "a server on SQLite runs the background checkpointer while it serves, and the writer checkpoints again once it stops"
    )
    func backgroundCheckpointer() async throws {
        let deployment = try TestDeployment()
        let server = try await deployment.start()
        let checkpointer = try server.sqlite.checkpointer
        #expect(try await eventually { checkpointer.isRunning })
        try await server.stop()
        #expect(!checkpointer.isRunning)
    }

    @Test("JSON logs: every line parses, every line of a call carries its request id, no survivor identity appears")
    func jsonLogs() async throws {
        let lines = Mutex<[String]>([])
        var logger = Logger(label: "havend") { label in
            JSONLogHandler(label: label) { line in lines.withLock { $0.append(line) } }
        }
        logger.logLevel = .trace
        let deployment = try TestDeployment()
        let server = try await deployment.start(logger: logger)
        let canary = "Canary Fictional Zenobia"
        let (admin, worker) = try await Self.officeAndCaseworker(deployment, server)
        let survivor = try await worker.unary(
            MethodCatalog.SurvivorService.registerSurvivor,
            ServiceTests.registerSurvivor(name: canary),
            id: 7
        )
        var stale = ServiceTests.registerSurvivor(name: canary + " Second")
        stale.identity.legalName = canary + String(repeating: "x", count: 300)
        #expect(
            try await worker.call(MethodCatalog.SurvivorService.registerSurvivor, stale, id: 8).statusCode
                == .invalidArgument
        )
        _ = try await worker.call(
            MethodCatalog.SurvivorService.getSurvivor,
            .with { $0.survivorID = survivor.id },
            id: 9
        )
        await worker.close()
        await admin.close()
        try await server.stop()

        let all = lines.withLock { $0 }
        #expect(all.count > 5)
        var callLines = 0
        for line in all {
            #expect(line.hasSuffix("}\n") && !line.dropLast().contains("\n"), "one object a line")
            let object = try #require(
                try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                "parses: \(line)"
            )
            #expect(object["time"] is String && object["level"] is String && object["message"] is String)
            #expect(object["label"] as? String == "havend")
            #expect(!line.contains("Canary") && !line.contains("Zenobia"), "no identity: \(line)")
            if let metadata = object["metadata"] as? [String: Any], let call = metadata["call"] as? String {
                callLines += 1
                let connection = try #require(metadata["connection"] as? String)
                #expect(metadata["request"] as? String == "\(connection)/\(call)", "\(line)")
            }
        }
        #expect(callLines >= 4, "every call logs at least its end at debug level")
        #expect(all.contains { $0.contains(#""request":"2/7""#) }, "the survivor's registration, by request id")
    }

    @Test(
        "a traced call: a server span continuing the caller's trace, the store's work as its children, the status on the span"
    )
    func tracedCall() async throws {
        let tracer = InMemoryTracer()
        let deployment = try TestDeployment()
        let server = try await deployment.start(tracer: tracer)
        let admin = try await RawConnection.connect(
            port: server.port,
            credentials: try deployment.credentials(for: "admin")
        )
        try #require(try await admin.hello() != nil)

        // The caller's context, as its tracer propagates it (the in-memory tracer's own keys).
        var start = try Haven_V1_ClientEnvelope.start(
            callID: 1,
            method: MethodCatalog.OfficeService.createOffice,
            request: ServiceTests.officeRequest("KOL")
        )
        start.start.traceContext = [
            .with {
                $0.name = InMemoryTracer.traceIDKey
                $0.value = "trace-from-partner"
            },
            .with {
                $0.name = InMemoryTracer.spanIDKey
                $0.value = "span-of-partner"
            },
        ]
        try await admin.send(start)
        #expect(try await admin.end(of: 1).statusCode == .ok)
        let missing = try await admin.call(MethodCatalog.OfficeService.getOffice, .with { $0.code = "ZZZ" }, id: 2)
        #expect(missing.statusCode == .notFound)
        // Over the bound: refused for the call, not the connection.
        var tooMany = try Haven_V1_ClientEnvelope.start(
            callID: 3,
            method: MethodCatalog.OfficeService.listOffices,
            request: .init()
        )
        tooMany.start.traceContext = (0..<9).map { index in
            .with {
                $0.name = "h\(index)"
                $0.value = "v"
            }
        }
        try await admin.send(tooMany)
        let refused = try await admin.end(of: 3)
        #expect(refused.statusCode == .invalidArgument && refused.message.contains("trace_context"))
        await admin.close()
        try await server.stop()

        let spans = tracer.finishedSpans
        let create = try #require(spans.first { $0.operationName == MethodCatalog.OfficeService.createOffice.fullName })
        #expect(create.kind == .server)
        #expect(create.spanContext.traceID == "trace-from-partner")
        #expect(create.spanContext.parentSpanID == "span-of-partner")
        #expect(create.attributes["rpc.haven.status_code"]?.toSpanAttribute() == .int64(0))
        #expect(create.status == nil)
        let children = spans.filter { $0.spanContext.parentSpanID == create.spanContext.spanID }
        #expect(
            children.contains { $0.operationName == "store.write" },
            "the write is a child: \(children.map(\.operationName))"
        )
        #expect(children.allSatisfy { $0.spanContext.traceID == "trace-from-partner" })

        let get = try #require(spans.first { $0.operationName == MethodCatalog.OfficeService.getOffice.fullName })
        #expect(get.spanContext.traceID != "trace-from-partner", "a call without context starts its own trace")
        #expect(get.attributes["rpc.haven.status_code"]?.toSpanAttribute() == .int64(5))
        #expect(get.status == nil, "NOT_FOUND is the client's answer, not a server fault")
        #expect(
            spans.contains { $0.operationName == "store.read" && $0.spanContext.parentSpanID == get.spanContext.spanID }
        )
        #expect(
            !spans.contains { $0.operationName == MethodCatalog.OfficeService.listOffices.fullName },
            "a refused start runs no span"
        )
    }
}
