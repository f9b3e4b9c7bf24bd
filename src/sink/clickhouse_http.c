/* clickhouse_http.c - ClickHouse's HTTP interface: one reused libcurl easy handle (keep-alive),
 * statements in the body, INSERT data streamed from pieces, exceptions mapped to bp_errors. */
#include "sink/clickhouse_http.h"
#include "sink/clickhouse_http_internal.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CH_CONNECT_TIMEOUT_MS 10000L
#define CH_MAX_ANSWER ((size_t)256 << 20)
#define CH_EXCERPT 300 /* of an error body in a message */

struct bp_ch_http {
    CURL *curl;
    struct curl_slist *headers, *gzip_headers;
    char *base;                /* "http://[userinfo@]host:port/" */
    char *where;               /* "host:port" */
    char *settings;            /* "&name=value..." */
    char *db_param;            /* "database=<escaped>" or NULL */
    char *tag;                 /* query_id prefix or NULL */
    unsigned long long tagged; /* requests tagged so far */
    char next_id[96];
    long timeout_ms;
    size_t max_answer;
    int exception; /* of the last BP_EDB */
    bp_buf url;    /* of the request being made */
    bp_buf answer; /* body of the request being made, when the caller wants none or it failed */
    bp_buf *into;  /* where the body goes */
    bool too_big;
    bp_ch_row_fn row; /* bp_ch_query_rows: the answer goes to it a row at a time */
    void *row_ctx;
    int row_cells, row_rc;
    bp_buf line;               /* bp_ch_query_rows: the answer's unfinished last row */
    const bp_ch_piece *pieces; /* the INSERT body being sent */
    size_t npieces, piece, offset;
    bp_ch_produce_fn produce; /* bp_ch_insert_stream: where the next pieces come from */
    void *produce_ctx;
    bp_error *produce_err;
    int produce_rc;
    bool produced_all;
    bool poisoned; /* the failed producer's last byte is sent */
    char curl_msg[CURL_ERROR_SIZE];
};

/* ---- server ------------------------------------------------------------------------------ */

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* "a=b&c=d": every parameter name=value with a setting's name; "&a=b&c=d" into *out. */
static int parse_settings(const char *q, char **out, const char *shown, bp_error *err)
{
    for (const char *p = q; *p;) {
        size_t n = strcspn(p, "&"), name = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789_");
        if (n > 0 && (name == 0 || name >= n || p[name] != '='))
            return bp_error_set(err, BP_EINVAL,
                                "'%s': parameter '%.*s' is neither an option of the output nor a "
                                "ClickHouse setting (name=value)",
                                shown, (int)n, p);
        p += n + (p[n] == '&');
    }
    size_t len = strlen(q);
    *out = malloc(len + 2);
    if (!*out)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    snprintf(*out, len + 2, "%s%s", len ? "&" : "", q);
    return 0;
}

int bp_ch_server_parse(bp_ch_server *s, const char *target, bool tls, bp_error *err)
{
    memset(s, 0, sizeof(*s));
    size_t end = strcspn(target, "?#"), auth_end = strcspn(target, "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < auth_end; i++)
        if (target[i] == '@')
            at = target + i;
    const char *host = at ? at + 1 : target;
    size_t hostport = (size_t)(target + auth_end - host);
    const char *colon = host[0] == '[' ? memchr(host, ']', hostport) : host;
    colon = colon ? memchr(colon, ':', (size_t)(host + hostport - colon)) : NULL;
    size_t hostlen = colon ? (size_t)(colon - host) : hostport;
    long port = tls ? BP_CH_DEFAULT_TLS_PORT : BP_CH_DEFAULT_PORT;
    char shown[300];
    snprintf(shown, sizeof(shown), "%.*s", (int)(hostport < 200 ? hostport : 200), host);
    if (hostlen == 0)
        return bp_error_set(err, BP_EINVAL, "'%s': no host (expected [user:pass@]host:port/db)",
                            shown);
    if (colon) {
        char *stop = NULL;
        port = strtol(colon + 1, &stop, 10);
        if (stop != host + hostport || port < 1 || port > 65535)
            return bp_error_set(err, BP_EINVAL, "'%s': bad port (expected 1 to 65535)", shown);
    }
    const char *path = target + auth_end;
    size_t pathlen = end - auth_end;
    while (pathlen && path[0] == '/')
        path++, pathlen--;
    if (pathlen && path[pathlen - 1] == '/')
        pathlen--;
    if (memchr(path, '/', pathlen))
        return bp_error_set(err, BP_EINVAL, "'%s/%.*s': the path is the database: one name", shown,
                            (int)pathlen, path);
    int rc = target[end] == '?' ? parse_settings(target + end + 1, &s->settings, shown, err)
                                : parse_settings("", &s->settings, shown, err);
    if (rc != 0)
        return rc;
    size_t cap = (size_t)(host + hostport - target) + 32;
    s->base = malloc(cap);
    if (s->base)
        snprintf(s->base, cap, "%s://%.*s%.*s:%ld/", tls ? "https" : "http",
                 (int)(at ? at + 1 - target : 0), target, (int)hostlen, host, port);
    s->where = malloc(hostlen + 8);
    if (s->where)
        snprintf(s->where, hostlen + 8, "%.*s:%ld", (int)hostlen, host, port);
    s->database = pathlen ? dup_n(path, pathlen) : NULL;
    if (!s->base || !s->where || (pathlen && !s->database)) {
        bp_ch_server_release(s);
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    return 0;
}

void bp_ch_server_release(bp_ch_server *s)
{
    free(s->base);
    free(s->where);
    free(s->database);
    free(s->settings);
    memset(s, 0, sizeof(*s));
}

/* ---- connection -------------------------------------------------------------------------- */

/* The complete rows at the start of h->line to h->row (all of them at the end: last); what
 * is left is the start of a row the next piece ends. */
static int feed_rows(bp_ch_http *h, bool last)
{
    char *p = h->line.data, *end = p + h->line.len, *cells[BP_CH_ROW_CELLS];
    while (h->row_rc == 0 && p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl && !last)
            break;
        char *next = nl ? nl + 1 : end;
        *(nl ? nl : end) = '\0';
        char *q = p;
        int n = bp_ch_tsv_row(&q, cells, h->row_cells);
        if (n > 0)
            h->row_rc = h->row(h->row_ctx, cells, n);
        p = next;
    }
    size_t left = (size_t)(end - p);
    if (left > 0)
        memmove(h->line.data, p, left);
    h->line.len = left;
    return h->row_rc;
}

/* A piece of a bp_ch_query_rows answer: n when taken, 0 stops the answer. */
static size_t take_rows(bp_ch_http *h, const char *data, size_t n)
{
    if (h->line.len + n > h->max_answer) {
        h->too_big = true;
        return 0;
    }
    if (bp_buf_append(&h->line, data, n) != 0)
        h->row_rc = BP_ENOMEM;
    return h->row_rc == 0 && feed_rows(h, false) == 0 ? n : 0;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *user)
{
    bp_ch_http *h = user;
    size_t n = size * nmemb;
    long status = 0;
    if (h->row && curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
        status == 200)
        return take_rows(h, data, n);
    if (h->into->len + n > h->max_answer) {
        h->too_big = true;
        return 0;
    }
    return bp_buf_append(h->into, data, n) == 0 ? n : 0;
}

/* The next pieces of a streamed body; false at its end or when the producer failed. */
static bool produce_more(bp_ch_http *h)
{
    while (h->produce && !h->produced_all && h->produce_rc == 0 && h->piece == h->npieces) {
        h->piece = h->offset = 0;
        h->npieces = 0;
        h->produce_rc = h->produce(h->produce_ctx, &h->pieces, &h->npieces, h->produce_err);
        h->produced_all = h->produce_rc == 0 && h->npieces == 0;
    }
    return h->piece < h->npieces;
}

static size_t on_read(char *dst, size_t size, size_t nmemb, void *user)
{
    bp_ch_http *h = user;
    size_t room = size * nmemb, done = 0;
    while (done < room && (h->piece < h->npieces || produce_more(h))) {
        const bp_ch_piece *p = &h->pieces[h->piece];
        size_t n = p->len - h->offset < room - done ? p->len - h->offset : room - done;
        memcpy(dst + done, (const char *)p->data + h->offset, n);
        done += n;
        h->offset += n;
        if (h->offset == p->len) {
            h->piece++;
            h->offset = 0;
        }
    }
    if (h->produce_rc == 0)
        return done;
    /* A failed producer ends the request as a failure, never as a shorter body: ClickHouse
     * (18.16 at least) takes a chunked body whose connection is cut at a chunk's end for the
     * whole body and commits the rows it parsed (Native, RowBinary). The producer is asked
     * for more only once its pieces are all copied, so what is sent ends at a part's end; the
     * last chunk is those bytes and one more that begins a block or a row (or breaks a gzip
     * stream), then the connection is cut: the server meets the body's end inside that block
     * and discards the INSERT. (done < room here: the loop asks only with room left.) */
    if (!h->poisoned && done < room) {
        h->poisoned = true;
        dst[done] = 1;
        return done + 1;
    }
    return CURL_READFUNC_ABORT;
}

static int set_options(bp_ch_http *h)
{
    CURL *c = h->curl;
    int bad = 0;
#if LIBCURL_VERSION_NUM >= 0x075500
    bad |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
#endif
    bad |= curl_easy_setopt(c, CURLOPT_POST, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, CH_CONNECT_TIMEOUT_MS) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, h->timeout_ms) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->curl_msg) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_WRITEDATA, h) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_READDATA, h) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_USERAGENT, "blockpipe/" BP_VERSION) != CURLE_OK;
    /* big INSERT bodies: curl's largest upload buffer, fewer send calls */
    bad |= curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, 2L << 20) != CURLE_OK;
    return bad ? BP_EINVAL : 0;
}

int bp_ch_http_new(bp_ch_http **out, const bp_ch_server *srv, const char *database, long timeout_ms,
                   size_t max_answer, bp_error *err)
{
    *out = NULL;
    bp_ch_http *h = calloc(1, sizeof(*h));
    if (!h)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    h->timeout_ms = timeout_ms > 0 ? timeout_ms : 300000L;
    h->max_answer = max_answer ? max_answer : CH_MAX_ANSWER;
    bp_buf_init(&h->url, 0);
    bp_buf_init(&h->answer, 0);
    bp_buf_init(&h->line, 0);
    h->base = strdup(srv->base);
    h->where = strdup(srv->where);
    h->settings = strdup(srv->settings ? srv->settings : "");
    h->curl = curl_easy_init();
    /* no "Expect: 100-continue": it costs a round trip (or a 1 s wait) per INSERT */
    h->headers = curl_slist_append(NULL, "Expect:");
    h->gzip_headers =
        curl_slist_append(curl_slist_append(NULL, "Expect:"), "Content-Encoding: gzip");
    int rc = 0;
    if (!h->base || !h->where || !h->settings || !h->curl || !h->headers || !h->gzip_headers)
        rc = bp_error_set(err, BP_ENOMEM, "out of memory");
    else if (set_options(h) != 0)
        rc = bp_error_set(err, BP_EINVAL, "ClickHouse %s: libcurl refused an option", h->where);
    if (rc == 0)
        rc = bp_ch_http_use(h, database, err);
    if (rc != 0) {
        bp_ch_http_free(h);
        return rc;
    }
    *out = h;
    return 0;
}

void bp_ch_http_free(bp_ch_http *h)
{
    if (!h)
        return;
    if (h->curl)
        curl_easy_cleanup(h->curl);
    curl_slist_free_all(h->headers);
    curl_slist_free_all(h->gzip_headers);
    bp_buf_release(&h->url);
    bp_buf_release(&h->answer);
    bp_buf_release(&h->line);
    free(h->base);
    free(h->where);
    free(h->settings);
    free(h->db_param);
    free(h->tag);
    free(h);
}

int bp_ch_http_tag(bp_ch_http *h, const char *prefix, bp_error *err)
{
    free(h->tag);
    h->tag = prefix ? strdup(prefix) : NULL;
    if (prefix && (!h->tag || strlen(prefix) + 21 > sizeof(h->next_id)))
        return bp_error_set(err, BP_EINVAL, "query_id prefix '%s': too long or out of memory",
                            prefix);
    return 0;
}

const char *bp_ch_http_next_id(bp_ch_http *h)
{
    if (!h->tag)
        return "";
    snprintf(h->next_id, sizeof(h->next_id), "%s%llu", h->tag, h->tagged);
    return h->next_id;
}

int bp_ch_http_use(bp_ch_http *h, const char *database, bp_error *err)
{
    free(h->db_param);
    h->db_param = NULL;
    if (!database)
        return 0;
    char *esc = curl_easy_escape(h->curl, database, (int)strlen(database));
    size_t n = esc ? strlen(esc) + sizeof("database=") : 0;
    h->db_param = esc ? malloc(n) : NULL;
    if (h->db_param)
        snprintf(h->db_param, n, "database=%s", esc);
    curl_free(esc);
    return h->db_param ? 0 : bp_error_set(err, BP_ENOMEM, "out of memory");
}

const char *bp_ch_http_where(const bp_ch_http *h)
{
    return h->where;
}

int bp_ch_http_exception(const bp_ch_http *h)
{
    return h->exception;
}

/* ---- requests ---------------------------------------------------------------------------- */

/* The server's exception, one line: "Code: 60, e.displayText() = DB::Exception: ..." (old) or
 * "Code: 60. DB::Exception: ... (UNKNOWN_TABLE) (version ...)" (current). */
static int refused(bp_ch_http *h, long status, const bp_buf *body, const char *what, bp_error *err)
{
    char text[CH_EXCERPT + 4];
    size_t n = body->len < CH_EXCERPT ? body->len : CH_EXCERPT;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)body->data[i];
        text[i] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
    }
    while (n > 0 && text[n - 1] == ' ')
        n--;
    snprintf(text + n, sizeof(text) - n, "%s", body->len > CH_EXCERPT ? "..." : "");
    const char *code = body->data ? strstr(body->data, "Code: ") : NULL;
    if (!code)
        return bp_error_set(err, BP_EHTTP, "%s: ClickHouse %s: HTTP %ld: %s", what, h->where,
                            status, text);
    h->exception = atoi(code + 6);
    return bp_error_set(err, BP_EDB, "%s: ClickHouse %s: %s", what, h->where, text);
}

int bp_ch_http_refused(bp_ch_http *h, long status, const bp_buf *body, const char *what,
                       bp_error *err)
{
    h->exception = 0;
    return refused(h, status, body, what, err);
}

static int perform(bp_ch_http *h, bp_buf *out, const char *what, bp_error *err)
{
    h->exception = 0;
    h->too_big = false;
    h->curl_msg[0] = '\0';
    bp_buf_reset(&h->answer);
    h->into = out ? out : &h->answer;
    bp_buf_reset(h->into);
    curl_easy_setopt(h->curl, CURLOPT_URL, h->url.data);
    CURLcode cc = curl_easy_perform(h->curl);
    long status = 0;
    curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &status);
    const char *why = h->curl_msg[0] ? h->curl_msg : curl_easy_strerror(cc);
    if (cc == CURLE_WRITE_ERROR && h->too_big)
        return bp_error_set(err, BP_ETOOBIG, "%s: ClickHouse %s: answer larger than %zu bytes",
                            what, h->where, h->max_answer);
    if (cc == CURLE_OPERATION_TIMEDOUT)
        return bp_error_set(err, BP_ETIMEOUT, "%s: ClickHouse %s: no answer within %ld ms: %s",
                            what, h->where, h->timeout_ms, why);
    if (cc != CURLE_OK)
        return bp_error_set(err, BP_ETRANSPORT, "%s: ClickHouse %s: %s", what, h->where, why);
    if (status != 200)
        return refused(h, status, h->into, what, err);
    /* an empty answer is "", never a NULL buffer: callers read answers as text (atoi, strcspn) */
    if (bp_buf_append(h->into, "", 0) != 0)
        return bp_error_set(err, BP_ENOMEM, "%s: ClickHouse %s: out of memory", what, h->where);
    return 0;
}

/* base + "?" + [database&] + extra + settings [+ &query_id=] */
static int make_url(bp_ch_http *h, const char *extra, bp_error *err)
{
    bp_buf_reset(&h->url);
    int rc = bp_buf_printf(&h->url, "%s?%s%s%s%s", h->base, h->db_param ? h->db_param : "",
                           h->db_param ? "&" : "", extra, h->settings);
    if (rc == 0 && h->tag) /* the prefix is [a-z0-9_]: nothing to escape */
        rc = bp_buf_printf(&h->url, "&query_id=%s", bp_ch_http_next_id(h));
    h->tagged += h->tag != NULL;
    return rc ? bp_error_set(err, BP_ENOMEM, "out of memory") : 0;
}

int bp_ch_query(bp_ch_http *h, const char *sql, bp_buf *out, const char *what, bp_error *err)
{
    return bp_ch_query_set(h, NULL, sql, out, what, err);
}

int bp_ch_query_set(bp_ch_http *h, const char *set, const char *sql, bp_buf *out, const char *what,
                    bp_error *err)
{
    char extra[128];
    if (snprintf(extra, sizeof(extra), "wait_end_of_query=1%s%s", set ? "&" : "", set ? set : "") >=
        (int)sizeof(extra))
        return bp_error_set(err, BP_EINVAL, "%s: settings '%s' too long", what, set ? set : "");
    int rc = make_url(h, extra, err);
    if (rc != 0)
        return rc;
    curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, h->headers);
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, sql);
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(sql));
    return perform(h, out, what, err);
}

int bp_ch_query_rows(bp_ch_http *h, const char *sql, int cells, bp_ch_row_fn row, void *ctx,
                     const char *what, bp_error *err)
{
    h->row = row;
    h->row_ctx = ctx;
    h->row_cells = cells < BP_CH_ROW_CELLS ? cells : BP_CH_ROW_CELLS;
    h->row_rc = 0;
    bp_buf_reset(&h->line);
    int rc = bp_ch_query(h, sql, NULL, what, err);
    if (rc == 0 || h->row_rc != 0) /* (a refusal by row stops curl with a write error) */
        rc = h->row_rc ? h->row_rc : feed_rows(h, true);
    if (h->row_rc != 0)
        rc = bp_error_set(err, h->row_rc, "%s: ClickHouse %s: taking the answer's rows: %s", what,
                          h->where, bp_strerror(h->row_rc));
    h->row = NULL;
    /* one row's room is kept; a long line's is not */
    if (h->line.cap > ((size_t)1 << 20))
        bp_buf_release(&h->line), bp_buf_init(&h->line, 0);
    return rc;
}

int bp_ch_http_rows_from(bp_ch_http *h, const char *body, size_t len, size_t piece, int cells,
                         bp_ch_row_fn row, void *ctx)
{
    h->row = row;
    h->row_ctx = ctx;
    h->row_cells = cells < BP_CH_ROW_CELLS ? cells : BP_CH_ROW_CELLS;
    h->row_rc = 0;
    h->too_big = false;
    bp_buf_reset(&h->line);
    int rc = 0;
    for (size_t at = 0, n; rc == 0 && at < len; at += n) {
        n = len - at < piece ? len - at : piece;
        rc = take_rows(h, body + at, n) == n ? 0 : h->too_big ? BP_ETOOBIG : h->row_rc;
    }
    rc = rc ? rc : feed_rows(h, true);
    h->row = NULL;
    return rc;
}

int bp_ch_insert(bp_ch_http *h, const char *insert, const bp_ch_piece *pieces, size_t n, bool gzip,
                 const char *what, bp_error *err)
{
    char *q = curl_easy_escape(h->curl, insert, (int)strlen(insert));
    if (!q)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    bp_buf extra;
    bp_buf_init(&extra, 0);
    int rc = bp_buf_printf(&extra, "query=%s", q) ? bp_error_set(err, BP_ENOMEM, "out of memory")
                                                  : make_url(h, extra.data, err);
    curl_free(q);
    bp_buf_release(&extra);
    if (rc != 0)
        return rc;
    curl_off_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += (curl_off_t)pieces[i].len;
    h->pieces = pieces;
    h->npieces = n;
    h->piece = h->offset = 0;
    curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, gzip ? h->gzip_headers : h->headers);
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, NULL);
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE_LARGE, h->produce ? (curl_off_t)-1 : total);
    rc = perform(h, NULL, what, err);
    h->pieces = NULL;
    return rc;
}

int bp_ch_insert_stream(bp_ch_http *h, const char *insert, bp_ch_produce_fn produce, void *ctx,
                        bool gzip, const char *what, bp_error *err)
{
    bp_error perr = {0};
    h->produce = produce;
    h->produce_ctx = ctx;
    h->produce_err = &perr;
    h->produce_rc = 0;
    h->produced_all = false;
    h->poisoned = false;
    /* no length: curl sends the body chunked as the producer makes it */
    int rc = bp_ch_insert(h, insert, NULL, 0, gzip, what, err);
    if (h->produce_rc != 0) { /* its own message, not curl's "aborted by callback" */
        rc = h->produce_rc;
        if (err)
            *err = perr;
    }
    h->produce = NULL;
    h->npieces = h->piece = 0;
    return rc;
}

bool bp_ch_retryable(int code)
{
    switch (code) {
    case 60: /* UNKNOWN_TABLE, 81 UNKNOWN_DATABASE: a server shutting down detaches them first
              * (a table dropped for good is retried until the caller gives up) */
    case 81:
    case 159: /* TIMEOUT_EXCEEDED */
    case 202: /* TOO_MANY_SIMULTANEOUS_QUERIES */
    case 209: /* SOCKET_TIMEOUT */
    case 210: /* NETWORK_ERROR */
    case 236: /* ABORTED */
    case 241: /* MEMORY_LIMIT_EXCEEDED */
    case 242: /* TABLE_IS_READ_ONLY */
    case 252: /* TOO_MANY_PARTS */
    case 319: /* UNKNOWN_STATUS_OF_INSERT */
    case 394: /* QUERY_WAS_CANCELLED: a server shutting down */
        return true;
    default:
        return false;
    }
}

/* ---- SQL text and answers ------------------------------------------------------------------ */

static int quoted(bp_buf *out, const char *s, char q)
{
    int rc = bp_buf_putc(out, q);
    for (; *s; s++) {
        if (*s == q || *s == '\\')
            rc |= bp_buf_putc(out, '\\');
        rc |= bp_buf_putc(out, *s);
    }
    return rc | bp_buf_putc(out, q);
}

int bp_ch_quote(bp_buf *out, const char *s)
{
    return quoted(out, s, '\'');
}

int bp_ch_ident(bp_buf *out, const char *s)
{
    return quoted(out, s, '`');
}

/* Undoes TabSeparated's escapes in place; "\N" alone is NULL. */
static char *unescape(char *s)
{
    if (s[0] == '\\' && s[1] == 'N' && s[2] == '\0')
        return NULL;
    char *w = s;
    for (char *r = s; *r; r++) {
        if (*r != '\\' || !r[1]) {
            *w++ = *r;
            continue;
        }
        r++;
        *w++ = *r == 't' ? '\t' : *r == 'n' ? '\n' : *r == '0' ? '\0' : *r == 'r' ? '\r' : *r;
    }
    *w = '\0';
    return s;
}

int bp_ch_tsv_row(char **p, char **cells, int max)
{
    char *s = *p;
    if (!s || !*s)
        return 0;
    char *nl = strchr(s, '\n');
    if (nl)
        *nl = '\0';
    *p = nl ? nl + 1 : s + strlen(s);
    int n = 0;
    for (char *c = s; n < max;) {
        char *tab = strchr(c, '\t');
        if (tab)
            *tab = '\0';
        cells[n++] = unescape(c);
        if (!tab)
            break;
        c = tab + 1;
    }
    return n;
}
