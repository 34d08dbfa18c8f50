import NIOCore

/// Copies small writes out of large buffers before they wait in the socket's
/// queue.
///
/// NIOSSL hands each TLS record to the socket as a view of its own 16 KiB
/// output buffer, and writes its next record into a copy of that buffer when
/// the first is still queued. A peer that stops reading while small frames
/// (pongs, short answers) are written one by one would so make the server
/// hold 16 KiB for every ~40-byte record queued — tens of MiB per connection
/// before the queue's high-water mark (which counts bytes to send, not
/// memory held) makes the channel unwritable. Sits between the socket and
/// NIOSSL: a write using less than a quarter of its buffer's storage is
/// copied into a buffer of its own size, and the large buffer goes back to
/// NIOSSL at once.
final class WriteCompactionHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let buffer = self.unwrapOutboundIn(data)
        guard buffer.readableBytes < buffer.storageCapacity / 4 else {
            context.write(data, promise: promise)
            return
        }
        var compact = context.channel.allocator.buffer(capacity: buffer.readableBytes)
        compact.writeImmutableBuffer(buffer)
        context.write(self.wrapOutboundOut(compact), promise: promise)
    }
}
