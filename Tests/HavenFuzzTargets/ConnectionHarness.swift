import Dispatch
import Foundation
import HavenProtocol
import HavenServer
import HavenStore
import HavenTestSupport
import Logging
import NIOCore
import NIOEmbedded
import SwiftProtobuf

/// A whole server connection without TLS, for the `connection` fuzz target:
/// bytes → the frame reader → ``ServerConnection`` (hello, call control,
/// field limits, dispatch) → the real handlers → a store in a temporary
/// development data directory (one per process, shared by every input).
///
/// The first byte of an input picks the principal (an admin, a director, a
/// caseworker, an auditor, a disabled account's stale session, or a machine
/// that has yet to enrol) and how the bytes are chunked; the rest is what the
/// peer sends before it closes its side.
package final class ConnectionHarness: Sendable {
    let deployment: TestDeployment
    let composition: HavenComposition
    let router: Router
    let principals: [Principal]
    let configuration: ServerConfiguration
    static let logger = Logger(label: "haven-fuzz") { _ in SwiftLogNoOpLogHandler() }

    private init(
        deployment: TestDeployment,
        composition: HavenComposition,
        principals: [Principal],
        configuration: ServerConfiguration
    ) {
        self.deployment = deployment
        self.composition = composition
        self.router = HavenServices.router(composition.environment)
        self.principals = principals
        self.configuration = configuration
    }

    /// Opens the deployment (once per process).
    static func open() async throws -> ConnectionHarness {
        let deployment = try TestDeployment()
        var configuration = ServerConfiguration()
        configuration.listenPort = 0
        configuration.opsListenPort = 0
        configuration.shutdownGrace = .milliseconds(50)
        // Small enough that a fuzzed length reaches the limit.
        configuration.maxFrameBytes = 64 * 1024
        configuration.maxConcurrentCalls = 16
        let composition = try await HavenComposition.open(
            deployment.dataDirectory,
            configuration: configuration,
            logger: Self.logger
        )
        let expiry = Date().addingTimeInterval(365 * 24 * 3600)
        let accounts = try await composition.store.read { tx in
            try ["admin", "director-kol", "worker-kol", "auditor", "disabled"].compactMap { try tx.account(id: $0) }
        }
        let principals =
            accounts.map { Principal(account: $0, certificateExpiresAt: expiry) } + [.enrolling(until: expiry)]
        return ConnectionHarness(
            deployment: deployment,
            composition: composition,
            principals: principals,
            configuration: configuration
        )
    }

    private static let shared = Task { try await ConnectionHarness.open() }

    /// The process's harness.
    static func current() async throws -> ConnectionHarness { try await Self.shared.value }

    /// Chunk sizes the second to fourth bits of the control byte choose.
    static let chunks = [1, 3, 16, 64, 512, 4096, 65536, Int.max]

    /// What the server sends back for one input, decoded (for tests of the
    /// harness itself). Unlike a fuzzing run, it waits up to 10 s of silence
    /// for the calls the input started: a test that expects their answers
    /// must not see them cancelled because a loaded machine took longer than
    /// the fuzzer's 200 ms (seen once: WhoAmI cancelled, UNAVAILABLE).
    package static func replies(_ input: [UInt8]) async throws -> [Haven_V1_ServerEnvelope] {
        let harness = try await Self.current()
        guard let control = input.first else { return [] }
        let sent = try await harness.serve(
            Array(input.dropFirst()),
            as: harness.principals[Int(control & 0x07) % harness.principals.count],
            chunk: Self.chunks[Int(control >> 3) & 0x07],
            patience: .seconds(10)
        )
        let decoded = Self.decode(sent)
        if let error = decoded.error { throw error }
        return decoded.envelopes
    }

    /// The server envelopes in what the server wrote, in order; the error that
    /// stopped decoding, if any; and the bytes left of a partial frame.
    static func decode(
        _ sent: [ByteBuffer]
    ) -> (envelopes: [Haven_V1_ServerEnvelope], error: (any Error)?, leftover: Int) {
        var bytes = ByteBuffer()
        for var buffer in sent { bytes.writeBuffer(&buffer) }
        var decoder = FrameDecoder(maximumPayloadLength: Frame.defaultMaximumPayloadLength)
        var envelopes: [Haven_V1_ServerEnvelope] = []
        do {
            while let payload = try decoder.decode(buffer: &bytes) {
                envelopes.append(try Haven_V1_ServerEnvelope(serializedBytes: Array(payload.readableBytesView)))
            }
        } catch {
            return (envelopes, error, bytes.readableBytes)
        }
        return (envelopes, nil, bytes.readableBytes)
    }

    /// Feeds one input to a fresh connection and checks what the server sent back.
    func run(_ input: [UInt8]) async -> [String] {
        guard let control = input.first else { return [] }
        let principal = self.principals[Int(control & 0x07) % self.principals.count]
        let chunk = Self.chunks[Int(control >> 3) & 0x07]
        let stream = Array(input.dropFirst())
        let sent: [ByteBuffer]
        do {
            sent = try await self.serve(stream, as: principal, chunk: chunk)
        } catch {
            return ["the harness failed: \(error)"]
        }
        return Self.check(sent)
    }

    /// Runs a connection over `stream`; returns every buffer the server wrote.
    /// Waits for the calls the stream started while the server keeps
    /// answering, giving up after `patience` of silence.
    private func serve(
        _ stream: [UInt8],
        as principal: Principal,
        chunk: Int,
        patience: Duration = .milliseconds(200)
    ) async throws -> [ByteBuffer] {
        let channel = NIOAsyncTestingChannel()
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 7443)).get()
        let maximumPayloadLength = self.configuration.maxFrameBytes
        let wrapped = try await channel.testingEventLoop.executeInContext {
            try channel.pipeline.syncOperations.addHandler(
                ServerConnection.frameReader(maximumPayloadLength: maximumPayloadLength, frameTimeout: .seconds(30))
            )
            return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
        }
        var sent: [ByteBuffer] = []
        try await wrapped.executeThenClose { inbound, outbound in
            let connection = ServerConnection(
                channel: channel,
                outbound: outbound,
                principal: principal,
                configuration: self.configuration,
                router: self.router,
                logger: Self.logger
            )
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await connection.run(inbound: inbound) }
                var offset = 0
                while offset < stream.count, channel.isActive {
                    let end = offset + min(chunk, stream.count - offset)
                    // A framing error reaches the end of the pipeline, where the testing channel
                    // rethrows it here; the server has answered it already (a go-away), so input goes on.
                    _ = try? await channel.writeInbound(ByteBuffer(bytes: stream[offset..<end]))
                    offset = end
                }
                // Let the calls the input started finish (closing now would cancel them all),
                // as long as the server keeps answering.
                var pending = Self.startedCalls(stream)
                var idle = ContinuousClock.now
                // Replies are decoded as they come, each once.
                var unread = ByteBuffer()
                var decoder = FrameDecoder(maximumPayloadLength: Frame.defaultMaximumPayloadLength)
                while !pending.isEmpty, channel.isActive, ContinuousClock.now - idle < patience {
                    guard let buffer = try? await channel.readOutbound(as: ByteBuffer.self) else {
                        try await Task.sleep(for: .milliseconds(1))
                        continue
                    }
                    idle = ContinuousClock.now
                    sent.append(buffer)
                    var copy = buffer
                    unread.writeBuffer(&copy)
                    while let payload = try? decoder.decode(buffer: &unread),
                        let envelope = try? Haven_V1_ServerEnvelope(serializedBytes: Array(payload.readableBytesView))
                    {
                        if case .end = envelope.kind { pending.remove(envelope.callID) }
                        if case .goAway = envelope.kind { pending.removeAll() }
                    }
                }
                // The peer has sent everything and closes its side.
                if channel.isActive { channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed) }
                try await group.waitForAll()
            }
        }
        while let buffer = try? await channel.readOutbound(as: ByteBuffer.self) { sent.append(buffer) }
        return sent
    }

    /// The call ids of the well-formed call starts in a client's byte stream.
    static func startedCalls(_ stream: [UInt8]) -> Set<UInt64> {
        var bytes = ByteBuffer(bytes: stream)
        var decoder = FrameDecoder(maximumPayloadLength: Frame.defaultMaximumPayloadLength)
        var calls = Set<UInt64>()
        while let payload = try? decoder.decode(buffer: &bytes) {
            if let envelope = try? Haven_V1_ClientEnvelope(serializedBytes: Array(payload.readableBytesView)),
                case .start = envelope.kind
            {
                calls.insert(envelope.callID)
            }
        }
        return calls
    }

    /// What the server sent must be whole frames of server envelopes, one end
    /// per call, the hello (or a go-away) first, and never INTERNAL: fuzzed
    /// input is the client's fault, never a server fault.
    static func check(_ sent: [ByteBuffer]) -> [String] {
        let (envelopes, error, leftover) = Self.decode(sent)
        var problems: [String] = []
        if let error { problems.append("the server wrote a malformed frame or envelope: \(error)") }
        if error == nil, leftover > 0 { problems.append("the server wrote \(leftover) bytes of a partial frame") }
        if let first = envelopes.first {
            switch first.kind {
            case .hello, .goAway: break
            default:
                problems.append(
                    "the server's first frame is not a hello or go-away: \(first.kind.map { "\($0)" } ?? "empty")"
                )
            }
        }
        var ended = Set<UInt64>()
        for envelope in envelopes {
            switch envelope.kind {
            case .end(let end):
                if !ended.insert(envelope.callID).inserted { problems.append("call \(envelope.callID) ended twice") }
                if end.statusCode == .internal {
                    problems.append("call \(envelope.callID) ended INTERNAL: \(end.error?.message ?? "")")
                }
            case .goAway(let away):
                if StatusCode(wire: away.code) == .internal { problems.append("go-away INTERNAL: \(away.message)") }
            default:
                break
            }
        }
        return problems
    }
}

extension FuzzTarget {
    /// The connection target, from synchronous code (libFuzzer's callback,
    /// `haven-fuzz replay`): waits for the async run. Not from a thread of
    /// Swift's cooperative pool — tests use ``check(_:)``.
    static func connection(_ input: [UInt8]) -> [String] {
        final class Outcome: @unchecked Sendable { var problems: [String] = [] }
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        Task {
            outcome.problems = await Self.connection(async: input)
            done.signal()
        }
        done.wait()
        return outcome.problems
    }

    static func connection(async input: [UInt8]) async -> [String] {
        do {
            return try await ConnectionHarness.current().run(input)
        } catch {
            return ["the harness could not open its deployment: \(error)"]
        }
    }
}
