import HavenStore
import Logging
import ServiceLifecycle

/// The store a server runs on, as `storage` chose it.
package enum StoreBackend: Sendable {
    /// `haven.sqlite` in the data directory: one instance.
    case sqlite(SQLiteStore)
    /// A PostgreSQL database that several instances may share.
    case postgres(PostgresStore)

    /// Opens the store `configuration.storage` names.
    static func open(
        _ configuration: ServerConfiguration,
        databaseFile: String,
        keys: StoreKeys,
        auditing: Bool,
        logger: Logger,
        instruments: StoreInstruments
    ) async throws -> StoreBackend {
        if let location = configuration.postgres {
            logger.info("records are kept in PostgreSQL", metadata: ["database": "\(location.redacted)"])
            return .postgres(
                try await PostgresStore.open(
                    location,
                    keys: keys,
                    auditing: auditing,
                    logger: logger,
                    instruments: instruments
                )
            )
        }
        return .sqlite(
            try SQLiteStore(
                path: databaseFile,
                keys: keys,
                auditing: auditing,
                logger: logger,
                instruments: instruments
            )
        )
    }

    /// The storage protocol, whichever store it is.
    package var store: any RecordStore {
        switch self {
        case .sqlite(let store): store
        case .postgres(let store): store
        }
    }

    /// Snapshots for backups, the last backup, the database's size.
    package var maintenance: any StoreMaintenance {
        switch self {
        case .sqlite(let store): store
        case .postgres(let store): store
        }
    }

    /// The embedded store, when it is the one.
    package var sqlite: SQLiteStore? {
        if case .sqlite(let store) = self { return store }
        return nil
    }

    /// The PostgreSQL store, when it is the one.
    package var postgres: PostgresStore? {
        if case .postgres(let store) = self { return store }
        return nil
    }

    /// What must run for the store to serve: SQLite's background checkpointer;
    /// PostgreSQL's connection pool and change listener. First in a service
    /// group, so it stops last.
    package var services: [any Service] {
        switch self {
        case .sqlite(let store): [store.checkpointer]
        case .postgres(let store): [store]
        }
    }

}
