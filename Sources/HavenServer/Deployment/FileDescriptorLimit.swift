#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The process's open-file limit against what the configured connection
/// limits need: past it, `accept` fails and nobody — well-behaved clients
/// included — can connect.
package enum FileDescriptorLimit {
    /// Descriptors besides client sockets: the database, its WAL and shared
    /// memory, the listeners, the operations listener's 32 connections, logs.
    static let reserve = 128

    /// Descriptors the configuration's limits can take at once.
    package static func needed(by configuration: ServerConfiguration) -> Int {
        configuration.maxConnections + configuration.maxEnrollingConnections + configuration.maxPendingHandshakes
            + Self.reserve
    }

    /// Raises the soft limit to the hard one (as Go's runtime and many
    /// servers do at start) and returns the limit in force, nil when it
    /// cannot be read.
    package static func raise() -> Int? {
        var limit = rlimit()
        #if canImport(Glibc)
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        #else
        let resource = RLIMIT_NOFILE
        #endif
        guard getrlimit(resource, &limit) == 0 else { return nil }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(resource, &raised) == 0 { limit = raised }
        }
        return limit.rlim_cur >= rlim_t(Int.max) ? Int.max : Int(limit.rlim_cur)
    }
}
