/* arch_ws.c - the Arch topics over the WebSocket client, and the events held for the batches. */
#include "arch/arch_ws.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chain/json.h"
#include "util/log.h"

struct bp_arch_ws {
    bp_ws_protocol proto;
    pthread_mutex_t lock;
    bp_arch_event *q; /* received, not taken yet: arrival order */
    size_t len, cap;
    uint64_t received, malformed;
    uint64_t epoch; /* subscriptions completed (the last topic answered) */
    uint64_t lost;  /* malformed events that may have changed rollback state (lost_state) */
    bool warned_full;
};

static double unix_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* SDK managers/ws-adapter.ts: {"method":"subscribe","params":{topic, filter, request_id}}; no
 * filter: every event of the topic. */
static int subscribe(void *ctx, size_t i, bp_buf *out)
{
    (void)ctx;
    return bp_buf_printf(out,
                         "{\"method\":\"subscribe\",\"params\":{\"topic\":\"%s\",\"filter\":{},"
                         "\"request_id\":\"blockpipe-%zu\"}}",
                         bp_arch_topic_name((enum bp_arch_topic)i), i);
}

/* SDK types/messages.ts SubscriptionResponse {status, subscription_id, topic, request_id}. */
static enum bp_ws_verdict answer(bp_arch_ws *a, const char *text, size_t len, bp_error *err)
{
    yajl_val root = bp_json_parse(text, len, NULL, 0);
    yajl_val st =
        root ? yajl_tree_get(root, (const char *[]){"status", NULL}, yajl_t_string) : NULL;
    yajl_val topic =
        root ? yajl_tree_get(root, (const char *[]){"topic", NULL}, yajl_t_string) : NULL;
    yajl_val msg =
        root ? yajl_tree_get(root, (const char *[]){"message", NULL}, yajl_t_string) : NULL;
    enum bp_ws_verdict v = BP_WS_IGNORED;
    (void)a;
    if (st && strcmp(st->u.string, "Subscribed") == 0) {
        v = BP_WS_ANSWERED; /* the client counts them: subscribed() when all six are */
    } else if (st && strcmp(st->u.string, "Error") == 0) {
        bp_error_set(err, BP_ERPC, "subscribe to topic '%.40s' refused: %.200s",
                     topic ? topic->u.string : "?", msg ? msg->u.string : "(no message)");
        v = BP_WS_REFUSED;
    }
    bp_json_free(root);
    return v;
}

static void push(bp_arch_ws *a, bp_arch_event *e)
{
    pthread_mutex_lock(&a->lock);
    if (a->len == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 256;
        bp_arch_event *q = realloc(a->q, cap * sizeof(*q));
        if (!q) {
            pthread_mutex_unlock(&a->lock);
            bp_err("arch websocket: out of memory: a %s event is lost",
                   bp_arch_topic_name(e->topic));
            bp_arch_event_free(e);
            return;
        }
        a->q = q;
        a->cap = cap;
    }
    a->q[a->len++] = *e;
    a->received++;
    pthread_mutex_unlock(&a->lock);
}

/* A malformed event of this topic may have been a rollback or a re-apply (or part of one: one
 * bad txid fails the list): the rows it would have changed are set from the node instead, by
 * the same re-read a reconnect makes (bp_arch_ws_epoch). block / transaction / account_update /
 * dkg events change no row the blocks fetched over HTTP do not bring. */
static bool lost_state(enum bp_arch_topic t)
{
    return t == BP_ARCH_T_ROLLEDBACK || t == BP_ARCH_T_REAPPLIED || t == BP_ARCH_T_COUNT;
}

static void append(bp_error *err, const char *text)
{
    size_t n = strlen(err->msg);
    snprintf(err->msg + n, sizeof(err->msg) - n, "%s", text);
}

static enum bp_ws_verdict on_message(void *ctx, const char *text, size_t len, bp_ws_head *head,
                                     bp_error *err)
{
    bp_arch_ws *a = ctx;
    bp_arch_event e;
    int rc = bp_arch_decode_event(text, len, unix_now(), &e, err);
    if (rc == BP_EINVAL) /* not an event: a subscription answer */
        return answer(a, text, len, err);
    if (rc != 0) {
        bool lost = lost_state(e.topic);
        if (lost)
            append(err, ": dropped; the rollback state is read again from the node");
        pthread_mutex_lock(&a->lock);
        a->malformed++;
        a->lost += lost;
        pthread_mutex_unlock(&a->lock);
        return BP_WS_MALFORMED;
    }
    bool block = e.topic == BP_ARCH_T_BLOCK;
    if (block) { /* no height: the head poll asks it */
        memcpy(head->hash, e.hash, sizeof(e.hash));
        head->timestamp = e.timestamp;
    }
    push(a, &e);
    return block ? BP_WS_HEAD : BP_WS_EVENT;
}

/* Every topic answered "Subscribed" on this connection (chain/ws.c counts the answers): a
 * resync is due (bp_arch_ws_epoch). */
static void subscribed(void *ctx)
{
    bp_arch_ws *a = ctx;
    pthread_mutex_lock(&a->lock);
    a->epoch++;
    pthread_mutex_unlock(&a->lock);
}

int bp_arch_ws_new(bp_arch_ws **out, bp_error *err)
{
    bp_arch_ws *a = calloc(1, sizeof(*a));
    if (!a)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    pthread_mutex_init(&a->lock, NULL);
    a->proto = (bp_ws_protocol){
        .what = "subscribe (Arch topics)",
        .subscriptions = BP_ARCH_T_COUNT,
        .subscribe = subscribe,
        .message = on_message,
        .subscribed = subscribed,
        .ctx = a,
    };
    *out = a;
    return 0;
}

const bp_ws_protocol *bp_arch_ws_protocol(bp_arch_ws *a)
{
    return &a->proto;
}

static bool ready(const bp_arch_event *e, bool have, uint64_t committed)
{
    return !e->has_height || (have && e->block_height <= committed);
}

int bp_arch_ws_take(bp_arch_ws *a, bool have_committed, uint64_t committed, bp_arch_rows **out,
                    bp_error *err)
{
    *out = NULL;
    pthread_mutex_lock(&a->lock);
    bool full = a->len > BP_ARCH_WS_HELD_MAX;
    size_t n = 0; /* the ready prefix: a later event never overtakes a held one (a re-apply
                     must not land before the rollback it answers) */
    while (n < a->len && (full || ready(&a->q[n], have_committed, committed)))
        n++;
    bp_arch_rows *r = n ? calloc(1, sizeof(*r)) : NULL;
    bp_arch_event *ev = r ? malloc(n * sizeof(*ev)) : NULL;
    if (n && !ev) {
        pthread_mutex_unlock(&a->lock);
        free(r);
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    if (n) {
        memcpy(ev, a->q, n * sizeof(*ev));
        memmove(a->q, a->q + n, (a->len - n) * sizeof(*ev));
        a->len -= n;
        r->events = ev;
        r->event_count = n;
    }
    if (full && !a->warned_full) {
        a->warned_full = true;
        bp_warn("arch websocket: more than %d events wait for their blocks (the pipeline is far "
                "below the head): they are written before their blocks from now on",
                BP_ARCH_WS_HELD_MAX);
    }
    pthread_mutex_unlock(&a->lock);
    *out = r;
    return 0;
}

size_t bp_arch_ws_mark(bp_arch_ws *a)
{
    pthread_mutex_lock(&a->lock);
    size_t n = a->len;
    pthread_mutex_unlock(&a->lock);
    return n;
}

/* Queues e at position *at (events received after the mark stay after it), then *at moves
 * past it. */
static int insert_at(bp_arch_ws *a, bp_arch_event *e, size_t *at)
{
    pthread_mutex_lock(&a->lock);
    if (a->len == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 256;
        bp_arch_event *q = realloc(a->q, cap * sizeof(*q));
        if (!q) {
            pthread_mutex_unlock(&a->lock);
            return BP_ENOMEM;
        }
        a->q = q;
        a->cap = cap;
    }
    size_t i = *at < a->len ? *at : a->len;
    memmove(a->q + i + 1, a->q + i, (a->len - i) * sizeof(*a->q));
    a->q[i] = *e;
    a->len++;
    *at = i + 1;
    pthread_mutex_unlock(&a->lock);
    return 0;
}

static int resync_event(bp_arch_ws *a, enum bp_arch_topic t, const bp_arch_hash *h, size_t n,
                        size_t *at)
{
    bp_arch_event e = {.topic = t, .resync = true};
    if (n == 0)
        return 0;
    e.hashes = malloc(n * sizeof(*h));
    if (!e.hashes)
        return BP_ENOMEM;
    memcpy(e.hashes, h, n * sizeof(*h));
    e.hash_count = n;
    if (insert_at(a, &e, at) != 0) {
        free(e.hashes);
        return BP_ENOMEM;
    }
    return 0;
}

int bp_arch_ws_resync(bp_arch_ws *a, size_t mark, const bp_arch_hash *rolled, size_t nr,
                      const bp_arch_hash *kept, size_t nk, bp_error *err)
{
    size_t at = mark;
    if (resync_event(a, BP_ARCH_T_ROLLEDBACK, rolled, nr, &at) != 0 ||
        resync_event(a, BP_ARCH_T_REAPPLIED, kept, nk, &at) != 0)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    return 0;
}

uint64_t bp_arch_ws_epoch(bp_arch_ws *a, uint64_t *lost)
{
    pthread_mutex_lock(&a->lock);
    uint64_t e = a->epoch + a->lost;
    if (lost)
        *lost = a->lost;
    pthread_mutex_unlock(&a->lock);
    return e;
}

void bp_arch_ws_stats(bp_arch_ws *a, uint64_t *received, uint64_t *malformed, size_t *held)
{
    pthread_mutex_lock(&a->lock);
    *received = a->received;
    *malformed = a->malformed;
    *held = a->len;
    pthread_mutex_unlock(&a->lock);
}

void bp_arch_ws_free(bp_arch_ws *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->len; i++)
        bp_arch_event_free(&a->q[i]);
    free(a->q);
    pthread_mutex_destroy(&a->lock);
    free(a);
}
