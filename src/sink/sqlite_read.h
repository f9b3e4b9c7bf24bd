/* sqlite_read.h - the SQLite output's reader (bp_sink_ops.open_reader / read / close_reader):
 * a read-only connection of its own; WAL lets it read beside the writer. */
#ifndef BP_SINK_SQLITE_READ_H
#define BP_SINK_SQLITE_READ_H

#include <stdbool.h>
#include <stddef.h>

#include "blockpipe/sink.h"

int bp_sqlite_open_reader(bp_sink_reader **out, const char *target, const bp_sink_opts *opts,
                          bp_error *err);
int bp_sqlite_read(bp_sink_reader *r, const bp_read_query *q, bp_read_row_fn fn, void *ctx,
                   bp_error *err);
void bp_sqlite_close_reader(bp_sink_reader *r);

/* Why sqlite3_open_v2 could not open path, in words SQLite's "unable to open database file"
 * does not give: the file missing (create false), its directory missing or not a directory
 * (create true). Into out (cap bytes); "" when none of these is the cause. */
void bp_sqlite_open_failure(const char *path, bool create, char *out, size_t cap);

#endif
