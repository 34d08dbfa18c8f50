#ifndef CHAVEN_SQLITE_H
#define CHAVEN_SQLITE_H

struct sqlite3;

/// Configures SQLite for the process before its first connection opens:
/// multi-thread mode (no mutex per connection call: GRDB's queues already
/// use each connection from one thread at a time) and no memory statistics
/// (no global mutex around every allocation). `sqlite3_config` is variadic,
/// which Swift cannot call. Returns SQLite's result code: SQLITE_MISUSE
/// when SQLite was already initialised, and nothing changed.
int haven_sqlite_configure(void);

/// Installs, once, a VFS over the default one as the process's default
/// (`wal_coalescing.c`): every file behaves exactly as the default VFS's
/// until a connection asks for its log to be gathered. Call it after
/// `haven_sqlite_configure`. Returns SQLite's result code.
int haven_sqlite_install_wal_gathering(void);

/// Has the pages `db` appends to its write-ahead log gathered into one
/// buffer and written with one call when SQLite next syncs, reads, sizes or
/// truncates the log, instead of two calls a page (`wal_coalescing.c` says
/// why that is safe). `db` must be in WAL mode with its log open (after its
/// first transaction), opened after `haven_sqlite_install_wal_gathering`,
/// and commit with `synchronous = FULL` or EXTRA for as long as it lives.
/// Returns SQLITE_OK; SQLITE_MISUSE when it does not commit with FULL;
/// SQLITE_NOTFOUND when its log is not this VFS's.
int haven_sqlite_gather_wal(struct sqlite3 *db);

/// Bytes of `db`'s gathered log not yet written to the file: 0 after every
/// commit (a commit syncs the log), always 0 when not gathered.
long long haven_sqlite_wal_waiting(struct sqlite3 *db);

/// How many writes SQLite made to `db`'s gathered log, and how many
/// writes reached the file for them, since gathering began. Returns
/// SQLITE_NOTFOUND when its log is not this VFS's.
int haven_sqlite_wal_counts(struct sqlite3 *db, long long *appends, long long *writes);

/// Has the next write of what waits in `db`'s gathered log fail with
/// `code` (SQLITE_FULL, SQLITE_IOERR_WRITE) without writing, as a full or
/// failing disk would: for tests of what a commit does then. Returns
/// SQLITE_NOTFOUND when its log is not gathered.
int haven_sqlite_wal_fail_next_write(struct sqlite3 *db, int code);

#endif
