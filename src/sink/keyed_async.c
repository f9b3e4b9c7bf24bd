/* keyed_async.c - asynchronous keyed-stream operations (include/blockpipe/keyed.h): a
 * submission queues the operation on its handle; bp_keyed_poll takes the queue in rounds and
 * gives each round's publications to the store's commit (the function a group commit's leader
 * calls: one MULTI/EXEC, one SQLite transaction) and its reads to the store's read round (one
 * Redis pipeline), then calls each operation's done. One thread keeps any number of operations
 * in flight without a thread, a wake-up or a lock per operation. */
#include <stdint.h>
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
    return k->aq_n;
}

/* The next round off the queue (up to max operations): its publications and its reads, each
 * linked (p.next) in submission order; the operations themselves stay linked by next. */
static bp_keyed_async *take(bp_keyed *k, size_t max, size_t *n, bp_keyed_pub **pubs, size_t *npubs,
                            bp_keyed_pub **reads, size_t *nreads)
{
    bp_keyed_pub **pt = pubs, **rt = reads;
    bp_keyed_async *round = k->aq, *a = round, *last = NULL;
    size_t bytes = 0;
    *n = *npubs = *nreads = 0;
    for (; a && *n < ROUND_MAX && *n < max; last = a, a = a->next, (*n)++) {
        bytes += a->p.json ? strlen(a->p.json) : 0;
        if (*n > 0 && bytes > ROUND_BYTES)
            break;
        a->p.next = NULL;
        if (a->p.json) {
            *pt = &a->p;
            pt = &a->p.next;
            (*npubs)++;
        } else {
            *rt = &a->p;
            rt = &a->p.next;
            (*nreads)++;
        }
    }
    *pt = *rt = NULL;
    last->next = NULL;
    k->aq = a;
    if (!a)
        k->aq_tail = &k->aq;
    k->aq_n -= *n;
    return round;
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

size_t bp_keyed_poll(bp_keyed *k)
{
    size_t total = 0, todo = k->aq_n; /* not what done submits meanwhile */
    while (todo > 0 && k->aq) {
        size_t n, npubs, nreads;
        bp_keyed_pub *pubs, *reads;
        bp_keyed_async *round = take(k, todo, &n, &pubs, &npubs, &reads, &nreads);
        bp_error err = {0};
        if (npubs)
            settle(pubs, k->ops->commit(k, pubs, npubs, &err), &err);
        if (nreads)
            settle(reads, k->ops->read(k, reads, nreads, &err), &err);
        /* publications first, then reads, each in submission order */
        for (int pass = 0; pass < 2; pass++)
            for (bp_keyed_async *a = round, *next, **prev = &round; a; a = next) {
                next = a->next;
                if ((a->p.json != NULL) != (pass == 0)) {
                    prev = &a->next;
                    continue;
                }
                *prev = next;
                finish(a);
            }
        total += n;
        todo -= n;
    }
    return total;
}

void bp_keyed_async_cancel(bp_keyed *k)
{
    /* the queue is detached first and submissions refused: a done function that submits
     * again gets BP_ESTOPPED instead of linking to an operation about to be freed */
    k->closing = true;
    bp_keyed_async *q = k->aq;
    k->aq = NULL;
    k->aq_tail = &k->aq;
    k->aq_n = 0;
    while (q) {
        bp_keyed_async *a = q;
        q = a->next;
        a->p.rc = bp_error_set(&a->err, BP_ESTOPPED, "%s: closed before the operation was sent",
                               k->where ? k->where : "stream store");
        finish(a);
    }
}
