/* analytics.c - the derived tables over REST: /api/analytics (chain and top-contract metrics
 * of a grain) and POST /api/predictions (anomaly scores of given transactions). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "api/routes.h"
#include "api/rows.h"
#include "chain/json.h"
#include "blockpipe/derived.h"

#define STOP_READ 1
#define ANALYTICS_LIMIT_DEFAULT 60
#define TOP_DEFAULT 10
#define TOP_MAX 100
#define PREDICTIONS_MAX 1000

/* ---- /api/analytics ------------------------------------------------------------------- */

typedef struct windows {
    bp_jsonw *w;
    int dtable;
    size_t rows;
    uint64_t lo, hi; /* the window_start range of the rows seen */
} windows;

static int window_row(void *ctx, const bp_read_cell *cells, size_t n)
{
    windows *v = ctx;
    const bp_read_cell *ws = bp_api_dcell(v->dtable, cells, n, "window_start");
    uint64_t t = ws->s ? strtoull(ws->s, NULL, 10) : 0;
    v->lo = v->rows == 0 || t < v->lo ? t : v->lo;
    v->hi = v->rows == 0 || t > v->hi ? t : v->hi;
    v->rows++;
    bp_jsonw_begin_object(v->w);
    bp_api_drow_members(v->w, v->dtable, cells, n);
    bp_jsonw_end_object(v->w);
    return v->w->rc ? BP_ENOMEM : 0;
}

/* Reads q's rows as a JSON array value into w. */
static int window_rows(bp_sink_reader *r, const bp_read_query *q, bp_jsonw *w, windows *v,
                       bp_error *err)
{
    *v = (windows){.w = w, .dtable = q->dtable};
    bp_jsonw_begin_array(w);
    int rc = bp_sink_read(r, q, window_row, v, err);
    bp_jsonw_end_array(w);
    if (rc == BP_ENOMEM)
        bp_error_set(err, BP_ENOMEM, "answer too large");
    return rc;
}

static int analytics_params(const bp_api_request *req, int *grain, bp_read_query *q, size_t *top,
                            bp_error *err)
{
    static const char *const known[] = {"grain", "from", "to",    "chain",
                                        "limit", "top",  "order", NULL};
    const char *g, *order;
    bool set;
    uint64_t v;
    int rc = bp_api_params_known(req, known, err);
    if (rc == 0)
        rc = bp_api_param_enum(req, "grain", "1m|1h|1d", &set, &g, err);
    *grain = rc == 0 && set ? (g[1] == 'm'   ? BP_GRAIN_1M
                               : g[1] == 'h' ? BP_GRAIN_1H
                                             : BP_GRAIN_1D)
                            : BP_GRAIN_1M;
    if (rc == 0)
        rc = bp_api_param_u64(req, "from", 0, INT64_MAX, &q->has_min, &q->min, err);
    if (rc == 0)
        rc = bp_api_param_u64(req, "to", 0, INT64_MAX, &q->has_max, &q->max, err);
    if (rc == 0 && q->has_min && q->has_max && q->min > q->max)
        rc = bp_error_set(err, BP_EINVAL,
                          "from: '%" PRIu64 "' is not valid: expected at most to (%" PRIu64 ")",
                          q->min, q->max);
    if (rc == 0)
        rc = bp_api_param_u64(req, "limit", 1, BP_API_LIMIT_MAX, &set, &v, err);
    q->limit = rc == 0 && set ? (size_t)v : ANALYTICS_LIMIT_DEFAULT;
    if (rc == 0)
        rc = bp_api_param_u64(req, "top", 0, TOP_MAX, &set, &v, err);
    *top = rc == 0 && set ? (size_t)v : TOP_DEFAULT;
    if (rc == 0)
        rc = bp_api_param_enum(req, "order", "desc|asc", &set, &order, err);
    q->ascending = rc == 0 && set && strcmp(order, "asc") == 0;
    return rc;
}

/* {"data": {"grain", "chain", "chain_metrics": [windows], "top_contracts": [contract windows]}}:
 * the windows of the range (newest first, at most limit), and the contract windows of the
 * windows answered with the most transactions (at most top). */
void bp_api_analytics(bp_api_ctx *c, bp_api_worker *wk, const bp_api_request *req,
                      bp_api_response *resp)
{
    bp_read_query q = {0};
    size_t top;
    int grain;
    char chain[128] = "";
    bp_error err = {0};
    if (analytics_params(req, &grain, &q, &top, &err) != 0) {
        bp_api_from_error(resp, &err);
        return;
    }
    bp_sink_reader *r = bp_api_reader(c, wk, resp);
    if (!r)
        return;
    q.chain = bp_api_chain(c, wk, req, chain, sizeof(chain));
    q.dtable = (int)(BP_DT_CHAIN_1M + grain) + 1;
    bp_jsonw w;
    windows v;
    bp_jsonw_init(&w, &resp->body, BP_JSONW_ESC_U);
    bp_jsonw_begin_object(&w);
    bp_jsonw_key(&w, "data");
    bp_jsonw_begin_object(&w);
    bp_jsonw_key(&w, "grain");
    bp_jsonw_str(&w, bp_grain_names[grain]);
    bp_jsonw_key(&w, "chain");
    bp_jsonw_str(&w, q.chain);
    bp_jsonw_key(&w, "chain_metrics");
    int rc = window_rows(r, &q, &w, &v, &err);
    bp_jsonw_key(&w, "top_contracts");
    if (rc == 0 && v.rows && top) {
        bp_read_query k = {.dtable = (int)(BP_DT_CONTRACT_1M + grain) + 1,
                           .chain = q.chain,
                           .has_min = true,
                           .has_max = true,
                           .min = v.lo,
                           .max = v.hi,
                           .by_txcount = true,
                           .limit = top};
        rc = window_rows(r, &k, &w, &v, &err);
    } else {
        bp_jsonw_begin_array(&w);
        bp_jsonw_end_array(&w);
    }
    bp_jsonw_end_object(&w);
    bp_jsonw_end_object(&w);
    if (rc != 0)
        bp_api_from_error(resp, &err);
    else
        bp_api_finish(resp, &w);
}

/* ---- POST /api/predictions ------------------------------------------------------------------ */

typedef struct found {
    bp_jsonw *w;
    bool found;
    uint64_t number;
} found;

static int tx_row(void *ctx, const bp_read_cell *cells, size_t n)
{
    found *f = ctx;
    const bp_read_cell *b = bp_api_cell(BP_TABLE_TRANSACTIONS, cells, n, "block_number");
    f->found = b->s != NULL;
    f->number = b->s ? strtoull(b->s, NULL, 10) : 0;
    return STOP_READ;
}

static int prediction_row(void *ctx, const bp_read_cell *cells, size_t n)
{
    found *f = ctx;
    f->found = true;
    bp_jsonw_begin_object(f->w);
    bp_api_drow_members(f->w, BP_DT_ML_PREDICTIONS + 1, cells, n);
    bp_jsonw_key(f->w, "found");
    bp_jsonw_bool(f->w, true);
    bp_jsonw_end_object(f->w);
    return STOP_READ;
}

/* The score of one transaction: its block from the transactions table (the hash is indexed
 * there), then its row of ml_predictions by that block (the key). */
static int predict_one(bp_sink_reader *r, const char *chain, const char *hash, bp_jsonw *w,
                       bp_error *err)
{
    found f = {.w = w};
    bp_read_query tq = {.table = BP_TABLE_TRANSACTIONS, .chain = chain, .hash = hash, .limit = 1};
    int rc = bp_sink_read(r, &tq, tx_row, &f, err);
    if (rc == STOP_READ && f.found) {
        bp_read_query pq = {.dtable = BP_DT_ML_PREDICTIONS + 1,
                            .chain = chain,
                            .has_min = true,
                            .has_max = true,
                            .min = f.number,
                            .max = f.number,
                            .tx_hash = hash,
                            .limit = 1};
        f.found = false;
        rc = bp_sink_read(r, &pq, prediction_row, &f, err);
    }
    if (rc != 0 && rc != STOP_READ)
        return rc;
    if (!f.found) {
        bp_jsonw_begin_object(w);
        bp_jsonw_key(w, "transaction_hash");
        bp_jsonw_str(w, hash);
        bp_jsonw_key(w, "fraud_score");
        bp_jsonw_null(w);
        bp_jsonw_key(w, "found");
        bp_jsonw_bool(w, false);
        bp_jsonw_end_object(w);
    }
    return w->rc ? bp_error_set(err, BP_ENOMEM, "answer too large") : 0;
}

/* The hashes of the body: a JSON array of them, or {"transaction_hashes": [...]}. *list is the
 * array inside the parsed tree (owned by *tree). */
static int body_hashes(const bp_api_request *req, yajl_val *tree, yajl_val *list, bp_error *err)
{
    char msg[160] = "";
    const char *path[] = {"transaction_hashes", NULL};
    /* bp_json, not yajl_tree: a body of 500,000 arrays in one another recursed yajl_tree_free
     * off the worker's stack; bp_json refuses nesting past its bound */
    *tree = bp_json_parse(req->body ? req->body : "", req->body_len, msg, sizeof(msg));
    if (!*tree)
        return bp_error_set(err, BP_EINVAL, "the body is not JSON: %.*s", (int)strcspn(msg, "\n"),
                            msg);
    *list = YAJL_IS_OBJECT(*tree) ? yajl_tree_get(*tree, path, yajl_t_array) : *tree;
    if (!YAJL_IS_ARRAY(*list))
        return bp_error_set(err, BP_EINVAL,
                            "the body must be {\"transaction_hashes\": [\"0x...\", ...]} or an "
                            "array of transaction hashes");
    size_t n = (*list)->u.array.len;
    if (n == 0 || n > PREDICTIONS_MAX)
        return bp_error_set(err, BP_EINVAL,
                            "transaction_hashes: %zu given: expected 1 to %d hashes", n,
                            PREDICTIONS_MAX);
    for (size_t i = 0; i < n; i++) {
        yajl_val h = (*list)->u.array.values[i];
        char hash[67], shown[300];
        if (!YAJL_IS_STRING(h) || !bp_api_hex_ok(h->u.string, 32, hash)) {
            bp_api_printable(YAJL_IS_STRING(h) ? h->u.string : "(not a string)", shown,
                             sizeof(shown));
            return bp_error_set(err, BP_EINVAL,
                                "transaction_hashes[%zu]: '%s' is not valid: expected 0x and 64 "
                                "hex digits",
                                i, shown);
        }
    }
    return 0;
}

/* {"data": [one object per hash, in the order given]}: the ml_predictions row and
 * "found": true, or {"transaction_hash", "fraud_score": null, "found": false} when the
 * transaction is unknown or has no score (yet). */
void bp_api_predictions(bp_api_ctx *c, bp_api_worker *wk, const bp_api_request *req,
                        bp_api_response *resp)
{
    static const char *const known[] = {"chain", NULL};
    yajl_val tree = NULL, list = NULL;
    char chain[128] = "";
    bp_error err = {0};
    if (req->method != BP_API_POST) {
        bp_api_error(resp, 405, "%s takes POST only (a JSON body of transaction hashes)",
                     req->path);
        snprintf(resp->headers, sizeof(resp->headers), "allow: POST\r\n");
        return;
    }
    int rc = bp_api_params_known(req, known, &err);
    if (rc == 0)
        rc = body_hashes(req, &tree, &list, &err);
    bp_sink_reader *r = rc == 0 ? bp_api_reader(c, wk, resp) : NULL;
    if (rc != 0 || !r) {
        if (rc != 0)
            bp_api_from_error(resp, &err);
        bp_json_free(tree);
        return;
    }
    const char *ch = bp_api_chain(c, wk, req, chain, sizeof(chain));
    bp_jsonw w;
    bp_jsonw_init(&w, &resp->body, BP_JSONW_ESC_U);
    bp_jsonw_begin_object(&w);
    bp_jsonw_key(&w, "data");
    bp_jsonw_begin_array(&w);
    for (size_t i = 0; i < list->u.array.len && rc == 0; i++) {
        char hash[67];
        bp_api_hex_ok(list->u.array.values[i]->u.string, 32, hash);
        rc = predict_one(r, ch, hash, &w, &err);
    }
    bp_jsonw_end_array(&w);
    bp_jsonw_key(&w, "count");
    bp_jsonw_u64(&w, list->u.array.len);
    bp_jsonw_end_object(&w);
    bp_json_free(tree);
    if (rc != 0)
        bp_api_from_error(resp, &err);
    else
        bp_api_finish(resp, &w);
}
