import Foundation
import GRDB
import Synchronization

extension SQLiteStore {
    /// Failures that say the storage cannot take writes until an operator acts.
    static let unwritable: Set<Int32> = Set(
        [ResultCode.SQLITE_FULL, .SQLITE_READONLY, .SQLITE_IOERR, .SQLITE_CANTOPEN, .SQLITE_CORRUPT, .SQLITE_NOTADB]
            .map(\.rawValue)
    )

    /// Free space below which the store reports itself unwritable: a write
    /// would soon fail as on a full disk.
    package static let minimumFreeBytes: UInt64 = 16 << 20

    /// Why the store cannot take writes now, or nil when it can: a write
    /// failed for lack of space, a read-only file or an I/O error in the last
    /// 30 seconds (and none has succeeded since); the database reached its
    /// page limit; its files are not writable; or its file system has less
    /// than ``minimumFreeBytes`` free. Readiness (`/health/ready`) asks this.
    package func unwritableReason(now: ContinuousClock.Instant = .now) async -> String? {
        if let (kind, at) = self.lastUnwritable.withLock({ $0 }), now - at < .seconds(30) {
            return "the last write failed: storage \(kind)"
        }
        let path = self.databasePool.path
        for file in [path, path + "-wal"] where FileManager.default.fileExists(atPath: file) {
            if access(file, W_OK) != 0 { return "the database file is not writable" }
        }
        do {
            let (pages, limit) = try await self.databasePool.read { db in
                (
                    try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0,
                    try Int.fetchOne(db, sql: "PRAGMA max_page_count") ?? Int.max
                )
            }
            // max_page_count is per connection: the writer's is what limits writes.
            let writerLimit = try await self.databasePool.writeWithoutTransaction { db in
                try Int.fetchOne(db, sql: "PRAGMA max_page_count") ?? Int.max
            }
            if pages >= min(limit, writerLimit) { return "the database reached its size limit" }
        } catch {
            return "the database cannot be read"
        }
        var stats = statvfs()
        let directory = (path as NSString).deletingLastPathComponent
        if statvfs(directory, &stats) == 0 {
            let free = UInt64(stats.f_bavail) * UInt64(stats.f_frsize)
            if free < Self.minimumFreeBytes { return "less than 16 MiB free on the database's file system" }
        }
        return nil
    }
}
