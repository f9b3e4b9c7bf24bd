/* clickhouse_http_internal.h - the parts of clickhouse_http.c that take the server's answers,
 * apart from the requests, for tests and fuzz targets (not for other modules). */
#ifndef BP_SINK_CLICKHOUSE_HTTP_INTERNAL_H
#define BP_SINK_CLICKHOUSE_HTTP_INTERNAL_H

#include "sink/clickhouse_http.h"

/* What a request makes of an answer with a status other than 200 (body NUL-terminated, or
 * data NULL when empty): BP_EDB with the exception's code kept (bp_ch_http_exception) when
 * the body is a ClickHouse exception, else BP_EHTTP. */
int bp_ch_http_refused(bp_ch_http *h, long status, const bp_buf *body, const char *what,
                       bp_error *err);

/* bp_ch_query_rows' handling of a 200 answer body[0..len) that comes in pieces of `piece`
 * bytes (the last one shorter): its rows to row as they complete. 0, row's nonzero return,
 * BP_ETOOBIG past the connection's answer cap or BP_ENOMEM. */
int bp_ch_http_rows_from(bp_ch_http *h, const char *body, size_t len, size_t piece, int cells,
                         bp_ch_row_fn row, void *ctx);

#endif
