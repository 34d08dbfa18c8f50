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

    func handlerAdded(context: ChannelHandlerContext) {
        // A channel may already be unwritable when the handler joins it.
        if context.channel.isActive, !context.channel.isWritable { self.arm(context: context) }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            self.disarm()
        } else if self.pending == nil {
            self.arm(context: context)
        }
        context.fireChannelWritabilityChanged()
    }

    /// Closes the connection after `timeout` unless it has become writable
    /// by then. A timer that finds it writable (its writability changed back
    /// without the handler being told in between) is spent: the next time it
    /// is unwritable arms a new one.
    private func arm(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        self.pending = context.eventLoop.scheduleTask(in: self.timeout) {
            let (handler, context) = loopBound.value
            handler.pending = nil
            guard !context.channel.isWritable else { return }
            handler.onStall()
            context.close(promise: nil)
        }
    }

    private func disarm() {
        self.pending?.cancel()
        self.pending = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.disarm()
        context.fireChannelInactive()
    }

    /// A handler taken out of the pipeline closes nothing afterwards.
    func handlerRemoved(context: ChannelHandlerContext) {
        self.disarm()
    }
}
