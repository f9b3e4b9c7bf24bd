/* server.c - the API's listener on libwebsockets: HTTP (REST, status, metrics), WebSocket and
 * Server-Sent Events on one port, one service thread for all socket I/O, REST answers made by
 * worker threads (see api.h). */
#include "api/clock.h"
#include "api/api.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include "api/push.h"
#include "api/request.h"
#include "api/routes.h"
#include "api/status.h"
#include "api/streams.h"
#include "util/log.h"

#define CHUNK (64u * 1024) /* bytes per write */
#define WS_RX_MAX 65536    /* a client's WebSocket message */
#define RL_SLOTS 4096      /* client addresses remembered by the rate limiter */
#define SSE_KEEPALIVE_S 15 /* an SSE comment line this often keeps proxies from closing */
#define HEADER_MAX 8192    /* request header bytes */
#define WS_CLOSE_BAD 4400  /* our close codes: 4000 + the HTTP status that would say it */
#define WS_CLOSE_AUTH 4401
#define WS_CLOSE_LIMIT 4429
#define WS_CLOSE_SLOW 4408
/* A push connection's kernel send buffer: fixed (no autotuning up to tcp_wmem's 4 MiB), so
 * what one client can hold is this plus its queue (--api-push-queue), whatever it reads. */
#define PUSH_SNDBUF (64 * 1024)
#define BATCH_MAX 64 /* keyed-stream requests a worker answers in one round */

enum conn_kind { C_NONE, C_HTTP, C_SSE, C_WS };

typedef struct conn conn;

/* A REST request on its way through a worker and back. */
typedef struct job {
    bp_api_request req;
    bp_api_response resp;
    enum bp_api_route_id route;
    int64_t started_us;
    conn *conn;     /* NULL once the connection is gone: the answer is dropped */
    bool ready;     /* answered (service thread only: set when collected, or made here) */
    bool submitted; /* handed to the workers (service thread only) */
    struct job *next;
} job;

/* Per connection (libwebsockets' per-session data, zeroed when it is bound). */
struct conn {
    struct lws *wsi;
    enum conn_kind kind;
    bool cleaned;
    char ip[64];
    job *job;         /* the request in flight or the answer being written */
    size_t sent;      /* body bytes of it written */
    bool head_sent;   /* its headers */
    char origin[256]; /* the allowed Origin to echo, "" for none */
    bp_buf body;      /* a POST body as it arrives */
    bool body_too_big;
    bool close_after;   /* the answer ends the connection (a body over the limit) */
    bool awaiting_body; /* a POST whose body is being read (then it goes to a worker) */
    enum bp_api_method method;
    char path[BP_API_PATH_MAX];
    bp_push_client *client; /* SSE and WebSocket */
    bp_buf rx;              /* a WebSocket message being assembled */
    bp_buf reply;           /* WebSocket answers to the client's own messages */
    int close_code;         /* WebSocket: close with this at the next writable */
    char close_reason[120];
    bool keepalive_due; /* SSE */
    bp_push_msg *held;  /* taken from the queue, not written yet */
    conn *next, *prev;  /* the push connections (for keep-alives and stop) */
};

typedef struct bucket {
    char ip[64];
    double tokens;
    int64_t at_us;
} bucket;

struct bp_api {
    bp_api_config cfg;
    bp_api_ctx ctx;
    char *listen, *read_url, *stream_store, *chain, *token, *cors, *tls_cert, *tls_key;
    bp_api_follower *follower; /* the streams push topic's, NULL: none */
    struct lws_context *lws;
    struct lws_vhost *vhost;
    struct lws_protocols protocols[2];
    lws_retry_bo_t retry;
    lws_sorted_usec_list_t keepalive_sul;
    int port;
    pthread_t service;
    bool service_started;
    atomic_bool stop;
    atomic_bool closing;  /* stopping: push clients get close 1001 first */
    atomic_int push_open; /* push connections (read by the stopping thread) */

    pthread_mutex_t qlock;
    pthread_cond_t qcv;
    job *pending, *pending_tail, *done;
    bool workers_stop;
    pthread_t *workers;
    int nworkers;

    bucket buckets[RL_SLOTS]; /* the service thread's */
    conn *push_conns;
    int nconns;
    unsigned char wbuf[LWS_PRE + CHUNK + 4096]; /* the service thread's write buffer */
};

static bp_api *api_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

/* ---- rate limit, auth, CORS (service thread) ----------------------------------------------- */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Takes a token from the client's bucket: 0 when it had one, else the seconds until it will. */
static int rate_limited(bp_api *a, const char *ip)
{
    if (a->cfg.rate <= 0)
        return 0;
    double burst = a->cfg.burst > 0 ? a->cfg.burst : 2 * a->cfg.rate;
    bucket *b = &a->buckets[hash_str(ip) % RL_SLOTS];
    int64_t now = bp_api_clock_us(CLOCK_MONOTONIC);
    if (strcmp(b->ip, ip) != 0) { /* a new address (or a collision): a full bucket */
        snprintf(b->ip, sizeof(b->ip), "%s", ip);
        b->tokens = burst;
        b->at_us = now;
    }
    b->tokens += (double)(now - b->at_us) / 1e6 * a->cfg.rate;
    b->tokens = b->tokens > burst ? burst : b->tokens;
    b->at_us = now;
    if (b->tokens >= 1) {
        b->tokens -= 1;
        return 0;
    }
    int wait = (int)((1 - b->tokens) / a->cfg.rate + 0.999);
    return wait < 1 ? 1 : wait;
}

static bool same_secret(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = la != lb;
    for (size_t i = 0; i < la; i++)
        d |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return d == 0;
}

static int header(struct lws *wsi, enum lws_token_indexes t, char *out, int cap)
{
    out[0] = '\0';
    if (lws_hdr_total_length(wsi, t) <= 0)
        return 0;
    return lws_hdr_copy(wsi, out, cap, t);
}

/* The token a request carries: "Authorization: Bearer X", or ?token=X (browsers cannot set
 * headers on EventSource and WebSocket). */
static bool authorized(bp_api *a, struct lws *wsi, const bp_api_request *req, bool write)
{
    if (!a->token || (!write && (!a->cfg.token_reads || strcmp(req->path, "/health") == 0)))
        return true; /* a liveness probe never needs the token */
    char auth[512];
    header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, auth, sizeof(auth));
    if (strncasecmp(auth, "Bearer ", 7) == 0 && same_secret(auth + 7, a->token))
        return true;
    const char *q = bp_api_param_get(req, "token");
    return q && same_secret(q, a->token);
}

/* The Origin to allow in the answer ("" for none): "*" allows every one. */
static void cors_origin(bp_api *a, struct lws *wsi, char *out, size_t cap)
{
    char origin[256];
    out[0] = '\0';
    if (!a->cors || header(wsi, WSI_TOKEN_ORIGIN, origin, sizeof(origin)) <= 0)
        return;
    for (const char *p = a->cors; *p;) {
        size_t n = strcspn(p, ",");
        while (n && p[n - 1] == ' ')
            n--;
        if ((n == 1 && *p == '*') || (n == strlen(origin) && strncmp(p, origin, n) == 0)) {
            snprintf(out, cap, "%s", origin);
            return;
        }
        p += strcspn(p, ",");
        p += *p == ',';
        while (*p == ' ')
            p++;
    }
}

/* ---- requests -------------------------------------------------------------------------------- */

static enum bp_api_method method_of(struct lws *wsi)
{
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI))
        return BP_API_GET;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI))
        return BP_API_POST;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_OPTIONS_URI))
        return BP_API_OPTIONS;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI))
        return BP_API_HEAD;
    return BP_API_OTHER;
}

/* The request line's parameters, as libwebsockets split and decoded them. */
static int read_params(struct lws *wsi, bp_api_request *req, bp_error *err)
{
    char frag[BP_API_STORE];
    for (int i = 0;; i++) {
        int n = lws_hdr_copy_fragment(wsi, frag, sizeof(frag), WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n < 0)
            return i == 0 || lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i) == 0
                       ? 0
                       : bp_error_set(err, BP_EINVAL, "query parameter %d too long", i + 1);
        int rc = bp_api_request_add(req, frag, (size_t)n, err);
        if (rc != 0)
            return rc;
    }
}

static job *job_new(conn *c, enum bp_api_method m, const char *path)
{
    job *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    bp_api_request_init(&j->req, m, path, strlen(path));
    bp_buf_init(&j->resp.body, BP_API_BODY_MAX);
    j->conn = c;
    j->started_us = bp_api_clock_us(CLOCK_MONOTONIC);
    j->route = bp_api_route_of(j->req.path);
    return j;
}

static void job_free(job *j)
{
    if (!j)
        return;
    bp_buf_release(&j->resp.body);
    free(j);
}

/* An answer made here (errors, preflights): written like a worker's. */
static int answer_now(bp_api *a, conn *c, job *j)
{
    (void)a;
    j->ready = true;
    c->job = j;
    c->sent = 0;
    c->head_sent = false;
    lws_callback_on_writable(c->wsi);
    return 0;
}

static int error_now(bp_api *a, conn *c, job *j, int status, const char *extra, const char *fmt,
                     const char *msg)
{
    bp_api_error(&j->resp, status, fmt, msg);
    /* A request with a body answered before its body was read: the connection ends with the
     * answer (the body must not be read as the next request). */
    if (c->method == BP_API_POST && !c->close_after) {
        c->close_after = true;
        extra = extra ? extra : "connection: close\r\n";
    }
    if (extra)
        snprintf(j->resp.headers, sizeof(j->resp.headers), "%s", extra);
    bp_api_count(&a->ctx, j->route, status);
    return answer_now(a, c, j);
}

static void submit(bp_api *a, job *j)
{
    j->submitted = true;
    pthread_mutex_lock(&a->qlock);
    if (a->pending_tail)
        a->pending_tail->next = j;
    else
        a->pending = j;
    a->pending_tail = j;
    pthread_cond_signal(&a->qcv);
    pthread_mutex_unlock(&a->qlock);
}

static void count_latency(bp_api *a, const job *j)
{
    int64_t us = bp_api_clock_us(CLOCK_MONOTONIC) - j->started_us;
    int k = 0;
    while (k < BP_STATS_LE_COUNT && (double)us > bp_stats_le_ms[k] * 1000.0)
        k++;
    atomic_fetch_add_explicit(&a->ctx.counters.latency_le[k], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&a->ctx.counters.latency_sum_us, (uint64_t)(us > 0 ? us : 0),
                              memory_order_relaxed);
}

/* The first pending job and, when it is a keyed stream's latest read or publication, the
 * other pending ones that are (up to BATCH_MAX, in queue order), unlinked into b[]; qlock
 * held. Returns how many. */
static size_t take_jobs(bp_api *a, job **b)
{
    size_t n = 0;
    bool batch = bp_api_streaming_batchable(&a->pending->req);
    job **prev = &a->pending, *last = NULL;
    for (job *j = a->pending; j && n < (batch ? BATCH_MAX : 1); j = *prev) {
        if (n > 0 && !bp_api_streaming_batchable(&j->req)) {
            last = j;
            prev = &j->next;
            continue;
        }
        *prev = j->next;
        j->next = NULL;
        b[n++] = j;
    }
    if (!*prev) /* looked at to the end: the last one kept is the tail */
        a->pending_tail = last;
    return n;
}

static void *worker_main(void *arg)
{
    bp_api *a = arg;
    bp_api_worker w = {0};
    job *b[BATCH_MAX];
    const bp_api_request *reqs[BATCH_MAX];
    bp_api_response *resps[BATCH_MAX];
    pthread_mutex_lock(&a->qlock);
    for (;;) {
        while (!a->pending && !a->workers_stop)
            pthread_cond_wait(&a->qcv, &a->qlock);
        if (a->workers_stop)
            break;
        size_t n = take_jobs(a, b);
        pthread_mutex_unlock(&a->qlock);
        for (size_t i = 0; i < n; i++) {
            reqs[i] = &b[i]->req;
            resps[i] = &b[i]->resp;
        }
        if (n > 1 || bp_api_streaming_batchable(reqs[0]))
            bp_api_streaming_batch(&a->ctx, &w, reqs, resps, n);
        else
            bp_api_route(&a->ctx, &w, reqs[0], resps[0]);
        for (size_t i = 0; i < n; i++) {
            bp_api_count(&a->ctx, b[i]->route, b[i]->resp.status);
            count_latency(a, b[i]);
        }
        pthread_mutex_lock(&a->qlock);
        for (size_t i = 0; i < n; i++) {
            b[i]->next = a->done;
            a->done = b[i];
        }
        pthread_mutex_unlock(&a->qlock);
        lws_cancel_service(a->lws);
        pthread_mutex_lock(&a->qlock);
    }
    pthread_mutex_unlock(&a->qlock);
    bp_api_worker_release(&w);
    return NULL;
}

/* ---- writing an answer -------------------------------------------------------------------------
 */

static int add_header(struct lws *wsi, const char *name, const char *value, unsigned char **p,
                      unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                       (const unsigned char *)value, (int)strlen(value), p, end);
}

/* The route's extra header lines "name: value\r\n". */
static int extra_headers(struct lws *wsi, const char *lines, unsigned char **p, unsigned char *end)
{
    while (*lines) {
        const char *colon = strchr(lines, ':'), *eol = strstr(lines, "\r\n");
        if (!colon || !eol || colon > eol)
            return 0;
        char name[64], value[256];
        snprintf(name, sizeof(name), "%.*s:", (int)(colon - lines), lines);
        const char *v = colon + 1 + (colon[1] == ' ');
        snprintf(value, sizeof(value), "%.*s", (int)(eol - v), v);
        if (add_header(wsi, name, value, p, end))
            return 1;
        lines = eol + 2;
    }
    return 0;
}

static int cors_headers(bp_api *a, conn *c, unsigned char **p, unsigned char *end)
{
    if (!c->origin[0])
        return 0;
    return add_header(c->wsi, "access-control-allow-origin:", c->origin, p, end) ||
           (strcmp(a->cors, "*") != 0 && add_header(c->wsi, "vary:", "Origin", p, end));
}

static int write_head(bp_api *a, conn *c, const bp_api_response *r, unsigned char **p,
                      unsigned char *end)
{
    char len[24];
    snprintf(len, sizeof(len), "%zu", r->body.len);
    return lws_add_http_header_status(c->wsi, (unsigned)r->status, p, end) ||
           add_header(c->wsi, "content-type:", r->type ? r->type : "application/json", p, end) ||
           add_header(c->wsi, "content-length:", len, p, end) ||
           add_header(c->wsi, "cache-control:", "no-store", p, end) || cors_headers(a, c, p, end) ||
           extra_headers(c->wsi, r->headers, p, end) ||
           (c->close_after && !strstr(r->headers, "connection:") &&
            add_header(c->wsi, "connection:", "close", p, end)) ||
           lws_finalize_http_header(c->wsi, p, end);
}

/* One write of the answer: headers with the first bytes of the body, then the rest. */
static int write_answer(bp_api *a, conn *c)
{
    job *j = c->job;
    const bp_api_response *r = &j->resp;
    unsigned char *start = a->wbuf + LWS_PRE, *p = start, *end = a->wbuf + sizeof(a->wbuf) - 1;
    size_t body = c->method == BP_API_HEAD ? 0 : r->body.len;
    enum lws_write_protocol how = LWS_WRITE_HTTP;
    if (!c->head_sent) {
        if (write_head(a, c, r, &p, end))
            return -1;
        how = LWS_WRITE_HTTP_HEADERS;
        c->head_sent = true;
    }
    size_t n = body - c->sent;
    if (n > (size_t)(end - p))
        n = (size_t)(end - p);
    if (n)
        memcpy(p, r->body.data + c->sent, n);
    p += n;
    if (p > start && lws_write(c->wsi, start, (size_t)(p - start), how) < (int)(p - start))
        return -1;
    c->sent += n;
    if (c->sent < body) {
        lws_callback_on_writable(c->wsi);
        return 0;
    }
    c->job = NULL;
    job_free(j);
    if (c->close_after)
        return -1;
    return lws_http_transaction_completed(c->wsi) ? -1 : 0;
}

/* ---- Server-Sent Events
 * -------------------------------------------------------------------------- */

static void push_link(bp_api *a, conn *c)
{
    int sndbuf = PUSH_SNDBUF;
    setsockopt(lws_get_socket_fd(c->wsi), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    atomic_fetch_add(&a->push_open, 1);
    c->next = a->push_conns;
    if (a->push_conns)
        a->push_conns->prev = c;
    a->push_conns = c;
}

static void push_unlink(bp_api *a, conn *c)
{
    atomic_fetch_sub(&a->push_open, 1);
    if (c->prev)
        c->prev->next = c->next;
    else if (a->push_conns == c)
        a->push_conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

static int start_sse(bp_api *a, conn *c, job *j)
{
    bp_push_filter f;
    char since[BP_PUSH_CURSOR_MAX];
    bp_error err = {0};
    if (!a->cfg.push)
        return error_now(a, c, j, 503, NULL, "%s", "push is off in this process");
    if (bp_push_filter_params(&j->req, &f, since, &err) != 0)
        return error_now(a, c, j, 400, NULL, "%s", err.msg);
    char last[BP_PUSH_CURSOR_MAX];
    static const char lei[] = "last-event-id:";
    int n = lws_hdr_custom_length(c->wsi, lei, (int)sizeof(lei) - 1);
    if (n > 0 && n < (int)sizeof(last) && !since[0] &&
        lws_hdr_custom_copy(c->wsi, last, sizeof(last), lei, (int)sizeof(lei) - 1) > 0)
        snprintf(since, sizeof(since), "%s", last);
    c->client = bp_push_attach(a->cfg.push, &f, since, true, c, &err);
    if (!c->client)
        return error_now(a, c, j, err.code == BP_ERATELIMIT ? 503 : 400, NULL, "%s", err.msg);
    bp_api_count(&a->ctx, BP_ROUTE_SSE, 200);
    job_free(j);
    c->kind = C_SSE;
    push_link(a, c);
    unsigned char *start = a->wbuf + LWS_PRE, *p = start, *end = a->wbuf + sizeof(a->wbuf) - 1;
    if (lws_add_http_header_status(c->wsi, 200, &p, end) ||
        add_header(c->wsi, "content-type:", "text/event-stream", &p, end) ||
        add_header(c->wsi, "cache-control:", "no-store", &p, end) ||
        add_header(c->wsi, "x-accel-buffering:", "no", &p, end) || cors_headers(a, c, &p, end) ||
        lws_finalize_http_header(c->wsi, &p, end))
        return -1;
    static const char hello[] = ": blockpipe events\nretry: 2000\n\n";
    memcpy(p, hello, sizeof(hello) - 1);
    p += sizeof(hello) - 1;
    if (lws_write(c->wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) < (int)(p - start))
        return -1;
    lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
    lws_callback_on_writable(c->wsi);
    return 0;
}

/* Appends "id: ..\nevent: ..\ndata: ..\n\n" for m (data has no newline: it is one line of JSON). */
static size_t sse_event(const bp_push_msg *m, unsigned char *p, size_t room)
{
    size_t len;
    const char *json = bp_push_msg_json(m, &len);
    const char *cursor = bp_push_msg_cursor(m);
    int n = snprintf((char *)p, room, "%s%s%sevent: %s\ndata: ", cursor[0] ? "id: " : "", cursor,
                     cursor[0] ? "\n" : "", bp_push_msg_topic(m));
    if (n < 0 || (size_t)n + len + 2 > room)
        return 0;
    memcpy(p + n, json, len);
    memcpy(p + n + len, "\n\n", 2);
    return (size_t)n + len + 2;
}

/* A message larger than a chunk: a write of its own. */
static int write_big_sse(bp_api *a, conn *c, const bp_push_msg *m)
{
    size_t len;
    const char *json = bp_push_msg_json(m, &len);
    const char *cursor = bp_push_msg_cursor(m);
    bp_buf big;
    bp_buf_init(&big, 0);
    int rc = bp_buf_reserve(&big, LWS_PRE + len + 256) || bp_buf_append(&big, a->wbuf, LWS_PRE) ||
             bp_buf_printf(&big, "%s%s%sevent: %s\ndata: ", cursor[0] ? "id: " : "", cursor,
                           cursor[0] ? "\n" : "", bp_push_msg_topic(m)) ||
             bp_buf_append(&big, json, len) || bp_buf_append(&big, "\n\n", 2);
    if (rc == 0)
        rc = lws_write(c->wsi, (unsigned char *)big.data + LWS_PRE, big.len - LWS_PRE,
                       LWS_WRITE_HTTP) < (int)(big.len - LWS_PRE);
    bp_buf_release(&big);
    return rc ? -1 : 0;
}

/* As many queued messages as fit one chunk, in one write. */
static int write_sse(bp_api *a, conn *c)
{
    if (c->close_code)
        return -1; /* stopping */
    const char *why = bp_push_dropped(c->client);
    if (why) {
        bp_info("api: SSE client %s dropped: %s", c->ip, why);
        return -1;
    }
    unsigned char *start = a->wbuf + LWS_PRE, *p = start;
    size_t room = CHUNK;
    if (c->keepalive_due) {
        memcpy(p, ": keepalive\n\n", 13);
        p += 13;
        room -= 13;
        c->keepalive_due = false;
    }
    bp_push_msg *m;
    while ((m = c->held ? c->held : bp_push_next(c->client, NULL)) != NULL) {
        c->held = NULL;
        size_t n = sse_event(m, p, room);
        if (n == 0 && p == start) {
            int rc = write_big_sse(a, c, m);
            bp_push_msg_release(m);
            if (rc != 0)
                return -1;
            lws_callback_on_writable(c->wsi);
            return 0;
        }
        if (n == 0) { /* the next write takes it */
            c->held = m;
            break;
        }
        bp_push_msg_release(m);
        p += n;
        room -= n;
    }
    if (p > start &&
        lws_write(c->wsi, start, (size_t)(p - start), LWS_WRITE_HTTP) < (int)(p - start))
        return -1;
    if (c->held)
        lws_callback_on_writable(c->wsi);
    return 0;
}

/* ---- WebSocket ---------------------------------------------------------------------------------
 */

static void ws_close(conn *c, int code, const char *fmt, const char *msg)
{
    if (c->close_code)
        return;
    char why[BP_ERROR_MSG_MAX + 64];
    c->close_code = code;
    snprintf(why, sizeof(why), fmt, msg);
    /* a close frame has room for 123 bytes of reason */
    size_t n = strnlen(why, sizeof(c->close_reason) - 1);
    memcpy(c->close_reason, why, n);
    c->close_reason[n] = '\0';
    lws_callback_on_writable(c->wsi);
}

/* A JSON answer to the client's own message ({"type":"error",...} or "subscribed"). */
static void ws_reply(conn *c, const char *type, const char *key, const char *text)
{
    bp_jsonw w;
    bp_buf_reset(&c->reply);
    bp_jsonw_init(&w, &c->reply, BP_JSONW_ESC_U);
    bp_jsonw_begin_object(&w);
    bp_jsonw_key(&w, "type");
    bp_jsonw_str(&w, type);
    bp_jsonw_key(&w, key);
    bp_jsonw_str(&w, text);
    bp_jsonw_end_object(&w);
    lws_callback_on_writable(c->wsi);
}

/* The upgrade request: path, limits, auth, filters. A refusal is a close with the reason (a
 * WebSocket client sees no HTTP answer). */
static int ws_established(bp_api *a, conn *c)
{
    bp_api_request req;
    bp_push_filter f;
    char since[BP_PUSH_CURSOR_MAX];
    bp_error err = {0};
    c->kind = C_WS;
    bp_buf_init(&c->rx, WS_RX_MAX);
    bp_buf_init(&c->reply, 4096);
    lws_get_peer_simple(c->wsi, c->ip, sizeof(c->ip));
    push_link(a, c);
    bp_api_request_init(&req, BP_API_GET, "/api/ws", 7);
    int wait = rate_limited(a, c->ip);
    char msg[64];
    if (wait) {
        snprintf(msg, sizeof(msg), "%d", wait);
        bp_api_count(&a->ctx, BP_ROUTE_WS, 429);
        ws_close(c, WS_CLOSE_LIMIT, "rate limited: retry after %s s", msg);
        return 0;
    }
    if (read_params(c->wsi, &req, &err) != 0) {
        bp_api_count(&a->ctx, BP_ROUTE_WS, 400);
        ws_close(c, WS_CLOSE_BAD, "%s", err.msg);
        return 0;
    }
    if (!authorized(a, c->wsi, &req, false)) {
        bp_api_count(&a->ctx, BP_ROUTE_WS, 401);
        ws_close(c, WS_CLOSE_AUTH, "%s", "unauthorized: a Bearer token is required");
        return 0;
    }
    bp_api_param_remove(&req, "token");
    if (bp_push_filter_params(&req, &f, since, &err) != 0) {
        bp_api_count(&a->ctx, BP_ROUTE_WS, 400);
        ws_close(c, WS_CLOSE_BAD, "%s", err.msg);
        return 0;
    }
    if (!a->cfg.push) {
        ws_close(c, 1011, "%s", "push is off in this process");
        return 0;
    }
    c->client = bp_push_attach(a->cfg.push, &f, since, false, c, &err);
    if (!c->client) {
        bp_api_count(&a->ctx, BP_ROUTE_WS, err.code == BP_ERATELIMIT ? 503 : 400);
        ws_close(c, err.code == BP_ERATELIMIT ? 1013 : WS_CLOSE_BAD, "%s", err.msg);
        return 0;
    }
    bp_api_count(&a->ctx, BP_ROUTE_WS, 200);
    return 0;
}

/* A whole message from the client: a new subscription (and cursor). */
static void ws_message(conn *c)
{
    bp_push_filter f;
    char since[BP_PUSH_CURSOR_MAX];
    bp_error err = {0};
    if (!c->client)
        return;
    if (bp_push_filter_json(c->rx.data, c->rx.len, &f, since, &err) != 0 ||
        bp_push_update(c->client, &f, since, &err) != 0) {
        ws_reply(c, "error", "error", err.msg);
        return;
    }
    char topics[128] = "";
    for (unsigned i = 0; i < BP_PUSH_TOPICS; i++)
        if (f.topics & (1u << i))
            snprintf(topics + strlen(topics), sizeof(topics) - strlen(topics), "%s%s",
                     topics[0] ? "," : "", bp_push_topic_name(1u << i));
    ws_reply(c, "subscribed", "topics", topics);
}

static int ws_receive(conn *c, const void *in, size_t len)
{
    if (bp_buf_append(&c->rx, in, len) != 0) {
        ws_close(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "%s", "message over 65536 bytes");
        return 0;
    }
    if (lws_is_final_fragment(c->wsi) && !lws_remaining_packet_payload(c->wsi)) {
        ws_message(c);
        bp_buf_reset(&c->rx);
    }
    return 0;
}

static int ws_send(bp_api *a, conn *c, const char *data, size_t len)
{
    unsigned char *buf = a->wbuf, *big = NULL;
    if (len > CHUNK) {
        big = malloc(LWS_PRE + len);
        if (!big)
            return -1;
        buf = big;
    }
    memcpy(buf + LWS_PRE, data, len);
    int n = lws_write(c->wsi, buf + LWS_PRE, len, LWS_WRITE_TEXT);
    free(big);
    return n < (int)len ? -1 : 0;
}

static int ws_writable(bp_api *a, conn *c)
{
    if (!c->close_code && c->client) {
        const char *why = bp_push_dropped(c->client);
        if (why)
            ws_close(c, WS_CLOSE_SLOW, "%s", why);
    }
    if (c->close_code) {
        bp_info("api: WebSocket client %s closed: %d %s", c->ip, c->close_code, c->close_reason);
        lws_close_reason(c->wsi, (enum lws_close_status)c->close_code,
                         (unsigned char *)c->close_reason, strlen(c->close_reason));
        return -1;
    }
    if (c->reply.len) {
        int rc = ws_send(a, c, c->reply.data, c->reply.len);
        bp_buf_reset(&c->reply);
        lws_callback_on_writable(c->wsi);
        return rc;
    }
    bool more = false;
    bp_push_msg *m = c->client ? bp_push_next(c->client, &more) : NULL;
    if (!m)
        return 0;
    size_t len;
    const char *json = bp_push_msg_json(m, &len);
    int rc = ws_send(a, c, json, len);
    bp_push_msg_release(m);
    if (more) /* else the hub's next message asks again: one wake-up per message, not two */
        lws_callback_on_writable(c->wsi);
    return rc;
}

/* ---- the callback
 * ---------------------------------------------------------------------------------- */

static void cleanup(bp_api *a, conn *c)
{
    if (!c || c->cleaned)
        return;
    c->cleaned = true;
    if (c->job) {
        /* A job still with the workers is theirs: dropped when it comes back. */
        if (c->job->ready || !c->job->submitted)
            job_free(c->job);
        else
            c->job->conn = NULL;
        c->job = NULL;
    }
    if (c->kind == C_SSE || c->kind == C_WS)
        push_unlink(a, c);
    bp_push_msg_release(c->held);
    c->held = NULL;
    bp_push_detach(c->client);
    c->client = NULL;
    bp_buf_release(&c->body);
    bp_buf_release(&c->rx);
    bp_buf_release(&c->reply);
}

/* The answers the workers made: their connections may write them now. */
static void collect_done(bp_api *a)
{
    pthread_mutex_lock(&a->qlock);
    job *j = a->done;
    a->done = NULL;
    pthread_mutex_unlock(&a->qlock);
    while (j) {
        job *next = j->next;
        j->ready = true;
        if (j->conn)
            lws_callback_on_writable(j->conn->wsi);
        else
            job_free(j);
        j = next;
    }
}

static void push_ready(void *connp, void *ctx)
{
    (void)ctx;
    conn *c = connp;
    lws_callback_on_writable(c->wsi);
}

static void wake(void *ctx)
{
    bp_api *a = ctx;
    lws_cancel_service(a->lws);
}

static int preflight(bp_api *a, conn *c, job *j)
{
    if (!c->origin[0])
        return error_now(a, c, j, 403, NULL, "%s", "CORS: origin not allowed");
    bp_buf_reset(&j->resp.body);
    j->resp.status = 204;
    snprintf(j->resp.headers, sizeof(j->resp.headers),
             "access-control-allow-methods: GET, HEAD, POST, OPTIONS\r\n"
             "access-control-allow-headers: Authorization, Content-Type, Last-Event-ID\r\n"
             "access-control-max-age: 600\r\n");
    bp_api_count(&a->ctx, j->route, 204);
    return answer_now(a, c, j);
}

static int body_complete(bp_api *a, conn *c);

static int body_request(bp_api *a, conn *c, job *j)
{
    char len[32];
    c->job = j;
    c->awaiting_body = true;
    bp_buf_init(&c->body, a->cfg.max_body);
    if (header(c->wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, len, sizeof(len)) > 0 &&
        strtoull(len, NULL, 10) > a->cfg.max_body) {
        c->close_after = true;
        c->awaiting_body = false;
        c->job = NULL;
        char limit[32];
        snprintf(limit, sizeof(limit), "%zu", a->cfg.max_body);
        return error_now(a, c, j, 413, "connection: close\r\n",
                         "request body over the limit of %s bytes", limit);
    }
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_HTTP_CONTENT, (int)(a->cfg.request_timeout + 0.999));
    /* Neither Content-Length nor Transfer-Encoding: the request has no body (RFC 9112 6.3), and
     * libwebsockets then never calls HTTP_BODY_COMPLETION: answered now, not after the timeout.
     * The connection ends with the answer, as libwebsockets' reading state is not a new
     * request's. */
    if (!lws_hdr_total_length(c->wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) &&
        !lws_hdr_total_length(c->wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING)) {
        c->close_after = true;
        return body_complete(a, c);
    }
    return 0;
}

static int body_complete(bp_api *a, conn *c)
{
    job *j = c->job;
    if (!j || !c->awaiting_body)
        return 0;
    c->awaiting_body = false;
    if (c->body_too_big) {
        c->close_after = true;
        char limit[32];
        snprintf(limit, sizeof(limit), "%zu", a->cfg.max_body);
        return error_now(a, c, j, 413, "connection: close\r\n",
                         "request body over the limit of %s bytes", limit);
    }
    j->req.body = c->body.data ? c->body.data : "";
    j->req.body_len = c->body.len;
    submit(a, j);
    return 0;
}

extern const char bp_api_dashboard_html[]; /* dashboard_html.c, made from dashboard.html */
extern const size_t bp_api_dashboard_len;

/* The dashboard: /dashboard, and / for a browser (it asks for text/html). */
static bool dashboard_wanted(struct lws *wsi, const char *path)
{
    char accept[256];
    if (strcmp(path, "/dashboard") == 0)
        return true;
    return strcmp(path, "/") == 0 &&
           header(wsi, WSI_TOKEN_HTTP_ACCEPT, accept, sizeof(accept)) > 0 &&
           strstr(accept, "text/html");
}

static int dashboard(bp_api *a, conn *c, job *j)
{
    if (bp_buf_append(&j->resp.body, bp_api_dashboard_html, bp_api_dashboard_len) != 0)
        return error_now(a, c, j, 500, NULL, "%s", "out of memory");
    j->resp.status = 200;
    j->resp.type = "text/html; charset=utf-8";
    snprintf(j->resp.headers, sizeof(j->resp.headers),
             "content-security-policy: default-src 'self'; script-src 'self' 'unsafe-inline'; "
             "style-src 'self' 'unsafe-inline'\r\nx-content-type-options: nosniff\r\n");
    bp_api_count(&a->ctx, BP_ROUTE_ROOT, 200);
    return answer_now(a, c, j);
}

static int http_request(bp_api *a, conn *c, struct lws *wsi, const char *path)
{
    bp_error err = {0};
    cleanup(a, c); /* what a previous request on this kept-alive connection left */
    memset(c, 0, sizeof(*c));
    c->wsi = wsi;
    c->kind = C_HTTP;
    c->method = method_of(wsi);
    lws_get_peer_simple(wsi, c->ip, sizeof(c->ip));
    cors_origin(a, wsi, c->origin, sizeof(c->origin));
    job *j = job_new(c, c->method, path);
    if (!j)
        return -1;
    if (read_params(wsi, &j->req, &err) != 0)
        return error_now(a, c, j, 400, NULL, "%s", err.msg);
    int wait = rate_limited(a, c->ip);
    if (wait) {
        char ra[48], rate[32];
        snprintf(ra, sizeof(ra), "retry-after: %d\r\n", wait);
        snprintf(rate, sizeof(rate), "%g", a->cfg.rate);
        return error_now(a, c, j, 429, ra, "rate limited: at most %s requests per second", rate);
    }
    if (c->method == BP_API_OPTIONS)
        return preflight(a, c, j);
    /* POST /api/predictions asks (a list too long for a URL): a read. */
    bool write =
        c->method != BP_API_GET && c->method != BP_API_HEAD && j->route != BP_ROUTE_PREDICTIONS;
    if (!authorized(a, wsi, &j->req, write))
        return error_now(a, c, j, 401, "www-authenticate: Bearer\r\n", "%s",
                         "unauthorized: this needs the API token (Authorization: Bearer TOKEN)");
    bp_api_param_remove(&j->req, "token"); /* checked: the routes need not know it */
    if ((c->method == BP_API_GET || c->method == BP_API_HEAD) && dashboard_wanted(wsi, j->req.path))
        return dashboard(a, c, j);
    if (j->route == BP_ROUTE_SSE && c->method == BP_API_GET)
        return start_sse(a, c, j);
    if (j->route == BP_ROUTE_WS)
        return error_now(a, c, j, 426, "upgrade: websocket\r\n", "%s",
                         "/api/ws is a WebSocket: connect with an Upgrade: websocket request");
    if (c->method == BP_API_POST)
        return body_request(a, c, j);
    c->job = j;
    lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, (int)(a->cfg.request_timeout + 0.999));
    submit(a, j);
    return 0;
}

static int on_http(bp_api *a, struct lws *wsi, enum lws_callback_reasons reason, conn *c, void *in,
                   size_t len)
{
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return http_request(a, c, wsi, in ? (const char *)in : "/");
    case LWS_CALLBACK_HTTP_BODY:
        if (c->awaiting_body && !c->body_too_big && bp_buf_append(&c->body, in, len) != 0)
            c->body_too_big = true;
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return body_complete(a, c);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (c->kind == C_SSE)
            return write_sse(a, c);
        return c->job && c->job->ready ? write_answer(a, c) : 0;
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        cleanup(a, c);
        return 0;
    default:
        return 0;
    }
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    bp_api *a = api_of(wsi);
    conn *c = user;
    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (atomic_load(&a->closing))
            for (conn *p = a->push_conns; p; p = p->next) {
                if (p->kind == C_WS)
                    ws_close(p, LWS_CLOSE_STATUS_GOINGAWAY, "%s", "server stopping");
                else
                    p->close_code = LWS_CLOSE_STATUS_GOINGAWAY;
                lws_callback_on_writable(p->wsi);
            }
        collect_done(a);
        if (a->cfg.push)
            bp_push_ready(a->cfg.push, push_ready, a);
        return 0;
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
        if (a->nconns >= a->cfg.max_connections) {
            atomic_fetch_add(&a->ctx.counters.rejected_connections, 1);
            return 1;
        }
        return 0;
    case LWS_CALLBACK_WSI_CREATE:
        a->nconns++;
        atomic_fetch_add(&a->ctx.counters.connections, 1);
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        a->nconns--;
        return 0;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
        char uri[BP_API_PATH_MAX];
        header(wsi, WSI_TOKEN_GET_URI, uri, sizeof(uri));
        return strcmp(uri, "/api/ws") != 0; /* a WebSocket anywhere else is refused */
    }
    case LWS_CALLBACK_ESTABLISHED:
        memset(c, 0, sizeof(*c));
        c->wsi = wsi;
        return ws_established(a, c);
    case LWS_CALLBACK_RECEIVE:
        return ws_receive(c, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return ws_writable(a, c);
    case LWS_CALLBACK_CLOSED:
        cleanup(a, c);
        return 0;
    default:
        if (c)
            return on_http(a, wsi, reason, c, in, len);
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/* ---- threads, start, stop
 * ------------------------------------------------------------------------ */

static void keepalive_tick(lws_sorted_usec_list_t *sul)
{
    bp_api *a = lws_container_of(sul, bp_api, keepalive_sul);
    for (conn *c = a->push_conns; c; c = c->next)
        if (c->kind == C_SSE) {
            c->keepalive_due = true;
            lws_callback_on_writable(c->wsi);
        }
    lws_sul_schedule(a->lws, 0, &a->keepalive_sul, keepalive_tick,
                     SSE_KEEPALIVE_S * LWS_US_PER_SEC);
}

static void *service_main(void *arg)
{
    bp_api *a = arg;
    lws_sul_schedule(a->lws, 0, &a->keepalive_sul, keepalive_tick,
                     SSE_KEEPALIVE_S * LWS_US_PER_SEC);
    while (!atomic_load(&a->stop))
        if (lws_service(a->lws, 0) < 0)
            break;
    return NULL;
}

/* "HOST:PORT" or "[V6]:PORT" into host (an address for libwebsockets' iface) and port. */
static int parse_listen(const char *s, char *host, size_t cap, int *port, bp_error *err)
{
    const char *colon = s[0] == '[' ? strstr(s, "]:") : strrchr(s, ':');
    char *end;
    if (!colon)
        goto bad;
    long p = strtol(colon + (s[0] == '[' ? 2 : 1), &end, 10);
    if (*end || end == colon + 1 || p < 0 || p > 65535)
        goto bad;
    size_t n = (size_t)(colon - s) - (s[0] == '[');
    if (n == 0 || n >= cap)
        goto bad;
    memcpy(host, s + (s[0] == '['), n);
    host[n] = '\0';
    if (strcmp(host, "localhost") == 0)
        snprintf(host, cap, "127.0.0.1");
    *port = (int)p;
    return 0;
bad:
    return bp_error_set(err, BP_EINVAL,
                        "--api: '%s' is not valid: expected HOST:PORT, e.g. 127.0.0.1:8080", s);
}

static void free_api(bp_api *a)
{
    free(a->listen);
    free(a->read_url);
    free(a->stream_store);
    free(a->chain);
    free(a->token);
    free(a->cors);
    free(a->tls_cert);
    free(a->tls_key);
    free(a->workers);
    pthread_mutex_destroy(&a->qlock);
    pthread_cond_destroy(&a->qcv);
    bp_api_latest_release(&a->ctx.latest);
    free(a);
}

static char *dup_or_null(const char *s, bool *oom)
{
    char *d = s && *s ? strdup(s) : NULL;
    *oom |= s && *s && !d;
    return d;
}

static int copy_config(bp_api *a, const bp_api_config *cfg)
{
    bool oom = false;
    a->cfg = *cfg;
    a->listen = dup_or_null(cfg->listen, &oom);
    a->cfg.read_url = a->read_url = dup_or_null(cfg->read_url, &oom);
    a->cfg.stream_store = a->stream_store = dup_or_null(cfg->stream_store, &oom);
    a->cfg.chain = a->chain = dup_or_null(cfg->chain, &oom);
    a->cfg.token = a->token = dup_or_null(cfg->token, &oom);
    a->cfg.cors = a->cors = dup_or_null(cfg->cors, &oom);
    a->cfg.tls_cert = a->tls_cert = dup_or_null(cfg->tls_cert, &oom);
    a->cfg.tls_key = a->tls_key = dup_or_null(cfg->tls_key, &oom);
    a->cfg.listen = a->listen;
    if (a->cfg.threads <= 0)
        a->cfg.threads = 2;
    if (!a->cfg.max_body)
        a->cfg.max_body = 1u << 20;
    if (a->cfg.request_timeout <= 0)
        a->cfg.request_timeout = 10;
    if (a->cfg.max_connections <= 0)
        a->cfg.max_connections = 4096;
    a->ctx.cfg = &a->cfg;
    a->ctx.started_ms = bp_api_clock_us(CLOCK_MONOTONIC) / 1000;
    return oom ? BP_ENOMEM : 0;
}

static const struct lws_extension g_extensions[] = {
    {"permessage-deflate", lws_extension_callback_pm_deflate,
     "permessage-deflate; client_no_context_takeover; client_max_window_bits"},
    {NULL, NULL, NULL},
};

static void lws_log(int level, const char *line)
{
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    bp_debug("api lws[%d]: %.*s", level, (int)n, line);
}

/* File descriptors the rest of the process may hold beside the API's connections (outputs,
 * RPC connections of every worker, the node's socket, logs). */
#define FD_SPARE 512

/* Every connection is a descriptor, and libwebsockets sizes its table by the limit when the
 * context is made: a soft limit of 1024 (Debian's default) would refuse clients long before
 * --api-max-connections. The soft limit goes up to what they need, within the hard limit. */
static void room_for_connections(const bp_api *a)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)a->cfg.max_connections + FD_SPARE;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
        return;
    rlim_t was = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ? rl.rlim_max : want;
    if (rl.rlim_cur > was && setrlimit(RLIMIT_NOFILE, &rl) == 0)
        bp_debug("api: open files limit raised from %llu to %llu for --api-max-connections %d",
                 (unsigned long long)was, (unsigned long long)rl.rlim_cur, a->cfg.max_connections);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want)
        bp_warn("api: --api-max-connections %d, but the open files limit is %llu (hard limit "
                "%llu): connections past about %llu are refused (raise it: ulimit -n, "
                "LimitNOFILE= in a systemd unit)",
                a->cfg.max_connections, (unsigned long long)rl.rlim_cur,
                (unsigned long long)rl.rlim_max,
                (unsigned long long)(rl.rlim_cur > FD_SPARE ? rl.rlim_cur - FD_SPARE : 0));
}

static int create_context(bp_api *a, const char *host, int port, bp_error *err)
{
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    a->protocols[0] = (struct lws_protocols){
        .name = "blockpipe-api",
        .callback = callback,
        .per_session_data_size = sizeof(conn),
        .rx_buffer_size = 65536,
    };
    a->retry.secs_since_valid_ping = 30; /* WebSocket pings keep idle push clients honest */
    a->retry.secs_since_valid_hangup = 70;
    info.port = port;
    info.iface = strcmp(host, "0.0.0.0") == 0 ? NULL : host;
    info.protocols = a->protocols;
    info.extensions = g_extensions;
    info.user = a;
    info.gid = -1;
    info.uid = -1;
    info.timeout_secs = (unsigned)(a->cfg.request_timeout + 0.999);
    info.keepalive_timeout = 30;
    info.max_http_header_data = HEADER_MAX;
    info.max_http_header_pool = 256;
    info.retry_and_idle_policy = &a->retry;
    info.alpn = "http/1.1";
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_DISABLE_IPV6;
    if (strchr(host, ':'))
        info.options &= ~(unsigned long)LWS_SERVER_OPTION_DISABLE_IPV6;
    if (a->tls_cert) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = a->tls_cert;
        info.ssl_private_key_filepath = a->tls_key;
    }
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log);
    room_for_connections(a);
    a->lws = lws_create_context(&info);
    if (!a->lws)
        return bp_error_set(err, BP_EINVAL,
                            "--api %s: cannot listen (address in use or not on this machine%s)",
                            a->listen, a->tls_cert ? ", or unreadable TLS certificate / key" : "");
    a->vhost = lws_get_vhost_by_name(a->lws, "default");
    a->port = a->vhost ? lws_get_vhost_listen_port(a->vhost) : port;
    return 0;
}

static int start_threads(bp_api *a, bp_error *err)
{
    a->workers = calloc((size_t)a->cfg.threads, sizeof(*a->workers));
    if (!a->workers)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    for (int i = 0; i < a->cfg.threads; i++) {
        if (pthread_create(&a->workers[i], NULL, worker_main, a) != 0)
            return bp_error_set(err, BP_ENOMEM, "cannot start the API's worker threads");
        a->nworkers++;
    }
    if (pthread_create(&a->service, NULL, service_main, a) != 0)
        return bp_error_set(err, BP_ENOMEM, "cannot start the API's service thread");
    a->service_started = true;
    return 0;
}

int bp_api_start(const bp_api_config *cfg, bp_api **out, bp_error *err)
{
    *out = NULL;
    bp_api *a = calloc(1, sizeof(*a));
    if (!a)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    pthread_mutex_init(&a->qlock, NULL);
    pthread_cond_init(&a->qcv, NULL);
    bp_api_latest_init(&a->ctx.latest);
    char host[128];
    int port = 0;
    int rc = copy_config(a, cfg) ? bp_error_set(err, BP_ENOMEM, "out of memory") : 0;
    if (rc == 0 && !a->listen)
        rc = bp_error_set(err, BP_EINVAL, "--api: missing HOST:PORT");
    if (rc == 0)
        rc = parse_listen(a->listen, host, sizeof(host), &port, err);
    if (rc == 0 && !a->tls_cert != !a->tls_key)
        rc = bp_error_set(err, BP_EINVAL, "--api-tls-cert and --api-tls-key go together");
    if (rc == 0)
        rc = create_context(a, host, port, err);
    if (rc == 0 && a->cfg.push)
        bp_push_set_wake(a->cfg.push, wake, a);
    if (rc == 0)
        rc = start_threads(a, err);
    if (rc == 0 && a->cfg.push && a->stream_store)
        rc = bp_api_follower_start(a->stream_store, a->cfg.push, &a->follower, err);
    if (rc != 0) {
        bp_api_stop(a);
        return rc;
    }
    bp_info("api: listening on %s://%s:%d/ (REST, WebSocket /api/ws, SSE /api/events, /metrics)",
            a->tls_cert ? "https" : "http", host, a->port);
    *out = a;
    return 0;
}

int bp_api_port(const bp_api *a)
{
    return a->port;
}

void bp_api_stop(bp_api *a)
{
    if (!a)
        return;
    bp_api_follower_stop(a->follower); /* it queues to push clients: before they go */
    a->follower = NULL;
    if (a->service_started) { /* push clients are told why, for up to 1 s */
        atomic_store(&a->closing, true);
        lws_cancel_service(a->lws);
        for (int i = 0; i < 100 && atomic_load(&a->push_open) > 0; i++) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    atomic_store(&a->stop, true);
    if (a->service_started) {
        lws_cancel_service(a->lws);
        pthread_join(a->service, NULL);
    }
    if (a->cfg.push)
        bp_push_set_wake(a->cfg.push, NULL, NULL);
    pthread_mutex_lock(&a->qlock); /* workers wake the service: they end before the context */
    a->workers_stop = true;
    pthread_cond_broadcast(&a->qcv);
    pthread_mutex_unlock(&a->qlock);
    for (int i = 0; i < a->nworkers; i++)
        pthread_join(a->workers[i], NULL);
    if (a->lws)
        lws_context_destroy(a->lws); /* closes every connection: their cleanup runs here */
    for (job *j = a->pending; j;) {
        job *next = j->next;
        job_free(j);
        j = next;
    }
    for (job *j = a->done; j;) {
        job *next = j->next;
        job_free(j);
        j = next;
    }
    free_api(a);
}
