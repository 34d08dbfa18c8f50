import ArgumentParser
import Foundation
import HavenClient
import HavenProtocol
import SwiftProtobuf

/// How to reach the server, shared by the commands that go through it.
///
/// The credentials bundle comes from `--credentials` or `$HAVEN_CREDENTIALS`;
/// the server from `--server`, else `$HAVEN_SERVER`, else the bundle's
/// `server` file (written at enrolment).
struct ServerOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Your credentials bundle directory (default: $HAVEN_CREDENTIALS).",
            valueName: "dir"
        )
    )
    var credentials: String?

    @Option(
        help: ArgumentHelp(
            "The server, host:port (default: $HAVEN_SERVER, else the bundle's server file).",
            valueName: "host:port"
        )
    )
    var server: String?

    @Option(help: ArgumentHelp("Seconds allowed per call.", valueName: "seconds"))
    var timeout = 30

    @Flag(help: "Print JSON for scripts (one object on standard output; errors as JSON on standard error).")
    var json = false

    func validate() throws {
        if let server { _ = try CLI.usage { try HavenServerAddress.parse(server) } }
        guard (1...3600).contains(self.timeout) else {
            throw ValidationError("--timeout must be 1 to 3600 seconds")
        }
    }

    /// The bundle directory named by the option or the environment.
    var bundlePath: String {
        get throws {
            if let credentials { return credentials }
            if let path = ProcessInfo.processInfo.environment["HAVEN_CREDENTIALS"], !path.isEmpty { return path }
            throw CLIError.usage("no credentials: pass --credentials DIR or set HAVEN_CREDENTIALS")
        }
    }

    func client() throws -> HavenClientConfiguration {
        let path = try self.bundlePath
        let credentials = try HavenCredentials(bundle: URL(fileURLWithPath: path, isDirectory: true))
        let server =
            self.server ?? ProcessInfo.processInfo.environment["HAVEN_SERVER"].flatMap { $0.isEmpty ? nil : $0 }
            ?? credentials.server
        guard let server else {
            throw CLIError.usage(
                "no server address: pass --server host:port, set HAVEN_SERVER, or use a bundle written by `haven-admin enroll`"
            )
        }
        var configuration = try HavenClientConfiguration(server: server, credentials: credentials)
        configuration.defaultTimeout = .seconds(self.timeout)
        configuration.clientAgent = "haven-admin/\(HavenClient.version)"
        return configuration
    }

    /// Prints a message as JSON (the stable shape: protobuf's JSON mapping
    /// with the schema's field names), or as protobuf text for people.
    func print(_ message: some SwiftProtobuf.Message) throws {
        if self.json {
            say(try CLI.json(message))
        } else {
            say(message.textFormatString())
        }
    }
}

/// Runs `body` with a client; turns failures into a message and the
/// documented exit code (``CLI/exitCode(for:)``).
func withAdminClient(_ options: ServerOptions, _ body: (HavenClient) async throws -> Void) async throws {
    try await CLI.run(json: options.json) {
        try await withHavenClient(try options.client()) { client in try await body(client) }
    }
}

/// Checks who the credentials authenticate as.
struct WhoAmI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "whoami",
        abstract: "Shows the account the credentials name."
    )
    @OptionGroup var server: ServerOptions

    func run() async throws {
        try await withAdminClient(self.server) { client in
            let principal = try await client.session.whoAmI()
            if self.server.json { return try self.server.print(principal) }
            CLI.fields([
                ("Account", principal.id), ("Name", principal.displayName), ("Role", CLI.role(principal.role)),
                ("Offices", principal.officeCodes.joined(separator: ", ")), ("Partner", principal.partnerID),
                ("Certificate expires", CLI.date(principal.certificateExpiresAtUnixMs)),
            ])
        }
    }
}
