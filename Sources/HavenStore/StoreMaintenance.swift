/// What an operator's tools do with a store as a whole, whichever it is:
/// consistent snapshots for backups, the last backup taken, its size.
package protocol StoreMaintenance: Sendable {
    /// Writes a consistent copy of the whole store to a new SQLite file at
    /// `path` (the backup archive's database), while writes go on, and reads
    /// back what it holds of the audit trail.
    func snapshot(to path: String) async throws -> SnapshotInfo
    /// The last backup taken, as the status shows it.
    func lastBackup() async throws -> (atUnixMs: Int64, sha256: String)?
    /// Records a backup taken (not a record: no audit coverage needed; the
    /// backup's own audit entry says the same).
    func recordBackup(atUnixMs: Int64, sha256: String) async throws
    /// The database's size in bytes, as the status shows it.
    func databaseBytes() async -> UInt64
    /// Why the store cannot take writes now, or nil when it can (readiness).
    func unwritableReason(now: ContinuousClock.Instant) async -> String?
}

/// What a snapshot of the database holds of the audit trail.
package struct SnapshotInfo: Sendable {
    package var auditEntries: UInt64
    /// SHA-256 hash of the last audit entry, hex (empty for an empty trail).
    package var auditHead: String
}

/// The `meta` row that remembers the last backup: "<unix ms> <sha256>".
enum LastBackup {
    static let name = "last-backup"
    static let upsert =
        "INSERT INTO meta (name, value) VALUES ('last-backup', ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value"

    static func value(atUnixMs: Int64, sha256: String) -> String { "\(atUnixMs) \(sha256)" }

    static func parse(_ text: String?) -> (atUnixMs: Int64, sha256: String)? {
        guard let parts = text?.split(separator: " "), parts.count == 2, let at = Int64(parts[0]) else { return nil }
        return (at, String(parts[1]))
    }
}

extension SQLiteStore: StoreMaintenance {}
extension PostgresStore: StoreMaintenance {}
