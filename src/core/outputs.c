/* outputs.c - per-output filtering and checkpoints over one ordered event stream. */
#include "core/outputs.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/log.h"

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
    long delay = 1000;
    while (probe_sleep(o, delay)) {
        bp_error e = {0};
        bp_checkpoint cp;
        if (s->ops->checkpoint(s, o->chain, &cp, &e) == 0) {
            o->probe_cp[a.i] = cp;
            atomic_store(&o->back[a.i], true);
            bp_info("output '%s' answers again (its checkpoint: %s%" PRIu64 "); catching it up",
                    s->url, cp.set ? "" : "none, ", cp.set ? cp.number : 0);
            return NULL;
        }
        bp_info("output '%s' is still set aside: %s (asked again in %ld s)", s->url, e.msg,
                delay * 2 > 30000 ? 30L : delay * 2 / 1000);
        delay = delay * 2 > 30000 ? 30000 : delay * 2;
    }
    return NULL;
}

static void set_aside(bp_outputs *o, size_t i)
{
    o->failed[i] = true;
    o->failed_count++;
    probe_arg *a = malloc(sizeof(*a));
    if (a) {
        *a = (probe_arg){o, i};
        o->probing[i] = pthread_create(&o->probes[i], NULL, probe_main, a) == 0;
    }
    if (!o->probing[i]) {
        free(a);
        bp_err("output '%s': cannot start its probe thread; it stays set aside until the next "
               "start",
               o->sinks[i]->url);
    }
}

static void join_probe(bp_outputs *o, size_t i)
{
    if (o->probing && o->probing[i]) {
        pthread_join(o->probes[i], NULL);
        o->probing[i] = false;
    }
}

bool bp_outputs_rejoin_point(bp_outputs *o, bp_checkpoint *cp, size_t *index)
{
    bool any = false;
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
    if (o->failed[i]) {
        o->failed[i] = false;
        o->failed_count--;
    }
}

/* ---- init ------------------------------------------------------------------------------- */

int bp_outputs_init(bp_outputs *o, bp_sink **sinks, size_t count, const char *chain,
                    bool keep_going, bp_error *err)
{
    memset(o, 0, sizeof(*o));
    o->sinks = sinks;
    o->count = count;
    o->chain = chain;
    o->keep_going = keep_going;
    size_t n = count ? count : 1;
    o->cps = calloc(n, sizeof(*o->cps));
    o->failed = calloc(n, sizeof(*o->failed));
    o->probing = calloc(n, sizeof(*o->probing));
    o->probes = calloc(n, sizeof(*o->probes));
    o->back = calloc(n, sizeof(*o->back));
    o->probe_cp = calloc(n, sizeof(*o->probe_cp));
    if (!o->cps || !o->failed || !o->probing || !o->probes || !o->back || !o->probe_cp)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    for (size_t i = 0; i < count; i++)
        atomic_init(&o->back[i], false);
    atomic_init(&o->stop_probes, false);
    for (size_t i = 0; i < count; i++) {
        int rc = sinks[i]->ops->checkpoint(sinks[i], chain, &o->cps[i], err);
        if (rc == 0)
            continue;
        bp_error_prefix(err, "output '%s': reading checkpoint: ", sinks[i]->url);
        if (!keep_going || o->failed_count + 1 == count)
            return rc;
        bp_err("%s; this output is set aside (--output-failure continue) and asked again "
               "every few seconds; when it answers it is caught up from its checkpoint",
               err->msg);
        memset(&o->cps[i], 0, sizeof(o->cps[i]));
        set_aside(o, i);
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
    free(o->failed);
    free(o->cps);
    free(o->scratch);
    free(o->probing);
    free(o->probes);
    free(o->back);
    free(o->probe_cp);
    memset(o, 0, sizeof(*o));
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
}

/* Keeps the events output i has not seen yet; advances cp as it goes. An APPLY the output
 * already has is skipped by number, so at its checkpoint height the hash must match: else
 * *fork is set (the output kept a block the chain dropped) and cp stays at that block. */
static size_t filter_events(bp_checkpoint *cp, const bp_batch *batch, bp_event *out, bool *fork)
{
    size_t n = 0;
    for (size_t k = 0; k < batch->count; k++) {
        const bp_event *ev = &batch->events[k];
        const bp_block *b = ev->block;
        bool has = cp->set && b->number <= cp->number;
        if (ev->kind == BP_EVENT_APPLY && has && b->number == cp->number && cp->hash[0] &&
            strcmp(b->hash, cp->hash) != 0) {
            *fork = true;
            return 0;
        }
        if (ev->kind == BP_EVENT_APPLY && !has) {
            cp->set = true;
            cp->number = b->number;
            snprintf(cp->hash, sizeof(cp->hash), "%s", b->hash);
            out[n++] = *ev;
        } else if (ev->kind == BP_EVENT_REVERT && has) {
            cp->number = b->number - 1;
            snprintf(cp->hash, sizeof(cp->hash), "%s", b->parent_hash ? b->parent_hash : "");
            cp->set = b->number > 0;
            out[n++] = *ev;
        }
    }
    return n;
}

/* One output's write, tried again with backoff while the error is transient. */
static int write_one(bp_sink *s, const bp_batch *b, bp_error *err)
{
    long delay_ms = 500;
    for (int attempt = 1;; attempt++) {
        int rc = s->ops->write(s, b, err);
        if (rc == 0 || !bp_error_is_transient(rc) || attempt == 4)
            return rc;
        bp_warn("output '%s': %s (attempt %d of 4, again in %ld ms)", s->url, err->msg, attempt,
                delay_ms);
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
    if (!o->keep_going || o->failed_count + 1 == o->count)
        return err->code;
    bp_err("%s; this output is set aside (--output-failure continue) at its checkpoint %" PRIu64
           "; it is asked again every few seconds and, when it answers, caught up from there",
           err->msg, o->cps[i].set ? o->cps[i].number : 0);
    set_aside(o, i);
    (void)b;
    bp_error_clear(err);
    return 0;
}

int bp_outputs_write(bp_outputs *o, const bp_batch *batch, bp_error *err)
{
    if (batch->count > o->scratch_cap) {
        bp_event *p = realloc(o->scratch, batch->count * sizeof(*p));
        if (!p)
            return bp_error_set(err, BP_ENOMEM, "out of memory");
        o->scratch = p;
        o->scratch_cap = batch->count;
    }
    for (size_t i = 0; i < o->count; i++) {
        if (o->failed[i])
            continue;
        bp_checkpoint cp = o->cps[i];
        bool fork = false;
        size_t n = filter_events(&cp, batch, o->scratch, &fork);
        if (fork)
            return bp_error_set(err, BP_EREORG,
                                "output '%s': its block %" PRIu64 " is %s but the chain has "
                                "another block there: it holds a branch that was reorged away "
                                "while it was ahead of the other outputs; rewind it (delete its "
                                "rows from block %" PRIu64 " on) or index it on its own",
                                o->sinks[i]->url, cp.number, cp.hash, cp.number);
        if (n == 0)
            continue;
        bp_batch mine = *batch;
        mine.events = o->scratch;
        mine.count = n;
        mine.checkpoint = cp;
        if (write_one(o->sinks[i], &mine, err) != 0) {
            int rc = output_failed(o, i, &mine, err);
            if (rc != 0)
                return rc;
            continue;
        }
        o->cps[i] = cp;
    }
    return 0;
}

int bp_outputs_flush(bp_outputs *o, bp_error *err)
{
    for (size_t i = 0; i < o->count; i++) {
        bp_sink *s = o->sinks[i];
        if (o->failed[i])
            continue;
        if (s->ops->flush && s->ops->flush(s, err) != 0)
            return bp_error_prefix(err, "output '%s': flush: ", s->url);
    }
    return 0;
}
