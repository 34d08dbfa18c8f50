import ArgumentParser
import Foundation
import HavenClient
import HavenProtocol
import SwiftProtobuf

/// An aftercare home's integration with Haven, as an example of `HavenClient`.
///
/// `follow` follows the change feed, accepts every new referral addressed to
/// the home, and keeps its place in a cursor file so a restart resumes where
/// it stopped. `record-service` records a service the home delivered to a
/// survivor it accepted.
@main
struct AftercareSync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aftercare-sync",
        abstract: "Example: an aftercare home following Haven's feed, accepting referrals and recording services.",
        subcommands: [Follow.self, RecordService.self]
    )
}

struct Connection: ParsableArguments {
    @Option(help: ArgumentHelp("The home's credentials bundle (ca.pem, client.pem, client-key.pem).", valueName: "dir"))
    var credentials: String

    @Option(
        help: ArgumentHelp(
            "The Haven server, host:port (default: HAVEN_SERVER, else the bundle's).",
            valueName: "host:port"
        )
    )
    var server: String?

    func configuration() throws -> HavenClientConfiguration {
        let credentials = try HavenCredentials(bundle: URL(fileURLWithPath: self.credentials, isDirectory: true))
        var configuration =
            try self.server.map { try HavenClientConfiguration(server: $0, credentials: credentials) }
            ?? HavenClientConfiguration(credentials: credentials)
        configuration.clientAgent = "aftercare-sync/1.0 haven-swift/\(HavenClient.version)"
        return configuration
    }
}

struct Follow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Follows the feed and accepts new referrals.")
    @OptionGroup var connection: Connection
    @Option(help: "Where to keep the feed cursor between runs.") var cursorFile = "aftercare-sync.cursor"
    @Option(help: "Stop after this many seconds (0: run until interrupted).") var seconds = 0

    func run() async throws {
        let saved = try? String(contentsOfFile: self.cursorFile, encoding: .utf8).trimmingCharacters(
            in: .whitespacesAndNewlines
        )
        try await withHavenClient(try self.connection.configuration()) { client in
            let me = try await client.session.whoAmI()
            print("Following Haven as \(me.displayName) (partner \(me.partnerID))")

            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    // First run: from the beginning, so referrals already waiting are answered too.
                    let cursor = saved?.isEmpty == false ? saved : nil
                    let feed = client.feed.follow(after: cursor, fromBeginning: cursor == nil, subjects: [.referral])
                    for try await item in feed {
                        if case .change(let change) = item.item, case .referral(let referral) = change.subject {
                            try await self.handle(referral, client)
                        }
                        try item.cursor.write(toFile: self.cursorFile, atomically: true, encoding: .utf8)
                    }
                }
                if self.seconds > 0 {
                    group.addTask { try await Task.sleep(for: .seconds(self.seconds)) }
                }
                try await group.next()
                group.cancelAll()
            }
        }
    }

    func handle(_ referral: Haven_V1_Referral, _ client: HavenClient) async throws {
        print("Referral \(referral.id): survivor \(referral.survivorCode), \(referral.service), \(referral.status)")
        guard referral.status == .pending else { return }
        do {
            let accepted = try await client.referrals.accept(
                .with {
                    $0.referralID = referral.id
                    $0.expectedVersion = referral.version
                }
            )
            print("  accepted (version \(accepted.version))")
        } catch let error as HavenError where error.code == .failedPrecondition {
            print("  already answered: \(error.message)")  // a newer change is on its way in the feed
        }
    }
}

struct RecordService: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "record-service",
        abstract: "Records a service delivered to a survivor the home accepted."
    )
    @OptionGroup var connection: Connection
    @Option(help: "The survivor's code, e.g. KOL-S-0001.") var survivor: String
    @Option(help: "schooling, vocational-training, counselling, medical, legal-aid, shelter.") var kind: String
    @Option(help: "What was delivered, e.g. baking (no names).") var detail = ""
    @Option(help: "Sessions delivered.") var sessions = 1

    static let kinds: [String: Haven_V1_ServiceKind] = [
        "schooling": .schooling, "vocational-training": .vocationalTraining, "counselling": .counselling,
        "medical": .medical, "legal-aid": .legalAid, "shelter": .shelter,
    ]

    func validate() throws {
        guard Self.kinds[self.kind] != nil else {
            throw ValidationError("--kind must be one of \(Self.kinds.keys.sorted().joined(separator: ", "))")
        }
    }

    func run() async throws {
        try await withHavenClient(try self.connection.configuration()) { client in
            let survivor = try await client.survivors.get(.with { $0.code = self.survivor })
            let today = Calendar(identifier: .gregorian).dateComponents([.year, .month, .day], from: Date())
            var request = Haven_V1_RecordServiceRequest()
            request.survivorID = survivor.id
            request.service.kind = Self.kinds[self.kind]!
            request.service.detail = self.detail
            request.service.sessions = UInt32(self.sessions)
            request.service.deliveredOn = .with {
                $0.year = Int32(today.year!)
                $0.month = Int32(today.month!)
                $0.day = Int32(today.day!)
            }
            _ = try await client.survivors.recordService(request)
            print("Recorded \(self.kind) for \(self.survivor).")
        }
    }
}
