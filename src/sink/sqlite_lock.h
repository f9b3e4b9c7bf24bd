/* sqlite_lock.h - the chains' writer locks of the SQLite output (sink.h claim): an
 * open-file-description lock (F_OFD_SETLK) on one byte of the database file per chain, at
 * 2^32 + FNV-1a(chain), far above the bytes SQLite locks (2^30 .. 2^30 + 511) and past any
 * real file's end, so it never meets SQLite's own locks. OFD locks, not POSIX ones: a POSIX
 * lock of the process would go when any descriptor of the file closes (the API's readers
 * open and close their own), an OFD lock only with its own descriptor, which stays open until
 * the output closes. Two processes on one host (SQLite's reach) exclude each other per chain;
 * the kernel lets go when a process dies. */
#ifndef BP_SINK_SQLITE_LOCK_H
#define BP_SINK_SQLITE_LOCK_H

#include <stddef.h>

#include "blockpipe/error.h"

typedef struct bp_sqlite_locks {
    int fd; /* the database file, opened at the first claim; -1 before */
} bp_sqlite_locks;

void bp_sqlite_locks_init(bp_sqlite_locks *l);
/* 0 when this descriptor holds chain's byte now; BP_EBUSY when another does, holder saying
 * which process as far as /proc tells; BP_EIO naming path otherwise. path ":memory:" or ""
 * (a database of this connection only): 0, nothing to lock. */
int bp_sqlite_lock_take(bp_sqlite_locks *l, const char *path, const char *chain, char *holder,
                        size_t cap, bp_error *err);
void bp_sqlite_lock_drop(bp_sqlite_locks *l, const char *chain);
/* Lets go of every lock (after sqlite3_close: see above). */
void bp_sqlite_locks_close(bp_sqlite_locks *l);

#endif
