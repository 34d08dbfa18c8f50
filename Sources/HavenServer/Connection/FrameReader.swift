import HavenProtocol
import NIOCore

/// Turns the decrypted byte stream into frame payloads, and cuts off a peer
/// that starts a frame and does not finish it in time.
///
/// Framing is ``FrameDecoder``'s (the length is checked before anything is
/// buffered). Any framing error, and the frame timeout, are fired as a
/// ``HavenError`` through `errorCaught`, after which the reader drops input:
/// the connection answers with a go-away and closes.
final class FrameReader: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let processor: NIOSingleStepByteToMessageProcessor<FrameDecoder>
    private let frameTimeout: TimeAmount
    private var timer: Scheduled<Void>?
    private var failed = false

    init(maximumPayloadLength: Int, frameTimeout: TimeAmount) {
        self.processor = NIOSingleStepByteToMessageProcessor(FrameDecoder(maximumPayloadLength: maximumPayloadLength))
        self.frameTimeout = frameTimeout
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.failed else { return }
        var completed = false
        do {
            try self.processor.process(buffer: Self.unwrapInboundIn(data)) { payload in
                completed = true
                context.fireChannelRead(Self.wrapInboundOut(payload))
            }
        } catch {
            self.fail(context: context, error: error)
            return
        }
        // The timer runs from a frame's first byte to its last: more bytes of
        // the same frame do not restart it, a new frame does.
        if completed || self.processor.unprocessedBytes == 0 {
            self.timer?.cancel()
            self.timer = nil
        }
        if self.processor.unprocessedBytes > 0, self.timer == nil {
            let timeout = self.frameTimeout
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            self.timer = context.eventLoop.scheduleTask(in: timeout) {
                let (reader, context) = loopBound.value
                reader.fail(
                    context: context,
                    error: HavenError(
                        code: .deadlineExceeded,
                        message: "frame not completed within \(timeout.nanoseconds / 1_000_000) ms"
                    )
                )
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.timer?.cancel()
        self.timer = nil
        if !self.failed {
            do {
                try self.processor.finishProcessing(seenEOF: true) { payload in
                    context.fireChannelRead(Self.wrapInboundOut(payload))
                }
            } catch {
                self.failed = true
                context.fireErrorCaught(error)
            }
        }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.timer?.cancel()
        self.timer = nil
    }

    private func fail(context: ChannelHandlerContext, error: any Error) {
        guard !self.failed else { return }
        self.failed = true
        self.timer?.cancel()
        self.timer = nil
        context.fireErrorCaught(error)
    }
}

extension ServerConnection {
    /// The frame reader a connection's pipeline has, for a pipeline built
    /// outside this module (the connection fuzz target's, which has no TLS).
    package static func frameReader(maximumPayloadLength: Int, frameTimeout: TimeAmount) -> any ChannelHandler {
        FrameReader(maximumPayloadLength: maximumPayloadLength, frameTimeout: frameTimeout)
    }
}
