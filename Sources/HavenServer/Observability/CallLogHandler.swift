import Logging

/// A call's log handler: its connection's handler, with the call's own
/// metadata (`call`, `method`, `request`) added to each line it logs.
///
/// Setting metadata on a handler costs what the handler makes of it, on
/// every call whether or not anything is logged: swift-log's stream handler
/// formats all of its metadata again each time (about 1 % of a write's CPU
/// at 16 calls in flight, BENCHMARKS.md). This handler sets nothing on the
/// connection's: the call's metadata joins a line's own when the line is
/// logged, below it (a line's own metadata wins a clash), so a call that
/// logs nothing at the level in force costs a dictionary of three entries.
struct CallLogHandler: LogHandler {
    private var base: any LogHandler
    private var call: Logger.Metadata

    /// - Parameters:
    ///   - base: The connection's handler, whose level, metadata and output the call's lines keep.
    ///   - call: The call's metadata.
    init(base: any LogHandler, call: Logger.Metadata) {
        self.base = base
        self.call = call
    }

    var logLevel: Logger.Level {
        get { self.base.logLevel }
        set { self.base.logLevel = newValue }
    }

    var metadataProvider: Logger.MetadataProvider? {
        get { self.base.metadataProvider }
        set { self.base.metadataProvider = newValue }
    }

    /// The connection's metadata with the call's over it.
    var metadata: Logger.Metadata {
        get { self.base.metadata.merging(self.call) { _, call in call } }
        set {
            self.call = [:]
            self.base.metadata = newValue
        }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.call[key] ?? self.base[metadataKey: key] }
        set { self.call[key] = newValue }
    }

    func log(event: LogEvent) {
        var event = event
        if let own = event.metadata {
            event.metadata = self.call.merging(own) { _, own in own }
        } else {
            event.metadata = self.call
        }
        self.base.log(event: event)
    }
}
