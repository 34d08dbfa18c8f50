import NIOCore

/// Closes a connection whose peer stops reading: when the channel has stayed
/// unwritable (its outgoing buffer above the high-water mark, because the
/// peer does not take what it is sent) for longer than `timeout`, the
/// connection is closed. So a client that pipelines calls or pings and never
/// reads the answers holds at most the channel's buffer, and never for ever.
final class WriteStallHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let timeout: TimeAmount
    private let onStall: @Sendable () -> Void
    private var pending: Scheduled<Void>?

    /// - Parameters:
    ///   - timeout: How long the channel may stay unwritable.
    ///   - onStall: Told when a connection is closed for it (counted and logged).
    init(timeout: TimeAmount, onStall: @escaping @Sendable () -> Void) {
        self.timeout = timeout
        self.onStall = onStall
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            self.pending?.cancel()
            self.pending = nil
        } else if self.pending == nil {
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            let onStall = self.onStall
            self.pending = context.eventLoop.scheduleTask(in: self.timeout) {
                let context = loopBound.value
                guard !context.channel.isWritable else { return }
                onStall()
                context.close(promise: nil)
            }
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.pending?.cancel()
        self.pending = nil
        context.fireChannelInactive()
    }
}
