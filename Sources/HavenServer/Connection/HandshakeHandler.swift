import HavenProtocol
import NIOCore
import NIOSSL
import NIOTLS

/// What the TLS handshake established about the peer.
struct PeerIdentity: Sendable {
    /// The client certificate (DER), verified against the deployment CA by
    /// NIOSSL; nil when the client presented none (it may only enrol).
    var certificateDER: [UInt8]?
}

/// Waits for the TLS handshake: enforces its time limit, checks that ALPN
/// chose `haven/1`, and hands the verified client certificate to the
/// connection. Sits right after `NIOSSLServerHandler`.
final class HandshakeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let timeout: TimeAmount
    private let promise: EventLoopPromise<PeerIdentity>
    private var timer: Scheduled<Void>?

    init(timeout: TimeAmount, promise: EventLoopPromise<PeerIdentity>) {
        self.timeout = timeout
        self.promise = promise
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { self.startTimer(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        self.startTimer(context: context)
        context.fireChannelActive()
    }

    private func startTimer(context: ChannelHandlerContext) {
        guard self.timer == nil else { return }
        let channel = context.channel
        let promise = self.promise
        let timeout = self.timeout
        self.timer = context.eventLoop.scheduleTask(in: timeout) {
            promise.fail(
                HavenError(
                    code: .deadlineExceeded,
                    message: "TLS handshake not completed within \(timeout.nanoseconds / 1_000_000) ms"
                )
            )
            channel.close(promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted(let negotiated) = event {
            self.timer?.cancel()
            self.timer = nil
            guard negotiated == HavenWire.alpnIdentifier else {
                self.promise.fail(
                    HavenError(code: .unavailable, message: "ALPN did not negotiate \(HavenWire.alpnIdentifier)")
                )
                context.close(promise: nil)
                return
            }
            do {
                let handler = try context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self)
                self.promise.succeed(PeerIdentity(certificateDER: try handler.peerCertificate?.toDERBytes()))
            } catch {
                self.promise.fail(error)
                context.close(promise: nil)
                return
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.promise.fail(error)
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.timer?.cancel()
        self.timer = nil
        self.promise.fail(HavenError(code: .unavailable, message: "connection closed during the TLS handshake"))
        context.fireChannelInactive()
    }
}
