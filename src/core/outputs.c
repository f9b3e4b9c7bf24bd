/* outputs.c - per-output filtering and checkpoints over one ordered event stream. */
#include "core/outputs.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics/metrics.h"
#include "util/log.h"

int bp_outputs_init(bp_outputs *o, bp_sink **sinks, size_t count, const char *chain, bp_error *err)
{
    memset(o, 0, sizeof(*o));
    o->sinks = sinks;
    o->count = count;
    o->chain = chain;
    o->cps = calloc(count ? count : 1, sizeof(*o->cps));
    o->failed = calloc(count ? count : 1, sizeof(*o->failed));
    if (!o->cps || !o->failed)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    for (size_t i = 0; i < count; i++) {
        int rc = sinks[i]->ops->checkpoint(sinks[i], chain, &o->cps[i], err);
        if (rc != 0)
            return bp_error_prefix(err, "output '%s': reading checkpoint: ", sinks[i]->url);
    }
    return 0;
}

void bp_outputs_release(bp_outputs *o)
{
    free(o->failed);
    free(o->cps);
    free(o->scratch);
    memset(o, 0, sizeof(*o));
}

void bp_outputs_lowest(const bp_outputs *o, bp_checkpoint *out, size_t *lowest_index,
                       bool *any_unset)
{
    memset(out, 0, sizeof(*out));
    *lowest_index = 0;
    *any_unset = false;
    for (size_t i = 0; i < o->count; i++) {
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
    o->failed[i] = true;
    o->failed_count++;
    bp_err("%s; this output is set aside for the rest of the run (--output-failure continue) "
           "at its checkpoint %" PRIu64 "; the next start catches it up from there",
           err->msg, o->cps[i].set ? o->cps[i].number : 0);
    (void)b;
    bp_error_clear(err);
    return 0;
}

/* The batch's derived rows when an output writes them (computed once for all of them). */
static int derive(bp_outputs *o, const bp_batch *batch, const bp_derived **out, bp_error *err)
{
    *out = NULL;
    bool wanted = false, empty = true;
    for (size_t i = 0; i < o->count; i++) {
        bool mine = !o->failed[i] && o->sinks[i]->derived;
        wanted |= mine;
        empty &= !mine || !o->cps[i].set;
    }
    if (!o->metrics || !wanted)
        return 0;
    return bp_metrics_compute(o->metrics, batch, empty, out, err);
}

int bp_outputs_write(bp_outputs *o, const bp_batch *batch, bp_error *err)
{
    const bp_derived *derived = NULL;
    int drc = derive(o, batch, &derived, err);
    if (drc != 0)
        return drc;
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
        mine.derived = o->sinks[i]->derived ? derived : NULL;
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
