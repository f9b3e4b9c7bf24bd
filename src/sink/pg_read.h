/* pg_read.h - the PostgreSQL output's reader (bp_sink_ops.open_reader / read / close_reader):
 * a connection of its own in read-only transactions, with a statement timeout. */
#ifndef BP_SINK_PG_READ_H
#define BP_SINK_PG_READ_H

#include "blockpipe/sink.h"

int bp_pg_open_reader(bp_sink_reader **out, const char *target, const bp_sink_opts *opts,
                      bp_error *err);
int bp_pg_read(bp_sink_reader *r, const bp_read_query *q, bp_read_row_fn fn, void *ctx,
               bp_error *err);
void bp_pg_close_reader(bp_sink_reader *r);

#endif
