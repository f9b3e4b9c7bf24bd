/* streams.c - keyed streams (blockpipe/keyed.h) over REST, /api/v1/streaming/...:
 *   GET  pairs[?prefix=P]          the keys
 *   GET  {key}/latest              the newest entry (404 when the key has none)
 *   GET  {key}/history[?count=N]   the newest N entries, newest first
 *   POST {key}                     publishes the JSON body (needs the API token)
 * Each worker thread opens the store once (a bp_keyed is one thread's). The latest reads and
 * publications waiting together are answered together (bp_api_streaming_batch): submitted on
 * the worker's handle with the asynchronous calls and sent in one round, as the group commit
 * does for the calls of concurrent threads.
 * The streams push topic's follower (streams.h) is here too. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/clock.h"
#include "api/routes.h"
#include "api/streams.h"
#include "sink/keyed_internal.h"
#include "util/log.h"

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

/* The checks of every request: its operation (key into key), or NULL with the answer in resp. */
static const char *checked(bp_api_ctx *c, const bp_api_request *req, char *key, size_t cap,
                           bp_api_response *resp)
{
    static const char *const known_get[] = {"count", "prefix", NULL}, *const known_post[] = {NULL};
    bp_error err = {0};
    const char *op = operation(req->path, key, cap);
    bool post = strcmp(op, "publish") == 0;
    bool reading = req->method == BP_API_GET || req->method == BP_API_HEAD;
    if (post ? req->method != BP_API_POST : !reading) {
        bp_api_error(resp, 405, "%s takes %s only", req->path, post ? "POST" : "GET");
        snprintf(resp->headers, sizeof(resp->headers), "allow: %s\r\n",
                 post ? "POST" : "GET, HEAD");
        return NULL;
    }
    if (post && !c->cfg->token) {
        bp_api_error(resp, 403, "publishing needs the server to have an --api-token (a write)");
        return NULL;
    }
    if (bp_api_params_known(req, post ? known_post : known_get, &err) != 0) {
        bp_api_from_error(resp, &err);
        return NULL;
    }
    return op;
}

void bp_api_streaming(bp_api_ctx *c, bp_api_worker *wk, const bp_api_request *req,
                      bp_api_response *resp)
{
    char key[BP_API_PATH_MAX];
    const char *op = checked(c, req, key, sizeof(key), resp);
    bp_keyed *k = op ? store(c, wk, resp) : NULL;
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

/* ---- concurrent requests in one round: the asynchronous calls (blockpipe/keyed.h) ---- */

bool bp_api_streaming_batchable(const bp_api_request *req)
{
    char key[BP_API_PATH_MAX];
    if (bp_api_route_of(req->path) != BP_ROUTE_STREAMING)
        return false;
    const char *op = operation(req->path, key, sizeof(key));
    return strcmp(op, "latest") == 0 || strcmp(op, "publish") == 0;
}

typedef struct batched {
    bp_api_response *resp;
    bool publish, store_failed; /* store_failed: a store error (the handle is closed after) */
    char key[BP_API_PATH_MAX];
} batched;

/* An operation's outcome into its answer, as latest() and publish() make it. */
static void batched_done(void *ctx, int rc, bp_keyed_entry *e, const bp_error *err)
{
    batched *b = ctx;
    if (rc != 0) {
        bp_api_error(b->resp, err->code == BP_EINVAL ? 400 : 503, "%s", err->msg);
        b->store_failed = err->code != BP_EINVAL;
        return;
    }
    if (!e) {
        char shown[300];
        bp_api_printable(b->key, shown, sizeof(shown));
        bp_api_error(b->resp, 404, "stream '%s' has no entry", shown);
        return;
    }
    bp_keyed_entry copy = *e; /* entry_answer releases it: the value is taken from e */
    e->value = NULL;
    entry_answer(b->resp, b->key, &copy);
    if (b->publish && b->resp->status == 200)
        b->resp->status = 201;
}

/* Submits req's operation on k (the answer in its resp when it is refused at once). */
static void batched_submit(bp_keyed *k, const bp_api_request *req, batched *b)
{
    bp_error err = {0};
    int rc;
    if (b->publish) {
        char *value = strndup(req->body ? req->body : "", req->body_len);
        rc = value ? bp_keyed_publish_async(k, b->key, value, batched_done, b, &err)
                   : bp_error_set(&err, BP_ENOMEM, "out of memory");
        free(value);
    } else {
        rc = bp_keyed_latest_async(k, b->key, batched_done, b, &err);
    }
    if (rc != 0)
        bp_api_error(b->resp,
                     err.code == BP_EINVAL   ? 400
                     : err.code == BP_ENOMEM ? 500
                                             : 503,
                     "%s", err.msg);
}

void bp_api_streaming_batch(bp_api_ctx *c, bp_api_worker *wk, const bp_api_request *const *reqs,
                            bp_api_response *const *resps, size_t n)
{
    batched *bs = calloc(n, sizeof(*bs));
    bool store_failed = false;
    for (size_t i = 0; i < n; i++) {
        resps[i]->type = "application/json";
        if (!bs) {
            bp_api_error(resps[i], 500, "out of memory");
            continue;
        }
        bs[i].resp = resps[i];
        const char *op = checked(c, reqs[i], bs[i].key, sizeof(bs[i].key), resps[i]);
        bp_keyed *k = op ? store(c, wk, resps[i]) : NULL;
        if (!k)
            continue;
        bs[i].publish = strcmp(op, "publish") == 0;
        batched_submit(k, reqs[i], &bs[i]);
    }
    while (wk->keyed && bp_keyed_pending(wk->keyed) > 0)
        bp_keyed_poll(wk->keyed);
    for (size_t i = 0; bs && i < n; i++)
        store_failed |= bs[i].store_failed;
    if (store_failed) { /* a connection that failed is opened again by the next request */
        bp_keyed_close(wk->keyed);
        wk->keyed = NULL;
    }
    free(bs);
}

/* ---- the streams push topic: the store followed for the keys subscribers want ---- */

#define POLL_MS 100 /* SQLite: between two reads for other processes' entries; Redis: the wait */

struct bp_api_follower {
    char *store;
    bp_push_hub *hub;
    bp_keyed *k; /* the thread's */
    int64_t retry_ms;
    bp_buf json;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cv;
    bool stop, woken;
    atomic_bool active; /* some key is followed: a publication here wakes the thread */
};

static void wake(void *ctx)
{
    bp_api_follower *fw = ctx;
    pthread_mutex_lock(&fw->lock);
    fw->woken = true;
    pthread_cond_signal(&fw->cv);
    pthread_mutex_unlock(&fw->lock);
}

/* bp_keyed_watch: an entry published by this process. */
static void published(void *ctx, const char *key)
{
    (void)key;
    bp_api_follower *fw = ctx;
    if (atomic_load(&fw->active))
        wake(fw);
}

static const char *after(void *ctx, const char *key)
{
    bp_api_follower *fw = ctx;
    return bp_keyed_follow_after(fw->k, key);
}

/* {"topic":"streams","type":"entry","data":{"key","id","time_ms","value"}} to the hub. */
static int entry_out(void *ctx, const char *key, const bp_keyed_entry *e)
{
    bp_api_follower *fw = ctx;
    bp_jsonw w;
    bp_buf_reset(&fw->json);
    bp_jsonw_init(&w, &fw->json, BP_JSONW_ESC_U);
    bp_jsonw_begin_object(&w);
    bp_jsonw_key(&w, "topic");
    bp_jsonw_str(&w, "streams");
    bp_jsonw_key(&w, "type");
    bp_jsonw_str(&w, "entry");
    bp_jsonw_key(&w, "data");
    entry_json(&w, key, e);
    bp_jsonw_end_object(&w);
    if (bp_jsonw_finish(&w) == 0)
        bp_push_stream_entry(fw->hub, key, &fw->json);
    return 0;
}

/* One look: what the subscribers want, the subscriptions that can start, the new entries.
 * *waited: the store waited for entries (Redis); *more: read again at once. */
static int follow_round(bp_api_follower *fw, bool *waited, bool *more, bp_error *err)
{
    char **keys = NULL;
    size_t n = 0;
    bool all = false;
    *waited = *more = false;
    if (bp_push_stream_keys(fw->hub, &keys, &n, &all) != 0) {
        bp_keyed_keys_free(keys, n);
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    atomic_store(&fw->active, n || all);
    int rc = 0;
    if (bp_api_mono_ms() < fw->retry_ms || (!fw->k && !n && !all)) {
        bp_keyed_keys_free(keys, n);
        return 0;
    }
    if (!fw->k)
        rc = bp_keyed_open(fw->store, &fw->k, err);
    if (rc == 0)
        rc = bp_keyed_follow_set(fw->k, keys, n, all, err);
    bp_keyed_keys_free(keys, n);
    if (rc == 0 && (n || all)) {
        bp_push_stream_start(fw->hub, after, fw);
        rc = bp_keyed_follow_poll(fw->k, POLL_MS, entry_out, fw, more, err);
        *waited = rc == 0 && bp_keyed_follow_waits(fw->k);
    }
    /* The handle keeps its positions through a failure (a Redis store connects again by
     * itself): the subscriptions go on where they were, nothing is skipped. */
    if (rc != 0)
        fw->retry_ms = bp_api_mono_ms() + REOPEN_MS;
    return rc;
}

static void *follower_main(void *arg)
{
    bp_api_follower *fw = arg;
    bool waited = false, more = false;
    pthread_mutex_lock(&fw->lock);
    while (!fw->stop) {
        if (!fw->woken && !more && !waited) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += POLL_MS * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&fw->cv, &fw->lock, &until);
        }
        if (fw->stop)
            break;
        fw->woken = false;
        pthread_mutex_unlock(&fw->lock);
        bp_error err = {0};
        if (follow_round(fw, &waited, &more, &err) != 0)
            bp_warn("api streams push: %s (trying again in %d ms)", err.msg, REOPEN_MS);
        pthread_mutex_lock(&fw->lock);
    }
    pthread_mutex_unlock(&fw->lock);
    return NULL;
}

int bp_api_follower_start(const char *store, bp_push_hub *hub, bp_api_follower **out, bp_error *err)
{
    *out = NULL;
    bp_api_follower *fw = calloc(1, sizeof(*fw));
    if (!fw || !(fw->store = strdup(store))) {
        free(fw);
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    fw->hub = hub;
    bp_buf_init(&fw->json, 0);
    pthread_mutex_init(&fw->lock, NULL);
    pthread_cond_init(&fw->cv, NULL);
    if (pthread_create(&fw->thread, NULL, follower_main, fw) != 0) {
        pthread_mutex_destroy(&fw->lock);
        pthread_cond_destroy(&fw->cv);
        free(fw->store);
        free(fw);
        return bp_error_set(err, BP_ENOMEM, "cannot start the streams push thread");
    }
    bp_push_set_stream_wake(hub, wake, fw);
    if (bp_keyed_watch_add(published, fw) != 0)
        bp_warn("api streams push: too many watchers: this process's publications are seen "
                "every %d ms",
                POLL_MS);
    *out = fw;
    return 0;
}

void bp_api_follower_stop(bp_api_follower *fw)
{
    if (!fw)
        return;
    bp_keyed_watch_remove(published, fw);
    bp_push_set_stream_wake(fw->hub, NULL, NULL);
    pthread_mutex_lock(&fw->lock);
    fw->stop = true;
    pthread_cond_signal(&fw->cv);
    pthread_mutex_unlock(&fw->lock);
    pthread_join(fw->thread, NULL);
    bp_keyed_close(fw->k);
    bp_buf_release(&fw->json);
    pthread_mutex_destroy(&fw->lock);
    pthread_cond_destroy(&fw->cv);
    free(fw->store);
    free(fw);
}
