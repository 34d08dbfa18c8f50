import Crypto
import HavenProtocol
import HavenStore

extension RecordStore {
    /// A write transaction for tests that write the store directly: it ends
    /// with an audit entry (by `test`), as every write must.
    package func audited<T: Sendable>(_ body: @escaping @Sendable (any StoreWriter) throws -> T) async throws -> T {
        try await self.write { tx in
            let value = try body(tx)
            if tx.pendingAudit {
                try tx.appendAudit(NewAuditEntry(atUnixMs: 1, principalID: "test", action: "test.write"))
            }
            return value
        }
    }
}

extension SQLiteStore {
    /// ``RecordStore/audited(_:)`` on the calling thread.
    package func auditedSynchronously<T>(_ body: (any StoreWriter) throws -> T) throws -> T {
        try self.writeSynchronously { tx in
            let value = try body(tx)
            if tx.pendingAudit {
                try tx.appendAudit(NewAuditEntry(atUnixMs: 1, principalID: "test", action: "test.write"))
            }
            return value
        }
    }
}

/// Store keys made of a fresh random master key.
package func freshStoreKeys() -> StoreKeys {
    StoreKeys([MasterKeyMaterial(key: SymmetricKey(size: .bits256))])
}
