/* fuzz_clickhouse_answer.c - ClickHouse's HTTP answers as the clickhouse output takes them
 * (clickhouse_http.c, clickhouse_table.c): the bytes as a TabSeparated answer read whole
 * (bp_ch_tsv_row) and streamed a row at a time in pieces (bp_ch_query_rows' path), each cell
 * as a column type (system.columns) and the first line as version(); and as the body of a
 * refusal (HTTP 500 / 404). Any answer must give rows or an error, never a crash, a leak or
 * UB; the rows streamed do not depend on where the pieces end.
 *
 * Input: byte 0 picks the cells per row (1..32), byte 1 the piece size; the rest is the body. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sink/clickhouse_http_internal.h"
#include "sink/clickhouse_table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The rows handed over, as text: each row's cell count, then each cell (NULL as \x01). */
static int record(void *ctx, char **cells, int n)
{
    bp_buf *out = ctx;
    if (n < 1 || n > BP_CH_ROW_CELLS)
        abort();
    int rc = bp_buf_printf(out, "%d:", n);
    for (int i = 0; i < n; i++) {
        bp_ch_type t;
        if (cells[i])
            (void)bp_ch_type_parse(cells[i], &t);
        rc |= bp_buf_puts(out, cells[i] ? cells[i] : "\x01") | bp_buf_putc(out, '\t');
    }
    return rc | bp_buf_putc(out, '\n');
}

static bp_ch_http *connection(void)
{
    static bp_ch_http *h;
    if (h)
        return h;
    bp_ch_server srv;
    bp_error err;
    if (bp_ch_server_parse(&srv, "127.0.0.1:9/db", false, &err) != 0 ||
        bp_ch_http_new(&h, &srv, "db", 1000, 1u << 20, &err) != 0)
        abort(); /* kept for the whole run (nothing is sent: no request is made) */
    bp_ch_server_release(&srv);
    return h;
}

static void streamed(bp_ch_http *h, const char *body, size_t len, int cells, size_t piece)
{
    bp_buf a, b;
    bp_buf_init(&a, 0);
    bp_buf_init(&b, 0);
    int ra = bp_ch_http_rows_from(h, body, len, piece, cells, record, &a);
    int rb = bp_ch_http_rows_from(h, body, len, len ? len : 1, cells, record, &b);
    if (len > (1u << 19)) /* whole, it may pass the connection's cap that pieces stay under */
        rb = ra, bp_buf_reset(&b), bp_buf_append(&b, a.data, a.len);
    if (ra != rb || a.len != b.len || (a.len && memcmp(a.data, b.data, a.len) != 0)) {
        fprintf(stderr, "rows differ with pieces of %zu bytes\n", piece);
        abort();
    }
    bp_buf_release(&a);
    bp_buf_release(&b);
}

static void refusal(bp_ch_http *h, const bp_buf *body, long status)
{
    bp_error err = {0};
    int rc = bp_ch_http_refused(h, status, body, "fuzz", &err);
    bool exception = body->data && strstr(body->data, "Code: ");
    if (rc != (exception ? BP_EDB : BP_EHTTP) || !strstr(err.msg, "ClickHouse 127.0.0.1:9"))
        abort();
    for (const char *c = err.msg; *c; c++)
        if ((unsigned char)*c < 0x20)
            abort(); /* the body's control characters do not reach the log line */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    bp_ch_http *h = connection();
    int cells = 1 + data[0] % BP_CH_ROW_CELLS;
    size_t piece = 1 + data[1];
    const char *raw = (const char *)data + 2;
    size_t len = size - 2;
    streamed(h, raw, len, cells, piece);
    bp_buf body; /* NUL-terminated, as curl's answer buffer */
    bp_buf_init(&body, 0);
    if (len && bp_buf_append(&body, raw, len) != 0)
        abort();
    refusal(h, &body, 500);
    refusal(h, &body, 404);
    if (body.data) {
        bp_ch_caps caps;
        (void)bp_ch_caps_from_version(body.data, &caps);
        char *p = body.data, *row[BP_CH_ROW_CELLS];
        while (bp_ch_tsv_row(&p, row, cells) > 0) {
        }
    }
    bp_buf_release(&body);
    return 0;
}
