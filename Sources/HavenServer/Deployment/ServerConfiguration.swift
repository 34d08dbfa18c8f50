import Foundation
import HavenProtocol
import HavenStore

/// Every option of a Haven server, with its default.
///
/// Options come from the data directory's `haven.conf`, then environment
/// variables (`HAVEN_LISTEN_PORT`), then `havend --set listen_port=…`, each
/// overriding the one before. ``options`` is the one table of names, help and
/// parsing that all three sources, `havend --help` and the generated
/// `haven.conf` use.
package struct ServerConfiguration: Sendable, Equatable {
    package var listenHost = "127.0.0.1"
    package var listenPort = 7443
    package var maxFrameBytes = Frame.defaultMaximumPayloadLength
    package var maxConcurrentCalls = 100
    package var maxConnections = 1024
    package var maxEnrollingConnections = 32
    package var maxPendingHandshakes = 256
    package var defaultTimeout = Duration.seconds(30)
    package var maxTimeout = Duration.seconds(300)
    package var handshakeTimeout = Duration.seconds(10)
    package var frameTimeout = Duration.seconds(30)
    package var writeStallTimeout = Duration.seconds(30)
    package var idleTimeout = Duration.seconds(300)
    package var shutdownGrace = Duration.seconds(10)
    package var logLevel = "info"
    package var logFormat = "text"
    package var opsListenHost = "127.0.0.1"
    package var opsListenPort = 7444
    package var storage = "sqlite"
    package var checkpointInterval = Duration.seconds(300)
    package var retentionInterval = Duration.seconds(24 * 3600)
    /// The operator's backup key (X25519, base64); empty: online backups are off.
    package var backupPublicKey = ""

    package init() {}

    /// One option: its name in `haven.conf`, what it does, and how to read and write it.
    package struct Option: Sendable {
        package let name: String
        package let help: String
        let get: @Sendable (ServerConfiguration) -> String
        let set: @Sendable (inout ServerConfiguration, String) throws(HavenError) -> Void

        /// The environment variable that overrides it.
        package var environmentVariable: String { "HAVEN_" + self.name.uppercased() }
    }

    package static let options: [Option] = [
        text("listen_host", "Address to listen on. 0.0.0.0 or :: for every interface.", \.listenHost),
        integer(
            "listen_port",
            "TCP port to listen on; 0 picks a free one (havend prints which).",
            \.listenPort,
            0...65535
        ),
        integer(
            "max_frame_bytes",
            "Largest frame payload accepted, in bytes; larger frames close the connection.",
            \.maxFrameBytes,
            HavenLimits.minFrameBytes...(256 * 1024 * 1024)
        ),
        integer(
            "max_concurrent_calls",
            "Calls in flight per connection; more fail with RESOURCE_EXHAUSTED.",
            \.maxConcurrentCalls,
            1...100_000
        ),
        integer(
            "max_connections",
            "Open authenticated connections; more are refused.",
            \.maxConnections,
            1...1_000_000
        ),
        integer(
            "max_enrolling_connections",
            "Open connections without a client certificate (enrolling); more are refused, authenticated ones are not affected.",
            \.maxEnrollingConnections,
            0...100_000
        ),
        integer(
            "max_pending_handshakes",
            "Sockets whose TLS handshake is under way; the next one closes the one that has waited longest.",
            \.maxPendingHandshakes,
            1...100_000
        ),
        milliseconds("default_timeout_ms", "Timeout of a call that sets none.", \.defaultTimeout),
        milliseconds("max_timeout_ms", "Longest timeout honoured for a unary call.", \.maxTimeout),
        milliseconds(
            "handshake_timeout_ms",
            "Time allowed for the TLS handshake, and then for the client's hello.",
            \.handshakeTimeout
        ),
        milliseconds(
            "frame_timeout_ms",
            "Time allowed to complete a frame once its first byte arrived.",
            \.frameTimeout
        ),
        milliseconds(
            "write_stall_timeout_ms",
            "A connection whose peer reads nothing this long while replies wait is closed.",
            \.writeStallTimeout
        ),
        milliseconds("idle_timeout_ms", "A connection with no call in flight this long is closed.", \.idleTimeout),
        milliseconds(
            "shutdown_grace_ms",
            "On SIGTERM/SIGINT, time calls in flight get to finish before they are ended.",
            \.shutdownGrace
        ),
        milliseconds(
            "checkpoint_interval_ms",
            "How often the audit chain gets a signed checkpoint when it has grown (and always on shutdown).",
            \.checkpointInterval
        ),
        milliseconds(
            "retention_interval_ms",
            "How often the retention job erases what offices' retention policies make due.",
            \.retentionInterval
        ),
        choice(
            "log_level",
            "The least severe log lines written (docs/OPERATIONS.md says what each level carries).",
            \.logLevel,
            ["trace", "debug", "info", "notice", "warning", "error", "critical"]
        ),
        choice(
            "log_format",
            "text: one readable line per entry; json: one JSON object per line (time, level, label, message, metadata).",
            \.logFormat,
            ["text", "json"]
        ),
        text(
            "ops_listen_host",
            "Address of the operations listener (HTTP: /metrics, /health/live, /health/ready). Keep it on loopback or a monitoring network.",
            \.opsListenHost
        ),
        integer(
            "ops_listen_port",
            "TCP port of the operations listener; 0 picks a free one (havend prints which).",
            \.opsListenPort,
            0...65535
        ),
        Option(
            name: "backup_public_key",
            help:
                "The operator's backup key (from `haven-admin backup keygen`): online backups are encrypted to it. Empty: backups are off.",
            get: { $0.backupPublicKey },
            set: { configuration, value throws(HavenError) in
                if !value.isEmpty { _ = try BackupKey.publicKey(base64: value) }
                configuration.backupPublicKey = value
            }
        ),
        Option(
            name: "storage",
            help:
                "Where records are kept: sqlite (haven.sqlite in the data directory), or a PostgreSQL database, postgres://user:password@host:port/database, which several havend instances may share (TLS with the server's certificate verified unless the host is loopback; ?sslrootcert=/path/ca.pem names the CA). See docs/OPERATIONS.md.",
            get: { $0.storage },
            set: { configuration, value throws(HavenError) in
                if value != "sqlite" {
                    do {
                        _ = try PostgresLocation(url: value)
                    } catch let error as HavenError {
                        throw error
                    } catch {
                        throw HavenError(code: .invalidArgument, message: "storage: not sqlite or a postgres:// URL")
                    }
                }
                configuration.storage = value
            }
        ),
    ]

    /// Sets an option by name.
    ///
    /// - Throws: ``HavenError`` INVALID_ARGUMENT naming the option and where it came from.
    package mutating func set(_ name: String, to value: String, from source: String) throws(HavenError) {
        guard let option = Self.options.first(where: { $0.name == name }) else {
            throw HavenError(code: .invalidArgument, message: "\(source): unknown option '\(name)'")
        }
        do {
            try option.set(&self, value)
        } catch {
            throw HavenError(code: .invalidArgument, message: "\(source): \(error.message)")
        }
    }

    /// Builds the configuration from a file's text, the environment and overrides.
    ///
    /// - Parameters:
    ///   - fileText: `haven.conf`'s contents, or nil when there is none.
    ///   - fileName: Its name, for messages.
    ///   - environment: The process environment (only `HAVEN_*` is read).
    ///   - overrides: `name=value` pairs from the command line.
    package static func load(
        fileText: String?,
        fileName: String = "haven.conf",
        environment: [String: String] = [:],
        overrides: [String] = []
    ) throws(HavenError) -> ServerConfiguration {
        var configuration = ServerConfiguration()
        if let fileText {
            for (number, rawLine) in fileText.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let line = rawLine.trimmingCharacters(in: .whitespaces)
                if line.isEmpty || line.hasPrefix("#") { continue }
                guard let equals = line.firstIndex(of: "=") else {
                    throw HavenError(
                        code: .invalidArgument,
                        message: "\(fileName):\(number + 1): expected 'name = value'"
                    )
                }
                let name = line[..<equals].trimmingCharacters(in: .whitespaces)
                let value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
                try configuration.set(name, to: value, from: "\(fileName):\(number + 1)")
            }
        }
        for option in options {
            if let value = environment[option.environmentVariable] {
                try configuration.set(option.name, to: value, from: option.environmentVariable)
            }
        }
        for override in overrides {
            guard let equals = override.firstIndex(of: "=") else {
                throw HavenError(code: .invalidArgument, message: "--set \(override): expected name=value")
            }
            try configuration.set(
                String(override[..<equals]),
                to: String(override[override.index(after: equals)...]),
                from: "--set \(override[..<equals])"
            )
        }
        return configuration
    }

    /// A `haven.conf` listing every option at its default, commented.
    package static func defaultFileText() -> String {
        let defaults = ServerConfiguration()
        var text = """
            # Haven server configuration.
            # Every option is listed at its default. Uncomment a line to change it.
            # Environment variables (HAVEN_LISTEN_PORT=…) override this file, and
            # `havend --set listen_port=…` overrides both.

            """
        for option in options {
            text += "\n# \(option.help)\n# \(option.name) = \(option.get(defaults))\n"
        }
        return text
    }

    /// A table of the options for `havend --help`.
    package static func helpText() -> String {
        let defaults = ServerConfiguration()
        return options.map { option in
            "  \(option.name) (default \(option.get(defaults)); env \(option.environmentVariable))\n      \(option.help)"
        }.joined(separator: "\n")
    }

    /// The PostgreSQL database of `storage`, or nil for the embedded SQLite store.
    package var postgres: PostgresLocation? {
        self.storage == "sqlite" ? nil : try? PostgresLocation(url: self.storage)
    }

    /// The limits announced to clients in `ServerHello`.
    package var connectionLimits: Haven_V1_ConnectionLimits {
        var limits = Haven_V1_ConnectionLimits()
        limits.maxFrameBytes = UInt32(self.maxFrameBytes)
        limits.maxConcurrentCalls = UInt32(self.maxConcurrentCalls)
        limits.defaultTimeoutMs = HavenWire.milliseconds(roundingUp: self.defaultTimeout)
        limits.maxTimeoutMs = HavenWire.milliseconds(roundingUp: self.maxTimeout)
        limits.idleTimeoutMs = HavenWire.milliseconds(roundingUp: self.idleTimeout)
        return limits
    }

    private static func text(
        _ name: String,
        _ help: String,
        _ path: any WritableKeyPath<ServerConfiguration, String> & Sendable
    ) -> Option {
        Option(
            name: name,
            help: help,
            get: { $0[keyPath: path] },
            set: { configuration, value throws(HavenError) in
                guard !value.isEmpty else {
                    throw HavenError(code: .invalidArgument, message: "\(name) must not be empty")
                }
                configuration[keyPath: path] = value
            }
        )
    }

    private static func choice(
        _ name: String,
        _ help: String,
        _ path: any WritableKeyPath<ServerConfiguration, String> & Sendable,
        _ values: [String]
    ) -> Option {
        Option(
            name: name,
            help: help + " One of: \(values.joined(separator: ", ")).",
            get: { $0[keyPath: path] },
            set: { configuration, value throws(HavenError) in
                guard values.contains(value) else {
                    throw HavenError(
                        code: .invalidArgument,
                        message: "\(name) must be one of \(values.joined(separator: ", "))"
                    )
                }
                configuration[keyPath: path] = value
            }
        )
    }

    private static func integer(
        _ name: String,
        _ help: String,
        _ path: any WritableKeyPath<ServerConfiguration, Int> & Sendable,
        _ range: ClosedRange<Int>
    ) -> Option {
        Option(
            name: name,
            help: help,
            get: { String($0[keyPath: path]) },
            set: { configuration, value throws(HavenError) in
                guard let number = Int(value), range.contains(number) else {
                    throw HavenError(
                        code: .invalidArgument,
                        message: "\(name) must be a whole number from \(range.lowerBound) to \(range.upperBound)"
                    )
                }
                configuration[keyPath: path] = number
            }
        )
    }

    private static func milliseconds(
        _ name: String,
        _ help: String,
        _ path: any WritableKeyPath<ServerConfiguration, Duration> & Sendable
    ) -> Option {
        Option(
            name: name,
            help: help + " Milliseconds.",
            get: { String(HavenWire.milliseconds(roundingUp: $0[keyPath: path])) },
            set: { configuration, value throws(HavenError) in
                guard let number = Int64(value), (1...86_400_000).contains(number) else {
                    throw HavenError(code: .invalidArgument, message: "\(name) must be 1 to 86400000 milliseconds")
                }
                configuration[keyPath: path] = .milliseconds(number)
            }
        )
    }
}
