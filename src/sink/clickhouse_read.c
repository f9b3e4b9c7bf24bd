/* clickhouse_read.c - reading the ClickHouse output back (the API): the SELECTs of sqlread.c
 * with FINAL and literal values (the HTTP interface binds no parameters), the answer as
 * TabSeparated. */
#include "sink/clickhouse_read.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "blockpipe/derived.h"
#include "sink/clickhouse_conn.h"
#include "sink/clickhouse_http.h"
#include "sink/sqlread.h"
#include "util/buf.h"

#define READ_TIMEOUT_MS 10000L /* a request the API waits for must not hang a worker */
#define ANSWER_MAX (64u << 20)
#define CELLS_MAX 64

typedef struct ch_reader {
    bp_sink_reader base;
    bp_ch_target t;
    bp_ch_http *http;
    bp_buf sql, ans;
} ch_reader;

static int select_expr(bp_buf *out, const bp_column *c)
{
    switch (c->type) {
    case BP_COL_HASH:
    case BP_COL_ADDRESS:
    case BP_COL_BYTES: /* FixedString / String of the raw bytes (NULL stays NULL) */
        return bp_buf_printf(out, "concat('0x', lower(hex(%s)))", c->name);
    default:
        return bp_buf_puts(out, c->name);
    }
}

static int param(bp_buf *out, int n, enum bp_sql_param_kind k)
{
    (void)out;
    (void)n;
    (void)k;
    return BP_EINVAL; /* never called: literal() is */
}

/* Values the API checked (numbers, 0x-hex) or a chain name, quoted. */
static int literal(bp_buf *out, const bp_sql_param *v)
{
    if (v->kind == BP_SQL_P_INT)
        return bp_buf_printf(out, "%" PRIu64, v->u);
    if (v->kind == BP_SQL_P_TEXT)
        return bp_ch_quote(out, v->s);
    const char *hex = strncmp(v->s, "0x", 2) == 0 ? v->s + 2 : v->s;
    for (const char *p = hex; *p; p++)
        if (!strchr("0123456789abcdefABCDEF", *p))
            return BP_EINVAL;
    return bp_buf_printf(out, "toFixedString(unhex('%s'), %zu)", hex, strlen(hex) / 2);
}

static const bp_sql_dialect g_dialect = {
    .select_expr = select_expr,
    .param = param,
    .literal = literal,
    .table_suffix = " FINAL",
    .wrap_union = true,
    .empty_windows = true,
};

int bp_ch_open_reader(bp_sink_reader **out, const char *target, const bp_sink_opts *opts,
                      bp_error *err)
{
    *out = NULL;
    ch_reader *r = calloc(1, sizeof(*r));
    if (!r)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    bp_buf_init(&r->sql, 0);
    bp_buf_init(&r->ans, ANSWER_MAX);
    int rc = bp_ch_target_init(&r->t, target, opts, err);
    if (rc != 0) {
        free(r);
        return rc;
    }
    long timeout = r->t.timeout_ms < READ_TIMEOUT_MS ? r->t.timeout_ms : READ_TIMEOUT_MS;
    /* Nothing is sent yet: a server that is down fails the first read, not the open. */
    rc = bp_ch_http_new(&r->http, &r->t.srv, r->t.database, timeout, ANSWER_MAX, err);
    if (rc != 0) {
        bp_ch_close_reader(&r->base);
        return rc;
    }
    *out = &r->base;
    return 0;
}

int bp_ch_read(bp_sink_reader *base, const bp_read_query *q, bp_read_row_fn fn, void *ctx,
               bp_error *err)
{
    ch_reader *r = (ch_reader *)base;
    bp_sql_params p;
    bp_buf_reset(&r->sql);
    bp_buf_reset(&r->ans);
    int rc = bp_sql_select(&r->sql, q, &g_dialect, &p, err);
    if (rc == 0)
        rc = bp_ch_query(r->http, r->sql.data, &r->ans,
                         q->dtable ? bp_dtables[q->dtable - 1].name : bp_table_name(q->table), err);
    if (rc != 0)
        return rc;
    bp_read_cell cells[CELLS_MAX];
    char *cur = r->ans.data ? r->ans.data : "", *raw[CELLS_MAX];
    for (int n; (n = bp_ch_tsv_row(&cur, raw, CELLS_MAX)) > 0;) {
        for (int i = 0; i < n; i++)
            cells[i] = (bp_read_cell){raw[i], raw[i] ? strlen(raw[i]) : 0};
        int frc = fn(ctx, cells, (size_t)n);
        if (frc != 0)
            return frc;
    }
    return 0;
}

void bp_ch_close_reader(bp_sink_reader *base)
{
    ch_reader *r = (ch_reader *)base;
    if (!r)
        return;
    bp_ch_http_free(r->http);
    bp_ch_target_release(&r->t);
    bp_buf_release(&r->sql);
    bp_buf_release(&r->ans);
    free(r);
}
