/* keyed_async.c - asynchronous keyed-stream operations (include/blockpipe/keyed.h): a
 * submission queues the operation on its handle; bp_keyed_poll takes the queue in rounds and
 * gives each round's publications to the store's commit (the function a group commit's leader
 * calls: one MULTI/EXEC, one SQLite transaction) and its reads to the store's read round (one
 * Redis pipeline), then calls each operation's done. One thread keeps any number of operations
 * in flight without a thread, a wake-up or a lock per operation. */
#include <stdint.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sink/keyed_internal.h"

#define ROUND_MAX 1024         /* operations in one round (as a group commit) */
#define ROUND_BYTES (4u << 20) /* and their values' bytes (at least one operation) */

typedef struct bp_keyed_async {
    bp_keyed_pub p; /* key in text; json (NULL: a read) owned, as the entry's value */
    bp_keyed_done_fn done;
    void *ctx;
    bp_error err;
    bp_keyed_entry e; /* a read's entry */
    struct bp_keyed_async *next;
    char text[]; /* the key */
} bp_keyed_async;

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Queues an operation on key: a publication of json (compact, malloc'd: the operation owns it
 * from here, whatever happens) or, json NULL, a latest read. */
static int submit(bp_keyed *k, const char *key, char *json, bp_keyed_done_fn done, void *ctx,
                  bp_error *err)
{
    if (k->closing) {
        free(json);
        return bp_error_set(err, BP_ESTOPPED, "%s: closing", k->where ? k->where : "stream store");
    }
    size_t klen = strlen(key) + 1;
    bp_keyed_async *a = malloc(sizeof(*a) + klen);
    if (!a) {
        free(json);
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    memset(a, 0, sizeof(*a));
    memcpy(a->text, key, klen);
    a->p = (bp_keyed_pub){.key = a->text,
                          .json = json,
                          .time_ms = wall_ms(), /* SQLite's; Redis' is the server's */
                          .max = 1,
                          .out = &a->e,
                          .err = &a->err};
    a->done = done;
    a->ctx = ctx;
    if (!k->aq_tail)
        k->aq_tail = &k->aq;
    *k->aq_tail = a;
    k->aq_tail = &a->next;
    k->aq_n++;
    return 0;
}

int bp_keyed_publish_async(bp_keyed *k, const char *key, const char *json, bp_keyed_done_fn done,
                           void *ctx, bp_error *err)
{
    char *compact = NULL;
    int rc = bp_keyed_check_key(k, key, err);
    if (rc == 0)
        rc = bp_keyed_compact_json(k, json, &compact, err);
    return rc ? rc : submit(k, key, compact, done, ctx, err);
}

int bp_keyed_latest_async(bp_keyed *k, const char *key, bp_keyed_done_fn done, void *ctx,
                          bp_error *err)
{
    int rc = bp_keyed_check_key(k, key, err);
    return rc ? rc : submit(k, key, NULL, done, ctx, err);
}

size_t bp_keyed_pending(const bp_keyed *k)
{
    return k->aq_n + k->rounds_n;
}

/* The next round off the queue (up to max operations) into r: its publications and its reads,
 * each linked (p.next) in submission order; the operations themselves stay linked by next. */
static void take(bp_keyed *k, size_t max, bp_keyed_round *r)
{
    bp_keyed_pub **pt = &r->pubs, **rt = &r->reads;
    bp_keyed_async *a = k->aq, *last = NULL;
    size_t bytes = 0;
    *r = (bp_keyed_round){.ops = k->aq};
    for (; a && r->n < ROUND_MAX && r->n < max; last = a, a = a->next, r->n++) {
        bytes += a->p.json ? strlen(a->p.json) : 0;
        if (r->n > 0 && bytes > ROUND_BYTES)
            break;
        a->p.next = NULL;
        if (a->p.json) {
            *pt = &a->p;
            pt = &a->p.next;
            r->npubs++;
        } else {
            *rt = &a->p;
            rt = &a->p.next;
            r->nreads++;
        }
    }
    *pt = *rt = NULL;
    last->next = NULL;
    k->aq = a;
    if (!a)
        k->aq_tail = &k->aq;
    k->aq_n -= r->n;
}

/* The outcome of a round's list: the store's error for each when the round failed as a whole. */
static void settle(bp_keyed_pub *list, int rc, const bp_error *err)
{
    for (bp_keyed_pub *p = list; p && rc != 0; p = p->next) {
        p->rc = rc;
        *p->err = *err;
    }
}

/* done called with the operation's outcome, the operation freed (an entry's value unless done
 * took it). */
static void finish(bp_keyed_async *a)
{
    bp_keyed_pub *p = &a->p;
    if (p->json) /* a publication's entry: the value it stored */
        a->e = (bp_keyed_entry){.time_ms = p->time_ms, .value = (char *)p->json};
    if (p->rc != 0) {
        a->done(a->ctx, p->rc, NULL, &a->err);
    } else {
        if (p->json) {
            memcpy(a->e.id, p->id, sizeof(a->e.id));
            bp_keyed_notify(p->key);
        }
        a->done(a->ctx, 0, p->json || p->n ? &a->e : NULL, NULL);
    }
    bp_keyed_entry_release(&a->e);
    free(a);
}

/* How much of the queue the first of two rounds takes: half, unless that changes what a read
 * sees (a round's reads see its publications: a read in the first half would miss a
 * publication of the second), then all of it. */
static size_t first_round(const bp_keyed *k)
{
    size_t half = (k->aq_n + 1) / 2, i = 0;
    bool reads = false, pubs = false;
    for (const bp_keyed_async *a = k->aq; a; a = a->next, i++) {
        if (i < half)
            reads |= a->p.json == NULL;
        else
            pubs |= a->p.json != NULL;
    }
    return reads && pubs ? SIZE_MAX : half;
}

/* Sends rounds off the queue until two are in flight (a store that pipelines) or one is taken
 * (one that does not: it is made when received). A pipelining store's first round is half the
 * queue (first_round), so that one half's outcomes are read while the store works on the
 * other; every later round is what the callers submitted meanwhile. Without pipelining a round
 * holds only what was queued before the poll (todo). */
static void fill(bp_keyed *k, size_t todo)
{
    while (k->aq && k->nrounds < 2 &&
           !(k->nrounds && k->rounds[(k->rhead + k->nrounds - 1) % 2].sync)) {
        bool pipe = k->ops->send && k->ops->send(k, NULL, NULL, NULL) == 0;
        size_t max = !pipe ? todo : !k->nrounds && k->aq_n > 1 ? first_round(k) : SIZE_MAX;
        bp_keyed_round *r = &k->rounds[(k->rhead + k->nrounds) % 2];
        take(k, max, r);
        k->nrounds++;
        k->rounds_n += r->n;
        if (pipe)
            r->rc = k->ops->send(k, r->pubs, r->reads, &r->err);
        r->sync = !pipe || r->rc == BP_KEYED_UNPIPELINED;
        if (r->sync) {
            r->rc = 0;
            break;
        }
    }
}

/* A round's reads after its connection failed: made again by read (they change nothing, as a
 * read call is tried again on a new connection), or given the round's error. */
static void reads_failed(bp_keyed *k, bp_keyed_round *r, int rc, const bp_error *err)
{
    if (bp_error_is_transient(rc) && r->nreads) {
        bp_error e = {0};
        settle(r->reads, k->ops->read(k, r->reads, r->nreads, &e), &e);
    } else {
        settle(r->reads, rc, err);
    }
}

/* The outcomes of the oldest round: made now (sync), read from the store, or its failure. */
static void outcomes(bp_keyed *k, bp_keyed_round *r)
{
    bp_error err = {0};
    int rc = r->rc;
    if (!r->sync && rc == 0)
        rc = k->ops->recv(k, r->pubs, r->npubs, r->reads, r->nreads, &err);
    else
        err = r->err;
    if (r->sync || rc == BP_KEYED_REDO) {
        if (r->npubs)
            settle(r->pubs, k->ops->commit(k, r->pubs, r->npubs, &err), &err);
        if (r->nreads)
            settle(r->reads, k->ops->read(k, r->reads, r->nreads, &err), &err);
    } else if (rc != 0) {
        settle(r->pubs, rc, &err); /* not again: they may have been published */
        reads_failed(k, r, rc, &err);
    }
}

/* The oldest round done: its outcomes, then done for each operation, the publications first,
 * then the reads, each in submission order. Returns how many. */
static size_t complete(bp_keyed *k)
{
    bp_keyed_round r = k->rounds[k->rhead];
    outcomes(k, &r);
    k->rhead = (k->rhead + 1) % 2;
    k->nrounds--;
    k->rounds_n -= r.n;
    for (int pass = 0; pass < 2; pass++)
        for (bp_keyed_async *a = r.ops, *next, **prev = &r.ops; a; a = next) {
            next = a->next;
            if ((a->p.json != NULL) != (pass == 0)) {
                prev = &a->next;
                continue;
            }
            *prev = next;
            finish(a);
        }
    return r.n;
}

size_t bp_keyed_poll(bp_keyed *k)
{
    /* what was submitted before the call, not what done submits meanwhile (it may be sent,
     * to keep the store busy, and is done by a later poll) */
    size_t total = 0, todo = bp_keyed_pending(k);
    while (todo > 0 && (k->aq || k->nrounds)) {
        if (!k->closing)
            fill(k, todo);
        size_t n = complete(k);
        total += n;
        todo -= n < todo ? n : todo;
    }
    return total;
}

void bp_keyed_async_cancel(bp_keyed *k)
{
    /* the queue is detached first and submissions refused: a done function that submits
     * again gets BP_ESTOPPED instead of linking to an operation about to be freed; the rounds
     * already sent get their outcomes (they may be stored) */
    k->closing = true;
    bp_keyed_async *q = k->aq;
    k->aq = NULL;
    k->aq_tail = &k->aq;
    k->aq_n = 0;
    while (k->nrounds)
        complete(k);
    while (q) {
        bp_keyed_async *a = q;
        q = a->next;
        a->p.rc = bp_error_set(&a->err, BP_ESTOPPED, "%s: closed before the operation was sent",
                               k->where ? k->where : "stream store");
        finish(a);
    }
}
