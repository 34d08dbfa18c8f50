import ArgumentParser
import Foundation
import HavenClient
import HavenProtocol
import SwiftProtobuf

/// How to reach the server, shared by the commands that go through it.
struct ServerOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp("The credentials bundle directory (ca.pem, client.pem, client-key.pem).", valueName: "dir")
    )
    var credentials: String

    @Option(help: ArgumentHelp("The server, host:port.", valueName: "host:port"))
    var server = "localhost:7443"

    @Option(help: ArgumentHelp("Seconds allowed per call.", valueName: "seconds"))
    var timeout = 30

    @Flag(help: "Print JSON for scripts.")
    var json = false

    func validate() throws {
        guard let colon = self.server.lastIndex(of: ":"),
            let port = Int(self.server[self.server.index(after: colon)...]),
            (1...65535).contains(port), colon != self.server.startIndex
        else {
            throw ValidationError("--server must be host:port with a port from 1 to 65535")
        }
        guard (1...3600).contains(self.timeout) else {
            throw ValidationError("--timeout must be 1 to 3600 seconds")
        }
    }

    func client() throws -> HavenClientConfiguration {
        let colon = self.server.lastIndex(of: ":")!
        var host = String(self.server[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        var configuration = HavenClientConfiguration(
            host: host,
            port: Int(self.server[self.server.index(after: colon)...])!,
            credentials: try HavenCredentials(bundle: URL(fileURLWithPath: self.credentials, isDirectory: true))
        )
        configuration.defaultTimeout = .seconds(self.timeout)
        configuration.clientAgent = "haven-admin/\(HavenClient.version)"
        return configuration
    }

    /// Prints a message as JSON, or as protobuf text for people.
    func print(_ message: some SwiftProtobuf.Message) throws {
        if self.json {
            var options = JSONEncodingOptions()
            options.preserveProtoFieldNames = true
            say(try message.jsonString(options: options))
        } else {
            say(message.textFormatString())
        }
    }
}

/// Runs `body` with a client; turns HavenErrors into a clean exit.
func withAdminClient(_ options: ServerOptions, _ body: (HavenClient) async throws -> Void) async throws {
    do {
        try await withHavenClient(try options.client()) { client in try await body(client) }
    } catch let error as HavenError {
        FileHandle.standardError.write(Data("haven-admin: \(error)\n".utf8))
        throw ExitCode(2)
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
        try await withAdminClient(self.server) { client in try self.server.print(try await client.session.whoAmI()) }
    }
}
