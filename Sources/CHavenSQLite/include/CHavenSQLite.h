#ifndef CHAVEN_SQLITE_H
#define CHAVEN_SQLITE_H

/// Configures SQLite for the process before its first connection opens:
/// multi-thread mode (no mutex per connection call: GRDB's queues already
/// use each connection from one thread at a time) and no memory statistics
/// (no global mutex around every allocation). `sqlite3_config` is variadic,
/// which Swift cannot call. Returns SQLite's result code: SQLITE_MISUSE
/// when SQLite was already initialised, and nothing changed.
int haven_sqlite_configure(void);

#endif
