import GRDB

extension SQLiteStore {
    /// The schema, as named steps. A step that has shipped is never edited:
    /// changes are new steps appended at the end.
    static let migrator: DatabaseMigrator = {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-records") { db in
            try db.execute(
                sql: """
                    CREATE TABLE record (
                        kind TEXT NOT NULL,
                        id TEXT NOT NULL,
                        alias TEXT,
                        officeCode TEXT,
                        partnerID TEXT,
                        subjectID TEXT,
                        status INTEGER NOT NULL DEFAULT 0,
                        category INTEGER NOT NULL DEFAULT 0,
                        day TEXT,
                        createdAt INTEGER NOT NULL,
                        updatedAt INTEGER NOT NULL,
                        flagged INTEGER NOT NULL DEFAULT 0,
                        version INTEGER NOT NULL,
                        body BLOB NOT NULL,
                        secret BLOB,
                        PRIMARY KEY (kind, id)
                    ) WITHOUT ROWID;
                    CREATE UNIQUE INDEX record_alias ON record(kind, alias) WHERE alias IS NOT NULL;
                    CREATE INDEX record_office ON record(kind, officeCode, createdAt);
                    CREATE INDEX record_partner ON record(kind, partnerID, createdAt);
                    CREATE INDEX record_subject ON record(kind, subjectID);
                    CREATE INDEX record_updated ON record(kind, updatedAt);

                    CREATE TABLE change (
                        sequence INTEGER PRIMARY KEY AUTOINCREMENT,
                        committedAt INTEGER NOT NULL,
                        officeCode TEXT,
                        partnerID TEXT,
                        survivorID TEXT,
                        body BLOB NOT NULL
                    );

                    CREATE TABLE counter (
                        name TEXT PRIMARY KEY,
                        value INTEGER NOT NULL
                    ) WITHOUT ROWID;

                    CREATE TABLE idempotency (
                        principalID TEXT NOT NULL,
                        key TEXT NOT NULL,
                        method TEXT NOT NULL,
                        requestDigest BLOB NOT NULL,
                        resultID TEXT NOT NULL,
                        createdAt INTEGER NOT NULL,
                        PRIMARY KEY (principalID, key)
                    ) WITHOUT ROWID;

                    CREATE TABLE account (
                        id TEXT PRIMARY KEY,
                        displayName TEXT NOT NULL,
                        role INTEGER NOT NULL,
                        officeCodes TEXT NOT NULL,
                        partnerID TEXT NOT NULL,
                        enabled INTEGER NOT NULL,
                        createdAt INTEGER NOT NULL
                    ) WITHOUT ROWID;

                    CREATE TABLE officeKey (
                        officeCode TEXT PRIMARY KEY,
                        wrappedKey BLOB NOT NULL
                    ) WITHOUT ROWID;
                    """
            )
        }
        return migrator
    }()
}
