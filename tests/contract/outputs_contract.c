/* outputs_contract.c - the output contract test: one program, run once per backend by
 * tests/integration/test_outputs_contract.py, that drives an output through everything the
 * pipeline may do to it and checks after every step that it holds exactly the canonical
 * chain.
 *
 *   outputs_contract [--seed N] [--kills N] [--family evm|arch] [--crash POINT]... URL
 *   outputs_contract --schemes      (the registered backends, for the driver's coverage check)
 *
 * The output is opened by URL through bp_sink_open_url only, so any registered backend can be
 * tested; what it stores is read back by the backend's reader (readers.c: SQL tables, or the
 * files with their revert lines applied) into one normalised text form (contract.h) and
 * compared with the chain the test generated (chain.c: blocks with transactions, receipts
 * and logs, whose every hash depends on the block's branch, so rows of an orphaned branch
 * cannot pass for canonical ones).
 *
 * The scenario, checked after every batch (the output's checkpoint is the batch's; recent()
 * is the top of the canonical chain, highest first, min(16, length) entries; the content is
 * exactly the chain up to the checkpoint: every block, transaction, receipt and log once):
 *  1. batches of APPLY on an empty output;
 *  2. a reorg: REVERT the top 3 and APPLY the other branch, in one batch;
 *  3. mixed batches cut anywhere in APPLY 12 13, REVERT 13 12, APPLY another 12 13 14,
 *     REVERT those, APPLY the first 12 13 again (a reorg back to a branch the output had
 *     reverted), a batch of REVERTs only, a close and reopen;
 *  4. crashes at named points: for each --crash POINT a forked child opens the output and
 *     writes one batch (REVERTs and APPLYs) with bp_crashpoint_arm(POINT) (util/crashpoint.h):
 *     it must die there (exit status BP_CRASHPOINT_EXIT, else the point was never reached
 *     and the test fails), and the reopened output must hold the previous checkpoint and
 *     nothing of the batch. A POINT is a place where the backend has written the batch's
 *     data but its checkpoint is not durable yet (just before COMMIT, between the data fsync
 *     and checkpoint.json). Then a child that writes a batch and exits at once, without
 *     close: the batch must be there whole;
 *  5. --kills rounds (default 10) of SIGKILL at a random time while a child opens the output
 *     and writes one to several batches of the chain moving on: the delay is drawn up to the
 *     time an unharmed child took, from the fork (open and crash recovery included) in odd
 *     rounds and from the output being open in even ones. The checkpoint must be one of the
 *     batch boundaries and the content exactly that chain. Where the kills land depends on
 *     the machine's load (the counts are printed); steps 4 are the deterministic ones.
 *  After each crash the parent resumes as the pipeline does (pipeline.c resume_point,
 *  seed_canon): it reads the checkpoint and recent(), finds the highest recent block that is
 *  still canonical - the chain may have reorged while the output was down - and sends the
 *  REVERTs above it (header blocks built from recent(), as the pipeline builds them) and the
 *  APPLYs after it. The last check is a close, a reopen and the whole chain.
 *
 * Choices:
 *  - Crashes are children, not the test process itself: fork() keeps the whole scenario in
 *    one program, the parent closes its handle first (SQLite and libpq connections must not
 *    cross a fork) and reopens after, which is the restart being tested.
 *  - The readers are C in this program rather than in the Python driver, so the content can
 *    be checked after every batch cheaply, with the libraries the backends link anyway.
 *  - Content is compared as sorted multisets of normalised lines: order means nothing in a
 *    table, and a row stored twice still shows. The lines hold what identifies a row and
 *    what tells branches apart (hashes, parents, addresses, values, status, topics, data);
 *    the value formats of each column are the conformance tests' business.
 *  - The resume builds its REVERTs from what the output reports (recent()), not from the
 *    test's own record, so a wrong recent() shows as a wrong output.
 *  - --seed changes the random parts (reorg shapes, batch cuts, kill times); the blocks of
 *    a (branch, number) are always the same.
 * --family arch runs the same scenario with Arch blocks (chain.c: transactions failed or rolled
 * back, accounts listed twice) on an output that stores them (bp_sink.families): the REVERTs a
 * resume builds carry the family, as the pipeline's do. Batches carry WebSocket events too
 * (BP_EVENT_ARCH_EVENTS: a block event, rolledback / reapplied_transactions, a resync): in step
 * 3 alone, before a reorg reverts their transactions' blocks and one applies them again, and
 * after the APPLYs of a batch; at the end of step 4's batch and after the first APPLY of each
 * step 5 round (in that APPLY's batch, so that the checkpoint tells whether it was written).
 * The output must hold each written event's arch_events row once (E lines), every
 * transaction's rolled_back as the node says it now, and nothing of a crashed batch's events.
 * --no-crash-events leaves steps 4 and 5 without events, for an output that keeps a crashed
 * batch's events (ClickHouse does by design: clickhouse_arch.h).
 * A failed check prints FAIL, the output and the step (the batch's events as +APPLY /
 * -REVERT numbers), and exits 1. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "arch/arch_json.h"
#include "arch/arch_rows.h"
#include "contract.h"
#include "util/arena.h"
#include "util/crashpoint.h"
#include "util/log.h"
#include "util/url.h"

#define CHAIN "contract"
#define RECENT_MAX 16
#define MAX_POINTS 16
#define CHILD_WROTE 0  /* a child wrote every batch and exited without close */
#define CHILD_FAILED 3 /* open or write failed: its message is on stderr */
#define CHILD_DEADLINE_S 120

/* Events in order, and the REVERT header blocks made for them. */
typedef struct plan {
    bp_event *ev;
    size_t n, cap;
    bp_block **owned;
    size_t nowned;
} plan;

typedef struct ctx {
    const char *url;
    char shown[512]; /* url without its password, for messages */
    bp_sink *sink;   /* NULL while a child has the output */
    ct_world world;
    ct_view chain; /* the node's canonical chain */
    ct_view have;  /* what the output must hold: the chain up to its checkpoint */
    uint64_t rng;
    unsigned next_branch;
    char step[160]; /* what is being checked, for messages */
    size_t batches, events, checks;
    ct_lines arch_events; /* --family arch: the E lines of the events written */
    bool crash_events;    /* crash and kill rounds' batches have events (--no-crash-events) */
    unsigned next_event;
    size_t state_changes; /* transactions rolled back or re-applied by events written */
} ctx;

static uint64_t rnd(ctx *c, uint64_t n)
{
    c->rng ^= c->rng << 13;
    c->rng ^= c->rng >> 7;
    c->rng ^= c->rng << 17;
    return c->rng % n;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- plans and batches ------------------------------------------------------------------ */

static void plan_add(plan *p, bp_event_kind kind, const bp_block *b)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 32;
        p->ev = realloc(p->ev, p->cap * sizeof(*p->ev));
        p->owned = realloc(p->owned, p->cap * sizeof(*p->owned));
        CT_CHECK(p->ev && p->owned, "out of memory");
    }
    p->ev[p->n++] = (bp_event){.kind = kind, .block = b};
}

/* A REVERT carries a header-only block (number, hash, parent hash, timestamp), owned here. */
static void plan_revert(plan *p, bp_block *header)
{
    CT_CHECK(header, "out of memory");
    plan_add(p, BP_EVENT_REVERT, header);
    p->owned[p->nowned++] = header;
}

static void plan_free(plan *p)
{
    for (size_t i = 0; i < p->nowned; i++)
        bp_block_free(p->owned[i]);
    free(p->owned);
    free(p->ev);
    memset(p, 0, sizeof(*p));
}

/* The events that take an output from chain `from` to chain `to`: REVERTs highest first down
 * to the common ancestor, then APPLYs. */
static void plan_transition(plan *p, const ct_view *from, const ct_view *to)
{
    size_t common = 0;
    while (common < from->len && common < to->len && from->at[common] == to->at[common])
        common++;
    for (size_t k = from->len; k-- > common;)
        plan_revert(p, bp_block_header_copy(from->at[k]));
    for (size_t k = common; k < to->len; k++)
        plan_add(p, BP_EVENT_APPLY, to->at[k]);
}

/* The batch of events ev[0..n) written on top of *state, which becomes the chain after it;
 * its checkpoint is that chain's top. Checks the events themselves (a bug in the test). */
static bp_batch make_batch(const bp_event *ev, size_t n, ct_view *state)
{
    for (size_t i = 0; i < n; i++) {
        const bp_block *b = ev[i].block;
        const bp_block *top = state->len ? state->at[state->len - 1] : NULL;
        if (ev[i].kind == BP_EVENT_ARCH_EVENTS)
            continue; /* no block of the chain: the checkpoint stays */
        if (ev[i].kind == BP_EVENT_REVERT) {
            CT_CHECK(top && strcmp(top->hash, b->hash) == 0,
                     "test bug: REVERT %" PRIu64 " is not the top", b->number);
            state->len--;
            continue;
        }
        CT_CHECK(b->number == state->len && (!top || strcmp(b->parent_hash, top->hash) == 0),
                 "test bug: APPLY %" PRIu64 " does not extend the top", b->number);
        state->at[state->len++] = b;
    }
    return (bp_batch){.chain = CHAIN,
                      .chain_id = 31337,
                      .events = ev,
                      .count = n,
                      .checkpoint = ct_view_cp(state),
                      .fetched = ~0u};
}

/* "+12 +13 -13 ..." for messages. */
static void describe(char *out, size_t cap, const bp_event *ev, size_t n)
{
    size_t off = 0;
    out[0] = '\0';
    size_t i;
    for (i = 0; i < n && off + 28 < cap; i++)
        off += (size_t)snprintf(out + off, cap - off, "%s%c%" PRIu64, i ? " " : "",
                                ev[i].kind == BP_EVENT_APPLY    ? '+'
                                : ev[i].kind == BP_EVENT_REVERT ? '-'
                                                                : 'e',
                                ev[i].block->number);
    if (i < n)
        snprintf(out + off, cap - off, " ...");
}

/* ---- checks ----------------------------------------------------------------------------- */

static bool same_cp(const bp_checkpoint *a, const bp_checkpoint *b)
{
    return a->set == b->set && (!a->set || (a->number == b->number && !strcmp(a->hash, b->hash)));
}

static void read_cp(ctx *c, bp_checkpoint *cp)
{
    bp_error e = {0};
    CT_CHECK(c->sink->ops->checkpoint(c->sink, CHAIN, cp, &e) == 0, "%s: %s: checkpoint: %s",
             c->shown, c->step, e.msg);
}

static void check_recent(ctx *c)
{
    bp_checkpoint rec[RECENT_MAX + 1];
    size_t n = 0, want = c->have.len < RECENT_MAX ? c->have.len : RECENT_MAX;
    bp_error e = {0};
    if (!c->sink->ops->recent)
        return;
    CT_CHECK(c->sink->ops->recent(c->sink, CHAIN, rec, RECENT_MAX, &n, &e) == 0,
             "%s: %s: recent: %s", c->shown, c->step, e.msg);
    CT_CHECK(n == want, "%s: %s: recent gave %zu blocks, expected %zu", c->shown, c->step, n, want);
    for (size_t k = 0; k < n; k++) {
        const bp_block *b = c->have.at[c->have.len - 1 - k];
        CT_CHECK(rec[k].set && rec[k].number == b->number && !strcmp(rec[k].hash, b->hash),
                 "%s: %s: recent[%zu] is %" PRIu64 " %s, expected %" PRIu64 " %s", c->shown,
                 c->step, k, rec[k].number, rec[k].hash, b->number, b->hash);
    }
}

/* The output's checkpoint, recent blocks and whole content are those of c->have. */
static void verify(ctx *c)
{
    bp_checkpoint cp, want = ct_view_cp(&c->have);
    read_cp(c, &cp);
    CT_CHECK(same_cp(&cp, &want), "%s: %s: checkpoint is %s%" PRIu64 " %s, expected %" PRIu64 " %s",
             c->shown, c->step, cp.set ? "" : "(unset) ", cp.number, cp.hash, want.number,
             want.set ? want.hash : "(unset)");
    ct_lines exp = {0}, got = {0};
    ct_render_view(&exp, &c->have);
    for (size_t i = 0; i < c->arch_events.n; i++)
        ct_lines_add(&exp, "%s", c->arch_events.v[i]);
    ct_lines_sort(&exp);
    ct_read(c->url, CHAIN, &got);
    char diff[4096];
    CT_CHECK(ct_lines_equal(&exp, &got, diff, sizeof(diff)),
             "%s: %s: the output does not hold the chain up to block %" PRIu64
             " (%zu rows expected, %zu stored):\n%s",
             c->shown, c->step, want.number, exp.n, got.n, diff);
    ct_lines_free(&exp);
    ct_lines_free(&got);
    check_recent(c);
    c->checks++;
}

static void open_output(ctx *c)
{
    bp_error e = {0};
    CT_CHECK(bp_sink_open_url(c->url, &c->sink, &e) == 0, "%s: %s: open: %s", c->shown, c->step,
             e.msg);
}

static void close_output(ctx *c)
{
    bp_error e = {0};
    if (c->sink->ops->flush)
        CT_CHECK(c->sink->ops->flush(c->sink, &e) == 0, "%s: flush: %s", c->shown, e.msg);
    bp_sink_close(c->sink);
    c->sink = NULL;
}

/* Plans are cut into batches of sizes[0], sizes[1], ... (cycled): the events of batch i that
 * starts at event off. */
static size_t batch_len(const plan *p, size_t off, size_t i, const size_t *sizes, size_t nsizes)
{
    size_t want = sizes[i % nsizes];
    /* an events entry stays in the batch of the APPLY before it: a batch of events alone has
     * the checkpoint of the one before, so a kill round could not tell whether it was written */
    if (off + want < p->n && p->ev[off + want].kind == BP_EVENT_ARCH_EVENTS && off + want > 0 &&
        p->ev[off + want - 1].kind == BP_EVENT_APPLY)
        want++;
    return want < p->n - off ? want : p->n - off;
}

static void events_written(ctx *c, const bp_event *ev, size_t n);

/* Writes p in batches of sizes[], checking the output after each. */
static void write_plan(ctx *c, const plan *p, const size_t *sizes, size_t nsizes)
{
    for (size_t off = 0, i = 0; off < p->n; i++) {
        size_t n = batch_len(p, off, i, sizes, nsizes);
        char ev[96];
        describe(ev, sizeof(ev), p->ev + off, n);
        snprintf(c->step, sizeof(c->step), "batch %zu [%s]", c->batches + 1, ev);
        ct_view after = c->have;
        bp_batch b = make_batch(p->ev + off, n, &after);
        bp_error e = {0};
        CT_CHECK(c->sink->ops->write(c->sink, &b, &e) == 0, "%s: %s: write: %s", c->shown, c->step,
                 e.msg);
        c->have = after;
        events_written(c, p->ev + off, n);
        c->batches++;
        c->events += n;
        verify(c);
        off += n;
    }
}

/* Brings the output to c->chain from wherever it is, batches of sizes[]. */
static void sync_output(ctx *c, const size_t *sizes, size_t nsizes)
{
    plan p = {0};
    plan_transition(&p, &c->have, &c->chain);
    write_plan(c, &p, sizes, nsizes);
    plan_free(&p);
}

/* A reorg of the node's chain: the top depth blocks replaced by count of a new branch. */
static void reorg(ctx *c, size_t depth, size_t count)
{
    ct_fork(&c->world, &c->chain, c->chain.len - depth, c->next_branch++, count);
}

/* ---- Arch WebSocket events (--family arch) -----------------------------------------------
 * A BP_EVENT_ARCH_EVENTS entry (sink.h, arch/arch_rows.h): a carrier block whose arch rows hold
 * events. Each event the output must keep is an E line of c->arch_events; a rolledback /
 * reapplied_transactions event (or a resync, which has no arch_events row) changes the node's
 * state of its transactions: the world's blocks are changed, so that their rows, rendered or
 * applied again later, say what the node says now. Both once the batch that has the entry is
 * written (events_written): an APPLY before it in that batch carries the state it had when it
 * was fetched, as the pipeline's do. */

/* One event of the carrier's rows r, with the next key ("topic:" and 32 hex digits). */
static bp_arch_event *event_add(ctx *c, bp_arch_rows *r, enum bp_arch_topic topic, bool resync)
{
    r->events = realloc(r->events, (r->event_count + 1) * sizeof(*r->events));
    CT_CHECK(r->events, "out of memory");
    bp_arch_event *e = &r->events[r->event_count++];
    memset(e, 0, sizeof(*e));
    e->topic = topic;
    e->resync = resync;
    unsigned id = c->next_event++;
    e->received_at = 1700000000.0 + id / 8.0;
    if (!resync)
        snprintf(e->key, sizeof(e->key), "%s:%016x%016x", bp_arch_topic_name(topic), id,
                 0xe0u + topic);
    return e;
}

/* A block event of the output's top block (a key seen once). */
static void event_block(ctx *c, bp_arch_rows *r)
{
    const bp_block *top = c->have.at[c->have.len - 1];
    bp_arch_event *e = event_add(c, r, BP_ARCH_T_BLOCK, false);
    e->has_height = true;
    e->block_height = top->number;
    snprintf(e->hash, sizeof(e->hash), "%s", top->hash);
    char data[200];
    snprintf(data, sizeof(data), "{\"hash\":\"%s\",\"timestamp\":%" PRIu64 "}", top->hash,
             top->timestamp);
    e->data = strdup(data);
    CT_CHECK(e->data, "out of memory");
}

/* The world's transaction txid (NULL: none). */
static bp_arch_tx *world_tx(ctx *c, const char *txid)
{
    for (size_t i = 0; i < c->world.n; i++) {
        bp_arch_rows *r = (bp_arch_rows *)c->world.blocks[i]->arch; /* the world owns them */
        for (size_t k = 0; r && k < r->tx_count; k++)
            if (strcmp(r->txs[k].txid, txid) == 0)
                return &r->txs[k];
    }
    return NULL;
}

/* Whether an event of r names transaction txid. */
static bool named(const bp_arch_rows *r, const char *txid)
{
    for (size_t i = 0; i < r->event_count; i++)
        for (size_t k = 0; k < r->events[i].hash_count; k++)
            if (strcmp(r->events[i].hashes[k], txid) == 0)
                return true;
    return false;
}

/* A rolledback (back) or reapplied_transactions event, or a resync of that kind, of up to max
 * transactions of the top 3 blocks of pick whose state it changes; false when none. */
static bool event_state(ctx *c, bp_arch_rows *r, const ct_view *pick, bool back, bool resync,
                        size_t max)
{
    bp_arch_hash ids[4];
    size_t n = 0;
    for (size_t k = pick->len; k-- > 0 && k + 3 >= pick->len && n < max && n < 4;) {
        const bp_arch_rows *b = pick->at[k]->arch;
        for (size_t i = 0; i < b->tx_count && n < max && n < 4; i++)
            if (b->txs[i].rolled_back != back && !named(r, b->txs[i].txid))
                snprintf(ids[n++], sizeof(ids[0]), "%s", b->txs[i].txid);
    }
    if (n == 0)
        return false;
    bp_arch_event *e = event_add(c, r, back ? BP_ARCH_T_ROLLEDBACK : BP_ARCH_T_REAPPLIED, resync);
    e->hashes = calloc(n, sizeof(*e->hashes));
    char data[400] = "{\"transaction_hashes\":[";
    CT_CHECK(e->hashes, "out of memory");
    for (size_t i = 0; i < n; i++) {
        memcpy(e->hashes[i], ids[i], sizeof(ids[i]));
        snprintf(data + strlen(data), sizeof(data) - strlen(data), "%s\"%s\"", i ? "," : "",
                 ids[i]);
    }
    e->hash_count = n;
    strcat(data, "]}");
    if (!resync) {
        e->data = strdup(data);
        CT_CHECK(e->data, "out of memory");
    }
    return true;
}

/* What the output must hold once the batch ev[0..n) is written: its events' rows (not a
 * resync's) and the node's state of the transactions they roll back or re-apply. */
static void events_written(ctx *c, const bp_event *ev, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const bp_arch_rows *r = ev[i].kind == BP_EVENT_ARCH_EVENTS ? ev[i].block->arch : NULL;
        for (size_t k = 0; r && k < r->event_count; k++) {
            const bp_arch_event *e = &r->events[k];
            char height[24] = "-";
            if (e->has_height)
                snprintf(height, sizeof(height), "%" PRIu64, e->block_height);
            if (!e->resync)
                ct_lines_add(&c->arch_events, "E %s %s %s", e->key, bp_arch_topic_name(e->topic),
                             height);
            for (size_t j = 0; bp_arch_event_is_state(e) && j < e->hash_count; j++) {
                bp_arch_tx *t = world_tx(c, e->hashes[j]);
                CT_CHECK(t, "test bug: transaction %s is not in the world", e->hashes[j]);
                t->rolled_back = e->topic == BP_ARCH_T_ROLLEDBACK;
                c->state_changes++;
            }
        }
    }
}

/* Adds to p an events entry on top of c->have: a block event of its top, then of the top 3
 * blocks of pick (applied before the entry) a re-apply of a rolled back transaction, a
 * rollback of up to two, a resync re-applying another; the carrier is owned by p. */
static void plan_events(ctx *c, plan *p, const ct_view *pick)
{
    bp_arch_rows *r = calloc(1, sizeof(*r));
    bp_block *b = bp_block_new();
    CT_CHECK(r && b && c->have.len, "out of memory (or test bug: no block yet)");
    event_block(c, r);
    event_state(c, r, pick, false, false, 1);
    event_state(c, r, pick, true, false, 2);
    event_state(c, r, pick, false, true, 1);
    const bp_block *top = c->have.at[c->have.len - 1];
    b->family = BP_FAMILY_ARCH;
    b->number = top->number;
    b->hash = bp_arena_strndup(b->arena, top->hash, strlen(top->hash));
    b->parent_hash = bp_arena_strndup(b->arena, "", 0);
    CT_CHECK(b->hash && b->parent_hash &&
                 bp_arena_adopt_fn(b->arena, r, bp_arch_rows_bytes(r), bp_arch_rows_free) == 0,
             "out of memory");
    b->arch = r;
    plan_add(p, BP_EVENT_ARCH_EVENTS, b);
    p->owned[p->nowned++] = b;
}

/* An events entry into p right after its first APPLY (a plan from c->have), of the blocks up to
 * that one: the kill rounds' batches carry events too. */
static void plan_events_after_apply(ctx *c, plan *p)
{
    size_t first = 0;
    while (first < p->n && p->ev[first].kind != BP_EVENT_APPLY)
        first++;
    if (first == p->n)
        return;
    ct_view was = c->have, upto = c->have;
    (void)make_batch(p->ev, first + 1, &upto);
    c->have = upto;
    plan_events(c, p, &upto);
    c->have = was;
    bp_event ev = p->ev[p->n - 1]; /* to first + 1, the others moved up one */
    memmove(&p->ev[first + 2], &p->ev[first + 1], (p->n - first - 2) * sizeof(*p->ev));
    p->ev[first + 1] = ev;
}

/* A batch of events alone on top of what the output holds. */
static void write_events(ctx *c)
{
    plan p = {0};
    plan_events(c, &p, &c->have);
    write_plan(c, &p, (size_t[]){1}, 1);
    plan_free(&p);
}

/* ---- restart ---------------------------------------------------------------------------- */

/* A REVERT block as the pipeline builds one after a restart: number and hash from recent(),
 * the parent hash from the entry below ("" for the lowest), no timestamp. */
static bp_block *recent_header(const bp_checkpoint *rec, size_t k, size_t n)
{
    bp_block *b = bp_block_new();
    CT_CHECK(b, "out of memory");
    b->number = rec[k].number;
    b->family = ct_arch ? BP_FAMILY_ARCH : BP_FAMILY_EVM;
    b->hash = bp_arena_strndup(b->arena, rec[k].hash, strlen(rec[k].hash));
    const char *parent = k + 1 < n ? rec[k + 1].hash : "";
    b->parent_hash = bp_arena_strndup(b->arena, parent, strlen(parent));
    return b;
}

/* What the pipeline does at start: from the output's checkpoint and recent blocks, the
 * highest one still on the node's chain is where it resumes; the ones above it are reverted.
 * c->have must already be the output's content (verified). */
static void resume(ctx *c, const size_t *sizes, size_t nsizes)
{
    bp_checkpoint rec[RECENT_MAX];
    size_t n = 0;
    bp_error e = {0};
    read_cp(c, &rec[0]);
    n = rec[0].set;
    if (n && c->sink->ops->recent)
        CT_CHECK(c->sink->ops->recent(c->sink, CHAIN, rec, RECENT_MAX, &n, &e) == 0,
                 "%s: resume: recent: %s", c->shown, e.msg);
    size_t i = 0;
    while (i < n && !(rec[i].number < c->chain.len &&
                      strcmp(c->chain.at[rec[i].number]->hash, rec[i].hash) == 0))
        i++;
    CT_CHECK(n == 0 || i < n, "%s: resume: none of the %zu recent blocks is canonical", c->shown,
             n);
    plan p = {0};
    for (size_t k = 0; k < i; k++)
        plan_revert(&p, recent_header(rec, k, n));
    for (size_t k = n ? rec[i].number + 1 : 0; k < c->chain.len; k++)
        plan_add(&p, BP_EVENT_APPLY, c->chain.at[k]);
    write_plan(c, &p, sizes, nsizes);
    plan_free(&p);
}

/* ---- children --------------------------------------------------------------------------- */

/* Forks a child that opens the output and writes p in batches of sizes[] on top of
 * c->have, armed to die at point (NULL: none). It tells progress_fd (-1: no one) "o" once the
 * output is open and "w" once every batch is written. The parent's handle must be closed. */
static pid_t spawn_writer(ctx *c, const plan *p, const size_t *sizes, size_t nsizes,
                          const char *point, int progress_fd)
{
    CT_CHECK(!c->sink, "test bug: the output is open across fork");
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CT_CHECK(pid >= 0, "fork failed");
    if (pid > 0)
        return pid;
    bp_crashpoint_arm(point);
    bp_sink *s = NULL;
    bp_error e = {0};
    if (bp_sink_open_url(c->url, &s, &e) != 0) {
        fprintf(stderr, "child: open: %s\n", e.msg);
        _exit(CHILD_FAILED);
    }
    if (progress_fd >= 0 && write(progress_fd, "o", 1) != 1)
        _exit(CHILD_FAILED);
    ct_view state = c->have;
    for (size_t off = 0, i = 0; off < p->n; i++) {
        size_t n = batch_len(p, off, i, sizes, nsizes);
        bp_batch b = make_batch(p->ev + off, n, &state);
        if (s->ops->write(s, &b, &e) != 0) {
            fprintf(stderr, "child: write: %s\n", e.msg);
            _exit(CHILD_FAILED);
        }
        off += n;
    }
    if (progress_fd >= 0 && write(progress_fd, "w", 1) != 1)
        _exit(CHILD_FAILED);
    if (s->ops->flush && s->ops->flush(s, &e) != 0) {
        fprintf(stderr, "child: flush: %s\n", e.msg);
        _exit(CHILD_FAILED);
    }
    _exit(CHILD_WROTE); /* no close: the crash right after the last write returned */
}

/* The child's wait status; a child that hangs is killed and fails the test. */
static int wait_child(ctx *c, pid_t pid)
{
    double deadline = now_s() + CHILD_DEADLINE_S;
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        CT_CHECK(r >= 0, "waitpid failed");
        if (r == pid)
            return status;
        if (now_s() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            ct_die("%s: %s: the writer child hung for %d s", c->shown, c->step, CHILD_DEADLINE_S);
        }
        nanosleep(&(struct timespec){0, 2000000}, NULL);
    }
}

static void describe_status(char *out, size_t cap, int status)
{
    if (WIFEXITED(status))
        snprintf(out, cap, "exited %d", WEXITSTATUS(status));
    else
        snprintf(out, cap, "killed by signal %d", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* Checks how a child ended: exited with code `want`, or killed by SIGKILL when allowed. */
static void check_status(ctx *c, int status, int want, bool kill_ok)
{
    char how[64];
    describe_status(how, sizeof(how), status);
    bool ok = (WIFEXITED(status) && WEXITSTATUS(status) == want) ||
              (kill_ok && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    CT_CHECK(ok, "%s: %s: the writer child %s, expected exit %d%s%s", c->shown, c->step, how, want,
             want == BP_CRASHPOINT_EXIT ? " (the crash point was never reached)" : "",
             want == CHILD_WROTE ? " (it could not write; see its message above)" : "");
}

/* ---- the scenario ----------------------------------------------------------------------- */

/* Steps 1-3 of the header comment. */
static void phase_stream(ctx *c)
{
    ct_extend(&c->world, &c->chain, 0, 10);
    sync_output(c, (size_t[]){1, 4, 5}, 3);
    if (ct_arch) /* events alone; some of their transactions' blocks reverted next */
        write_events(c);
    ct_fork(&c->world, &c->chain, 7, 1, 5); /* REVERT 9 8 7, APPLY 7..11 of branch 1 */
    sync_output(c, (size_t[]){8}, 1);

    /* up to 13 on branch 1, over to 12..14 of branch 2, back to branch 1's 12 13 and on */
    ct_view v1 = c->chain, v2, v3;
    ct_extend(&c->world, &v1, 1, 2);
    v2 = v1;
    ct_fork(&c->world, &v2, 12, 2, 3);
    v3 = v1;
    ct_extend(&c->world, &v3, 1, 2);
    plan p = {0};
    plan_transition(&p, &c->have, &v1);
    if (ct_arch) { /* branch 1's 12 13 with transactions rolled back, reverted, applied again */
        write_plan(c, &p, (size_t[]){2}, 1);
        plan_free(&p);
        write_events(c);
    }
    plan_transition(&p, &v1, &v2);
    plan_transition(&p, &v2, &v3);
    write_plan(c, &p, (size_t[]){3, 5, 4, 2}, 4);
    plan_free(&p);
    c->chain = v3;
    c->next_branch = 3;

    /* the new branch is shorter: its blocks come in the next batch */
    reorg(c, 2, 0);
    sync_output(c, (size_t[]){16}, 1);
    ct_extend(&c->world, &c->chain, c->next_branch - 1, 3);
    if (ct_arch) { /* events after the APPLYs in the batches they end, cut anywhere */
        plan_transition(&p, &c->have, &c->chain);
        ct_view top = c->have;
        (void)make_batch(p.ev, p.n, &top);
        ct_view was = c->have;
        c->have = top; /* the events follow the APPLYs of the blocks they name */
        plan_events(c, &p, &top);
        c->have = was;
        write_plan(c, &p, (size_t[]){2, 2}, 2);
        plan_free(&p);
        CT_CHECK(c->state_changes > 0, "test bug: no transaction rolled back or re-applied");
    }
    sync_output(c, (size_t[]){2}, 1);

    snprintf(c->step, sizeof(c->step), "reopen");
    close_output(c);
    open_output(c);
    verify(c);
}

/* Step 4: a child dies at point (after the batch's data, before its checkpoint is durable);
 * point NULL: it writes the batch and exits without close. Then the output is resumed. */
static void crash_round(ctx *c, const char *point)
{
    ct_view before = c->have, target = c->chain;
    ct_fork(&c->world, &target, target.len - 2, c->next_branch++, 4);
    plan p = {0};
    plan_transition(&p, &c->have, &target);
    if (ct_arch && c->crash_events) { /* events of blocks the fork keeps, after its APPLYs */
        ct_view kept = before;
        kept.len = target.len - 4;
        c->have = target;
        plan_events(c, &p, &kept);
        c->have = before;
    }
    size_t all = p.n;
    snprintf(c->step, sizeof(c->step), "crash at %s", point ? point : "the end of write()");
    close_output(c);
    int status = wait_child(c, spawn_writer(c, &p, &all, 1, point, -1));
    check_status(c, status, point ? BP_CRASHPOINT_EXIT : CHILD_WROTE, false);
    open_output(c);
    c->have = before;
    if (!point) { /* the whole batch is there */
        (void)make_batch(p.ev, p.n, &c->have);
        events_written(c, p.ev, p.n);
    }
    verify(c);
    plan_free(&p);
    c->chain = target;
    if (!point) /* and the chain reorged while the output was down */
        reorg(c, 1, 2);
    resume(c, (size_t[]){3, 2}, 2);
}

/* The chain after each batch boundary of p on top of c->have: states[0] before any batch,
 * states[k] after k batches. Returns the number of states. */
static size_t boundaries(const ctx *c, const plan *p, const size_t *sizes, size_t nsizes,
                         ct_view *states, size_t max)
{
    size_t nb = 1;
    states[0] = c->have;
    for (size_t off = 0; off < p->n; nb++) {
        CT_CHECK(nb < max, "test bug: too many batches");
        size_t n = batch_len(p, off, nb - 1, sizes, nsizes);
        states[nb] = states[nb - 1];
        (void)make_batch(p->ev + off, n, &states[nb]);
        off += n;
    }
    return nb;
}

/* When a kill round's SIGKILL comes: delay seconds after the fork, or after the child has
 * opened the output (after_open); delay < 0: never, the child writes everything. */
typedef struct kill_at {
    double delay;
    bool after_open;
} kill_at;

/* Forks the writer and kills it as `at` says. Unharmed (at.delay < 0), t[0] and t[1] get
 * the seconds from the fork to the output being open and to the last batch written. */
static int run_killed(ctx *c, const plan *p, const size_t *sizes, kill_at at, double *t)
{
    int fds[2];
    CT_CHECK(pipe(fds) == 0, "pipe failed");
    double t0 = now_s();
    pid_t pid = spawn_writer(c, p, sizes, 3, NULL, fds[1]);
    close(fds[1]);
    char byte;
    for (int i = 0; i < (at.delay < 0 ? 2 : at.after_open); i++)
        if (read(fds[0], &byte, 1) == 1 && at.delay < 0)
            t[i] = now_s() - t0;
    if (at.delay >= 0) {
        struct timespec ts = {(time_t)at.delay,
                              (long)((at.delay - (double)(time_t)at.delay) * 1e9)};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
    }
    int status = wait_child(c, pid);
    close(fds[0]);
    return status;
}

/* Step 5: one round of the chain moving on, written by a child that may be killed.
 * Counts where the output was found: landed[0] before any batch, [1] between, [2] after all. */
static void kill_round(ctx *c, int round, kill_at at, size_t *landed, double *t)
{
    ct_view target = c->chain, states[12];
    size_t depth = (size_t)rnd(c, 4), sizes[3];
    ct_fork(&c->world, &target, target.len - depth, c->next_branch++, 2 + (size_t)rnd(c, 5));
    plan p = {0};
    plan_transition(&p, &c->have, &target);
    if (ct_arch && c->crash_events)
        plan_events_after_apply(c, &p);
    for (size_t i = 0; i < 3; i++)
        sizes[i] = 1 + (size_t)rnd(c, 4);
    size_t nb = boundaries(c, &p, sizes, 3, states, 12);
    snprintf(c->step, sizeof(c->step), "kill round %d (%zu events in %zu batches)", round, p.n,
             nb - 1);
    close_output(c);
    int status = run_killed(c, &p, sizes, at, t);
    check_status(c, status, CHILD_WROTE, at.delay >= 0);
    open_output(c);
    bp_checkpoint cp;
    read_cp(c, &cp);
    size_t k;
    for (k = 0; k < nb; k++) {
        bp_checkpoint want = ct_view_cp(&states[k]);
        if (same_cp(&cp, &want))
            break;
    }
    CT_CHECK(k < nb, "%s: %s: after SIGKILL the checkpoint is %" PRIu64 " %s, not a batch boundary",
             c->shown, c->step, cp.number, cp.hash);
    if (at.delay >= 0)
        landed[k == 0 ? 0 : k + 1 < nb ? 1 : 2]++;
    c->have = states[k];
    size_t off = 0; /* the events of the k batches written */
    for (size_t i = 0; i < k; i++)
        off += batch_len(&p, off, i, sizes, 3);
    events_written(c, p.ev, off);
    verify(c);
    plan_free(&p);
    c->chain = target;
    if (rnd(c, 2)) /* the chain moved on while the output was down */
        reorg(c, (size_t)rnd(c, 3), 1 + (size_t)rnd(c, 3));
    resume(c, sizes, 3);
}

/* Round 0 times an unharmed child; then every other kill lands anywhere from the fork to
 * the last write (open and recovery included), the others while it writes. */
static void phase_kills(ctx *c, int rounds)
{
    size_t landed[3] = {0};
    double t[2] = {0, 0}; /* fork to open, fork to the last batch written */
    kill_round(c, 0, (kill_at){-1, false}, landed, t);
    double t_write = t[1] > t[0] ? t[1] - t[0] : t[1];
    for (int r = 1; r <= rounds; r++) {
        bool after_open = r % 2 == 0;
        double span = after_open ? t_write : t[1];
        kill_at at = {span * (double)rnd(c, 1000) / 1000.0, after_open};
        kill_round(c, r, at, landed, NULL);
    }
    printf("%s: %d SIGKILLs (a writer child takes %.3f s to open the output, %.3f s to write): "
           "the output was found as before the child's first batch %zu times, between batches "
           "%zu times, after its last %zu times\n",
           c->shown, rounds, t[0], t_write, landed[0], landed[1], landed[2]);
}

static void usage(void)
{
    fprintf(stderr, "usage: outputs_contract [--seed N] [--kills N] [--family evm|arch] "
                    "[--no-crash-events] [--crash POINT]... URL\n"
                    "       outputs_contract --schemes   (the registered backends' schemes)\n");
    exit(2);
}

/* For the driver: every registered backend must be in its list. */
static int print_schemes(void)
{
    for (const bp_sink_ops *const *b = bp_sink_backends(); *b; b++)
        printf("%s\n", (*b)->scheme);
    return 0;
}

int main(int argc, char **argv)
{
    ctx c = {.rng = 1, .next_branch = 1, .crash_events = true};
    const char *points[MAX_POINTS];
    size_t npoints = 0;
    int kills = 10;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            c.rng = strtoull(argv[++i], NULL, 10) | 1;
        else if (strcmp(argv[i], "--kills") == 0 && i + 1 < argc)
            kills = atoi(argv[++i]);
        else if (strcmp(argv[i], "--family") == 0 && i + 1 < argc)
            ct_arch = strcmp(argv[++i], "arch") == 0;
        else if (strcmp(argv[i], "--no-crash-events") == 0)
            c.crash_events = false;
        else if (strcmp(argv[i], "--schemes") == 0)
            return print_schemes();
        else if (strcmp(argv[i], "--crash") == 0 && i + 1 < argc && npoints < MAX_POINTS)
            points[npoints++] = argv[++i];
        else if (argv[i][0] != '-' && !c.url)
            c.url = argv[i];
        else
            usage();
    }
    if (!c.url)
        usage();
    bp_url_redact(c.url, c.shown, sizeof(c.shown));
    bp_log_set_level(BP_LOG_WARN);
    snprintf(c.step, sizeof(c.step), "open (new output)");
    open_output(&c);
    CT_CHECK(!ct_arch || (c.sink->families & (1u << BP_FAMILY_ARCH)),
             "%s: --family arch: the output does not store Arch blocks (bp_sink.families): %s",
             c.shown, c.sink->families_why ? c.sink->families_why : "(no reason given)");
    verify(&c);
    phase_stream(&c);
    for (size_t i = 0; i < npoints; i++)
        crash_round(&c, points[i]);
    crash_round(&c, NULL);
    phase_kills(&c, kills);
    snprintf(c.step, sizeof(c.step), "final reopen");
    close_output(&c);
    open_output(&c);
    verify(&c);
    CT_CHECK(c.have.len == c.chain.len, "test bug: the output ended below the chain");
    char arch[160] = "";
    if (ct_arch)
        snprintf(arch, sizeof(arch), ", %zu WebSocket events, %zu rollback state changes",
                 c.arch_events.n, c.state_changes);
    printf("%s%s: ok: %zu batches, %zu events, %zu checks, %zu crash points, chain of %zu blocks "
           "(%zu made on %u branches)%s\n",
           c.shown, ct_arch ? " (Arch rows)" : "", c.batches, c.events, c.checks, npoints,
           c.chain.len, c.world.n, c.next_branch, arch);
    close_output(&c);
    ct_world_free(&c.world);
    ct_lines_free(&c.arch_events);
    return 0;
}
