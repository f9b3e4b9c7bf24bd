/* streams.c - keyed streams (blockpipe/keyed.h) over REST, /api/v1/streaming/...:
 *   GET  pairs[?prefix=P]          the keys
 *   GET  {key}/latest              the newest entry (404 when the key has none)
 *   GET  {key}/history[?count=N]   the newest N entries, newest first
 *   POST {key}                     publishes the JSON body (needs the API token)
 * Each worker thread opens the store once (a bp_keyed is one thread's). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/clock.h"
#include "api/routes.h"

#define PREFIX "/api/v1/streaming/"
#define HISTORY_DEFAULT 10
#define REOPEN_MS 1000

static bp_keyed *store(bp_api_ctx *c, bp_api_worker *w, bp_api_response *resp)
{
    if (w->keyed)
        return w->keyed;
    if (!c->cfg->stream_store) {
        bp_api_error(resp, 503,
                     "no stream store: start with --stream-store URL, a redis:// or a sqlite: "
                     "output");
        return NULL;
    }
    int64_t now = bp_api_mono_ms();
    if (now < w->keyed_retry_ms) {
        bp_api_error(resp, 503, "%s", w->keyed_error);
        return NULL;
    }
    bp_error err = {0};
    if (bp_keyed_open(c->cfg->stream_store, &w->keyed, &err) != 0) {
        snprintf(w->keyed_error, sizeof(w->keyed_error), "%s", err.msg);
        w->keyed_retry_ms = now + REOPEN_MS;
        bp_api_error(resp, 503, "%s", err.msg);
        return NULL;
    }
    return w->keyed;
}

/* A store error: a bad key or value is the client's (400), the rest the store's (503); a
 * connection that failed is opened again by the next request. */
static void store_error(bp_api_worker *w, bp_api_response *resp, const bp_error *err)
{
    if (err->code == BP_EINVAL) {
        bp_api_error(resp, 400, "%s", err->msg);
        return;
    }
    bp_keyed_close(w->keyed);
    w->keyed = NULL;
    bp_api_error(resp, 503, "%s", err->msg);
}

/* {"key", "id", "time_ms", "value"}: as `blockpipe stream` prints an entry. */
static void entry_json(bp_jsonw *w, const char *key, const bp_keyed_entry *e)
{
    bp_jsonw_begin_object(w);
    bp_jsonw_key(w, "key");
    bp_jsonw_str(w, key);
    bp_jsonw_key(w, "id");
    bp_jsonw_str(w, e->id);
    bp_jsonw_key(w, "time_ms");
    bp_jsonw_i64(w, e->time_ms);
    bp_jsonw_key(w, "value");
    bp_jsonw_raw(w, e->value, strlen(e->value));
    bp_jsonw_end_object(w);
}

/* {"data": entry}; releases it. */
static void entry_answer(bp_api_response *resp, const char *key, bp_keyed_entry *e)
{
    bp_jsonw w;
    bp_jsonw_init(&w, &resp->body, BP_JSONW_ESC_U);
    bp_jsonw_begin_object(&w);
    bp_jsonw_key(&w, "data");
    entry_json(&w, key, e);
    bp_jsonw_end_object(&w);
    bp_keyed_entry_release(e);
    bp_api_finish(resp, &w);
}

static void pairs(bp_keyed *k, bp_api_worker *wk, const bp_api_request *req, bp_api_response *resp)
{
    char **keys = NULL;
    size_t n = 0;
    bp_error err = {0};
    const char *prefix = bp_api_param_get(req, "prefix");
    if (bp_keyed_keys(k, prefix ? prefix : "", &keys, &n, &err) != 0) {
        store_error(wk, resp, &err);
        return;
    }
    bp_jsonw w;
    bp_jsonw_init(&w, &resp->body, BP_JSONW_ESC_U);
    bp_jsonw_begin_object(&w);
    bp_jsonw_key(&w, "data");
    bp_jsonw_begin_array(&w);
    for (size_t i = 0; i < n; i++)
        bp_jsonw_str(&w, keys[i]);
    bp_jsonw_end_array(&w);
    bp_jsonw_key(&w, "count");
    bp_jsonw_u64(&w, n);
    bp_jsonw_end_object(&w);
    bp_keyed_keys_free(keys, n);
    bp_api_finish(resp, &w);
}

static void latest(bp_keyed *k, bp_api_worker *wk, const char *key, bp_api_response *resp)
{
    bp_keyed_entry e = {0};
    bool found = false;
    bp_error err = {0};
    if (bp_keyed_latest(k, key, &e, &found, &err) != 0) {
        store_error(wk, resp, &err);
        return;
    }
    if (!found) {
        char shown[300];
        bp_api_printable(key, shown, sizeof(shown));
        bp_api_error(resp, 404, "stream '%s' has no entry", shown);
        return;
    }
    entry_answer(resp, key, &e);
}

static void history(bp_keyed *k, bp_api_worker *wk, const char *key, const bp_api_request *req,
                    bp_api_response *resp)
{
    uint64_t count;
    bool set;
    size_t n = 0;
    bp_error err = {0};
    if (bp_api_param_u64(req, "count", 1, BP_API_LIMIT_MAX, &set, &count, &err) != 0) {
        bp_api_from_error(resp, &err);
        return;
    }
    count = set ? count : HISTORY_DEFAULT;
    bp_keyed_entry *list = calloc((size_t)count, sizeof(*list));
    if (!list) {
        bp_api_error(resp, 500, "out of memory");
        return;
    }
    if (bp_keyed_history(k, key, (size_t)count, list, &n, &err) != 0) {
        store_error(wk, resp, &err);
        free(list);
        return;
    }
    bp_jsonw w;
    bp_jsonw_init(&w, &resp->body, BP_JSONW_ESC_U);
    bp_jsonw_begin_object(&w);
    bp_jsonw_key(&w, "data");
    bp_jsonw_begin_array(&w);
    for (size_t i = 0; i < n; i++) {
        entry_json(&w, key, &list[i]);
        bp_keyed_entry_release(&list[i]);
    }
    free(list);
    bp_jsonw_end_array(&w);
    bp_jsonw_key(&w, "count");
    bp_jsonw_u64(&w, n);
    bp_jsonw_end_object(&w);
    bp_api_finish(resp, &w);
}

static void publish(bp_keyed *k, bp_api_worker *wk, const char *key, const bp_api_request *req,
                    bp_api_response *resp)
{
    bp_keyed_entry e = {0};
    bp_error err = {0};
    char *value = strndup(req->body ? req->body : "", req->body_len);
    if (!value) {
        bp_api_error(resp, 500, "out of memory");
        return;
    }
    int rc = bp_keyed_publish(k, key, value, &e, &err);
    free(value);
    if (rc != 0) {
        store_error(wk, resp, &err);
        return;
    }
    entry_answer(resp, key, &e);
    if (resp->status == 200)
        resp->status = 201;
}

/* The key and the operation of a path: "pairs", "latest", "history" or "publish" (no suffix);
 * key is "" for pairs. */
static const char *operation(const char *path, char *key, size_t cap)
{
    static const char *const ops[] = {"latest", "history"};
    const char *rest = path + strlen(PREFIX);
    size_t len = strlen(rest);
    if (strcmp(rest, "pairs") == 0) {
        key[0] = '\0';
        return "pairs";
    }
    const char *op = "publish";
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        size_t n = strlen(ops[i]);
        if (len > n + 1 && rest[len - n - 1] == '/' && strcmp(rest + len - n, ops[i]) == 0) {
            len -= n + 1;
            op = ops[i];
            break;
        }
    }
    snprintf(key, cap, "%.*s", (int)len, rest);
    return op;
}

void bp_api_streaming(bp_api_ctx *c, bp_api_worker *wk, const bp_api_request *req,
                      bp_api_response *resp)
{
    static const char *const known_get[] = {"count", "prefix", NULL}, *const known_post[] = {NULL};
    char key[BP_API_PATH_MAX];
    bp_error err = {0};
    const char *op = operation(req->path, key, sizeof(key));
    bool post = strcmp(op, "publish") == 0;
    bool reading = req->method == BP_API_GET || req->method == BP_API_HEAD;
    if (post ? req->method != BP_API_POST : !reading) {
        bp_api_error(resp, 405, "%s takes %s only", req->path, post ? "POST" : "GET");
        snprintf(resp->headers, sizeof(resp->headers), "allow: %s\r\n",
                 post ? "POST" : "GET, HEAD");
        return;
    }
    if (post && !c->cfg->token) {
        bp_api_error(resp, 403, "publishing needs the server to have an --api-token (a write)");
        return;
    }
    if (bp_api_params_known(req, post ? known_post : known_get, &err) != 0) {
        bp_api_from_error(resp, &err);
        return;
    }
    bp_keyed *k = store(c, wk, resp);
    if (!k)
        return;
    if (strcmp(op, "pairs") == 0)
        pairs(k, wk, req, resp);
    else if (strcmp(op, "latest") == 0)
        latest(k, wk, key, resp);
    else if (strcmp(op, "history") == 0)
        history(k, wk, key, req, resp);
    else
        publish(k, wk, key, req, resp);
}
