/* ws.c - eth_subscribe("newHeads") over libwebsockets on a thread of its own, reconnecting. */
#include "chain/ws.h"
#include "chain/ws_internal.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>
#include <yajl/yajl_tree.h>

#include "chain/json.h"
#include "chain/rpc_envelope.h"
#include "util/hex.h"
#include "util/jsonw.h"
#include "util/log.h"
#include "util/url.h"

#define TICK_US (100 * 1000)
#define HANDSHAKE_TIMEOUT_MS 15000
#define UNSUBSCRIBE_WAIT_MS 1000
#define STOP_DEADLINE_MS 3000
#define HANGUP_S 40 /* no pong nor data for this long after a ping: lws hangs up */
#define RATE_RING 128
#define SUBSCRIBE_ID 1
#define UNSUBSCRIBE_ID 2

/* Where the current connection is; the public state is derived from it. */
enum phase { PH_NONE, PH_HANDSHAKE, PH_SUBSCRIBING, PH_SUBSCRIBED, PH_UNSUBSCRIBING, PH_CLOSING };

struct bp_ws_heads {
    /* Immutable after start. */
    char *endpoint, *address, *host_header, *path, *basic_auth;
    char **headers; /* "Name: value" of the handshake */
    size_t header_count;
    int port;
    bool tls;
    double interval_s, stale_cfg_s, sub_timeout_s;
    int max_attempts;
    size_t max_msg, qcap;
    const bp_ws_protocol *proto; /* NULL: eth_subscribe newHeads */
    const char *sub_what;        /* "eth_subscribe" or proto->what, for messages */

    /* Service thread only (libwebsockets callbacks and the tick). */
    struct lws_context *ctx;
    struct lws_protocols protocols[2];
    lws_retry_bo_t keepalive;
    lws_sorted_usec_list_t tick;
    struct lws *wsi;
    bool conn_live; /* an attempt is under way or open; cleared once by conn_ended() */
    enum phase phase;
    int64_t phase_ms, last_head_mono, next_attempt_mono;
    bool want_subscribe, want_unsubscribe, want_close, attempted, stopping, done;
    int64_t stop_deadline;
    char close_why[BP_ERROR_MSG_MAX];
    char last_malformed[BP_ERROR_MSG_MAX];
    char sub_id[128];
    size_t sub_sent, sub_answered; /* proto: subscribe messages sent / confirmed */
    bp_buf msg;
    uint64_t rng, prev_number, prev_ts;

    /* Shared: under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool ctx_alive, stopped;
    bp_ws_head *q;
    size_t q_first, q_len;
    int64_t ring[RATE_RING]; /* monotonic ms of the last heads, for heads/s */
    size_t ring_n;
    int64_t started_mono, retry_at_mono;
    bp_ws_status st;

    atomic_bool stop;
    pthread_t thread;
    bool thread_started;
};

/* ---- time, random, small helpers ---------------------------------------------------- */

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

static double jitter(bp_ws_heads *w)
{
    w->rng ^= w->rng << 13; /* xorshift64: jitter needs no quality */
    w->rng ^= w->rng >> 7;
    w->rng ^= w->rng << 17;
    return ((double)(w->rng >> 11) / 9007199254740992.0) * 0.4 - 0.2;
}

int64_t bp_ws_backoff_ms(double interval_s, int failures, double jitter_frac)
{
    double d = interval_s * pow(2.0, failures > 1 ? failures - 1 : 0);
    if (d > BP_WS_BACKOFF_CAP_S)
        d = BP_WS_BACKOFF_CAP_S;
    d *= 1.0 + jitter_frac;
    if (d > BP_WS_BACKOFF_CAP_S)
        d = BP_WS_BACKOFF_CAP_S;
    return (int64_t)(d * 1000.0);
}

const char *bp_ws_state_name(bp_ws_state s)
{
    switch (s) {
    case BP_WS_CONNECTING:
        return "connecting";
    case BP_WS_SUBSCRIBED:
        return "subscribed";
    case BP_WS_BACKOFF:
        return "backoff";
    case BP_WS_GIVEN_UP:
        return "given_up";
    case BP_WS_STOPPED:
        return "stopped";
    }
    return "?";
}

static double stale_after(const bp_ws_heads *w, double block_time)
{
    if (w->stale_cfg_s > 0)
        return w->stale_cfg_s;
    if (block_time <= 0)
        return 60.0;
    return 3.0 * block_time > 30.0 ? 3.0 * block_time : 30.0;
}

/* Every public state change goes through here (service thread). */
static void set_state(bp_ws_heads *w, bp_ws_state s)
{
    pthread_mutex_lock(&w->mu);
    w->st.state = s;
    w->st.connected = w->phase >= PH_SUBSCRIBING && w->phase <= PH_UNSUBSCRIBING;
    w->st.subscribed = w->phase == PH_SUBSCRIBED || w->phase == PH_UNSUBSCRIBING;
    if (!w->st.connected)
        w->st.connected_since_ms = 0;
    else if (w->st.connected_since_ms == 0)
        w->st.connected_since_ms = clock_ms(CLOCK_REALTIME);
    if (s == BP_WS_STOPPED)
        w->stopped = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void set_phase(bp_ws_heads *w, enum phase ph)
{
    w->phase = ph;
    w->phase_ms = mono_ms();
    bp_ws_state s = ph == PH_NONE            ? w->st.state
                    : ph == PH_SUBSCRIBED    ? BP_WS_SUBSCRIBED
                    : ph == PH_UNSUBSCRIBING ? BP_WS_SUBSCRIBED
                    : ph == PH_CLOSING       ? w->st.state
                                             : BP_WS_CONNECTING;
    set_state(w, s);
}

static void set_error(bp_ws_heads *w, const char *msg)
{
    pthread_mutex_lock(&w->mu);
    snprintf(w->st.last_error, sizeof(w->st.last_error), "%s", msg);
    bp_secret_scrub(w->st.last_error); /* a server's close reason may quote the key */
    pthread_mutex_unlock(&w->mu);
}

static void count_malformed(bp_ws_heads *w, const char *msg)
{
    bp_err("websocket %s: %s", w->endpoint, msg);
    snprintf(w->last_malformed, sizeof(w->last_malformed), "%s", msg);
    pthread_mutex_lock(&w->mu);
    w->st.malformed++;
    snprintf(w->st.last_error, sizeof(w->st.last_error), "%s", msg);
    pthread_mutex_unlock(&w->mu);
}

/* ---- connection lifecycle (service thread) ------------------------------------------ */

/* Ask for the connection to be closed, remembering why (the reason becomes last_error). */
static void kill_conn(bp_ws_heads *w, const char *why)
{
    if (w->close_why[0] == '\0')
        snprintf(w->close_why, sizeof(w->close_why), "%s", why);
    w->want_close = true;
    if (w->phase != PH_CLOSING)
        set_phase(w, PH_CLOSING);
    if (w->wsi) {
        lws_callback_on_writable(w->wsi);
        /* A peer that never lets us write (or never acks the close) is cut off anyway. */
        lws_set_timeout(w->wsi, PENDING_TIMEOUT_USER_OK, 3);
    }
}

static void schedule_retry(bp_ws_heads *w)
{
    pthread_mutex_lock(&w->mu);
    int failures = ++w->st.consecutive_failures;
    pthread_mutex_unlock(&w->mu);
    int64_t delay;
    if (failures > w->max_attempts) {
        delay = (int64_t)(BP_WS_GIVEN_UP_RETRY_S * 1000.0);
        set_state(w, BP_WS_GIVEN_UP);
    } else {
        delay = bp_ws_backoff_ms(w->interval_s, failures, jitter(w));
        set_state(w, BP_WS_BACKOFF);
    }
    w->next_attempt_mono = mono_ms() + delay;
    pthread_mutex_lock(&w->mu);
    w->retry_at_mono = w->next_attempt_mono;
    pthread_mutex_unlock(&w->mu);
    bp_info("websocket %s: %s in %.1f s (failure %d)", w->endpoint,
            failures > w->max_attempts ? "gave up for now, next attempt" : "reconnecting",
            (double)delay / 1000.0, failures);
}

/* The connection is gone (error, close, destroy): once per connection. */
static void conn_ended(bp_ws_heads *w, const char *why)
{
    if (!w->conn_live)
        return;
    w->conn_live = false;
    w->wsi = NULL;
    const char *reason = w->close_why[0] ? w->close_why : why;
    set_phase(w, PH_NONE);
    bp_buf_reset(&w->msg);
    w->sub_id[0] = '\0';
    if (w->stopping) {
        bp_debug("websocket %s: closed", w->endpoint);
        w->done = true;
        return;
    }
    bp_warn("websocket %s: %s", w->endpoint, reason);
    set_error(w, reason);
    schedule_retry(w);
}

static void connect_now(bp_ws_heads *w)
{
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof(ci));
    ci.context = w->ctx;
    ci.address = w->address;
    ci.port = w->port;
    ci.path = w->path;
    ci.host = w->host_header;
    ci.ssl_connection = w->tls ? LCCSCF_USE_SSL : 0;
    ci.local_protocol_name = w->protocols[0].name;
    ci.retry_and_idle_policy = &w->keepalive;
    ci.pwsi = &w->wsi;

    if (w->attempted) {
        pthread_mutex_lock(&w->mu);
        w->st.reconnects++;
        pthread_mutex_unlock(&w->mu);
    }
    w->attempted = true;
    w->conn_live = true;
    w->close_why[0] = '\0';
    w->last_malformed[0] = '\0';
    w->want_close = w->want_subscribe = w->want_unsubscribe = false;
    set_phase(w, PH_HANDSHAKE);
    bp_debug("websocket %s: connecting", w->endpoint);
    if (!lws_client_connect_via_info(&ci))
        conn_ended(w, "cannot start a connection (bad address?)");
}

static void begin_stop(bp_ws_heads *w)
{
    w->stopping = true;
    w->stop_deadline = mono_ms() + STOP_DEADLINE_MS;
    if (w->conn_live && w->wsi && w->proto && w->phase != PH_CLOSING) {
        kill_conn(w, "stopped"); /* nothing to unsubscribe from: the close ends it */
    } else if (w->conn_live && w->wsi && w->phase == PH_SUBSCRIBED && w->sub_id[0]) {
        w->want_unsubscribe = true;
        set_phase(w, PH_UNSUBSCRIBING);
        lws_callback_on_writable(w->wsi);
    } else if (w->conn_live && w->wsi && w->phase == PH_SUBSCRIBING) {
        kill_conn(w, "stopped");
    } else if (w->conn_live && w->phase == PH_CLOSING) {
        /* conn_ended() finishes the stop */
    } else {
        w->conn_live = false;
        w->done = true;
    }
}

/* Timeouts the socket itself cannot see: subscribe answer, staleness, unsubscribe answer. */
static void check_timeouts(bp_ws_heads *w, int64_t now)
{
    char why[BP_ERROR_MSG_MAX];
    if (w->phase == PH_HANDSHAKE && now - w->phase_ms > HANDSHAKE_TIMEOUT_MS) {
        kill_conn(w, "no WebSocket handshake within 15 s");
    } else if (w->phase == PH_SUBSCRIBING && now - w->phase_ms > w->sub_timeout_s * 1000.0) {
        snprintf(why, sizeof(why), "%s: no answer within %.1f s%s%.300s", w->sub_what,
                 w->sub_timeout_s, w->last_malformed[0] ? "; last bad message: " : "",
                 w->last_malformed);
        kill_conn(w, why);
    } else if (w->phase == PH_SUBSCRIBED) {
        double stale = stale_after(w, w->st.block_time_s);
        if (now - w->last_head_mono > stale * 1000.0) {
            snprintf(why, sizeof(why), "no new head for %.1f s: connection treated as stale",
                     stale);
            kill_conn(w, why);
        }
    } else if (w->phase == PH_UNSUBSCRIBING && now - w->phase_ms > UNSUBSCRIBE_WAIT_MS) {
        kill_conn(w, "stopped (no answer to eth_unsubscribe)");
    }
}

static void on_tick(lws_sorted_usec_list_t *sul)
{
    bp_ws_heads *w = lws_container_of(sul, bp_ws_heads, tick);
    int64_t now = mono_ms();
    if (atomic_load(&w->stop) && !w->stopping)
        begin_stop(w);
    if (w->stopping && now > w->stop_deadline)
        w->done = true;
    if (!w->stopping && !w->conn_live && now >= w->next_attempt_mono)
        connect_now(w);
    else if (w->conn_live)
        check_timeouts(w, now);
    if (!w->done)
        lws_sul_schedule(w->ctx, 0, &w->tick, on_tick, TICK_US);
}

/* ---- messages ----------------------------------------------------------------------- */

/* One small text message; lws_write wants LWS_PRE bytes of headroom before it. */
static int send_text(struct lws *wsi, const char *text)
{
    unsigned char buf[LWS_PRE + 512];
    size_t n = strlen(text);
    if (n > sizeof(buf) - LWS_PRE)
        return -1;
    memcpy(buf + LWS_PRE, text, n);
    return lws_write(wsi, buf + LWS_PRE, n, LWS_WRITE_TEXT) < (int)n ? -1 : 0;
}

static int on_writable(bp_ws_heads *w, struct lws *wsi)
{
    if (w->want_close) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
        return -1;
    }
    char text[256];
    if (w->want_subscribe && w->proto) { /* one message per writable callback */
        bp_buf m;
        bp_buf_init(&m, 0);
        int rc = w->proto->subscribe(w->proto->ctx, w->sub_sent++, &m) == 0 && m.data
                     ? send_text(wsi, m.data)
                     : -1;
        bp_buf_release(&m);
        w->want_subscribe = w->sub_sent < w->proto->subscriptions;
        if (w->want_subscribe)
            lws_callback_on_writable(wsi);
        return rc;
    }
    if (w->want_subscribe) {
        w->want_subscribe = false;
        return send_text(wsi, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"eth_subscribe\","
                              "\"params\":[\"newHeads\"]}");
    }
    if (w->want_unsubscribe) {
        w->want_unsubscribe = false;
        snprintf(text, sizeof(text),
                 "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"eth_unsubscribe\","
                 "\"params\":[\"%s\"]}",
                 w->sub_id);
        return send_text(wsi, text);
    }
    return 0;
}

static const char *str_of(yajl_val v)
{
    const char *s = v ? YAJL_GET_STRING(v) : NULL;
    return s ? s : "";
}

/* A subscription id goes back into JSON on unsubscribe: keep it to harmless characters. */
bool bp_ws_id_is_safe(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= 128)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x21 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\')
            return false;
    return true;
}

static void on_subscribe_answer(bp_ws_heads *w, yajl_val root)
{
    const char *rpath[] = {"result", NULL}, *epath[] = {"error", NULL};
    yajl_val error = yajl_tree_get(root, epath, yajl_t_object);
    yajl_val result = yajl_tree_get(root, rpath, yajl_t_string);
    bp_error e;
    if (error) {
        bp_decode_rpc_error(error, "eth_subscribe", &e);
        kill_conn(w, e.msg);
        return;
    }
    if (!result || !bp_ws_id_is_safe(str_of(result))) {
        kill_conn(w, "eth_subscribe: the answer has no usable subscription id");
        return;
    }
    snprintf(w->sub_id, sizeof(w->sub_id), "%s", str_of(result));
    w->last_head_mono = mono_ms();
    set_phase(w, PH_SUBSCRIBED);
    bp_info("websocket %s: subscribed to newHeads (subscription %s)", w->endpoint, w->sub_id);
}

static int hex_field(yajl_val obj, const char *name, char *text, size_t cap, uint64_t *num,
                     bp_error *err)
{
    const char *path[] = {name, NULL};
    yajl_val v = yajl_tree_get(obj, path, yajl_t_string);
    if (!v)
        return bp_error_set(err, BP_EPARSE,
                            "newHeads notification: field '%s': missing or "
                            "not a string",
                            name);
    const char *s = str_of(v);
    size_t n = strlen(s);
    if (num && bp_hex_to_u64(s, n, num) != 0)
        return bp_error_set(err, BP_EPARSE,
                            "newHeads notification: field '%s': not a hex quantity: \"%.80s\"",
                            name, s);
    if (text && (n != 66 || !bp_hex_is_data(s, n)))
        return bp_error_set(err, BP_EPARSE,
                            "newHeads notification: field '%s': not a 32-byte hash: \"%.80s\"",
                            name, s);
    if (text)
        snprintf(text, cap, "%s", s);
    return 0;
}

int bp_ws_parse_header(yajl_val header, bp_ws_head *h, bp_error *err)
{
    memset(h, 0, sizeof(*h));
    if (!YAJL_IS_OBJECT(header))
        return bp_error_set(err, BP_EPARSE,
                            "newHeads notification: field 'result': not an "
                            "object");
    int rc = hex_field(header, "number", NULL, 0, &h->number, err);
    if (rc == 0)
        rc = hex_field(header, "hash", h->hash, sizeof(h->hash), NULL, err);
    if (rc == 0)
        rc = hex_field(header, "parentHash", h->parent_hash, sizeof(h->parent_hash), NULL, err);
    if (rc == 0)
        rc = hex_field(header, "timestamp", NULL, 0, &h->timestamp, err);
    h->received_ms = mono_ms();
    return rc;
}

/* Block time from consecutive heads' timestamps (smoothed): drives the automatic stale. */
static void observe_block_time(bp_ws_heads *w, const bp_ws_head *h)
{
    if (w->prev_number && h->number > w->prev_number && h->timestamp >= w->prev_ts) {
        double bt = (double)(h->timestamp - w->prev_ts) / (double)(h->number - w->prev_number);
        double old = w->st.block_time_s;
        w->st.block_time_s = old > 0 ? 0.8 * old + 0.2 * bt : bt;
    }
    w->prev_number = h->number;
    w->prev_ts = h->timestamp;
}

static void push_head(bp_ws_heads *w, const bp_ws_head *h)
{
    pthread_mutex_lock(&w->mu);
    if (w->q_len == w->qcap) {
        w->q_first = (w->q_first + 1) % w->qcap;
        w->q_len--;
        w->st.dropped++;
    }
    w->q[(w->q_first + w->q_len) % w->qcap] = *h;
    w->q_len++;
    w->ring[w->ring_n++ % RATE_RING] = h->received_ms;
    w->st.heads++;
    /* The backoff resets only once a valid head arrived: a server that answers the subscribe
     * and then misbehaves must not be retried at the first interval forever. */
    w->st.consecutive_failures = 0;
    w->st.have_head = true;
    w->st.last_head_number = h->number;
    w->st.last_head_ms = clock_ms(CLOCK_REALTIME);
    observe_block_time(w, h);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void on_notification(bp_ws_heads *w, yajl_val root)
{
    const char *spath[] = {"params", "subscription", NULL};
    const char *rpath[] = {"params", "result", NULL};
    yajl_val sub = yajl_tree_get(root, spath, yajl_t_string);
    if (!sub || strcmp(str_of(sub), w->sub_id) != 0) {
        bp_debug("websocket %s: notification for another subscription ignored", w->endpoint);
        return;
    }
    bp_ws_head h;
    bp_error e;
    if (bp_ws_parse_header(yajl_tree_get(root, rpath, yajl_t_any), &h, &e) != 0) {
        count_malformed(w, e.msg);
        return;
    }
    w->last_head_mono = h.received_ms;
    push_head(w, &h);
}

static void on_answer(bp_ws_heads *w, yajl_val root, long long id)
{
    if (id == SUBSCRIBE_ID && w->phase == PH_SUBSCRIBING)
        on_subscribe_answer(w, root);
    else if (id == UNSUBSCRIBE_ID && w->phase == PH_UNSUBSCRIBING) {
        bp_debug("websocket %s: unsubscribed, closing", w->endpoint);
        kill_conn(w, "stopped");
    } else
        bp_debug("websocket %s: unexpected answer with id %lld ignored", w->endpoint, id);
}

/* A message of another protocol (bp_ws_protocol). */
static void on_proto_message(bp_ws_heads *w, const char *text, size_t len)
{
    bp_ws_head h;
    bp_error e = {0};
    memset(&h, 0, sizeof(h));
    switch (w->proto->message(w->proto->ctx, text, len, &h, &e)) {
    case BP_WS_ANSWERED:
        if (w->phase == PH_SUBSCRIBING && ++w->sub_answered == w->proto->subscriptions) {
            w->last_head_mono = mono_ms();
            set_phase(w, PH_SUBSCRIBED);
            bp_info("websocket %s: subscribed (%s)", w->endpoint, w->sub_what);
            if (w->proto->subscribed)
                w->proto->subscribed(w->proto->ctx);
        }
        return;
    case BP_WS_REFUSED:
        kill_conn(w, e.msg);
        return;
    case BP_WS_HEAD:
        w->last_head_mono = h.received_ms = mono_ms();
        push_head(w, &h);
        return;
    case BP_WS_MALFORMED:
        count_malformed(w, e.msg);
        return;
    case BP_WS_EVENT:
    case BP_WS_IGNORED:
        return;
    }
}

yajl_val bp_ws_parse_message(const char *text, size_t len, char *why, size_t cap)
{
    /* bp_json, not yajl_tree: a message nested half a million deep (1 MiB of [ then ])
     * recursed yajl_tree_free off the stack; bp_json refuses nesting past its bound */
    return bp_json_parse(text, len, why, cap);
}

static void on_message(bp_ws_heads *w, const char *text)
{
    if (w->proto) {
        on_proto_message(w, text, w->msg.len);
        return;
    }
    char yerr[128] = "";
    char msg[BP_ERROR_MSG_MAX];
    yajl_val root = bp_ws_parse_message(text, w->msg.len, yerr, sizeof(yerr));
    const char *mpath[] = {"method", NULL}, *ipath[] = {"id", NULL};
    if (!root || !YAJL_IS_OBJECT(root)) {
        yerr[strcspn(yerr, "\n")] = '\0'; /* yajl adds the text and a caret below */
        snprintf(msg, sizeof(msg), "message is not a JSON object (%.100s): \"%.60s\"",
                 root ? "wrong type" : yerr, text);
        count_malformed(w, msg);
        goto out;
    }
    yajl_val method = yajl_tree_get(root, mpath, yajl_t_string);
    yajl_val id = yajl_tree_get(root, ipath, yajl_t_number);
    if (method && strcmp(str_of(method), "eth_subscription") == 0)
        on_notification(w, root);
    else if (id && YAJL_IS_INTEGER(id))
        on_answer(w, root, YAJL_GET_INTEGER(id));
    else
        bp_debug("websocket %s: message ignored: %.80s", w->endpoint, text);
out:
    bp_json_free(root);
}

/* Fragments and partial frames are gathered into one capped buffer. */
static int on_receive(bp_ws_heads *w, struct lws *wsi, const void *in, size_t len)
{
    size_t rest = lws_remaining_packet_payload(wsi);
    if (w->msg.len + len + rest > w->max_msg || bp_buf_append(&w->msg, in, len) != 0) {
        snprintf(w->close_why, sizeof(w->close_why), "message larger than %zu bytes", w->max_msg);
        /* No lws_close_reason() here: in lws 4.1.6 it crashes the library from within
         * RECEIVE. The peer gets a plain close; the reason is ours to report. */
        set_phase(w, PH_CLOSING);
        return -1;
    }
    if (!lws_is_final_fragment(wsi) || rest > 0)
        return 0;
    pthread_mutex_lock(&w->mu);
    w->st.messages++;
    pthread_mutex_unlock(&w->mu);
    if (w->phase != PH_CLOSING)
        on_message(w, w->msg.data ? w->msg.data : "");
    bp_buf_reset(&w->msg);
    return 0;
}

/* ---- the libwebsockets callback ----------------------------------------------------- */

static void on_peer_close(bp_ws_heads *w, const unsigned char *in, size_t len)
{
    if (w->close_why[0])
        return;
    unsigned code = len >= 2 ? (unsigned)in[0] << 8 | in[1] : 0;
    int rlen = len > 2 ? (int)(len - 2 > 200 ? 200 : len - 2) : 0;
    snprintf(w->close_why, sizeof(w->close_why), "server closed the connection (code %u%s%.*s)",
             code, rlen ? ": " : "", rlen, rlen ? (const char *)in + 2 : "");
}

/* One "Name: value" header; lws wants the name with its colon. */
static int append_header(struct lws *wsi, const char *h, unsigned char **p, unsigned char *end)
{
    char name[128];
    const char *colon = strchr(h, ':');
    if (!colon || (size_t)(colon - h) + 2 > sizeof(name))
        return -1;
    memcpy(name, h, (size_t)(colon - h) + 1);
    name[colon - h + 1] = '\0';
    const char *v = colon + 1 + strspn(colon + 1, " \t");
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name, (const unsigned char *)v,
                                       (int)strlen(v), p, end)
               ? -1
               : 0;
}

static int append_auth(bp_ws_heads *w, struct lws *wsi, void *in, size_t len)
{
    unsigned char **p = in, *end = *p + len;
    if (w->basic_auth && lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION,
                                                      (const unsigned char *)w->basic_auth,
                                                      (int)strlen(w->basic_auth), p, end))
        return -1;
    for (size_t i = 0; i < w->header_count; i++)
        if (append_header(wsi, w->headers[i], p, end) != 0)
            return -1;
    return 0;
}

static void on_closed(bp_ws_heads *w)
{
    char why[160];
    snprintf(why, sizeof(why), "connection closed by the server before answering %s", w->sub_what);
    if (w->phase == PH_SUBSCRIBING)
        conn_ended(w, why);
    else
        conn_ended(w, "connection closed by the server");
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    (void)user;
    bp_ws_heads *w = wsi ? lws_context_user(lws_get_context(wsi)) : NULL;
    if (!w)
        return 0;
    char why[BP_ERROR_MSG_MAX];
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
        return append_auth(w, wsi, in, len);
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        snprintf(why, sizeof(why), "cannot connect: %.300s%s", in ? (const char *)in : "error",
                 w->tls && in && strstr(in, "SSL") ? " (TLS handshake failed: is the server "
                                                     "certificate trusted by the system CA "
                                                     "store?)"
                                                   : "");
        conn_ended(w, why);
        return 0;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        w->want_subscribe = true;
        w->sub_sent = w->sub_answered = 0;
        set_phase(w, PH_SUBSCRIBING);
        bp_debug("websocket %s: open, subscribing", w->endpoint);
        lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return on_writable(w, wsi);
    case LWS_CALLBACK_CLIENT_RECEIVE:
        return on_receive(w, wsi, in, len);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        on_peer_close(w, in, len);
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
        on_closed(w);
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        if (wsi == w->wsi)
            conn_ended(w, "connection lost");
        return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (atomic_load(&w->stop) && !w->stopping && w->ctx)
            begin_stop(w);
        return 0;
    default:
        return 0;
    }
}

/* ---- the thread --------------------------------------------------------------------- */

static void *run(void *arg)
{
    bp_ws_heads *w = arg;
    lws_sul_schedule(w->ctx, 0, &w->tick, on_tick, 1);
    while (!w->done) {
        if (lws_service(w->ctx, 0) < 0) {
            bp_err("websocket %s: libwebsockets service loop failed; head client stopped",
                   w->endpoint);
            set_error(w, "libwebsockets service loop failed; head client stopped");
            break;
        }
    }
    lws_sul_cancel(&w->tick);
    w->stopping = true; /* what the teardown calls back with is only noted */
    pthread_mutex_lock(&w->mu);
    w->ctx_alive = false;
    pthread_mutex_unlock(&w->mu);
    lws_context_destroy(w->ctx); /* may call back: conn_ended() only notes it */
    w->ctx = NULL;
    set_state(w, BP_WS_STOPPED);
    return NULL;
}

/* ---- configuration ------------------------------------------------------------------ */

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* userinfo with its %XX escapes decoded (a password holding '@' or ':' is written so, and
 * libcurl decodes it the same way for the HTTP endpoints); *n becomes the decoded length. */
static char *percent_decode(const char *s, size_t *n)
{
    char *out = malloc(*n + 1);
    size_t k = 0;
    for (size_t i = 0; out && i < *n; i++) {
        int hi = i + 2 < *n && s[i] == '%' ? bp_hex_digit((unsigned char)s[i + 1]) : -1;
        int lo = hi >= 0 ? bp_hex_digit((unsigned char)s[i + 2]) : -1;
        if (lo >= 0) {
            out[k++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[k++] = s[i];
        }
    }
    *n = k;
    return out;
}

/* "Basic " + base64(user:password) */
static char *basic_auth(const char *userinfo, size_t n)
{
    char *plain = percent_decode(userinfo, &n);
    size_t cap = 6 + (n + 2) / 3 * 4 + 16; /* lws wants slack beyond the exact size */
    char *out = plain ? malloc(cap) : NULL;
    if (out) {
        memcpy(out, "Basic ", 6);
        if (lws_b64_encode_string(plain, (int)n, out + 6, (int)(cap - 6)) < 0) {
            free(out);
            out = NULL;
        }
    }
    free(plain);
    return out;
}

static int parse_port(const char *s, size_t n, int *out)
{
    if (n == 0 || n > 5)
        return -1;
    int port = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        port = port * 10 + (s[i] - '0');
    }
    *out = port;
    return port >= 1 && port <= 65535 ? 0 : -1;
}

/* host, [v6] or either with :port; sets address (no brackets) and port. 1 when malformed. */
static int parse_hostport(bp_ws_heads *w, const char *hp, size_t n)
{
    const char *host = hp, *colon;
    size_t hlen;
    if (n > 0 && hp[0] == '[') {
        const char *close = memchr(hp, ']', n);
        if (!close)
            return 1;
        host = hp + 1;
        hlen = (size_t)(close - host);
        colon = close + 1 < hp + n ? close + 1 : NULL;
        if (colon && *colon != ':')
            return 1;
    } else {
        colon = memchr(hp, ':', n);
        hlen = colon ? (size_t)(colon - hp) : n;
    }
    if (hlen == 0)
        return 1;
    if (colon && parse_port(colon + 1, (size_t)(hp + n - colon - 1), &w->port) != 0)
        return 1;
    w->address = dup_n(host, hlen);
    w->host_header = dup_n(hp, n);
    return w->address && w->host_header ? 0 : BP_ENOMEM;
}

static int parse_url(bp_ws_heads *w, const char *url, bp_error *err)
{
    size_t skip = strncasecmp(url, "wss://", 6) == 0  ? 6
                  : strncasecmp(url, "ws://", 5) == 0 ? 5
                                                      : 0;
    w->tls = skip == 6;
    w->port = w->tls ? 443 : 80;
    const char *auth = url + skip;
    size_t alen = strcspn(auth, "/?#");
    const char *at = NULL;
    for (const char *p = auth; p < auth + alen; p++)
        at = *p == '@' ? p : at;
    const char *hp = at ? at + 1 : auth;
    const char *rest = auth + alen;
    size_t rlen = strcspn(rest, "#");
    char shown[1024];
    bp_url_redact(url, shown, sizeof(shown));
    w->endpoint = strdup(shown);
    if (!w->endpoint)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    if (skip == 0)
        return bp_error_set(err, BP_EINVAL, "WebSocket URL '%s': must start with ws:// or wss://",
                            w->endpoint);
    int rc = parse_hostport(w, hp, (size_t)(auth + alen - hp));
    if (rc != 0)
        return bp_error_set(err, rc == BP_ENOMEM ? rc : BP_EINVAL,
                            "WebSocket URL '%s': bad host or port", w->endpoint);
    w->path = rlen && rest[0] == '/' ? dup_n(rest, rlen) : malloc(rlen + 2);
    if (w->path && !(rlen && rest[0] == '/'))
        sprintf(w->path, "/%.*s", (int)rlen, rest);
    if (at)
        w->basic_auth = basic_auth(auth, (size_t)(at - auth));
    if (!w->path || (at && !w->basic_auth))
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    return 0;
}

static int copy_headers(bp_ws_heads *w, const bp_endpoint_auth *a, bp_error *err)
{
    if (!a->header_count)
        return 0;
    w->headers = calloc(a->header_count, sizeof(*w->headers));
    if (!w->headers)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    for (size_t i = 0; i < a->header_count; i++) {
        bp_secret_add_header(a->headers[i]);
        if (!strchr(a->headers[i], ':'))
            return bp_error_set(err, BP_EINVAL, "WebSocket '%s': header %zu is not 'Name: value'",
                                w->endpoint, i + 1);
        if (!(w->headers[w->header_count++] = strdup(a->headers[i])))
            return bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    return 0;
}

static int apply_config(bp_ws_heads *w, const bp_ws_config *cfg, bp_error *err)
{
    if (!cfg || !cfg->url || !cfg->url[0])
        return bp_error_set(err, BP_EINVAL, "WebSocket URL: missing");
    bp_secret_add_url(cfg->url);
    int rc = parse_url(w, cfg->url, err);
    if (rc == 0)
        rc = copy_headers(w, &cfg->auth, err);
    if (rc != 0)
        return rc;
    if (cfg->reconnect_interval_s < 0 || cfg->stale_after_s < 0 || cfg->subscribe_timeout_s < 0)
        return bp_error_set(err, BP_EINVAL,
                            "WebSocket '%s': reconnect interval, stale-after and subscribe "
                            "timeout must not be negative",
                            w->endpoint);
    w->interval_s =
        cfg->reconnect_interval_s > 0 ? cfg->reconnect_interval_s : BP_WS_DEFAULT_RECONNECT_S;
    w->max_attempts =
        cfg->max_reconnect_attempts > 0 ? cfg->max_reconnect_attempts : BP_WS_DEFAULT_MAX_ATTEMPTS;
    w->stale_cfg_s = cfg->stale_after_s;
    w->max_msg = cfg->max_message_bytes ? cfg->max_message_bytes : BP_WS_DEFAULT_MAX_MESSAGE;
    w->sub_timeout_s =
        cfg->subscribe_timeout_s > 0 ? cfg->subscribe_timeout_s : BP_WS_DEFAULT_SUBSCRIBE_TIMEOUT_S;
    w->qcap = cfg->queue_capacity ? cfg->queue_capacity : BP_WS_DEFAULT_QUEUE;
    w->proto = cfg->protocol;
    w->sub_what = w->proto ? w->proto->what : "eth_subscribe";
    if (w->proto && (!w->proto->subscriptions || !w->proto->subscribe || !w->proto->message))
        return bp_error_set(err, BP_EINVAL, "WebSocket '%s': a protocol without subscriptions",
                            w->endpoint);
    w->q = calloc(w->qcap, sizeof(*w->q));
    if (!w->q)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    return 0;
}

/* ---- public ------------------------------------------------------------------------- */

static void lws_log_to_ours(int level, const char *line)
{
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    bp_debug("lws[%d]: %.*s", level, (int)n, line);
}

/* The client context's descriptors: its connection, the cancel pipe, room for a reconnect's
 * new socket while the old one closes. */
#define WS_FDS 16

static int create_context(bp_ws_heads *w, const bp_endpoint_auth *a, bp_error *err)
{
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    w->protocols[0].name = "blockpipe-newheads";
    w->protocols[0].callback = callback;
    w->protocols[0].rx_buffer_size = 65536;
    w->keepalive.secs_since_valid_ping = BP_WS_PING_S;
    w->keepalive.secs_since_valid_hangup = HANGUP_S;
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = w->protocols;
    info.user = w;
    info.gid = -1;
    info.uid = -1;
    info.timeout_secs = 10;
    info.connect_timeout_secs = 10;
    /* One connection (and the cancel pipe): without a limit libwebsockets sizes two tables by
     * the open-files limit, per context and so per chain with --ws (measured 0.4 MiB at 20,000;
     * 16 MiB by the same arithmetic at the 1,048,576 some containers set). A small limit makes
     * its fd lookup a search of these few slots. */
    info.fd_limit_per_thread = WS_FDS;
    info.options = w->tls ? LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT : 0;
    info.client_ssl_ca_filepath = w->tls ? a->ca_file : NULL; /* on top of the system store */
    info.client_ssl_cert_filepath = w->tls ? a->cert_file : NULL;
    info.client_ssl_private_key_filepath =
        w->tls ? (a->key_file ? a->key_file : a->cert_file) : NULL;
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_to_ours);
    w->ctx = lws_create_context(&info);
    if (!w->ctx)
        return bp_error_set(err, BP_EIO, "WebSocket '%s': cannot create the libwebsockets context",
                            w->endpoint);
    w->ctx_alive = true;
    return 0;
}

static void free_heads(bp_ws_heads *w)
{
    if (w->ctx)
        lws_context_destroy(w->ctx);
    bp_buf_release(&w->msg);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w->q);
    free(w->endpoint);
    free(w->address);
    free(w->host_header);
    free(w->path);
    free(w->basic_auth);
    for (size_t i = 0; i < w->header_count; i++)
        free(w->headers[i]);
    free(w->headers);
    free(w);
}

static int init_sync(bp_ws_heads *w)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc == 0)
        rc = pthread_mutex_init(&w->mu, NULL);
    return rc == 0 ? 0 : BP_ENOMEM;
}

int bp_ws_heads_start(bp_ws_heads **out, const bp_ws_config *cfg, bp_error *err)
{
    *out = NULL;
    bp_ws_heads *w = calloc(1, sizeof(*w));
    if (!w || init_sync(w) != 0) {
        free(w);
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    atomic_init(&w->stop, false);
    bp_buf_init(&w->msg, 0);
    int rc = apply_config(w, cfg, err);
    if (rc != 0)
        goto out;
    w->msg.max = w->max_msg;
    w->rng = (uint64_t)mono_ms() * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)w ^ 1;
    w->started_mono = mono_ms();
    snprintf(w->st.endpoint, sizeof(w->st.endpoint), "%s", w->endpoint);
    w->st.state = BP_WS_CONNECTING;
    rc = create_context(w, &cfg->auth, err);
    if (rc != 0)
        goto out;
    if (bp_thread_create(&w->thread, NULL, run, w) != 0) {
        rc = bp_error_set(err, BP_ENOMEM, "WebSocket '%s': cannot start a thread", w->endpoint);
        goto out;
    }
    w->thread_started = true;
    *out = w;
out:
    if (rc != 0)
        free_heads(w);
    return rc;
}

int bp_ws_heads_next(bp_ws_heads *h, bp_ws_head *out, long timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    int got = 0;
    pthread_mutex_lock(&h->mu);
    while (h->q_len == 0 && !h->stopped && timeout_ms > 0)
        if (pthread_cond_timedwait(&h->cv, &h->mu, &until) != 0)
            break;
    if (h->q_len > 0) {
        *out = h->q[h->q_first];
        h->q_first = (h->q_first + 1) % h->qcap;
        h->q_len--;
        got = 1;
    }
    pthread_mutex_unlock(&h->mu);
    return got;
}

/* Heads per second over the last minute (or since start, when younger). On chains faster
 * than RATE_RING heads a minute the ring covers less than a minute: then over what it
 * covers. */
static double rate_locked(const bp_ws_heads *w, int64_t now)
{
    size_t n = w->ring_n < RATE_RING ? w->ring_n : RATE_RING, recent = 0;
    for (size_t i = 0; i < n; i++)
        recent += now - w->ring[i] <= 60000;
    double span = (double)(now - w->started_mono) / 1000.0;
    span = span > 60.0 ? 60.0 : span;
    if (recent == RATE_RING) {
        int64_t oldest = w->ring[w->ring_n % RATE_RING]; /* next to be overwritten */
        span = (double)(now - oldest) / 1000.0;
    }
    return span >= 1.0 ? (double)recent / span : 0.0;
}

void bp_ws_heads_status(bp_ws_heads *h, bp_ws_status *out)
{
    int64_t now = mono_ms();
    pthread_mutex_lock(&h->mu);
    *out = h->st;
    out->heads_per_s = rate_locked(h, now);
    out->stale_after_s = stale_after(h, h->st.block_time_s);
    out->next_attempt_in_ms = 0;
    if (out->state == BP_WS_BACKOFF || out->state == BP_WS_GIVEN_UP)
        out->next_attempt_in_ms = h->retry_at_mono > now ? h->retry_at_mono - now : 0;
    pthread_mutex_unlock(&h->mu);
}

int bp_ws_status_json(const bp_ws_status *s, bp_buf *out)
{
    int rc =
        bp_buf_printf(out, "{\"state\":\"%s\",\"connected\":%s,\"subscribed\":%s,\"endpoint\":",
                      bp_ws_state_name(s->state), s->connected ? "true" : "false",
                      s->subscribed ? "true" : "false");
    if (rc == 0)
        rc = bp_jsonw_quote(out, s->endpoint, BP_JSONW_ESC_U);
    if (rc == 0)
        rc = bp_buf_printf(out,
                           ",\"connected_since_ms\":%" PRId64 ",\"messages\":%" PRIu64
                           ",\"heads\":%" PRIu64 ",\"dropped\":%" PRIu64 ",\"malformed\":%" PRIu64
                           ",\"reconnects\":%" PRIu64
                           ",\"consecutive_failures\":%d,\"last_head_number\":",
                           s->connected_since_ms, s->messages, s->heads, s->dropped, s->malformed,
                           s->reconnects, s->consecutive_failures);
    if (rc == 0 && s->have_head)
        rc = bp_buf_printf(out, "%" PRIu64 ",\"last_head_ms\":%" PRId64, s->last_head_number,
                           s->last_head_ms);
    else if (rc == 0)
        rc = bp_buf_puts(out, "null,\"last_head_ms\":null");
    if (rc == 0)
        rc =
            bp_buf_printf(out,
                          ",\"heads_per_s\":%.3f,\"block_time_s\":%.3f,\"stale_after_s\":%.1f,"
                          "\"next_attempt_in_ms\":%" PRId64 ",\"last_error\":",
                          s->heads_per_s, s->block_time_s, s->stale_after_s, s->next_attempt_in_ms);
    if (rc == 0)
        rc = bp_jsonw_quote(out, s->last_error, BP_JSONW_ESC_U);
    return rc == 0 ? bp_buf_putc(out, '}') : rc;
}

bool bp_ws_heads_healthy(bp_ws_heads *h)
{
    bp_ws_status s;
    bp_ws_heads_status(h, &s);
    if (!s.subscribed)
        return false;
    int64_t since = s.have_head ? s.last_head_ms : s.connected_since_ms;
    if (s.connected_since_ms > since)
        since = s.connected_since_ms;
    return clock_ms(CLOCK_REALTIME) - since <= (int64_t)(s.stale_after_s * 1000.0);
}

void bp_ws_heads_stop(bp_ws_heads *h)
{
    if (!h)
        return;
    atomic_store(&h->stop, true);
    pthread_mutex_lock(&h->mu);
    if (h->ctx_alive)
        lws_cancel_service(h->ctx);
    pthread_mutex_unlock(&h->mu);
    if (h->thread_started)
        pthread_join(h->thread, NULL);
    free_heads(h);
}
