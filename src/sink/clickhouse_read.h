/* clickhouse_read.h - the ClickHouse output's reader (bp_sink_ops.open_reader / read /
 * close_reader): a kept-alive HTTP connection of its own (clickhouse_http.h); the tables read
 * with FINAL, so each key's +1 / -1 rows collapse and a reverted block is never seen. */
#ifndef BP_SINK_CLICKHOUSE_READ_H
#define BP_SINK_CLICKHOUSE_READ_H

#include "blockpipe/sink.h"

int bp_ch_open_reader(bp_sink_reader **out, const char *target, const bp_sink_opts *opts,
                      bp_error *err);
int bp_ch_read(bp_sink_reader *r, const bp_read_query *q, bp_read_row_fn fn, void *ctx,
               bp_error *err);
void bp_ch_close_reader(bp_sink_reader *r);

#endif
