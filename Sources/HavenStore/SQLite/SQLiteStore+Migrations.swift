import Foundation
import GRDB
import HavenProtocol

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
        migrator.registerMigration("v2-accountability") { db in
            try db.execute(
                sql: """
                    ALTER TABLE record ADD COLUMN sealed BLOB;

                    ALTER TABLE change ADD COLUMN recordKind TEXT;
                    ALTER TABLE change ADD COLUMN recordID TEXT;
                    ALTER TABLE change ADD COLUMN sealed BLOB;
                    CREATE INDEX change_record ON change(recordKind, recordID);

                    ALTER TABLE officeKey ADD COLUMN generation INTEGER NOT NULL DEFAULT 1;
                    ALTER TABLE officeKey ADD COLUMN masterKey TEXT NOT NULL DEFAULT '';

                    CREATE TABLE recordKey (
                        kind TEXT NOT NULL,
                        id TEXT NOT NULL,
                        officeCode TEXT NOT NULL,
                        generation INTEGER NOT NULL,
                        wrappedKey BLOB NOT NULL,
                        PRIMARY KEY (kind, id)
                    ) WITHOUT ROWID;
                    CREATE INDEX recordKey_office ON recordKey(officeCode, generation);

                    CREATE TABLE audit (
                        sequence INTEGER PRIMARY KEY,
                        at INTEGER NOT NULL,
                        principalID TEXT NOT NULL,
                        action TEXT NOT NULL,
                        outcome INTEGER NOT NULL,
                        body BLOB NOT NULL,
                        hash BLOB NOT NULL
                    );
                    CREATE INDEX audit_principal ON audit(principalID, sequence);

                    CREATE TABLE auditResource (
                        kind TEXT NOT NULL,
                        id TEXT NOT NULL,
                        sequence INTEGER NOT NULL,
                        PRIMARY KEY (kind, id, sequence)
                    ) WITHOUT ROWID;

                    CREATE TABLE checkpoint (
                        size INTEGER PRIMARY KEY,
                        body BLOB NOT NULL
                    );

                    CREATE TABLE meta (
                        name TEXT PRIMARY KEY,
                        value TEXT NOT NULL
                    ) WITHOUT ROWID;
                    """
            )
        }
        migrator.registerMigration("v3-credentials") { db in
            try db.execute(
                sql: """
                    CREATE TABLE credential (
                        serial TEXT PRIMARY KEY,
                        accountID TEXT NOT NULL,
                        publicKeySHA256 TEXT NOT NULL,
                        issuedAt INTEGER NOT NULL,
                        notValidAfter INTEGER NOT NULL,
                        issuedBy TEXT NOT NULL,
                        revokedAt INTEGER NOT NULL DEFAULT 0,
                        revokedBy TEXT NOT NULL DEFAULT '',
                        revokedReason TEXT NOT NULL DEFAULT ''
                    ) WITHOUT ROWID;
                    CREATE INDEX credential_account ON credential(accountID, issuedAt);

                    CREATE TABLE enrollment (
                        id TEXT PRIMARY KEY,
                        codeHash BLOB NOT NULL UNIQUE,
                        accountID TEXT NOT NULL,
                        createdAt INTEGER NOT NULL,
                        expiresAt INTEGER NOT NULL,
                        certificateValidDays INTEGER NOT NULL,
                        spentAt INTEGER NOT NULL DEFAULT 0
                    ) WITHOUT ROWID;
                    CREATE INDEX enrollment_account ON enrollment(accountID, spentAt);

                    -- The change log's lineage: a restored database gets a new one, so
                    -- that feed cursors of the original are never taken for its changes.
                    INSERT INTO meta (name, value) VALUES ('feed-epoch', lower(hex(randomblob(8))));
                    """
            )
        }
        migrator.registerMigration("v4-case-timelines") { db in
            try db.execute(
                sql: """
                    -- A case's timeline, one row per event: an append costs the event,
                    -- not the case. Cases written before keep their events in their
                    -- record until the store, opened with its keys, moves them here
                    -- (SQLiteStore.moveTimelines, audited as store.migrate).
                    CREATE TABLE caseEvent (
                        caseID TEXT NOT NULL,
                        sequence INTEGER NOT NULL,
                        id TEXT NOT NULL,
                        officeCode TEXT NOT NULL,
                        occurredOn TEXT,
                        kind INTEGER NOT NULL,
                        body BLOB NOT NULL,
                        sealed BLOB,
                        PRIMARY KEY (caseID, sequence)
                    ) WITHOUT ROWID;
                    CREATE INDEX caseEvent_office_day ON caseEvent(officeCode, occurredOn);

                    INSERT INTO meta (name, value)
                        SELECT 'case-timelines', 'in-records' WHERE EXISTS (SELECT 1 FROM record WHERE kind = 'case');
                    """
            )
        }
        migrator.registerMigration("v5-report-facts") { db in
            try db.execute(
                sql: """
                    -- The dated facts reports count (ReportFact), kept beside the records
                    -- and events they come from, so a report is a few aggregate queries.
                    -- Those of records stored before are written when the store is first
                    -- opened after this step (SQLTransaction.fillReportFacts).
                    CREATE TABLE reportFact (
                        recordKind TEXT NOT NULL,
                        recordID TEXT NOT NULL,
                        fact INTEGER NOT NULL,
                        position INTEGER NOT NULL,
                        officeCode TEXT NOT NULL,
                        category INTEGER NOT NULL,
                        prior INTEGER NOT NULL,
                        subject TEXT NOT NULL,
                        fromDay TEXT NOT NULL,
                        throughDay TEXT,
                        PRIMARY KEY (recordKind, recordID, fact, position)
                    ) WITHOUT ROWID;
                    CREATE INDEX reportFact_office ON reportFact(officeCode, fact, fromDay);

                    INSERT INTO meta (name, value)
                        SELECT 'report-facts', 'pending'
                        WHERE EXISTS (SELECT 1 FROM record WHERE kind IN ('case', 'survivor'));
                    """
            )
        }
        migrator.registerMigration("v6-survivor-services") { db in
            try db.execute(
                sql: """
                    -- A survivor's services, one row per service: recording one costs the
                    -- service, not the survivor. Survivors written before keep their
                    -- services in their record until the store, opened with its keys,
                    -- moves them here (SQLTransaction.moveServices, audited as store.migrate).
                    CREATE TABLE survivorService (
                        survivorID TEXT NOT NULL,
                        sequence INTEGER NOT NULL,
                        id TEXT NOT NULL,
                        officeCode TEXT NOT NULL,
                        deliveredOn TEXT,
                        kind INTEGER NOT NULL,
                        body BLOB NOT NULL,
                        sealed BLOB,
                        PRIMARY KEY (survivorID, sequence)
                    ) WITHOUT ROWID;

                    INSERT INTO meta (name, value)
                        SELECT 'survivor-services', 'in-records' WHERE EXISTS (SELECT 1 FROM record WHERE kind = 'survivor');
                    """
            )
        }
        migrator.registerMigration("v7-accused-history") { db in
            try db.execute(
                sql: """
                    -- An accused person's legal status history, one row per change, owned
                    -- by the accused (ids are unique in a deployment): a change costs the
                    -- change, not the case. Cases written before keep their accused's
                    -- histories in their record until the store, opened with its keys,
                    -- moves them here (SQLTransaction.moveAccusedHistory, audited as
                    -- store.migrate).
                    CREATE TABLE accusedStatus (
                        accusedID TEXT NOT NULL,
                        sequence INTEGER NOT NULL,
                        id TEXT NOT NULL,
                        officeCode TEXT NOT NULL,
                        effectiveOn TEXT,
                        kind INTEGER NOT NULL,
                        body BLOB NOT NULL,
                        sealed BLOB,
                        PRIMARY KEY (accusedID, sequence)
                    ) WITHOUT ROWID;

                    INSERT INTO meta (name, value)
                        SELECT 'accused-history', 'in-records' WHERE EXISTS (SELECT 1 FROM record WHERE kind = 'case');
                    """
            )
        }
        migrator.registerMigration("v8-events-by-day-in-order") { db in
            try db.execute(
                sql: """
                    -- The reports' index of events by office and day, ordered within a
                    -- day by the event's id, which the server makes time-ordered (a
                    -- version 7 UUID): a new event's entry lands beside the last one
                    -- of its day, where it used to land among its case's, on a page
                    -- of its own in each group commit.
                    DROP INDEX caseEvent_office_day;
                    CREATE INDEX caseEvent_office_day ON caseEvent(officeCode, occurredOn, id);
                    """
            )
        }
        migrator.registerMigration("v9-change-index-of-sealed-entries") { db in
            try db.execute(
                sql: """
                    -- Erasure finds a record's change-log entries with sealed fields
                    -- by this index; entries without any need no entry in it. A
                    -- case's appended notes are sealed in their timeline rows, not
                    -- in its change entries, so an append no longer adds an entry
                    -- here, on a page of its own.
                    DROP INDEX change_record;
                    CREATE INDEX change_record ON change(recordKind, recordID) WHERE sealed IS NOT NULL;
                    """
            )
        }
        migrator.registerMigration("v10-audit-sequence-of-appended-events") { db in
            try db.execute(
                sql: """
                    -- The sequence of the audit entry that appended the event, which
                    -- the audit trail's search by case finds it by (an append adds no
                    -- row of its own to auditResource, on a page of its own). Rows
                    -- appended before keep NULL: their entries are in auditResource.
                    ALTER TABLE caseEvent ADD COLUMN auditSequence INTEGER;
                    """
            )
        }
        return migrator
    }()
}

extension SQLiteStore {
    /// Moves the timelines of cases written before events had rows of their
    /// own out of their records, once, when the store is first opened with
    /// its keys after the `v4-case-timelines` migration: each event becomes
    /// a row (its note sealed anew, bound to its place in the timeline), each
    /// case is stored again without its events (same version), and entries
    /// `store.migrate` by `havend` commit to every row written. One
    /// transaction: a failure leaves the database as it was.
    static func moveTimelines(_ tx: SQLTransaction) throws {
        guard tx.keys != nil,
            try tx.sql.value(String.self, "SELECT value FROM meta WHERE name = 'case-timelines'") == "in-records"
        else { return }
        var audit = MoveAudit(tx, detail: "case timelines moved out of their records into rows of their own")
        try tx.forEachStored(Haven_V1_Case.self) { record, stored in
            var record = record
            guard !record.events.isEmpty else { return }
            // The order of the record's timeline is its order; `sequence`
            // restates it (1-based, gap-free) and is set from it.
            var events = record.takeAppendedEvents()
            for index in events.indices { events[index].sequence = UInt32(index + 1) }
            record.eventCount = UInt32(events.count)
            try tx.restore(record, was: stored)
            try tx.appendEvents(events, to: record)
            try audit.wrote(1 + events.count)
        }
        try audit.finish()
        try tx.sql.execute("UPDATE meta SET value = 'rows' WHERE name = 'case-timelines'")
    }
}
