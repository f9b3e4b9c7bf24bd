/* routes.c - REST dispatch and the data endpoints (blocks, transactions, logs). */
#include "api/clock.h"
#include "api/routes.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/push.h"
#include "api/rows.h"
#include "api/status.h"
#include "util/jsonw.h"

#define REOPEN_MS 1000 /* a reader that failed to open is tried again after this */
#define STOP_READ 1    /* a row callback's "enough rows" (not an error) */

/* ---- counting -------------------------------------------------------------------------- */

static const char *const g_route_names[BP_ROUTE_COUNT] = {
    [BP_ROUTE_OTHER] = "other",
    [BP_ROUTE_ROOT] = "/",
    [BP_ROUTE_HEALTH] = "/health",
    [BP_ROUTE_READY] = "/ready",
    [BP_ROUTE_METRICS] = "/metrics",
    [BP_ROUTE_STATUS] = "status",
    [BP_ROUTE_BLOCKS] = "/api/blocks",
    [BP_ROUTE_BLOCK] = "/api/blocks/{id}",
    [BP_ROUTE_TXS] = "/api/transactions",
    [BP_ROUTE_TX] = "/api/transactions/{hash}",
    [BP_ROUTE_LOGS] = "/api/logs",
    [BP_ROUTE_ANALYTICS] = "/api/analytics",
    [BP_ROUTE_PREDICTIONS] = "/api/predictions",
    [BP_ROUTE_STREAMING] = "/api/v1/streaming",
    [BP_ROUTE_WS] = "/api/ws",
    [BP_ROUTE_SSE] = "/api/events",
    [BP_ROUTE_ARCH_BLOCKS] = "/api/arch/blocks",
    [BP_ROUTE_ARCH_BLOCK] = "/api/arch/blocks/{id}",
    [BP_ROUTE_ARCH_TXS] = "/api/arch/transactions",
    [BP_ROUTE_ARCH_TX] = "/api/arch/transactions/{txid}",
    [BP_ROUTE_ARCH_ACCOUNTS] = "/api/arch/account_updates",
    [BP_ROUTE_ARCH_EVENTS] = "/api/arch/events",
};

static const char *const g_code_names[BP_CODE_COUNT] = {
    [BP_CODE_2XX] = "2xx", [BP_CODE_400] = "400", [BP_CODE_401] = "401", [BP_CODE_403] = "403",
    [BP_CODE_404] = "404", [BP_CODE_405] = "405", [BP_CODE_413] = "413", [BP_CODE_429] = "429",
    [BP_CODE_4XX] = "4xx", [BP_CODE_503] = "503", [BP_CODE_5XX] = "5xx",
};

const char *bp_api_route_name(enum bp_api_route_id r)
{
    return (unsigned)r < BP_ROUTE_COUNT ? g_route_names[r] : "other";
}

const char *bp_api_code_name(enum bp_api_code_id c)
{
    return (unsigned)c < BP_CODE_COUNT ? g_code_names[c] : "5xx";
}

static enum bp_api_code_id code_of(int status)
{
    switch (status) {
    case 400:
        return BP_CODE_400;
    case 401:
        return BP_CODE_401;
    case 403:
        return BP_CODE_403;
    case 404:
        return BP_CODE_404;
    case 405:
        return BP_CODE_405;
    case 413:
        return BP_CODE_413;
    case 429:
        return BP_CODE_429;
    case 503:
        return BP_CODE_503;
    default:
        return status < 400 ? BP_CODE_2XX : status < 500 ? BP_CODE_4XX : BP_CODE_5XX;
    }
}

void bp_api_count(bp_api_ctx *c, enum bp_api_route_id r, int status)
{
    atomic_fetch_add_explicit(&c->counters.requests[r][code_of(status)], 1, memory_order_relaxed);
}

static bool starts(const char *path, const char *prefix)
{
    return strncmp(path, prefix, strlen(prefix)) == 0;
}

enum bp_api_route_id bp_api_route_of(const char *path)
{
    static const struct {
        const char *path;
        enum bp_api_route_id id;
    } exact[] = {
        {"/", BP_ROUTE_ROOT},
        {"/health", BP_ROUTE_HEALTH},
        {"/ready", BP_ROUTE_READY},
        {"/metrics", BP_ROUTE_METRICS},
        {"/api/blocks", BP_ROUTE_BLOCKS},
        {"/api/transactions", BP_ROUTE_TXS},
        {"/api/logs", BP_ROUTE_LOGS},
        {"/api/analytics", BP_ROUTE_ANALYTICS},
        {"/api/predictions", BP_ROUTE_PREDICTIONS},
        {"/api/ws", BP_ROUTE_WS},
        {"/api/events", BP_ROUTE_SSE},
        {"/api/arch/blocks", BP_ROUTE_ARCH_BLOCKS},
        {"/api/arch/transactions", BP_ROUTE_ARCH_TXS},
        {"/api/arch/account_updates", BP_ROUTE_ARCH_ACCOUNTS},
        {"/api/arch/events", BP_ROUTE_ARCH_EVENTS},
    };
    for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
        if (strcmp(path, exact[i].path) == 0)
            return exact[i].id;
    if (starts(path, "/api/blocks/") && path[12] && !strchr(path + 12, '/'))
        return BP_ROUTE_BLOCK;
    if (starts(path, "/api/transactions/") && path[18] && !strchr(path + 18, '/'))
        return BP_ROUTE_TX;
    if (starts(path, "/api/arch/blocks/") && path[17] && !strchr(path + 17, '/'))
        return BP_ROUTE_ARCH_BLOCK;
    if (starts(path, "/api/arch/transactions/") && path[23] && !strchr(path + 23, '/'))
        return BP_ROUTE_ARCH_TX;
    if (starts(path, "/api/v1/streaming/") && path[18])
        return BP_ROUTE_STREAMING;
    if (bp_api_status_route(path))
        return BP_ROUTE_STATUS;
    return BP_ROUTE_OTHER;
}

/* ---- answers ----------------------------------------------------------------------------- */

void bp_api_error(bp_api_response *resp, int status, const char *fmt, ...)
{
    char msg[BP_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    bp_jsonw_utf8_fix(msg); /* it may quote the request's bytes (a path, a key) */
    bp_buf_reset(&resp->body);
    bp_jsonw w;
    bp_jsonw_init(&w, &resp->body, BP_JSONW_ESC_U);
    bp_jsonw_begin_object(&w);
    bp_jsonw_key(&w, "error");
    bp_jsonw_str(&w, msg);
    bp_jsonw_key(&w, "status");
    bp_jsonw_u64(&w, (uint64_t)status);
    bp_jsonw_end_object(&w);
    resp->status = status;
    resp->type = "application/json";
}

void bp_api_from_error(bp_api_response *resp, const bp_error *e)
{
    int status = e->code == BP_EINVAL ? 400 : e->code == BP_ENOTFOUND ? 404 : 503;
    bp_api_error(resp, status, "%s", e->msg);
}

static int chain_row(void *ctx, const bp_read_cell *cells, size_t n)
{
    bp_api_worker *w = ctx;
    const bp_read_cell *c = bp_api_cell(BP_TABLE_BLOCKS, cells, n, "chain");
    if (c->s && c->len < sizeof(w->chain)) {
        memcpy(w->chain, c->s, c->len);
        w->chain[c->len] = '\0';
    }
    return STOP_READ;
}

/* The database's chain, looked for again every 10 s while there is none. */
static const char *learned_chain(bp_api_worker *w)
{
    int64_t now = bp_api_mono_ms();
    if (!w->reader || (w->chain[0] == '\0' && now - w->chain_at < 10000 && w->chain_at))
        return w->chain[0] ? w->chain : NULL;
    if (!w->chain[0]) {
        bp_error err = {0};
        bp_read_query q = {.table = BP_TABLE_BLOCKS, .limit = 1, .any_order = true};
        w->chain_at = now;
        bp_sink_read(w->reader, &q, chain_row, w, &err);
    }
    return w->chain[0] ? w->chain : NULL;
}

const char *bp_api_chain(const bp_api_ctx *c, bp_api_worker *w, const bp_api_request *req,
                         char *buf, size_t cap)
{
    const char *v = bp_api_param_get(req, "chain");
    if (!v)
        v = c->cfg->chain;
    if (!v && c->cfg->stats && !c->cfg->serving) { /* serve's snapshot is one chain of many */
        bp_stats *s = malloc(sizeof(*s));
        if (s) {
            bp_stats_hub_read(c->cfg->stats, s);
            if (s->version && s->chain[0])
                snprintf(buf, cap, "%s", s->chain);
            free(s);
            if (buf[0])
                return buf;
        }
    }
    if (!v && w)
        v = learned_chain(w);
    if (!v)
        return NULL;
    snprintf(buf, cap, "%s", v);
    return buf;
}

void bp_api_worker_release(bp_api_worker *w)
{
    bp_sink_reader_close(w->reader);
    bp_keyed_close(w->keyed);
    memset(w, 0, sizeof(*w));
}

void bp_api_finish(bp_api_response *resp, const bp_jsonw *w)
{
    if (bp_jsonw_finish(w) != 0)
        bp_api_error(resp, 500, "answer too large (more than %u MiB)", BP_API_BODY_MAX >> 20);
    else
        resp->status = 200;
}

bp_sink_reader *bp_api_reader(bp_api_ctx *c, bp_api_worker *w, bp_api_response *resp)
{
    if (w->reader)
        return w->reader;
    if (!c->cfg->read_url) {
        bp_api_error(
            resp, 503,
            "no output to read: the data endpoints read a sqlite:, postgres: or clickhouse: "
            "output");
        return NULL;
    }
    int64_t now = bp_api_mono_ms();
    if (now < w->retry_open_ms) {
        bp_api_error(resp, 503, "%s", w->open_error);
        return NULL;
    }
    bp_error err = {0};
    if (bp_sink_reader_open(c->cfg->read_url, c->cfg->settings, &w->reader, &err) != 0) {
        snprintf(w->open_error, sizeof(w->open_error), "%s", err.msg);
        w->retry_open_ms = now + REOPEN_MS;
        bp_api_error(resp, 503, "%s", err.msg);
        return NULL;
    }
    return w->reader;
}

/* ---- reading rows into the answer ----------------------------------------------------------- */

typedef struct collect {
    bp_jsonw *w;
    bp_table table;
    size_t limit, rows;
    bool more;
    uint64_t last_number, last_index;
} collect;

static uint64_t cell_u64(const bp_read_cell *c)
{
    return c->s ? strtoull(c->s, NULL, 10) : 0;
}

static int collect_row(void *ctx, const bp_read_cell *cells, size_t n)
{
    collect *c = ctx;
    if (c->limit && c->rows == c->limit) {
        c->more = true;
        return STOP_READ;
    }
    bp_api_row_json(c->w, c->table, cells, n);
    bool blocks = c->table == BP_TABLE_BLOCKS;
    c->last_number = cell_u64(bp_api_cell(c->table, cells, n, blocks ? "number" : "block_number"));
    if (!blocks)
        c->last_index = cell_u64(
            bp_api_cell(c->table, cells, n,
                        c->table == BP_TABLE_TRANSACTIONS ? "transaction_index" : "log_index"));
    c->rows++;
    return c->w->rc ? BP_ENOMEM : 0;
}

/* Runs q and writes its rows as a JSON array value. 0, or the read's error. */
static int read_rows(bp_sink_reader *r, const bp_read_query *q, bp_jsonw *w, collect *c,
                     bp_error *err)
{
    *c = (collect){.w = w, .table = q->table, .limit = q->limit};
    bp_read_query qq = *q;
    if (qq.limit)
        qq.limit++; /* one more row says whether there is a next page */
    bp_jsonw_begin_array(w);
    int rc = bp_sink_read(r, &qq, collect_row, c, err);
    bp_jsonw_end_array(w);
    if (rc == STOP_READ)
        rc = 0;
    if (rc == BP_ENOMEM)
        bp_error_set(err, BP_ENOMEM, "answer too large");
    return rc;
}

/* {"data": [...], "count": n, "next_cursor": "..." | null} */
static void list_answer(bp_api_response *resp, bp_sink_reader *r, const bp_read_query *q)
{
    bp_jsonw w;
    bp_error err = {0};
    collect c;
    bp_jsonw_init(&w, &resp->body, BP_JSONW_ESC_U);
    bp_jsonw_begin_object(&w);
    bp_jsonw_key(&w, "data");
    int rc = read_rows(r, q, &w, &c, &err);
    if (rc != 0) {
        bp_api_from_error(resp, &err);
        return;
    }
    bp_jsonw_key(&w, "count");
    bp_jsonw_u64(&w, c.rows);
    bp_jsonw_key(&w, "next_cursor");
    if (c.more) {
        char cur[48];
        if (q->table == BP_TABLE_BLOCKS)
            snprintf(cur, sizeof(cur), "%" PRIu64, c.last_number);
        else
            snprintf(cur, sizeof(cur), "%" PRIu64 ":%" PRIu64, c.last_number, c.last_index);
        bp_jsonw_str(&w, cur);
    } else {
        bp_jsonw_null(&w);
    }
    bp_jsonw_end_object(&w);
    bp_api_finish(resp, &w);
}

void bp_api_list(bp_api_ctx *c, bp_api_worker *wk, const bp_api_request *req, bp_api_response *resp,
                 int rc, const bp_error *err, bp_read_query *q, bp_api_list_answer *answer)
{
    if (rc != 0) {
        bp_api_from_error(resp, err);
        return;
    }
    bp_sink_reader *r = bp_api_reader(c, wk, resp);
    if (!r)
        return;
    char chain[128] = "";
    q->chain = bp_api_chain(c, wk, req, chain, sizeof(chain));
    answer(resp, r, q);
    q->chain = NULL; /* chain[] ends here */
}

/* ---- parameters shared by the lists --------------------------------------------------------- */

int bp_api_list_range(const bp_api_request *req, bp_read_query *q, bp_error *err)
{
    uint64_t v;
    bool set;
    const char *order;
    int rc = bp_api_param_u64(req, "limit", 1, BP_API_LIMIT_MAX, &set, &v, err);
    q->limit = set ? (size_t)v : BP_API_LIMIT_DEFAULT;
    if (rc == 0)
        rc = bp_api_param_enum(req, "order", "desc|asc", &set, &order, err);
    q->ascending = rc == 0 && set && strcmp(order, "asc") == 0;
    static const char *const lo[] = {"from_block", "from"}, *const hi[] = {"to_block", "to"};
    const char *lo_name = NULL, *hi_name = NULL; /* as the request spelt them */
    for (int i = 0; i < 2 && rc == 0; i++) {
        rc = bp_api_param_u64(req, lo[i], 0, INT64_MAX, &set, &v, err);
        if (rc == 0 && set)
            q->has_min = true, q->min = v, lo_name = lo[i];
        if (rc == 0)
            rc = bp_api_param_u64(req, hi[i], 0, INT64_MAX, &set, &v, err);
        if (rc == 0 && set)
            q->has_max = true, q->max = v, hi_name = hi[i];
    }
    /* an empty range is a mistake, as /api/analytics says, not an empty answer */
    if (rc == 0 && lo_name && hi_name && q->min > q->max)
        rc = bp_error_set(err, BP_EINVAL,
                          "%s: '%" PRIu64 "' is not valid: expected at most %s (%" PRIu64 ")",
                          lo_name, q->min, hi_name, q->max);
    if (rc == 0)
        rc = bp_api_param_u64(req, "block", 0, INT64_MAX, &set, &v, err);
    if (rc == 0 && set)
        q->has_min = q->has_max = true, q->min = q->max = v;
    return rc;
}

/* limit, cursor, order and the block range (bp_api_list_range; the handler's known names
 * say which of from / to and block it takes). */
static int list_params(const bp_api_request *req, bp_read_query *q, bp_error *err)
{
    int rc = bp_api_list_range(req, q, err);
    const char *cur = bp_api_param_get(req, "cursor");
    if (rc == 0 && cur) {
        char a[24] = "", b[24] = "";
        const char *colon = strchr(cur, ':');
        bool two = q->table != BP_TABLE_BLOCKS;
        size_t na = colon ? (size_t)(colon - cur) : strlen(cur);
        if (na < sizeof(a))
            memcpy(a, cur, na), a[na] = '\0';
        if (colon && strlen(colon + 1) < sizeof(b))
            strcpy(b, colon + 1);
        if (!bp_api_u64_ok(a, &q->after_number) || (two != (colon != NULL)) ||
            (two && !bp_api_u64_ok(b, &q->after_index))) {
            char shown[300];
            bp_api_printable(cur, shown, sizeof(shown));
            rc = bp_error_set(err, BP_EINVAL,
                              "cursor: '%s' is not valid: expected the next_cursor of a previous "
                              "answer",
                              shown);
        }
        q->has_after = rc == 0;
    }
    return rc;
}

static void blocks(bp_api_ctx *c, bp_api_worker *wk, const bp_api_request *req,
                   bp_api_response *resp)
{
    static const char *const known[] = {"limit", "cursor",     "order",    "chain", "from",
                                        "to",    "from_block", "to_block", "block", NULL};
    bp_read_query q = {.table = BP_TABLE_BLOCKS};
    bp_error err = {0};
    int rc = bp_api_params_known(req, known, &err);
    if (rc == 0)
        rc = list_params(req, &q, &err);
    bp_api_list(c, wk, req, resp, rc, &err, &q, list_answer);
}

static void transactions(bp_api_ctx *c, bp_api_worker *wk, const bp_api_request *req,
                         bp_api_response *resp)
{
    static const char *const known[] = {"limit",    "cursor", "order",   "chain",  "from_block",
                                        "to_block", "block",  "address", "source", NULL};
    bp_read_query q = {.table = BP_TABLE_TRANSACTIONS};
    char address[43];
    const char *source;
    bool set;
    bp_error err = {0};
    int rc = bp_api_params_known(req, known, &err);
    if (rc == 0)
        rc = list_params(req, &q, &err);
    if (rc == 0)
        rc = bp_api_param_hex(req, "address", 20, &set, address, &err);
    q.address = rc == 0 && set ? address : NULL;
    if (rc == 0) /* the indexed tables are the one source there is */
        rc = bp_api_param_enum(req, "source", "all|db", &set, &source, &err);
    bp_api_list(c, wk, req, resp, rc, &err, &q, list_answer);
}

static void logs(bp_api_ctx *c, bp_api_worker *wk, const bp_api_request *req, bp_api_response *resp)
{
    static const char *const known[] = {"limit",  "cursor",      "order",    "chain", "from",
                                        "to",     "from_block",  "to_block", "block", "address",
                                        "topic0", "transaction", NULL};
    bp_read_query q = {.table = BP_TABLE_LOGS};
    char address[43], topic0[67], tx[67];
    bool set;
    bp_error err = {0};
    int rc = bp_api_params_known(req, known, &err);
    if (rc == 0)
        rc = list_params(req, &q, &err);
    if (rc == 0)
        rc = bp_api_param_hex(req, "address", 20, &set, address, &err);
    q.address = rc == 0 && set ? address : NULL;
    if (rc == 0)
        rc = bp_api_param_hex(req, "topic0", 32, &set, topic0, &err);
    q.topic0 = rc == 0 && set ? topic0 : NULL;
    if (rc == 0)
        rc = bp_api_param_hex(req, "transaction", 32, &set, tx, &err);
    q.tx_hash = rc == 0 && set ? tx : NULL;
    bp_api_list(c, wk, req, resp, rc, &err, &q, list_answer);
}

/* ---- one block, one transaction ---------------------------------------------------------------
 */

typedef struct one {
    bp_jsonw *w;
    bp_table table;
    bool found;
    uint64_t number; /* transactions: its block, for its logs */
} one;

static int one_row(void *ctx, const bp_read_cell *cells, size_t n)
{
    one *o = ctx;
    o->found = true;
    bp_api_row_members(o->w, o->table, cells, n);
    if (o->table == BP_TABLE_TRANSACTIONS)
        o->number = cell_u64(bp_api_cell(o->table, cells, n, "block_number"));
    return STOP_READ;
}

/* ---- /api/blocks/latest without a query while nothing was committed ---- */

void bp_api_latest_init(bp_api_latest *l)
{
    memset(l, 0, sizeof(*l));
    pthread_mutex_init(&l->lock, NULL);
    bp_buf_init(&l->body, BP_API_BODY_MAX);
}

void bp_api_latest_release(bp_api_latest *l)
{
    pthread_mutex_destroy(&l->lock);
    bp_buf_release(&l->body);
}

/* With a pipeline the push hub counts its commits. */
static bool commits_known(const bp_api_ctx *c)
{
    return c->cfg->stats && c->cfg->push && !c->cfg->serving;
}

/* The commits so far, or 0 serving without a pipeline (then the TTL decides). */
static uint64_t commits(const bp_api_ctx *c)
{
    return commits_known(c) ? bp_push_commits(c->cfg->push) : 0;
}

static bool latest_fresh(const bp_api_ctx *c, const bp_api_latest *l, uint64_t now_commits)
{
    if (!l->valid || l->commits != now_commits)
        return false;
    return commits_known(c) || bp_api_mono_ms() - l->stored_ms < BP_API_LATEST_TTL_MS;
}

/* Copies the kept answer for chain into resp: true when there was a fresh one. */
static bool latest_get(bp_api_ctx *c, const char *chain, bp_api_response *resp)
{
    bp_api_latest *l = &c->latest;
    bool hit = false;
    uint64_t now = commits(c);
    pthread_mutex_lock(&l->lock);
    if (latest_fresh(c, l, now) && strcmp(l->chain, chain ? chain : "") == 0)
        hit = bp_buf_append(&resp->body, l->body.data, l->body.len) == 0;
    pthread_mutex_unlock(&l->lock);
    if (hit)
        resp->status = 200;
    return hit;
}

/* Keeps the answer read while the commits were still `before` (a commit since: not kept). */
static void latest_put(bp_api_ctx *c, const char *chain, uint64_t before,
                       const bp_api_response *resp)
{
    bp_api_latest *l = &c->latest;
    if (resp->status != 200 || commits(c) != before ||
        strlen(chain ? chain : "") >= sizeof(l->chain))
        return;
    pthread_mutex_lock(&l->lock);
    bp_buf_reset(&l->body);
    l->valid = bp_buf_append(&l->body, resp->body.data, resp->body.len) == 0;
    l->commits = before;
    l->stored_ms = bp_api_mono_ms();
    snprintf(l->chain, sizeof(l->chain), "%s", chain ? chain : "");
    pthread_mutex_unlock(&l->lock);
}

static void block(bp_api_ctx *c, bp_api_worker *wk, const bp_api_request *req,
                  bp_api_response *resp)
{
    static const char *const known[] = {"chain", NULL};
    const char *id = req->path + strlen("/api/blocks/");
    char chain[128] = "", hash[67];
    bp_read_query q = {.table = BP_TABLE_BLOCKS, .limit = 1};
    bp_error err = {0};
    if (bp_api_params_known(req, known, &err) != 0) {
        bp_api_from_error(resp, &err);
        return;
    }
    if (bp_api_hex_ok(id, 32, hash)) {
        q.hash = hash;
    } else if (bp_api_u64_ok(id, &q.min) && q.min <= INT64_MAX) {
        q.has_min = q.has_max = true;
        q.max = q.min;
    } else if (strcmp(id, "latest") != 0) {
        char shown[300];
        bp_api_printable(id, shown, sizeof(shown));
        bp_api_error(resp, 400,
                     "block: '%s' is not valid: expected a number, a 0x hash of 64 hex digits or "
                     "latest",
                     shown);
        return;
    }
    bp_sink_reader *r = bp_api_reader(c, wk, resp);
    if (!r)
        return;
    q.chain = bp_api_chain(c, wk, req, chain, sizeof(chain));
    bool latest = !q.hash && !q.has_min;
    uint64_t before = latest ? commits(c) : 0;
    if (latest && latest_get(c, q.chain, resp))
        return;
    bp_jsonw w;
    bp_jsonw_init(&w, &resp->body, BP_JSONW_ESC_U);
    bp_jsonw_begin_object(&w);
    bp_jsonw_key(&w, "data");
    bp_jsonw_begin_object(&w);
    one o = {.w = &w, .table = BP_TABLE_BLOCKS};
    int rc = bp_sink_read(r, &q, one_row, &o, &err);
    bp_jsonw_end_object(&w);
    bp_jsonw_end_object(&w);
    if (rc != 0 && rc != STOP_READ)
        bp_api_from_error(resp, &err);
    else if (!o.found)
        bp_api_error(resp, 404, "block %s not found", id);
    else
        resp->status = bp_jsonw_finish(&w) == 0 ? 200 : 500;
    if (latest)
        latest_put(c, q.chain, before, resp);
}

static void transaction(bp_api_ctx *c, bp_api_worker *wk, const bp_api_request *req,
                        bp_api_response *resp)
{
    static const char *const known[] = {"chain", NULL};
    const char *id = req->path + strlen("/api/transactions/");
    char chain[128] = "", hash[67];
    bp_error err = {0};
    if (bp_api_params_known(req, known, &err) != 0) {
        bp_api_from_error(resp, &err);
        return;
    }
    if (!bp_api_hex_ok(id, 32, hash)) {
        char shown[300];
        bp_api_printable(id, shown, sizeof(shown));
        bp_api_error(resp, 400, "transaction: '%s' is not valid: expected 0x and 64 hex digits",
                     shown);
        return;
    }
    bp_sink_reader *r = bp_api_reader(c, wk, resp);
    if (!r)
        return;
    bp_read_query q = {.table = BP_TABLE_TRANSACTIONS, .hash = hash, .limit = 1};
    q.chain = bp_api_chain(c, wk, req, chain, sizeof(chain));
    bp_jsonw w;
    collect logs;
    bp_jsonw_init(&w, &resp->body, BP_JSONW_ESC_U);
    bp_jsonw_begin_object(&w);
    bp_jsonw_key(&w, "data");
    bp_jsonw_begin_object(&w);
    one o = {.w = &w, .table = BP_TABLE_TRANSACTIONS};
    int rc = bp_sink_read(r, &q, one_row, &o, &err);
    if ((rc == 0 || rc == STOP_READ) && o.found) {
        /* Its logs: the block's, by the primary key, with this transaction's hash. */
        bp_read_query lq = {.table = BP_TABLE_LOGS,
                            .chain = q.chain,
                            .has_min = true,
                            .has_max = true,
                            .min = o.number,
                            .max = o.number,
                            .tx_hash = hash,
                            .ascending = true};
        bp_jsonw_key(&w, "logs");
        rc = read_rows(r, &lq, &w, &logs, &err);
    }
    bp_jsonw_end_object(&w);
    bp_jsonw_end_object(&w);
    if (rc != 0 && rc != STOP_READ)
        bp_api_from_error(resp, &err);
    else if (!o.found)
        bp_api_error(resp, 404, "transaction %s not found", hash);
    else
        resp->status = bp_jsonw_finish(&w) == 0 ? 200 : 500;
}

/* ---- /ready without a pipeline (serve): the database answers --------------------------------- */

static int any_row(void *ctx, const bp_read_cell *cells, size_t n)
{
    (void)cells;
    (void)n;
    *(bool *)ctx = true;
    return STOP_READ;
}

static void ready_db(bp_api_ctx *c, bp_api_worker *wk, bp_api_response *resp)
{
    bp_sink_reader *r = bp_api_reader(c, wk, resp);
    if (!r)
        return;
    bool found = false;
    bp_error err = {0};
    bp_read_query q = {.table = BP_TABLE_BLOCKS, .limit = 1};
    int rc = bp_sink_read(r, &q, any_row, &found, &err);
    if (rc != 0 && rc != STOP_READ) {
        bp_api_error(resp, 503, "not ready: %s", err.msg);
        return;
    }
    bp_jsonw w;
    bp_jsonw_init(&w, &resp->body, BP_JSONW_ESC_U);
    bp_jsonw_begin_object(&w);
    bp_jsonw_key(&w, "ready");
    bp_jsonw_bool(&w, true);
    bp_jsonw_key(&w, "pipeline");
    bp_jsonw_bool(&w, false);
    bp_jsonw_key(&w, "has_blocks");
    bp_jsonw_bool(&w, found);
    bp_jsonw_end_object(&w);
    resp->status = bp_jsonw_finish(&w) == 0 ? 200 : 500;
}

/* ---- dispatch ----------------------------------------------------------------------------------
 */

void bp_api_route(bp_api_ctx *c, bp_api_worker *w, const bp_api_request *req, bp_api_response *resp)
{
    resp->type = "application/json";
    enum bp_api_route_id route = bp_api_route_of(req->path);
    if (route == BP_ROUTE_PREDICTIONS) {
        bp_api_predictions(c, w, req, resp);
        return;
    }
    if (route == BP_ROUTE_STREAMING) { /* GET and POST */
        bp_api_streaming(c, w, req, resp);
        return;
    }
    if (route == BP_ROUTE_OTHER) { /* whatever the method: there is nothing at that path */
        char shown[300];
        bp_api_printable(req->path, shown, sizeof(shown));
        bp_api_error(resp, 404, "no such endpoint: %s", shown);
        return;
    }
    if (req->method != BP_API_GET && req->method != BP_API_HEAD) {
        bp_api_error(resp, 405, "%s takes GET only", req->path);
        snprintf(resp->headers, sizeof(resp->headers), "allow: GET, HEAD\r\n");
        return;
    }
    switch (route) {
    case BP_ROUTE_ANALYTICS:
        bp_api_analytics(c, w, req, resp);
        return;
    case BP_ROUTE_BLOCKS:
        blocks(c, w, req, resp);
        return;
    case BP_ROUTE_BLOCK:
        block(c, w, req, resp);
        return;
    case BP_ROUTE_TXS:
        transactions(c, w, req, resp);
        return;
    case BP_ROUTE_TX:
        transaction(c, w, req, resp);
        return;
    case BP_ROUTE_LOGS:
        logs(c, w, req, resp);
        return;
    case BP_ROUTE_ARCH_BLOCKS:
    case BP_ROUTE_ARCH_BLOCK:
    case BP_ROUTE_ARCH_TXS:
    case BP_ROUTE_ARCH_TX:
    case BP_ROUTE_ARCH_ACCOUNTS:
    case BP_ROUTE_ARCH_EVENTS:
        bp_api_arch(c, w, req, resp, route);
        return;
    case BP_ROUTE_READY:
        if (!c->cfg->stats || c->cfg->serving) {
            if (!bp_api_status_other_chain(c, req, resp))
                ready_db(c, w, resp);
            return;
        }
        bp_api_status(c, req, resp);
        return;
    default:
        bp_api_status(c, req, resp);
        return;
    }
}
