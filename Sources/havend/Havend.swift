import ArgumentParser
import Foundation
import HavenProtocol
import HavenServer
import HavenStore
import Logging
import ServiceLifecycle
import UnixSignals

/// `havend`: the Haven server.
@main
struct Havend: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "havend",
        abstract: "Runs the Haven server: mutual-TLS RPC over the data directory's database.",
        discussion: """
            On first run at the default data directory (./haven-data, no --data-dir and no
            HAVEN_DATA_DIR), or with --create-development, havend creates a DEVELOPMENT
            deployment: a certificate authority, a server certificate for localhost, an
            admin account with its client credentials, a master key and the database. A
            data directory named explicitly must exist: create a production one with
            `haven-admin init`. One havend at a time serves a data directory (it is locked).

            SIGTERM or SIGINT shuts down gracefully: no new connections, a go-away on each
            open one, calls in flight get shutdown_grace_ms to finish.

            Options (set in DATA_DIR/haven.conf, overridden by environment variables,
            overridden by --set name=value):
            \(ServerConfiguration.helpText())
            """,
        version: HavenRelease.version
    )

    @Option(
        name: .customLong("data-dir"),
        help: ArgumentHelp("The data directory (default: $HAVEN_DATA_DIR, else ./haven-data).", valueName: "path")
    )
    var dataDirectory: String?

    @Flag(
        name: .customLong("create-development"),
        help: "Create a DEVELOPMENT deployment at --data-dir if there is none."
    )
    var createDevelopment = false

    /// The default data directory, where a development deployment is created on first run.
    static let defaultDataDirectory = "haven-data"

    @Option(
        name: .customLong("set"),
        help: ArgumentHelp("Overrides an option of haven.conf (repeatable).", valueName: "name=value")
    )
    var overrides: [String] = []

    func validate() throws {
        do {
            _ = try ServerConfiguration.load(fileText: nil, overrides: self.overrides)
        } catch {
            throw ValidationError(error.message)
        }
    }

    func run() async throws {
        // Files the server creates (the database's WAL and shared memory) are its user's only.
        umask(0o077)
        let named =
            self.dataDirectory
            ?? ProcessInfo.processInfo.environment["HAVEN_DATA_DIR"].flatMap { $0.isEmpty ? nil : $0 }
        let directory = DataDirectory(URL(fileURLWithPath: named ?? Self.defaultDataDirectory, isDirectory: true))
        var created: DataDirectory.Report?
        if !directory.isInitialized {
            guard named == nil || self.createDevelopment else {
                throw ValidationError(
                    "\(directory.root.path) holds no Haven deployment. Create a production one with `haven-admin init --data-dir \(directory.root.path)`, or pass --create-development for a development one."
                )
            }
            created = try directory.initialize(development: true)
        }
        let lock: DataDirectory.Lock
        do {
            lock = try directory.lock()
        } catch {
            throw ValidationError(error.message)
        }
        defer { withExtendedLifetime(lock) {} }
        let configuration: ServerConfiguration
        do {
            configuration = try ServerConfiguration.load(
                fileText: directory.configurationText(),
                fileName: directory.configurationFile,
                environment: ProcessInfo.processInfo.environment,
                overrides: self.overrides
            )
        } catch {
            throw ValidationError(error.message)
        }

        let level = Logger.Level(rawValue: configuration.logLevel) ?? .info
        let json = configuration.logFormat == "json"
        LoggingSystem.bootstrap { label in
            if json {
                var handler = JSONLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "havend")
        let needed = FileDescriptorLimit.needed(by: configuration)
        if let limit = FileDescriptorLimit.raise(), limit < needed {
            logger.warning(
                "the open-file limit is below what the connection limits need: beyond it nobody can connect; raise it (LimitNOFILE= under systemd, ulimit -n) or lower max_connections",
                metadata: ["limit": "\(limit)", "needed": "\(needed)"]
            )
        }

        if let created, let bundle = created.adminCredentials, ![0, 7443].contains(configuration.listenPort) {
            // The bundle names the server as it will listen.
            try writeSecretFile("localhost:\(configuration.listenPort)\n", to: bundle + "/server")
        }
        if let created {
            say(
                """
                Created a DEVELOPMENT data directory at \(directory.root.path)
                  (its CA, master key and credentials are for this machine only).
                Admin credentials (account '\(created.adminAccountID)'): \(created.adminCredentials ?? "")
                  ca.pem, client.pem, client-key.pem
                """
            )
        }
        do {
            try directory.checkPermissions()
        } catch {
            throw ValidationError(error.message)
        }
        let haven = try await HavenComposition.open(directory, configuration: configuration, logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: haven.services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await withThrowingDiscardingTaskGroup { tasks in
            tasks.addTask { try await group.run() }
            // Said once it is true: after the bind, never before a failure to bind.
            if let operations = try? await haven.operations.url {
                say("operations (metrics, health) on \(operations)")
            }
            if let address = try? await haven.server.listeningAddress {
                say("havend \(HavenRelease.version) listening on \(address)")
            }
        }
    }
}

/// Writes a line to standard output at once (unbuffered, so it shows before logs and survives a kill).
func say(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}
