// A VFS over the platform's default one that gathers the pages SQLite
// appends to a write-ahead log into one buffer and writes them with one
// call when SQLite next syncs, reads, sizes, truncates or closes that log.
//
// Why: SQLite writes a WAL frame as two calls (its 24-byte header, then its
// page), so a group commit that dirtied 50 pages costs 100 `pwrite`s on the
// one writer before its one `fsync`. Here they cost two (one per 128 KiB).
// The buffer holds what the page cache holds: pages, their sealed fields
// sealed.
//
// Why it is safe: only the log of a connection that asked
// (`haven_sqlite_gather_wal`, which checks that it commits with
// `synchronous = FULL` or EXTRA) is gathered, and such a connection syncs
// its log at every commit *before* it publishes the commit in the
// wal-index (wal.c, `sqlite3WalFrames`: the frames, then `sqlite3OsSync`,
// then `walIndexAppend` and `walIndexWriteHdr`). The sync writes the
// buffer first, so no other connection is ever told about a frame that is
// still in it, and a commit whose pages fail to reach the file fails at
// that sync, as it would have failed at the write. The connection reading
// its own log back (a checkpoint, a rewritten checksum) or sizing it gets
// the buffer written first. Every other connection's log, and every other
// file, behaves exactly as the default VFS's (with `synchronous = NORMAL`,
// as GRDB sets up a pool, a commit is published without a sync, so a
// gathered log would show readers frames not yet in the file).
#include <sqlite3.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "CHavenSQLite.h"

/// At most this much is held before it is written, whatever the commit.
#define HAVEN_WAL_BUFFER_BYTES (4 * 1024 * 1024)
/// The most the unix VFS writes in one call: it keeps the low 17 bits of a
/// write's size (os_unix.c, `seekAndWriteFd`: SQLite's own writes are at
/// most a 64 KiB page and its frame), and answers a shorter write with
/// SQLITE_FULL.
#define HAVEN_WAL_WRITE_BYTES 131071

typedef struct HavenWALFile {
    sqlite3_file base;
    /// The default VFS's file, in the same allocation, after this struct.
    sqlite3_file *real;
    /// Guards the buffer: SQLite uses a connection's log from one thread at
    /// a time, but nothing in its contract says so for a file.
    pthread_mutex_t mutex;
    unsigned char *buffer;
    /// Where `buffer[0]` goes in the file, and how many bytes wait.
    sqlite3_int64 start;
    int used;
    /// Whether writes are gathered (``haven_sqlite_gather_wal``).
    int gathering;
    /// The code the next write of what waits fails with instead of writing
    /// (``haven_sqlite_wal_fail_next_write``), or SQLITE_OK.
    int failure;
    /// Writes SQLite made to the log, and writes that reached the file, since gathering began.
    long long appends, writes;
} HavenWALFile;

static sqlite3_vfs havenVFS;
static sqlite3_vfs *platformVFS;
static sqlite3_io_methods walMethods;

static sqlite3_file *realFile(HavenWALFile *file) { return file->real; }

/// Writes what waits. The buffer is emptied either way: SQLite answers a
/// failed write by failing the transaction, and frames it never published
/// are overwritten by the next.
static int flushLocked(HavenWALFile *file) {
    int used = file->used;
    file->used = 0;
    if (used > 0 && file->failure != SQLITE_OK) {
        int failure = file->failure;
        file->failure = SQLITE_OK;
        return failure;
    }
    for (int done = 0; done < used;) {
        int amount = used - done < HAVEN_WAL_WRITE_BYTES ? used - done : HAVEN_WAL_WRITE_BYTES;
        file->writes += 1;
        int code = realFile(file)->pMethods->xWrite(realFile(file), file->buffer + done, amount, file->start + done);
        if (code != SQLITE_OK) return code;
        done += amount;
    }
    return SQLITE_OK;
}

static int flush(HavenWALFile *file) {
    pthread_mutex_lock(&file->mutex);
    int code = flushLocked(file);
    pthread_mutex_unlock(&file->mutex);
    return code;
}

static int walClose(sqlite3_file *base) {
    HavenWALFile *file = (HavenWALFile *)base;
    int code = flush(file);
    int closed = realFile(file)->pMethods->xClose(realFile(file));
    free(file->buffer);
    file->buffer = NULL;
    pthread_mutex_destroy(&file->mutex);
    return code != SQLITE_OK ? code : closed;
}

static int walRead(sqlite3_file *base, void *out, int amount, sqlite3_int64 offset) {
    HavenWALFile *file = (HavenWALFile *)base;
    int code = flush(file);
    if (code != SQLITE_OK) return code;
    return realFile(file)->pMethods->xRead(realFile(file), out, amount, offset);
}

static int walWrite(sqlite3_file *base, const void *data, int amount, sqlite3_int64 offset) {
    HavenWALFile *file = (HavenWALFile *)base;
    pthread_mutex_lock(&file->mutex);
    if (!file->gathering) {
        pthread_mutex_unlock(&file->mutex);
        return realFile(file)->pMethods->xWrite(realFile(file), data, amount, offset);
    }
    file->appends += 1;
    sqlite3_int64 end = file->start + file->used;
    // Rewritten within what waits (SQLite rewrites a frame of the same
    // transaction in place): written over in the buffer.
    if (file->used > 0 && offset >= file->start && offset + amount <= end) {
        memcpy(file->buffer + (offset - file->start), data, (size_t)amount);
        pthread_mutex_unlock(&file->mutex);
        return SQLITE_OK;
    }
    // Appended right after what waits, and it fits.
    if (file->used > 0 && offset == end && file->used + amount <= HAVEN_WAL_BUFFER_BYTES) {
        memcpy(file->buffer + file->used, data, (size_t)amount);
        file->used += amount;
        pthread_mutex_unlock(&file->mutex);
        return SQLITE_OK;
    }
    // Anywhere else: what waits is written first, in order.
    int code = flushLocked(file);
    if (code == SQLITE_OK) {
        if (file->buffer == NULL) file->buffer = malloc(HAVEN_WAL_BUFFER_BYTES);
        if (file->buffer != NULL && amount <= HAVEN_WAL_BUFFER_BYTES) {
            memcpy(file->buffer, data, (size_t)amount);
            file->start = offset;
            file->used = amount;
        } else {
            file->writes += 1;
            code = realFile(file)->pMethods->xWrite(realFile(file), data, amount, offset);
        }
    }
    pthread_mutex_unlock(&file->mutex);
    return code;
}

static int walTruncate(sqlite3_file *base, sqlite3_int64 size) {
    HavenWALFile *file = (HavenWALFile *)base;
    int code = flush(file);
    if (code != SQLITE_OK) return code;
    return realFile(file)->pMethods->xTruncate(realFile(file), size);
}

static int walSync(sqlite3_file *base, int flags) {
    HavenWALFile *file = (HavenWALFile *)base;
    int code = flush(file);
    if (code != SQLITE_OK) return code;
    return realFile(file)->pMethods->xSync(realFile(file), flags);
}

static int walFileSize(sqlite3_file *base, sqlite3_int64 *size) {
    HavenWALFile *file = (HavenWALFile *)base;
    int code = flush(file);
    if (code != SQLITE_OK) return code;
    return realFile(file)->pMethods->xFileSize(realFile(file), size);
}

static int walLock(sqlite3_file *base, int level) {
    sqlite3_file *real = realFile((HavenWALFile *)base);
    return real->pMethods->xLock(real, level);
}

static int walUnlock(sqlite3_file *base, int level) {
    sqlite3_file *real = realFile((HavenWALFile *)base);
    return real->pMethods->xUnlock(real, level);
}

static int walCheckReservedLock(sqlite3_file *base, int *reserved) {
    sqlite3_file *real = realFile((HavenWALFile *)base);
    return real->pMethods->xCheckReservedLock(real, reserved);
}

static int walFileControl(sqlite3_file *base, int op, void *argument) {
    HavenWALFile *file = (HavenWALFile *)base;
    // A control may look at the file (its size hint, a persisted log): it
    // sees what SQLite wrote.
    int code = flush(file);
    if (code != SQLITE_OK) return code;
    return realFile(file)->pMethods->xFileControl(realFile(file), op, argument);
}

static int walSectorSize(sqlite3_file *base) {
    sqlite3_file *real = realFile((HavenWALFile *)base);
    return real->pMethods->xSectorSize(real);
}

static int walDeviceCharacteristics(sqlite3_file *base) {
    sqlite3_file *real = realFile((HavenWALFile *)base);
    return real->pMethods->xDeviceCharacteristics(real);
}

static int walShmMap(sqlite3_file *base, int region, int size, int extend, void volatile **memory) {
    sqlite3_file *real = realFile((HavenWALFile *)base);
    return real->pMethods->xShmMap(real, region, size, extend, memory);
}

static int walShmLock(sqlite3_file *base, int offset, int count, int flags) {
    sqlite3_file *real = realFile((HavenWALFile *)base);
    return real->pMethods->xShmLock(real, offset, count, flags);
}

static void walShmBarrier(sqlite3_file *base) {
    sqlite3_file *real = realFile((HavenWALFile *)base);
    real->pMethods->xShmBarrier(real);
}

static int walShmUnmap(sqlite3_file *base, int delete) {
    sqlite3_file *real = realFile((HavenWALFile *)base);
    return real->pMethods->xShmUnmap(real, delete);
}

static int walFetch(sqlite3_file *base, sqlite3_int64 offset, int amount, void **out) {
    HavenWALFile *file = (HavenWALFile *)base;
    int code = flush(file);
    if (code != SQLITE_OK) return code;
    return realFile(file)->pMethods->xFetch(realFile(file), offset, amount, out);
}

static int walUnfetch(sqlite3_file *base, sqlite3_int64 offset, void *page) {
    sqlite3_file *real = realFile((HavenWALFile *)base);
    return real->pMethods->xUnfetch(real, offset, page);
}

static size_t walHeaderSize(void) { return (sizeof(HavenWALFile) + 15) & ~(size_t)15; }

static int havenOpen(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *base, int flags, int *outFlags) {
    (void)vfs;
    if ((flags & SQLITE_OPEN_WAL) == 0) {
        // Every other file is the default VFS's own, methods and all.
        return platformVFS->xOpen(platformVFS, name, base, flags, outFlags);
    }
    HavenWALFile *file = (HavenWALFile *)base;
    memset(file, 0, sizeof(HavenWALFile));
    file->real = (sqlite3_file *)((unsigned char *)base + walHeaderSize());
    int code = platformVFS->xOpen(platformVFS, name, file->real, flags, outFlags);
    if (code != SQLITE_OK) {
        // SQLite calls xClose only when pMethods is set; the default VFS
        // cleaned up after itself.
        file->base.pMethods = NULL;
        return code;
    }
    if (file->real->pMethods->iVersion < 3) {
        // A log without the methods this one passes on: not gathered.
        file->real->pMethods->xClose(file->real);
        return platformVFS->xOpen(platformVFS, name, base, flags, outFlags);
    }
    pthread_mutex_init(&file->mutex, NULL);
    file->base.pMethods = &walMethods;
    return SQLITE_OK;
}

static int havenDelete(sqlite3_vfs *vfs, const char *name, int sync) {
    (void)vfs;
    return platformVFS->xDelete(platformVFS, name, sync);
}

static int havenAccess(sqlite3_vfs *vfs, const char *name, int flags, int *result) {
    (void)vfs;
    return platformVFS->xAccess(platformVFS, name, flags, result);
}

static int havenFullPathname(sqlite3_vfs *vfs, const char *name, int size, char *out) {
    (void)vfs;
    return platformVFS->xFullPathname(platformVFS, name, size, out);
}

static void *havenDlOpen(sqlite3_vfs *vfs, const char *name) {
    (void)vfs;
    return platformVFS->xDlOpen(platformVFS, name);
}

static void havenDlError(sqlite3_vfs *vfs, int size, char *out) {
    (void)vfs;
    platformVFS->xDlError(platformVFS, size, out);
}

static void (*havenDlSym(sqlite3_vfs *vfs, void *library, const char *symbol))(void) {
    (void)vfs;
    return platformVFS->xDlSym(platformVFS, library, symbol);
}

static void havenDlClose(sqlite3_vfs *vfs, void *library) {
    (void)vfs;
    platformVFS->xDlClose(platformVFS, library);
}

static int havenRandomness(sqlite3_vfs *vfs, int size, char *out) {
    (void)vfs;
    return platformVFS->xRandomness(platformVFS, size, out);
}

static int havenSleep(sqlite3_vfs *vfs, int microseconds) {
    (void)vfs;
    return platformVFS->xSleep(platformVFS, microseconds);
}

static int havenCurrentTime(sqlite3_vfs *vfs, double *now) {
    (void)vfs;
    return platformVFS->xCurrentTime(platformVFS, now);
}

static int havenGetLastError(sqlite3_vfs *vfs, int size, char *out) {
    (void)vfs;
    return platformVFS->xGetLastError(platformVFS, size, out);
}

static int havenCurrentTimeInt64(sqlite3_vfs *vfs, sqlite3_int64 *now) {
    (void)vfs;
    return platformVFS->xCurrentTimeInt64(platformVFS, now);
}

static int havenSetSystemCall(sqlite3_vfs *vfs, const char *name, sqlite3_syscall_ptr call) {
    (void)vfs;
    return platformVFS->xSetSystemCall(platformVFS, name, call);
}

static sqlite3_syscall_ptr havenGetSystemCall(sqlite3_vfs *vfs, const char *name) {
    (void)vfs;
    return platformVFS->xGetSystemCall(platformVFS, name);
}

static const char *havenNextSystemCall(sqlite3_vfs *vfs, const char *name) {
    (void)vfs;
    return platformVFS->xNextSystemCall(platformVFS, name);
}

static pthread_once_t installed = PTHREAD_ONCE_INIT;
static int installCode = SQLITE_OK;

static void install(void) {
    platformVFS = sqlite3_vfs_find(NULL);
    if (platformVFS == NULL || platformVFS->iVersion < 3) {
        installCode = SQLITE_ERROR;
        return;
    }
    walMethods = (sqlite3_io_methods){
        .iVersion = 3,
        .xClose = walClose,
        .xRead = walRead,
        .xWrite = walWrite,
        .xTruncate = walTruncate,
        .xSync = walSync,
        .xFileSize = walFileSize,
        .xLock = walLock,
        .xUnlock = walUnlock,
        .xCheckReservedLock = walCheckReservedLock,
        .xFileControl = walFileControl,
        .xSectorSize = walSectorSize,
        .xDeviceCharacteristics = walDeviceCharacteristics,
        .xShmMap = walShmMap,
        .xShmLock = walShmLock,
        .xShmBarrier = walShmBarrier,
        .xShmUnmap = walShmUnmap,
        .xFetch = walFetch,
        .xUnfetch = walUnfetch,
    };
    havenVFS = (sqlite3_vfs){
        .iVersion = 3,
        .szOsFile = (int)walHeaderSize() + platformVFS->szOsFile,
        .mxPathname = platformVFS->mxPathname,
        .zName = "haven-wal-gathering",
        .xOpen = havenOpen,
        .xDelete = havenDelete,
        .xAccess = havenAccess,
        .xFullPathname = havenFullPathname,
        .xDlOpen = havenDlOpen,
        .xDlError = havenDlError,
        .xDlSym = havenDlSym,
        .xDlClose = havenDlClose,
        .xRandomness = havenRandomness,
        .xSleep = havenSleep,
        .xCurrentTime = havenCurrentTime,
        .xGetLastError = havenGetLastError,
        .xCurrentTimeInt64 = havenCurrentTimeInt64,
        .xSetSystemCall = havenSetSystemCall,
        .xGetSystemCall = havenGetSystemCall,
        .xNextSystemCall = havenNextSystemCall,
    };
    installCode = sqlite3_vfs_register(&havenVFS, 1);
}

int haven_sqlite_install_wal_gathering(void) {
    pthread_once(&installed, install);
    return installCode;
}

/// The connection's log, when this VFS opened it.
static HavenWALFile *gatheredLog(sqlite3 *db) {
    sqlite3_file *log = NULL;
    if (sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &log) != SQLITE_OK) return NULL;
    if (log == NULL || log->pMethods != &walMethods) return NULL;
    return (HavenWALFile *)log;
}

int haven_sqlite_gather_wal(sqlite3 *db) {
    sqlite3_stmt *statement = NULL;
    int code = sqlite3_prepare_v2(db, "PRAGMA synchronous", -1, &statement, NULL);
    if (code != SQLITE_OK) return code;
    int level = sqlite3_step(statement) == SQLITE_ROW ? sqlite3_column_int(statement, 0) : -1;
    sqlite3_finalize(statement);
    // FULL (2) or EXTRA (3): every commit syncs the log before it is published.
    if (level < 2) return SQLITE_MISUSE;
    HavenWALFile *file = gatheredLog(db);
    if (file == NULL) return SQLITE_NOTFOUND;
    pthread_mutex_lock(&file->mutex);
    file->gathering = 1;
    pthread_mutex_unlock(&file->mutex);
    return SQLITE_OK;
}

long long haven_sqlite_wal_waiting(sqlite3 *db) {
    HavenWALFile *file = gatheredLog(db);
    if (file == NULL) return 0;
    pthread_mutex_lock(&file->mutex);
    long long used = file->used;
    pthread_mutex_unlock(&file->mutex);
    return used;
}

int haven_sqlite_wal_counts(sqlite3 *db, long long *appends, long long *writes) {
    HavenWALFile *file = gatheredLog(db);
    if (file == NULL) return SQLITE_NOTFOUND;
    pthread_mutex_lock(&file->mutex);
    *appends = file->appends;
    *writes = file->writes;
    pthread_mutex_unlock(&file->mutex);
    return SQLITE_OK;
}

int haven_sqlite_wal_fail_next_write(sqlite3 *db, int code) {
    HavenWALFile *file = gatheredLog(db);
    if (file == NULL) return SQLITE_NOTFOUND;
    pthread_mutex_lock(&file->mutex);
    file->failure = code;
    pthread_mutex_unlock(&file->mutex);
    return SQLITE_OK;
}
