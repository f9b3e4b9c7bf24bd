/* outputs.c - per-output filtering and checkpoints over one ordered event stream. */
#include "core/outputs.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics/derive_job.h"
#include "metrics/metrics.h"
#include "util/log.h"

/* ---- what each output holds -------------------------------------------------------- */

static const bp_checkpoint *held_top(const bp_held *h)
{
    return h->n ? &h->e[(h->first + h->n - 1) % BP_OUTPUTS_HELD] : NULL;
}

/* The hash of the output's block at height number, NULL when it keeps none there. */
static const char *held_hash(const bp_held *h, uint64_t number)
{
    if (h->n == 0 || number < h->e[h->first].number || number - h->e[h->first].number >= h->n)
        return NULL;
    return h->e[(h->first + (number - h->e[h->first].number)) % BP_OUTPUTS_HELD].hash;
}

static void held_push(bp_held *h, uint64_t number, const char *hash)
{
    const bp_checkpoint *top = held_top(h);
    if (top && top->number + 1 != number)
        h->n = 0; /* not consecutive (a backfill --from above the checkpoint): start over */
    if (h->n == BP_OUTPUTS_HELD) {
        h->first = (h->first + 1) % BP_OUTPUTS_HELD;
        h->n--;
    }
    bp_checkpoint *e = &h->e[(h->first + h->n) % BP_OUTPUTS_HELD];
    e->set = true;
    e->number = number;
    snprintf(e->hash, sizeof(e->hash), "%s", hash ? hash : "");
    h->n++;
}

/* From the `recent` op (newest first) when it ends at the checkpoint, else the checkpoint. */
static void held_load(bp_held *h, bp_sink *s, const char *chain, const bp_checkpoint *cp)
{
    bp_checkpoint *recent = calloc(BP_OUTPUTS_HELD, sizeof(*recent));
    size_t n = 0;
    bp_error e;
    memset(h, 0, sizeof(*h));
    if (!cp->set)
        goto out;
    if (!recent || !s->ops->recent ||
        s->ops->recent(s, chain, recent, BP_OUTPUTS_HELD, &n, &e) != 0 || n == 0 ||
        recent[0].number != cp->number || strcmp(recent[0].hash, cp->hash) != 0)
        n = 0;
    for (size_t i = n; i-- > 0;)
        held_push(h, recent[i].number, recent[i].hash);
    if (n == 0)
        held_push(h, cp->number, cp->hash);
out:
    free(recent);
}

/* ---- health (the status endpoints) ------------------------------------------------------ */

/* Output i's state and failure (why NULL: none). */
static void health_set(bp_outputs *o, size_t i, enum bp_output_state state, const bp_error *why)
{
    pthread_mutex_lock(&o->health_lock);
    o->health[i].state = state;
    snprintf(o->health[i].error, sizeof(o->health[i].error), "%s", why ? why->msg : "");
    pthread_mutex_unlock(&o->health_lock);
}

/* Whose failure stops the run, after failed_count changed. Writer thread (or before it runs). */
static void health_stops(bp_outputs *o)
{
    pthread_mutex_lock(&o->health_lock);
    for (size_t i = 0; i < o->count; i++)
        o->health[i].stops = !o->keep_going || o->failed_count + !o->failed[i] >= o->count;
    pthread_mutex_unlock(&o->health_lock);
}

/* bp_sink.on_retry: the sink waits to try again (inside a write, or a probe's read). An output
 * set aside or failed keeps its state and takes the newer error. */
static void on_retry(void *ctx, const bp_sink *s, const bp_error *why)
{
    bp_outputs *o = ctx;
    for (size_t i = 0; i < o->count; i++) {
        if (o->sinks[i] != s)
            continue;
        pthread_mutex_lock(&o->health_lock);
        if (o->health[i].state == BP_OUTPUT_OK)
            o->health[i].state = BP_OUTPUT_RETRYING;
        snprintf(o->health[i].error, sizeof(o->health[i].error), "%s", why->msg);
        pthread_mutex_unlock(&o->health_lock);
        return;
    }
}

void bp_outputs_health(bp_outputs *o, size_t i, bp_stats_output *so)
{
    static const char *const names[] = {
        [BP_OUTPUT_OK] = "ok",
        [BP_OUTPUT_RETRYING] = "retrying",
        [BP_OUTPUT_SET_ASIDE] = "set-aside",
        [BP_OUTPUT_FAILED] = "failed",
    };
    if (!o->health || i >= o->count)
        return;
    pthread_mutex_lock(&o->health_lock);
    const bp_output_health *h = &o->health[i];
    snprintf(so->state, sizeof(so->state), "%s", names[h->state]);
    snprintf(so->error, sizeof(so->error), "%.*s", (int)sizeof(so->error) - 1,
             h->state == BP_OUTPUT_OK ? "" : h->error);
    so->failure_stops = h->stops;
    pthread_mutex_unlock(&o->health_lock);
}

/* ---- set aside and probed ---------------------------------------------------------------- */

typedef struct probe_arg {
    bp_outputs *o;
    size_t i;
} probe_arg;

/* Sleeps ms in steps, false when asked to stop meanwhile. */
static bool probe_sleep(bp_outputs *o, long ms)
{
    for (long t = 0; t < ms; t += 100) {
        if (atomic_load(&o->stop_probes))
            return false;
        nanosleep(&(struct timespec){0, 100 * 1000000L}, NULL);
    }
    return !atomic_load(&o->stop_probes);
}

/* The probe thread of a set-aside output: asks for its checkpoint until it answers. The sink
 * is this thread's alone until the pipeline takes it back (bp_outputs_rejoin joins it). */
static void *probe_main(void *arg)
{
    probe_arg a = *(probe_arg *)arg;
    free(arg);
    bp_outputs *o = a.o;
    bp_sink *s = o->sinks[a.i];
    /* (a group rolled back: its checkpoint is there now; the checkpoint op clears rewind) */
    bool rewound = o->rewound[a.i];
    long delay = rewound ? 0 : 1000;
    for (int attempt = 1; probe_sleep(o, delay); attempt++) {
        bp_error e = {0};
        bp_checkpoint cp;
        if (s->ops->checkpoint(s, o->chain, &cp, &e) == 0) {
            o->probe_cp[a.i] = cp;
            atomic_store(&o->back[a.i], true);
            bp_info("output '%s' answers again (its checkpoint: %s%" PRIu64 "); catching it up",
                    s->url, cp.set ? "" : "none, ", cp.set ? cp.number : 0);
            return NULL;
        }
        long next = delay ? (delay * 2 > 30000 ? 30000 : delay * 2) : 1000;
        if (rewound && attempt >= BP_OUTPUTS_REWIND_ATTEMPTS) {
            o->probe_err[a.i] = e;
            atomic_store(&o->gave_up[a.i], true);
            return NULL;
        }
        bp_info("output '%s' is still set aside: %s (asked again in %ld s)", s->url, e.msg,
                next / 1000);
        on_retry(o, s, &e);
        delay = next;
    }
    return NULL;
}

static void start_probe(bp_outputs *o, size_t i)
{
    probe_arg *a = malloc(sizeof(*a));
    if (a) {
        *a = (probe_arg){o, i};
        o->probing[i] = bp_thread_create(&o->probes[i], NULL, probe_main, a) == 0;
    }
    if (!o->probing[i]) {
        free(a);
        bp_err("output '%s': cannot start its probe thread; it stays set aside until the next "
               "start",
               o->sinks[i]->url);
    }
}

/* why: the failure, shown while it is set aside. A rewound output (bp_sink.rewind) is
 * "retrying": its probe reads its checkpoint until it answers, or the run stops. */
static void set_aside(bp_outputs *o, size_t i, const bp_error *why)
{
    o->failed[i] = true;
    o->failed_count++;
    health_stops(o);
    health_set(o, i, o->rewound[i] ? BP_OUTPUT_RETRYING : BP_OUTPUT_SET_ASIDE, why);
    start_probe(o, i);
}

static void join_probe(bp_outputs *o, size_t i)
{
    if (o->probing && o->probing[i]) {
        pthread_join(o->probes[i], NULL);
        o->probing[i] = false;
    }
}

/* With keep_going, an output sent back to its checkpoint that did not answer stays set aside
 * as any failed output does, probed until it answers; a backfill no longer waits for it. */
static void rewind_given_up(bp_outputs *o, size_t i)
{
    join_probe(o, i);
    atomic_store(&o->gave_up[i], false);
    o->rewound[i] = false;
    o->rewinding--;
    bp_err("output '%s': sent back to its checkpoint, it has not answered in %d reads of it "
           "(last: %s); it stays set aside (--output-failure continue) and is asked again every "
           "few seconds: when it answers it is caught up from its checkpoint",
           o->sinks[i]->url, BP_OUTPUTS_REWIND_ATTEMPTS, o->probe_err[i].msg);
    health_set(o, i, BP_OUTPUT_SET_ASIDE, &o->probe_err[i]);
    start_probe(o, i);
}

/* Whether an output given up on stops the run: without --output-failure continue, or when no
 * other output is left to go on with. */
static bool give_up_stops(const bp_outputs *o)
{
    return !o->keep_going || o->failed_count >= o->count;
}

int bp_outputs_given_up(bp_outputs *o, bp_error *err)
{
    for (size_t i = 0; o->gave_up && give_up_stops(o) && i < o->count; i++)
        if (atomic_load(&o->gave_up[i])) {
            health_set(o, i, BP_OUTPUT_FAILED, &o->probe_err[i]);
            return bp_error_set(
                err, BP_ETIMEOUT,
                "output '%s': batches it held open in one transaction were rolled back by a "
                "failure, and it has not answered since: %d reads of its checkpoint failed "
                "(last: %s); stopping, as waiting for it would never end. Its checkpoint is "
                "where its last commit left it; the next run writes the rest again from there",
                o->sinks[i]->url, BP_OUTPUTS_REWIND_ATTEMPTS, o->probe_err[i].msg);
        }
    return 0;
}

bool bp_outputs_rejoin_point(bp_outputs *o, bp_checkpoint *cp, size_t *index)
{
    bool any = false;
    for (size_t i = 0; !give_up_stops(o) && i < o->count; i++)
        if (atomic_load(&o->gave_up[i]))
            rewind_given_up(o, i);
    for (size_t i = 0; i < o->count; i++) {
        if (!atomic_load(&o->back[i]))
            continue;
        const bp_checkpoint *c = &o->probe_cp[i];
        if (!any || !c->set || (cp->set && c->number < cp->number)) {
            *cp = *c;
            *index = i;
        }
        any = true;
    }
    return any;
}

void bp_outputs_rejoin(bp_outputs *o, size_t i)
{
    join_probe(o, i);
    atomic_store(&o->back[i], false);
    o->cps[i] = o->probe_cp[i];
    held_load(&o->held[i], o->sinks[i], o->chain, &o->cps[i]); /* what it holds now */
    if (o->failed[i]) {
        o->failed[i] = false;
        o->failed_count--;
    }
    if (o->rewound[i]) {
        o->rewound[i] = false;
        o->rewinding--;
    }
    health_stops(o);
    health_set(o, i, BP_OUTPUT_OK, NULL);
}

bool bp_outputs_rewinding(const bp_outputs *o)
{
    return o->rewinding > 0;
}

/* ---- init ------------------------------------------------------------------------------- */

int bp_outputs_init(bp_outputs *o, bp_sink **sinks, size_t count, const char *chain,
                    bool keep_going, bp_error *err)
{
    memset(o, 0, sizeof(*o));
    pthread_mutex_init(&o->health_lock, NULL); /* (destroyed by bp_outputs_release) */
    o->sinks = sinks;
    o->count = count;
    o->chain = chain;
    o->keep_going = keep_going;
    /* BP_GROUP_MS: the time bound for experiments (under valgrind a batch takes seconds, and
     * the groups a real backfill has would not form) */
    const char *ms = getenv("BP_GROUP_MS");
    o->group_ms = ms && *ms ? strtoll(ms, NULL, 10) : BP_GROUP_MS;
    size_t n = count ? count : 1;
    o->cps = calloc(n, sizeof(*o->cps));
    o->failed = calloc(n, sizeof(*o->failed));
    o->held = calloc(n, sizeof(*o->held));
    o->probing = calloc(n, sizeof(*o->probing));
    o->probes = calloc(n, sizeof(*o->probes));
    o->back = calloc(n, sizeof(*o->back));
    o->probe_cp = calloc(n, sizeof(*o->probe_cp));
    o->write_us = calloc(n, sizeof(*o->write_us));
    o->rewound = calloc(n, sizeof(*o->rewound));
    o->gave_up = calloc(n, sizeof(*o->gave_up));
    o->probe_err = calloc(n, sizeof(*o->probe_err));
    o->health = calloc(n, sizeof(*o->health));
    if (!o->cps || !o->failed || !o->held || !o->probing || !o->probes || !o->back ||
        !o->probe_cp || !o->write_us || !o->rewound || !o->gave_up || !o->probe_err || !o->health)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    health_stops(o);
    for (size_t i = 0; i < count; i++) {
        sinks[i]->on_retry = on_retry;
        sinks[i]->on_retry_ctx = o;
    }
    for (size_t i = 0; i < count; i++) {
        atomic_init(&o->back[i], false);
        atomic_init(&o->gave_up[i], false);
        bp_hist_init(&o->write_us[i]);
    }
    atomic_init(&o->stop_probes, false);
    for (size_t i = 0; i < count; i++) {
        int rc = sinks[i]->ops->checkpoint(sinks[i], chain, &o->cps[i], err);
        if (rc == 0) {
            health_set(o, i, BP_OUTPUT_OK, NULL); /* it answered, after a reconnect maybe */
            held_load(&o->held[i], sinks[i], chain, &o->cps[i]);
            continue;
        }
        bp_error_prefix(err, "output '%s': reading checkpoint: ", sinks[i]->url);
        /* a chain whose lock another process holds is that process's, in every output */
        if (!keep_going || o->failed_count + 1 == count || rc == BP_ELOCKLOST)
            return rc;
        bp_err("%s; this output is set aside (--output-failure continue) and asked again "
               "every few seconds; when it answers it is caught up from its checkpoint",
               err->msg);
        memset(&o->cps[i], 0, sizeof(o->cps[i]));
        set_aside(o, i, err);
        bp_error_clear(err);
    }
    return 0;
}

void bp_outputs_release(bp_outputs *o)
{
    if (o->back)
        atomic_store(&o->stop_probes, true);
    for (size_t i = 0; o->probing && i < o->count; i++)
        join_probe(o, i);
    for (size_t i = 0; o->health && i < o->count; i++) /* (the sinks are closed after) */
        o->sinks[i]->on_retry = NULL;
    if (o->count || o->health)
        pthread_mutex_destroy(&o->health_lock);
    free(o->health);
    free(o->failed);
    free(o->write_us);
    free(o->rewound);
    free(o->gave_up);
    free(o->probe_err);
    free(o->cps);
    free(o->held);
    free(o->scratch);
    free(o->own);
    free(o->probing);
    free(o->probes);
    free(o->back);
    free(o->probe_cp);
    memset(o, 0, sizeof(*o));
}

uint64_t bp_outputs_agreed(const bp_outputs *o, size_t idx)
{
    const bp_held *low = &o->held[idx];
    uint64_t start = o->cps[idx].number + 1;
    for (size_t j = 0; j < o->count; j++) {
        if (j == idx || !o->cps[j].set || low->n == 0)
            continue;
        for (uint64_t n = low->e[low->first].number; n < start; n++) {
            const char *a = held_hash(low, n), *b = held_hash(&o->held[j], n);
            if (a && b && strcmp(a, b) != 0) {
                start = n;
                break;
            }
        }
    }
    return start;
}

void bp_outputs_lowest(const bp_outputs *o, bp_checkpoint *out, size_t *lowest_index,
                       bool *any_unset)
{
    memset(out, 0, sizeof(*out));
    *lowest_index = 0;
    *any_unset = false;
    for (size_t i = 0; i < o->count; i++) {
        if (o->failed && o->failed[i])
            continue;
        if (!o->cps[i].set) {
            *any_unset = true;
            continue;
        }
        if (!out->set || o->cps[i].number < out->number) {
            *out = o->cps[i];
            *lowest_index = i;
        }
    }
    out->floor_set = false; /* the lowest of every output's, not the lowest checkpoint's */
    for (size_t i = 0; i < o->count; i++)
        if (!(o->failed && o->failed[i]) && o->cps[i].set && o->cps[i].floor_set &&
            (!out->floor_set || o->cps[i].floor < out->floor)) {
            out->floor_set = true;
            out->floor = o->cps[i].floor;
        }
}

/* ---- one output's view of the stream ------------------------------------------------- */

typedef struct view {
    bp_outputs *o;
    bp_held *held;
    bp_checkpoint cp; /* the output's checkpoint as the events so far leave it */
    size_t n, own;    /* events out (o->scratch), REVERTs made (o->own) */
} view;

static void view_event(view *v, bp_event_kind kind, const bp_block *b)
{
    v->o->scratch[v->n++] = (bp_event){.kind = kind, .block = b};
    if (kind == BP_EVENT_APPLY) {
        held_push(v->held, b->number, b->hash);
        v->cp.set = true;
        v->cp.number = b->number;
        snprintf(v->cp.hash, sizeof(v->cp.hash), "%s", b->hash);
        return;
    }
    const bp_checkpoint *top = held_top(v->held);
    if (top && top->number == b->number)
        v->held->n--;
    v->cp.set = b->number > 0;
    v->cp.number = b->number - 1;
    snprintf(v->cp.hash, sizeof(v->cp.hash), "%s", b->parent_hash ? b->parent_hash : "");
    if (v->held->n == 0 && v->cp.set && v->cp.hash[0])
        held_push(v->held, v->cp.number, v->cp.hash);
}

/* A REVERT of the output's newest block, made from what it holds (a block of the chain's
 * family: an Arch output reverts arch_* rows): false when it keeps nothing below it to name
 * the parent by. */
static bool revert_tip(view *v, enum bp_family family)
{
    const bp_checkpoint *top = held_top(v->held);
    const char *parent = top && top->number > 0 ? held_hash(v->held, top->number - 1) : NULL;
    if (!top || top->number != v->cp.number || !parent)
        return false;
    bp_own_revert *r = &v->o->own[v->own++];
    memset(&r->b, 0, sizeof(r->b));
    snprintf(r->hash, sizeof(r->hash), "%s", top->hash);
    snprintf(r->parent, sizeof(r->parent), "%s", parent);
    r->b.number = top->number;
    r->b.family = family;
    r->b.hash = r->hash;
    r->b.parent_hash = r->parent;
    view_event(v, BP_EVENT_REVERT, &r->b);
    return true;
}

static int forked(const view *v, size_t i, const bp_block *b, bp_error *err)
{
    return bp_error_set(err, BP_EREORG,
                        "output '%s': it holds block %" PRIu64 " %s but the chain has %s at "
                        "%" PRIu64 ", and it keeps too few of its blocks to revert its branch "
                        "down to the chain: rewind it (delete its rows from block %" PRIu64
                        " on) or index it on its own",
                        v->o->sinks[i]->url, v->cp.number, v->cp.hash, b->hash, b->number,
                        b->number);
}

static int take_apply(view *v, size_t i, const bp_block *b, bp_error *err)
{
    bp_checkpoint *cp = &v->cp;
    if (cp->set && b->number <= cp->number) {
        const char *mine = held_hash(v->held, b->number);
        if (!mine || strcmp(mine, b->hash) == 0)
            return 0; /* it has this block, or one older than it keeps (taken by number) */
        while (cp->set && cp->number >= b->number) /* its branch left the chain here */
            if (!revert_tip(v, b->family))
                return forked(v, i, b, err);
    }
    view_event(v, BP_EVENT_APPLY, b);
    return 0;
}

static int take_revert(view *v, size_t i, const bp_block *b, bp_error *err)
{
    if (!v->cp.set || b->number > v->cp.number)
        return 0; /* it never had this block */
    const char *mine = held_hash(v->held, b->number);
    if (mine && strcmp(mine, b->hash) != 0)
        return 0;                    /* it holds another block there */
    while (v->cp.number > b->number) /* its blocks above an orphan are orphans too */
        if (!revert_tip(v, b->family))
            return forked(v, i, b, err);
    view_event(v, BP_EVENT_REVERT, b);
    return 0;
}

/* The events output i has not seen yet, in o->scratch (*n of them); cp advances. */
static int filter_events(bp_outputs *o, size_t i, bp_checkpoint *cp, const bp_batch *batch,
                         size_t *n, bp_error *err)
{
    view v = {.o = o, .held = &o->held[i], .cp = *cp};
    int rc = 0;
    for (size_t k = 0; k < batch->count && rc == 0; k++) {
        const bp_event *ev = &batch->events[k];
        if (ev->kind == BP_EVENT_ARCH_EVENTS) /* every output stores them (deduplicated) */
            v.o->scratch[v.n++] = *ev;
        else
            rc = ev->kind == BP_EVENT_APPLY ? take_apply(&v, i, ev->block, err)
                                            : take_revert(&v, i, ev->block, err);
    }
    *cp = v.cp;
    *n = v.n;
    return rc;
}

static size_t count_reverts(const bp_batch *b)
{
    size_t n = 0;
    for (size_t k = 0; k < b->count; k++)
        n += b->events[k].kind == BP_EVENT_REVERT;
    return n;
}

/* One output's write, tried again with backoff while the error is transient, unless the
 * sink tries again itself (bp_sink.retries_own: its bound, e.g. --wait-for-db, is the whole
 * wait; tries of it here would multiply it). */
static int write_one(bp_sink *s, const bp_batch *b, bp_error *err)
{
    long delay_ms = 500;
    for (int attempt = 1;; attempt++) {
        int rc = s->ops->write(s, b, err);
        if (rc == 0 || !bp_error_is_transient(rc) || attempt == 4 || s->retries_own)
            return rc;
        bp_warn("output '%s': %s (attempt %d of 4, again in %ld ms)", s->url, err->msg, attempt,
                delay_ms);
        if (s->on_retry)
            s->on_retry(s->on_retry_ctx, s, err);
        struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        delay_ms *= 2;
    }
}

/* An output that failed for good: stop, or set it aside and go on (--output-failure). */
static int output_failed(bp_outputs *o, size_t i, const bp_batch *b, bp_error *err)
{
    bp_sink *s = o->sinks[i];
    bp_error_prefix(err, "output '%s': ", s->url);
    if (s->rewind && err->code != BP_ELOCKLOST) {
        /* batches it held open were rolled back: the pipeline goes back to its checkpoint
         * (bp_outputs_rejoin_point), whatever --output-failure says */
        bp_warn("%s; going back to its checkpoint", err->msg);
        o->rewound[i] = true; /* (before its probe starts: it reads it) */
        o->rewinding++;
        set_aside(o, i, err);
        if (b && b->count) { /* the failed batch's blocks, at least: they commit alone next */
            uint64_t top = b->events[b->count - 1].block->number;
            o->solo_through = o->solo ? (top > o->solo_through ? top : o->solo_through) : top;
            o->solo = true;
        }
        bp_error_clear(err);
        return 0;
    }
    /* a chain whose lock another process took is that process's to write, in every output */
    if (!o->keep_going || o->failed_count + 1 == o->count || err->code == BP_ELOCKLOST) {
        health_set(o, i, BP_OUTPUT_FAILED, err);
        return err->code;
    }
    bp_err("%s; this output is set aside (--output-failure continue) at its checkpoint %" PRIu64
           "; it is asked again every few seconds and, when it answers, caught up from there",
           err->msg, o->cps[i].set ? o->cps[i].number : 0);
    set_aside(o, i, err);
    (void)b;
    bp_error_clear(err);
    return 0;
}

/* Whether the batch needs derived rows (an output writes them), whether every output that
 * does is still empty (the windows of the first block begin with it), and whether they may
 * come late: every output takes them after its raw rows (bp_sink.derived_late), so that
 * none writes anything before a failure of the computation could stop the batch. */
static bool derive_wanted(const bp_outputs *o, bool *empty, bool *late)
{
    bool wanted = false;
    *empty = true;
    *late = true;
    for (size_t i = 0; i < o->count; i++) {
        if (o->failed[i])
            continue;
        bool mine = o->sinks[i]->derived;
        wanted |= mine;
        *empty &= !mine || !o->cps[i].set;
        *late &= mine && o->sinks[i]->derived_late;
    }
    return o->metrics && wanted;
}

/* The batch's derived rows when an output writes them (computed once for all of them): now, or
 * started on the job's thread (*job set: the outputs write their raw rows meanwhile). */
static int derive(bp_outputs *o, const bp_batch *batch, const bp_derived **out,
                  bp_derived_job **job, bp_error *err)
{
    *out = NULL;
    *job = NULL;
    bool empty, late;
    if (!derive_wanted(o, &empty, &late))
        return 0;
    if (late) {
        bp_error jerr = {0};
        if (bp_derived_job_start(&o->job, o->metrics, batch, empty, &jerr) == 0) {
            *job = &o->job;
            return 0;
        }
        bp_debug("%s; computing them before the writes", jerr.msg);
    }
    return bp_metrics_compute(o->metrics, batch, empty, out, err);
}

/* Asks output i whether it still holds the chain's lock, again after transient errors as a
 * write is tried again. */
static int check_one(bp_sink *s, const char *chain, bp_error *err)
{
    long delay_ms = 500;
    for (int attempt = 1;; attempt++) {
        int rc = s->ops->check(s, chain, err);
        if (rc == 0 || !bp_error_is_transient(rc) || attempt == 4 || s->retries_own)
            return rc;
        bp_warn("output '%s': checking the chain's writer lock: %s (attempt %d of 4, again in "
                "%ld ms)",
                s->url, err->msg, attempt, delay_ms);
        struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        delay_ms *= 2;
    }
}

/* Before any output writes the batch: every output whose lock can be lost (sink.h check)
 * still holds it, but the first one written, whose own write checks inside its commit. A lock
 * another process took stops the batch here, with nothing of it written anywhere. */
static int check_locks(bp_outputs *o, const bp_batch *batch, bp_error *err)
{
    bool first = true;
    for (size_t i = 0; i < o->count; i++) {
        if (o->failed[i])
            continue;
        bp_sink *s = o->sinks[i];
        bool was_first = first;
        first = false;
        if (was_first || !s->ops->check)
            continue;
        int rc = check_one(s, batch->chain, err);
        if (rc == 0) /* it answers (after a reconnect the check made, say) */
            health_set(o, i, BP_OUTPUT_OK, NULL);
        if (rc != 0 && (rc = output_failed(o, i, batch, err)) != 0)
            return rc;
    }
    return 0;
}

static int write_outputs(bp_outputs *o, const bp_batch *batch, const bp_derived *derived,
                         bp_derived_job *job, bp_error *err)
{
    /* every REVERT made for an output pops a block it held or got in this batch */
    size_t cap = batch->count + BP_OUTPUTS_HELD;
    if (cap > o->scratch_cap) {
        bp_event *p = realloc(o->scratch, cap * sizeof(*p));
        if (p)
            o->scratch = p;
        bp_own_revert *r = p ? realloc(o->own, cap * sizeof(*r)) : NULL;
        if (!r)
            return bp_error_set(err, BP_ENOMEM, "out of memory");
        o->own = r;
        o->scratch_cap = cap;
    }
    int crc = check_locks(o, batch, err);
    if (crc != 0)
        return crc;
    for (size_t i = 0; i < o->count; i++) {
        if (o->failed[i])
            continue;
        bp_checkpoint cp = o->cps[i];
        size_t n = 0;
        int rc = filter_events(o, i, &cp, batch, &n, err);
        if (rc != 0)
            return rc;
        if (n == 0 && !batch->more && o->sinks[i]->holds_open && o->sinks[i]->ops->flush &&
            o->sinks[i]->ops->flush(o->sinks[i], err) != 0 &&
            (rc = output_failed(o, i, batch, err)))
            return rc; /* (a group it holds ends with the others' even without events of its own) */
        if (n == 0)
            continue;
        bp_batch mine = *batch;
        mine.events = o->scratch;
        mine.count = n;
        if (batch->checkpoint.floor_set) { /* the pipeline's; none: the output's stays */
            cp.floor_set = true;
            cp.floor = batch->checkpoint.floor;
        }
        mine.checkpoint = cp;
        /* The kill -9 tests tell from these two lines whether a kill landed mid-write. */
        bp_debug("output '%s': writing %zu events (%zu reverts) up to block %" PRIu64 " %s",
                 o->sinks[i]->url, n, count_reverts(&mine), cp.number, cp.hash);
        mine.derived = o->sinks[i]->derived ? derived : NULL;
        mine.derived_job = o->sinks[i]->derived ? job : NULL;
        mine.budget = o->budget;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int wrc = write_one(o->sinks[i], &mine, err);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        int64_t us = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
        bp_hist_add(&o->write_us[i], us > 0 ? (uint64_t)us : 0);
        if (wrc != 0) {
            rc = output_failed(o, i, &mine, err);
            if (rc != 0)
                return rc;
            continue;
        }
        bp_debug("output '%s': written", o->sinks[i]->url);
        o->cps[i] = cp;
        health_set(o, i, BP_OUTPUT_OK, NULL);
    }
    return 0;
}

static int write_all(bp_outputs *o, const bp_batch *batch, bp_error *err)
{
    const bp_derived *derived = NULL;
    bp_derived_job *job = NULL;
    int rc = derive(o, batch, &derived, &job, err);
    if (rc != 0)
        return rc;
    rc = write_outputs(o, batch, derived, job, err);
    if (job) { /* the module is idle again before the batch's write returns */
        bp_error jerr = {0};
        int jrc = bp_derived_job_wait(job, &derived, &jerr);
        if (rc == 0 && jrc != 0) { /* no output took them: nothing was written */
            *err = jerr;
            rc = jrc;
        }
    }
    return rc;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int bp_outputs_write(bp_outputs *o, const bp_batch *batch, bp_error *err)
{
    bp_batch b = *batch;
    if (o->solo && b.count && b.events[0].block->number > o->solo_through)
        o->solo = false; /* past what the rolled-back group held */
    if (b.more) {        /* the group's bounds, the same for every output */
        int64_t now = now_ms();
        if (o->group_batches == 0)
            o->group_t0_ms = now;
        b.more = !o->commit_each && !o->solo && o->group_batches + 1 < BP_GROUP_BATCHES &&
                 now - o->group_t0_ms < o->group_ms;
    }
    o->group_batches = b.more ? o->group_batches + 1 : 0;
    int rc = write_all(o, &b, err);
    if (o->metrics) /* the batch's derived rows were for its write only: their memory goes back */
        bp_metrics_written(o->metrics);
    return rc;
}

bool bp_outputs_holding(const bp_outputs *o)
{
    for (size_t i = 0; i < o->count; i++)
        if (!o->failed[i] && o->sinks[i]->holds_open)
            return true;
    return false;
}

void bp_outputs_end_open(bp_outputs *o)
{
    o->group_batches = 0;
    for (size_t i = 0; i < o->count; i++) {
        bp_sink *s = o->sinks[i];
        bp_error e = {0};
        if (o->failed[i] || !s->holds_open || !s->ops->flush)
            continue;
        if (s->ops->flush(s, &e) != 0 && !s->rewind)
            bp_warn("output '%s': committing the batches it held open: %s (its next write or "
                    "its close tries again)",
                    s->url, e.msg);
        else if (s->rewind)
            (void)output_failed(o, i, NULL, &e); /* (set aside: the pipeline goes back) */
    }
}

int bp_outputs_flush(bp_outputs *o, bp_error *err)
{
    o->group_batches = 0;
    for (size_t i = 0; i < o->count; i++) {
        bp_sink *s = o->sinks[i];
        if (o->failed[i])
            continue;
        if (s->ops->flush && s->ops->flush(s, err) != 0)
            return bp_error_prefix(err, "output '%s': flush: ", s->url);
    }
    return 0;
}
