import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A bare TCP socket (no NIO, no TLS): the cheapest way for a test to hold
/// thousands of connections, send a few bytes and vanish.
public final class PlainSocket {
    public private(set) var descriptor: Int32

    /// Connects to `127.0.0.1:port` (blocking; loopback answers at once).
    public init(port: Int) throws {
        #if canImport(Glibc)
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let descriptor = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard descriptor >= 0 else { throw PlainSocket.failure("socket", errno) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            let error = errno
            Glibc.close(descriptor)
            throw PlainSocket.failure("connect", error)
        }
        self.descriptor = descriptor
    }

    deinit { self.close() }

    /// Opens `count` sockets off Swift's cooperative threads: a `connect`
    /// blocks while the server's accept queue is full (for seconds, as SYNs
    /// are retried), and other tests' tasks need those threads meanwhile.
    public static func open(_ count: Int, port: Int) async throws -> [PlainSocket] {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try (0..<count).map { _ in try PlainSocket(port: port) } })
            }
        }
    }

    /// Sends `bytes` (all of them, blocking).
    public func send(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { Glibc.send(self.descriptor, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { throw PlainSocket.failure("send", errno) }
            sent += count
        }
    }

    /// Whether the server has closed its end: an orderly close (EOF) or a
    /// reset, read without waiting (whatever it sent before is discarded).
    public var closedByPeer: Bool {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(self.descriptor, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if count > 0 { continue }
            if count == 0 { return true }
            return errno != EAGAIN && errno != EWOULDBLOCK
        }
    }

    /// Closes the socket; `abort` resets the connection (RST) instead of an orderly close.
    public func close(abort: Bool = false) {
        guard self.descriptor >= 0 else { return }
        if abort {
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            setsockopt(self.descriptor, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        }
        Glibc.close(self.descriptor)
        self.descriptor = -1
    }

    static func failure(_ call: String, _ error: Int32) -> NSError {
        NSError(
            domain: "PlainSocket",
            code: Int(error),
            userInfo: [NSLocalizedDescriptionKey: "\(call): \(String(cString: strerror(error)))"]
        )
    }
}
