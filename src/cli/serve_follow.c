/* serve_follow.c - `blockpipe serve` follows the database another process writes (see
 * serve_follow.h). */
#include "cli/serve_follow.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/clock.h"
#include "api/rows.h"
#include "util/log.h"
#include "util/url.h"

/* The blocks pushed last, for a reorg's reverts: one deeper than this is pushed as the reverts of
 * the blocks it remembers and the new branch's blocks (a client misses the older reverts). */
#define FOLLOW_WINDOW 128
/* Blocks pushed at most per poll: a writer far ahead is followed a poll at a time. */
#define FOLLOW_APPLY_MAX 256

typedef struct seen_block {
    uint64_t number, timestamp;
    char hash[67], parent[67];
} seen_block;

struct bp_serve_follow {
    bp_sink_reader *reader;
    char chain[64]; /* "" until known */
    char url[BP_STATS_TEXT];
    int64_t started_ms;
    uint64_t version;
    bool started;
    seen_block window[FOLLOW_WINDOW]; /* ascending, the last one pushed last */
    size_t window_n;
    seen_block rows[FOLLOW_APPLY_MAX]; /* a read's rows */
    size_t rows_n;
    char row_chain[64]; /* the chain of the first row read */
    seen_block gone[FOLLOW_WINDOW];
    /* where the next apply starts when every remembered block was reverted before the new
     * branch's blocks were there to read (a reorg whose reverts committed first) */
    bool have_resume;
    uint64_t resume_from;
    bp_block blocks[FOLLOW_WINDOW + FOLLOW_APPLY_MAX];
    bp_event events[FOLLOW_WINDOW + FOLLOW_APPLY_MAX];
    bp_stats snap;
};

static void cell_text(const bp_read_cell *c, char *out, size_t cap)
{
    size_t n = c->s ? c->len : 0;
    n = n < cap - 1 ? n : cap - 1;
    memcpy(out, n ? c->s : "", n);
    out[n] = '\0';
}

static uint64_t cell_u64(const bp_read_cell *c)
{
    char text[32];
    cell_text(c, text, sizeof(text));
    return strtoull(text, NULL, 10);
}

static int block_row(void *ctx, const bp_read_cell *cells, size_t n)
{
    bp_serve_follow *f = ctx;
    if (f->rows_n == FOLLOW_APPLY_MAX)
        return 0;
    seen_block *b = &f->rows[f->rows_n++];
    b->number = cell_u64(bp_api_cell(BP_TABLE_BLOCKS, cells, n, "number"));
    b->timestamp = cell_u64(bp_api_cell(BP_TABLE_BLOCKS, cells, n, "timestamp"));
    cell_text(bp_api_cell(BP_TABLE_BLOCKS, cells, n, "hash"), b->hash, sizeof(b->hash));
    cell_text(bp_api_cell(BP_TABLE_BLOCKS, cells, n, "parent_hash"), b->parent, sizeof(b->parent));
    if (f->rows_n == 1)
        cell_text(bp_api_cell(BP_TABLE_BLOCKS, cells, n, "chain"), f->row_chain,
                  sizeof(f->row_chain));
    return 0;
}

/* The chain's blocks lo..hi ascending into f->rows (at most FOLLOW_APPLY_MAX), or with newest
 * the newest one. */
static int read_blocks(bp_serve_follow *f, bool newest, uint64_t lo, uint64_t hi, bp_error *err)
{
    bp_read_query q = {.table = BP_TABLE_BLOCKS, .chain = f->chain[0] ? f->chain : NULL};
    if (newest) {
        q.limit = 1;
    } else {
        q.has_min = q.has_max = q.ascending = true;
        q.min = lo;
        q.max = hi;
        q.limit = FOLLOW_APPLY_MAX;
    }
    f->rows_n = 0;
    return bp_sink_read(f->reader, &q, block_row, f, err);
}

int bp_serve_follow_new(const char *url, const bp_sink_settings *settings, const char *chain,
                        bp_serve_follow **out, bp_error *err)
{
    *out = NULL;
    bp_serve_follow *f = calloc(1, sizeof(*f));
    if (!f)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    snprintf(f->chain, sizeof(f->chain), "%s", chain ? chain : "");
    bp_url_redact(url, f->url, sizeof(f->url));
    f->started_ms = bp_api_mono_ms();
    /* A missing file is refused here: serve reads what a writer made, it creates nothing. A
     * database whose blocks cannot be read yet (a keyed streams' store only, a schema older than
     * the reader's) is served all the same, and said so: the poll reads it again and again. */
    int rc = bp_sink_reader_open(url, settings, &f->reader, err);
    bp_error probe = {0};
    if (rc == 0 && read_blocks(f, true, 0, 0, &probe) != 0)
        bp_warn("serve: %s: its blocks cannot be read (%s): the data endpoints answer 503 and "
                "nothing is pushed until they can (serve never changes the schema: `blockpipe "
                "migrate --output URL` makes or upgrades it)",
                f->url, probe.msg);
    if (rc != 0) {
        bp_serve_follow_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

static void block_of(bp_block *b, const seen_block *s)
{
    memset(b, 0, sizeof(*b));
    b->number = s->number;
    b->timestamp = s->timestamp;
    b->hash = s->hash;
    b->parent_hash = s->parent;
}

static void remember(bp_serve_follow *f, const seen_block *b)
{
    if (f->window_n == FOLLOW_WINDOW) {
        memmove(f->window, f->window + 1, (FOLLOW_WINDOW - 1) * sizeof(f->window[0]));
        f->window_n--;
    }
    f->window[f->window_n++] = *b;
}

/* How many of the window's blocks (from the oldest) the database still holds as they were. */
static int still_there(bp_serve_follow *f, size_t *kept, bp_error *err)
{
    *kept = f->window_n;
    if (!f->window_n)
        return 0;
    int rc = read_blocks(f, false, f->window[0].number, f->window[f->window_n - 1].number, err);
    if (rc != 0)
        return rc;
    size_t r = 0;
    for (size_t i = 0; i < f->window_n; i++) {
        while (r < f->rows_n && f->rows[r].number < f->window[i].number)
            r++;
        if (r == f->rows_n || f->rows[r].number != f->window[i].number ||
            strcmp(f->rows[r].hash, f->window[i].hash) != 0) {
            *kept = i;
            return 0;
        }
    }
    return 0;
}

/* The reverts (highest first) of the window's blocks the database no longer holds, then the new
 * blocks up to newest, as one batch for the push hub. */
static int push_changes(bp_serve_follow *f, bp_push_hub *push, const seen_block *newest,
                        bp_error *err)
{
    size_t kept, n = 0;
    int rc = still_there(f, &kept, err);
    if (rc != 0)
        return rc;
    size_t gone = f->window_n - kept;
    uint64_t from = kept             ? f->window[kept - 1].number + 1
                    : gone           ? f->window[0].number
                    : f->have_resume ? f->resume_from
                                     : newest->number;
    if (from > newest->number && !kept) { /* nothing to apply yet: start there next time */
        f->have_resume = true;
        f->resume_from = from;
    } else {
        f->have_resume = false;
    }
    memcpy(f->gone, f->window + kept, gone * sizeof(f->gone[0]));
    f->window_n = kept;
    for (size_t i = gone; i-- > 0; n++) {
        block_of(&f->blocks[n], &f->gone[i]);
        f->events[n] = (bp_event){.kind = BP_EVENT_REVERT, .block = &f->blocks[n]};
    }
    if (newest->number >= from && (rc = read_blocks(f, false, from, newest->number, err)) != 0)
        return rc;
    for (size_t i = 0; newest->number >= from && i < f->rows_n; i++, n++) {
        remember(f, &f->rows[i]);
        /* rows stay put through this call; the window moves once it is full */
        block_of(&f->blocks[n], &f->rows[i]);
        f->events[n] = (bp_event){.kind = BP_EVENT_APPLY, .block = &f->blocks[n]};
    }
    if (n && push) {
        bp_batch b = {.chain = f->chain, .events = f->events, .count = n};
        bp_push_batch(push, &b);
    }
    return 0;
}

static void publish(bp_serve_follow *f, bp_stats_hub *stats, const seen_block *newest)
{
    bp_stats *s = &f->snap;
    memset(s, 0, sizeof(*s));
    s->version = ++f->version;
    s->published_unix_ms = bp_api_unix_ms();
    s->uptime_ms = bp_api_mono_ms() - f->started_ms;
    snprintf(s->chain, sizeof(s->chain), "%s", f->chain);
    s->have_indexed = newest != NULL;
    s->indexed = newest ? newest->number : 0;
    s->output_count = 1;
    bp_stats_output *o = &s->outputs[0];
    snprintf(o->url, sizeof(o->url), "%s", f->url);
    o->checkpoint_set = newest != NULL;
    o->checkpoint = s->indexed;
    snprintf(o->checkpoint_hash, sizeof(o->checkpoint_hash), "%s", newest ? newest->hash : "");
    bp_stats_hub_publish(stats, s);
}

int bp_serve_follow_poll(bp_serve_follow *f, bp_stats_hub *stats, bp_push_hub *push, bp_error *err)
{
    int rc = read_blocks(f, true, 0, 0, err);
    if (rc != 0)
        return rc;
    if (!f->rows_n) { /* nothing yet: a chain named by --chain has no checkpoint */
        if (f->chain[0] && stats)
            publish(f, stats, NULL);
        return 0;
    }
    seen_block newest = f->rows[0];
    if (!f->chain[0])
        snprintf(f->chain, sizeof(f->chain), "%s", f->row_chain);
    if (!f->started) { /* what was there before serve started is read through REST */
        f->started = true;
        remember(f, &newest);
    } else if ((!f->window_n || strcmp(f->window[f->window_n - 1].hash, newest.hash) != 0) &&
               (rc = push_changes(f, push, &newest, err)) != 0) {
        return rc;
    }
    if (stats)
        publish(f, stats, &newest);
    return 0;
}

void bp_serve_follow_free(bp_serve_follow *f)
{
    if (!f)
        return;
    if (f->reader)
        bp_sink_reader_close(f->reader);
    free(f);
}
