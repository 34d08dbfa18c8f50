import HavenTestSupport
import Logging
import Testing

@testable import HavenServer

/// A call's log handler, directly: the call's metadata joins each line it
/// logs, over the connection's and under the line's own, and nothing is set
/// on the connection's handler.
@Suite("A call's log handler")
struct CallLogHandlerTests {
    /// A connection's logger writing to `capture`, and a call's over it.
    static func loggers(_ capture: LogCapture, level: Logger.Level = .trace) -> (connection: Logger, call: Logger) {
        var connection = capture.logger(level: level)
        connection[metadataKey: "connection"] = "3"
        var call = connection
        call.handler = CallLogHandler(
            base: connection.handler,
            call: ["call": "7", "method": "haven.v1.CaseService/GetCase", "request": "3/7"]
        )
        return (connection, call)
    }

    @Test("a call's line carries the connection's metadata and the call's; the connection's lines do not")
    func lines() {
        let capture = LogCapture()
        let (connection, call) = Self.loggers(capture)
        call.info("handled")
        connection.info("between calls")
        #expect(
            capture.all == [
                "info handled call=7 connection=3 method=haven.v1.CaseService/GetCase request=3/7",
                "info between calls connection=3",
            ]
        )
    }

    @Test("a line's own metadata is kept, and wins over the call's")
    func ownMetadata() {
        let capture = LogCapture()
        let (_, call) = Self.loggers(capture)
        call.notice("ended", metadata: ["code": "OK", "call": "overridden"])
        #expect(
            capture.all == [
                "notice ended call=overridden code=OK connection=3 method=haven.v1.CaseService/GetCase request=3/7"
            ]
        )
    }

    @Test("the level is the connection's: a call logs nothing below it")
    func level() {
        let capture = LogCapture()
        let (_, call) = Self.loggers(capture, level: .info)
        call.debug("call ended")
        call.info("kept")
        #expect(capture.all.count == 1)
        #expect(call.logLevel == .info)
    }

    @Test("metadata reads the call's over the connection's; a key set on the call's logger joins its lines")
    func metadata() {
        let capture = LogCapture()
        var (connection, call) = Self.loggers(capture)
        #expect(call[metadataKey: "request"] == "3/7")
        #expect(call[metadataKey: "connection"] == "3")
        #expect(call.handler.metadata.count == 4)
        call[metadataKey: "principal"] = "acct_fictional"
        call.info("line")
        #expect(
            capture.all.last
                == "info line call=7 connection=3 method=haven.v1.CaseService/GetCase principal=acct_fictional request=3/7"
        )
        connection.info("connection's")
        #expect(capture.all.last == "info connection's connection=3", "nothing set on the connection's handler")
    }
}
