import HavenProtocol
import HavenServer
import HavenStore
import HavenTestSupport
import Testing

/// A copy of a release fixture's data directory (``ReleaseMigrationTests/copy(_:)``)
/// opened with its keys: the first open moves what that release kept inside
/// its records into rows of their own, and audits the move.
struct OpenedRelease {
    let custodian: KeyCustodian
    let signer: CheckpointSigner
    let store: SQLiteStore
    /// The audit trail's length once the move at open was done.
    let sizeAfterMove: UInt64

    init(_ directory: TemporaryDirectory) async throws {
        self.custodian = try KeyCustodian.load(masterKeyFile: directory.path("master.key"))
        self.signer = try CheckpointSigner.loadOrCreate(
            at: directory.path("audit-signing.key"),
            development: self.custodian.development
        )
        self.store = try SQLiteStore(path: directory.path("haven.sqlite"), keys: self.custodian.keys)
        self.sizeAfterMove = try await self.store.read { try $0.auditSize() }
    }

    /// The move's entries (`store.migrate`, by `havend`) commit to `covered`
    /// resources of each kind (`["caseEvent": 104, "case": 6]`), and the whole
    /// chain verifies, at the length the move left it.
    func expectMoveAudited(
        _ covered: [String: Int],
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let entries = try await self.store.read { try $0.auditEntries(AuditQuery(limit: 500)) }
        let migrate = entries.filter { $0.action == "store.migrate" }
        #expect(!migrate.isEmpty && migrate.allSatisfy { $0.principalID == "havend" }, sourceLocation: sourceLocation)
        let resources = Set(migrate.flatMap(\.resources).map { "\($0.kind)/\($0.id)" })
        for (kind, count) in covered {
            #expect(
                resources.filter { $0.hasPrefix("\(kind)/") }.count == count,
                "\(kind)",
                sourceLocation: sourceLocation
            )
        }
        let verdict = try await AuditVerifier(store: self.store, publicKey: self.signer.publicKey).verify()
        #expect(verdict.intact, "\(verdict.problem)", sourceLocation: sourceLocation)
        #expect(verdict.entries == self.sizeAfterMove, sourceLocation: sourceLocation)
    }
}
