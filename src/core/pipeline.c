/* pipeline.c - the coordinator of one chain: heads, scheduling, the ordered commit, reorgs
 * (see pipeline.h for its threads and docs/ARCHITECTURE.md for the data flow and where each
 * delivery promise is kept). */
#include "core/pipeline.h"
#include "chain/presets.h"

#include <inttypes.h>
#ifdef __GLIBC__
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chain/fetch.h"
#include "chain/rpc.h"
#include "core/budget.h"
#include "core/canon.h"
#include "core/outputs.h"
#include "core/fetcher.h"
#include "core/pool.h"
#include "core/prober.h"
#include "core/realtime.h"
#include "arch/arch_ws.h"
#include "core/source.h"
#include "core/reorder.h"
#include "core/statsline.h"
#include "core/writer.h"
#include "metrics/metrics.h"
#include "util/arena.h"
#include "util/log.h"

/* Memory (core/budget.h, docs/ARCHITECTURE.md "Memory bounds"): the fixed part is in
 * pipeline.h (BP_MEM_*). The metrics module's open windows (their address sets) may hold this
 * fraction of the memory left for blocks; past it they are given up (metrics/openwin.h). What they
 * and the batch's derived rows hold is charged to the budget as it changes. */
#define BP_DERIVED_SHARE 8
/* What is left for blocks must hold at least this: below it nothing useful runs. */
#define BP_MEM_MIN_BLOCKS ((size_t)16 << 20)
/* A batch closes at --batch-size blocks or at this fraction of the memory left for blocks,
 * whichever comes first: the batch being built and the one in the writer take a quarter of
 * it, the rest is for the fetches out and the reorder window. */
#define BP_BATCH_SHARE 8
/* Blocks parked in the reorder window (waiting for a lower one, or for the writer) stop new
 * fetches at this fraction of the memory for blocks: when the writer is what is slow, a
 * fuller window only holds more memory, and the resident size grows past what is counted
 * (freed small chunks stay with malloc). 200-tx blocks into SQLite: at a quarter, 242 MiB
 * resident; at an eighth (about the 32 MiB it was before the budget), 210 MiB, as fast. */
#define BP_WINDOW_SHARE 8
/* Blocks fetched alone at the start, before the estimate is trusted. */
#define BP_ALONE_FIRST 2
/* The smallest grant of a block fetched alone (a cut answer asks for twice what it had). */
#define BP_MIN_GRANT ((size_t)64 << 10)
/* The most blocks out at once the ramp lets through (the window bounds them anyway). */
#define BP_RAMP_MAX ((size_t)1 << 16)

typedef struct pipeline pipeline;

/* The snapshot is published this often (and before every stats line); its rates are over the
 * last RATE_WINDOW_MS of publications. */
#define STATS_PUBLISH_MS 250
#define RATE_WINDOW_MS 10000
#define RATE_POINTS (RATE_WINDOW_MS / STATS_PUBLISH_MS + 2)

typedef struct rate_point {
    int64_t ms;
    uint64_t blocks, txs;
} rate_point;

struct pipeline {
    const bp_pipeline_config *cfg;
    const bp_source_ops *src; /* the chain family's calls (cfg->source or the EVM's) */
    volatile sig_atomic_t *stop;
    char chain[64];
    uint64_t chain_id;
    bp_pool pool;
    bp_rpc **rpcs;     /* the coordinator's own, one per endpoint: reorg walks */
    bp_prober *prober; /* head polls, chain checks and probes, off the coordinator's thread */
    bool *poll_ok;     /* per endpoint: the last head poll worked (to log changes only) */
    bool *asked_again; /* per endpoint: its question out is a recheck (it was down) */
    int64_t polled_ms; /* when the last head poll was asked */
    int walk_ep;       /* endpoint with the best head: the reorg walk asks it */
    bp_fetch_shared shared;
    bp_fetcher *fetcher;
    size_t inflight;                   /* jobs out to workers, stale ones included */
    size_t inflight_blocks;            /* their blocks */
    size_t threads;                    /* fetch workers */
    volatile sig_atomic_t abort_fetch; /* set on shutdown: requests in flight stop at once */

    bp_reorder rb;
    bp_canon canon;
    bp_outputs out; /* the writer thread's while it runs (see writer.h) */
    bp_writer writer;
    uint64_t next_fetch;
    uint64_t first; /* where this run started */

    bool have_head;
    bp_header head;
    bool said_short; /* a backfill's --to above what the head lets us fetch: said once */
    bool said_below; /* the head more than the reorg window under our tip: said once */
    /* The node's finalized height last answered (bp_header.has_final): a poll whose finalized
     * call failed keeps it, rather than falling back to head - --confirmations (take_head). */
    bool final_seen;
    uint64_t final_last;
    int final_unknown_polls; /* head polls whose finalized call failed, none answered yet */
    int64_t next_poll_ms;
    bp_realtime rt;
    bool rt_started;
    bp_arch_ws *aws;    /* --ws of a family with its own event stream (ws_events): its events */
    uint64_t aws_epoch; /* its subscriptions already resynced (bp_arch_ws_epoch) */
    uint64_t aws_lost;  /* ... of which malformed events (what the log says) */
    uint64_t aws_lost_seen, aws_lost_upto; /* the last loss noticed, fetched below then */
    bool aws_lost_told;                    /* its wait logged */
    /* A start: the highest output checkpoint + 1 (0: none). The first re-read waits until the
     * blocks below it are committed: the pipeline starts after the lowest checkpoint, and an
     * output ahead of it holds blocks whose rollback state a re-read up to the lowest would
     * leave as that output stored them (its ARCH_EVENTS entries reach it whatever its
     * checkpoint, outputs.c filter_events). */
    uint64_t aws_ahead;
    bool aws_ahead_told;
    int64_t aws_retry_ms; /* a failed resync is tried again from then, */
    size_t aws_tries;     /* on the endpoint after the one that failed */
    /* The node's best finalized height last seen while the socket was subscribed: a block
     * above it may have been rolled back while the socket was down, even one final now. */
    bool aws_final_set;
    uint64_t aws_final;
    /* The transactions the outputs hold as rolled back (from a fetched block, an event, a
     * re-read) with their blocks' heights: the re-apply of one may come while the socket is
     * down, in a block final by then, so the re-read reaches down to the lowest (resync_low). */
    struct aws_rolled *aws_rolled;
    size_t aws_nrolled, aws_caprolled;
    /* The lowest resync floor the outputs stored (bp_checkpoint.floor: what an earlier process
     * had not seen final or re-applied), until a re-read from it succeeded (resync_low). */
    bool aws_floor_set;
    bool aws_floor_read; /* ... read: kept until the re-read's rows are handed over */
    uint64_t aws_floor;

    /* the batch being built: events and the blocks they point to (owned until handed to the
     * writer) */
    bp_event *events;
    size_t nevents, cap_events;
    size_t batch_bytes; /* cost of the blocks in the batch */
    int64_t batch_started_ms;

    /* memory: every fetch, parked block and batch is charged to the budget */
    bp_budget budget;
    size_t fixed_bytes;      /* its fixed part (process, workers, outputs, push ring) */
    size_t derived_max;      /* what the metrics module's open windows may hold (0: none) */
    size_t batch_max_bytes;  /* a batch closes at this many bytes of blocks */
    size_t window_max_bytes; /* no new fetch while the parked blocks hold this many */
    size_t ramp;             /* blocks that may be out at once (see memory_room) */
    bool alone;              /* fetch one block at a time until one comes back (a cut answer) */
    bool alone_out;          /* that block is out */
    bool warned_big;         /* said once that blocks do not fit the budget */

    bool *claimed; /* per output: we hold the chain's writer lock in it */

    bool stopping;
    int fatal_rc;
    bp_error fatal;

    uint64_t blocks_done, txs_done, logs_done, reorgs, failed_total;
    bp_stats_hub *hub;     /* cfg->stats, or our own */
    bp_stats_hub *own_hub; /* freed at the end */
    bp_stats snap;         /* the snapshot being made or read */
    int64_t next_publish_ms;
    rate_point rates[RATE_POINTS];
    size_t rate_next;
    uint64_t stat_blocks, stat_txs;
    int64_t started_ms, stat_ms, next_stats_ms;
    int64_t bar_ms;    /* the terminal's progress line: when last drawn */
    uint64_t bar_next; /* rb.base then */
    double bar_bps;    /* blocks/s, smoothed over the draws */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- endpoints and workers ---------------------------------------------------------- */

static int open_endpoints(pipeline *p, bp_error *err)
{
    const bp_pipeline_config *c = p->cfg;
    int rc = bp_pool_init(&p->pool, c->endpoints, c->endpoint_count, c->workers, BP_JOB_MAX, err);
    if (rc != 0)
        return rc;
    p->rpcs = calloc(c->endpoint_count, sizeof(*p->rpcs));
    p->poll_ok = calloc(c->endpoint_count, sizeof(*p->poll_ok));
    p->asked_again = calloc(c->endpoint_count, sizeof(*p->asked_again));
    bp_rpc_config *rcfgs = calloc(c->endpoint_count ? c->endpoint_count : 1, sizeof(*rcfgs));
    if (!p->rpcs || !p->poll_ok || !p->asked_again || !rcfgs) {
        free(rcfgs);
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    long timeout_ms = (long)(c->rpc_timeout * 1000.0);
    for (size_t i = 0; i < c->endpoint_count && rc == 0; i++) {
        /* not abortable: a reorg walk that started must finish */
        rcfgs[i] = (bp_rpc_config){
            .url = c->endpoints[i].url,
            .auth = c->endpoints[i].auth,
            .timeout_ms = timeout_ms,
            .connect_timeout_ms = timeout_ms < 5000 ? timeout_ms : 5000,
        };
        rc = bp_rpc_new(&p->rpcs[i], &rcfgs[i], err);
        p->poll_ok[i] = true;
    }
    if (rc == 0)
        rc = bp_prober_new(&p->prober, &p->pool, p->src, rcfgs, c->endpoint_count, err);
    free(rcfgs);
    return rc;
}

static void close_endpoints(pipeline *p)
{
    bp_prober_free(p->prober); /* first: its threads use the pool */
    free(p->asked_again);
    for (size_t i = 0; p->rpcs && i < p->cfg->endpoint_count; i++)
        bp_rpc_free(p->rpcs[i]);
    free(p->rpcs);
    free(p->poll_ok);
    bp_pool_release(&p->pool);
}

/* Fetch workers: what the endpoints allow, at most 256 and at most the chain's share. */
static int worker_threads(const pipeline *p)
{
    int n = bp_pool_capacity(&p->pool), cap = p->cfg->max_threads;
    n = n > 256 ? 256 : n;
    return cap > 0 && n > cap ? cap : n;
}

static int start_workers(pipeline *p, size_t window, bp_error *err)
{
    p->threads = (size_t)worker_threads(p);
    bp_fetcher_config fc = {
        .pool = &p->pool,
        .shared = &p->shared,
        .source = p->src,
        .threads = (int)p->threads,
        .queue_cap = window * 2 + 16,
        .rpc_timeout = p->cfg->rpc_timeout,
        .budget = &p->budget,
        .stop = &p->abort_fetch,
    };
    return bp_fetcher_start(&p->fetcher, &fc, err);
}

/* ---- head tracking ------------------------------------------------------------------ */

static bool target(const pipeline *p, uint64_t *out)
{
    if (!p->have_head)
        return false;
    uint64_t t;
    if (p->cfg->confirmations > 0 && p->head.has_final) /* the node's finality (bp_header) */
        t = p->head.final_number;
    else if (p->cfg->confirmations > 0 && p->head.final_unknown)
        return false; /* it has one, not yet told: counting blocks could pass it */
    else if (p->head.number < p->cfg->confirmations)
        return false;
    else
        t = p->head.number - p->cfg->confirmations;
    if (p->cfg->backfill && t > p->cfg->to)
        t = p->cfg->to;
    *out = t;
    return true;
}

static int reorg_from(pipeline *p, uint64_t start_k, bp_error *err);
static double poll_every(pipeline *p);
static int take_head(pipeline *p, const bp_header *h, int64_t seen_ms, bp_error *err);

/* A head seen by a poll or announced on the socket. The head only moves forward, unless
 * the node switched branches under us: a head at or below our tip whose hash differs, or
 * whose parent is not what we applied below it. Then the head may be lower (a shorter
 * branch: nothing above it minus --confirmations may be fetched) and the reorg path
 * starts at once. A head that changed branch at the same height above our tip (with
 * --confirmations) is checked against our tip too: the reorg may reach below it. */
/* The head with the node's finalized height: as answered, or, when this poll did not get it
 * (the call failed once), the last one answered, so that --confirmations never commits above
 * the node's finalized block; head - N only for a node that has none (a node that has one but
 * never said which yet: final_unknown, target() waits, for FINAL_UNKNOWN_POLLS polls). */
#define FINAL_UNKNOWN_POLLS 10
static bp_header with_final(pipeline *p, const bp_header *in)
{
    bp_header h = *in;
    if (h.has_final) {
        p->final_seen = true;
        p->final_last = h.final_number;
    } else if (p->final_seen && p->final_last <= h.number) {
        h.has_final = true;
        h.final_number = p->final_last;
    } else if (h.final_unknown) {
        /* a node that fails the call every time has none we can use: count blocks, say so */
        if (p->final_unknown_polls < FINAL_UNKNOWN_POLLS &&
            ++p->final_unknown_polls == FINAL_UNKNOWN_POLLS)
            bp_warn("the node did not name its finalized block in %d head polls: "
                    "--confirmations %" PRIu64 " counts blocks below the head until it does",
                    FINAL_UNKNOWN_POLLS, (uint64_t)p->cfg->confirmations);
        h.final_unknown = p->final_unknown_polls < FINAL_UNKNOWN_POLLS;
    }
    return h;
}

/* A backfill whose --to the head does not reach yet waits for the chain to grow: said once,
 * else nothing but the stats lines tells why it does not end. */
static void say_short(pipeline *p)
{
    uint64_t t;
    if (!p->cfg->backfill || p->said_short || !target(p, &t) || t >= p->cfg->to)
        return;
    p->said_short = true;
    bp_info("backfill --to %" PRIu64 ": the node's head is %" PRIu64 " (--confirmations %" PRIu64
            "): waiting for the chain to reach it",
            p->cfg->to, p->head.number, (uint64_t)p->cfg->confirmations);
}

/* A head more than the reorg window below the blocks the outputs hold: the node is far behind,
 * or it serves another chain with the same id whose blocks those are not (a dev node started
 * afresh under a database of the last one). Nothing below the window can be compared, so the
 * pipeline can only wait for the head to come up; said once, else only the stats show it. */
static void say_below(pipeline *p, const bp_header *h)
{
    const bp_canon_entry *tip = bp_canon_tip(&p->canon);
    if (p->said_below || !tip || h->number + p->cfg->reorg_window >= tip->number)
        return;
    p->said_below = true;
    bp_warn("the node's head %" PRIu64 " is %" PRIu64 " blocks below block %" PRIu64
            ", the last the outputs hold (more than --reorg-window %" PRIu64
            "): the node is far behind, or it serves another chain with the same chain id "
            "(a dev node started afresh?) whose blocks the outputs' are not; waiting for its "
            "head to pass block %" PRIu64
            " (to index the node's chain from the start: a new output)",
            h->number, tip->number - h->number, tip->number, (uint64_t)p->cfg->reorg_window,
            tip->number);
}

static int take_head(pipeline *p, const bp_header *in, int64_t seen_ms, bp_error *err)
{
    bp_header hf = with_final(p, in);
    const bp_header *h = &hf;
    bool had = p->have_head;
    uint64_t prev = p->head.number;
    const bp_canon_entry *mine = bp_canon_at(&p->canon, h->number);
    const bp_canon_entry *below = h->number ? bp_canon_at(&p->canon, h->number - 1) : NULL;
    bool other_block = mine && strcmp(mine->hash, h->hash) != 0;
    bool other_parent = below && h->parent_hash[0] && strcmp(below->hash, h->parent_hash) != 0;
    bool moved = had && h->number == prev && strcmp(p->head.hash, h->hash) != 0;
    if (!had || h->number > prev) {
        bp_debug("head %" PRIu64 " %s", h->number, h->hash);
        bp_realtime_seen(&p->rt, h->number, seen_ms, had, prev);
        p->head = *h;
        p->have_head = true;
        say_short(p);
        say_below(p, h);
    } else if (h->number == prev || other_block || other_parent) {
        p->head = *h; /* same height, maybe another branch; or a shorter branch */
    }
    if (other_block) {
        bp_info("head %" PRIu64 " is %s but we applied %s there: checking for a reorg", h->number,
                h->hash, mine->hash);
        return reorg_from(p, h->number, err);
    }
    if (other_parent) {
        bp_info("head %" PRIu64 " has parent %s but we applied %s at %" PRIu64
                ": checking for a reorg",
                h->number, h->parent_hash, below->hash, below->number);
        return reorg_from(p, h->number - 1, err);
    }
    const bp_canon_entry *tip = bp_canon_tip(&p->canon);
    if (moved && tip && tip->number + 1 < h->number) {
        bp_info("head %" PRIu64 " is now %s: checking that our block %" PRIu64 " is still the "
                "node's",
                h->number, h->hash, tip->number);
        return reorg_from(p, tip->number, err);
    }
    return 0;
}

/* Heads announced on the socket since the last step. */
static int take_announced(pipeline *p, bp_error *err)
{
    bp_ws_head a;
    while (p->rt_started && bp_realtime_take(&p->rt, &a)) {
        if (p->src->ws_events) { /* a block event has no height: the head poll asks it now */
            bp_debug("block %s announced: polling the head", a.hash);
            p->next_poll_ms = now_ms();
            continue;
        }
        bp_header h = {.number = a.number, .timestamp = a.timestamp};
        memcpy(h.hash, a.hash, sizeof(h.hash));
        memcpy(h.parent_hash, a.parent_hash, sizeof(h.parent_hash));
        bp_pool_raise_heads(&p->pool, h.number);
        int rc = take_head(p, &h, a.received_ms, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Only this thread writes an endpoint's chain state, so it reads it without the pool's lock. */
static enum bp_ep_chain chain_of(const pipeline *p, size_t i)
{
    return p->pool.eps[i].chain;
}

/* Every request of the coordinator is framed by these two. An endpoint a 429 paused is not
 * asked (BP_ERATELIMIT, nothing sent: the caller skips it this time and never waits), and a
 * 429 it answers pauses it for the workers too. */
static int may_ask(pipeline *p, size_t i, bp_error *e)
{
    long left = bp_pool_may_call(&p->pool, (int)i);
    if (left == 0)
        return 0;
    return bp_error_set(e, BP_ERATELIMIT, "rpc[%zu] %s: rate-limited for another %ld ms", i,
                        p->pool.eps[i].url, left);
}

static int asked(pipeline *p, size_t i, int rc)
{
    bp_pool_called(&p->pool, (int)i, rc, bp_rpc_last_retry_after(p->rpcs[i]));
    return rc;
}

/* ---- the coordinator's questions (core/prober.h) ---------------------------------------
 *
 * Head polls, the eth_chainId check of an endpoint that did not answer it at start (asked again
 * on every poll) or that was ejected or unreachable (asked again when its pause is over: the
 * node behind the URL may have changed while it was down), and an ejected endpoint's probe are
 * asked on the prober's threads: an endpoint that accepts and never answers holds its own
 * thread for the RPC timeout, never the coordinator. Each step takes the answers in. An
 * endpoint gets requests (and its head counts) only once it names this chain. */

/* Asks endpoint i what it needs asked now, if anything: at a poll its head (its chain first
 * when that is unchecked or to be checked again); between polls only a recheck whose pause is
 * over, or the probe of an ejected one no block request probes (a chain with no block to
 * fetch sends none, nor does one whose preferred endpoint takes every request: it would stay
 * ejected, endpoint_down firing, for good). */
static void ask_endpoint(pipeline *p, size_t i, bool poll)
{
    bp_error e;
    if (bp_prober_busy(p->prober, i))
        return; /* its last question is still out: it is not asked twice */
    bool due, again = bp_pool_needs_recheck(&p->pool, (int)i, &due);
    if (again && !due)
        return;
    bool check = again || chain_of(p, i) == BP_EP_CHAIN_UNCHECKED;
    if (!check && chain_of(p, i) != BP_EP_CHAIN_OK)
        return; /* another chain: never asked again */
    if (!poll && !again && !bp_pool_probe_due(&p->pool, (int)i))
        return;
    if (bp_prober_ask(p->prober, i, check, p->chain_id, &e) != 0) {
        bp_warn("rpc[%zu] %s: %s", i, p->pool.eps[i].url, e.msg);
        return;
    }
    p->asked_again[i] = again;
}

static void ask_endpoints(pipeline *p, bool poll)
{
    for (size_t i = 0; i < p->cfg->endpoint_count; i++)
        ask_endpoint(p, i, poll);
}

/* An endpoint's identity as its family shows it: EVM's chain id in decimal, another's in hex. */
typedef struct id_text {
    char s[48];
} id_text;

static id_text show_id(const pipeline *p, uint64_t id)
{
    id_text t;
    if (p->src->family == BP_FAMILY_EVM)
        snprintf(t.s, sizeof(t.s), "%" PRIu64, id);
    else
        snprintf(t.s, sizeof(t.s), "%016" PRIx64, id);
    return t;
}

/* What eth_chainId said of endpoint i; true when it named this chain. A 429 (now or still in
 * force) is not a failed check: it is asked again when the pause is over. */
static bool chain_answer(pipeline *p, size_t i, const bp_probe_answer *a)
{
    bool again = p->asked_again[i];
    if (a->chain_rc != 0) {
        if (again && a->chain_rc != BP_ERATELIMIT)
            bp_pool_recheck_failed(&p->pool, (int)i, a->err.msg);
        return false;
    }
    if (a->chain_id != p->chain_id) {
        bp_pool_set_chain(&p->pool, (int)i, BP_EP_CHAIN_OTHER);
        bp_err("rpc[%zu] %s serves %s %s, not %s: it is never used (every endpoint of a chain must "
               "serve the same chain)",
               i, p->pool.eps[i].url, p->src->identity_name, show_id(p, a->chain_id).s,
               show_id(p, p->chain_id).s);
        return false;
    }
    bp_pool_set_chain(&p->pool, (int)i, BP_EP_CHAIN_OK);
    bp_info("rpc[%zu] %s answers %s %s %s", i, p->pool.eps[i].url, p->src->identity_call,
            show_id(p, a->chain_id).s, again ? "again after it was down: in use" : "now: in use");
    return true;
}

/* What the head request to endpoint i got; logs only when it changes (good to bad and back).
 * Answered, an ejected endpoint whose probe was due is healthy again; failed, it is ejected
 * again for twice as long (bp_pool_probed ignores both when no probe was due). */
static bool head_answer(pipeline *p, size_t i, const bp_probe_answer *a)
{
    int rc = a->head_rc;
    if (rc == BP_ERATELIMIT)
        return false;
    if (rc != 0 && p->poll_ok[i])
        bp_warn("head poll of rpc[%zu] failed: %s", i, a->err.msg);
    if (rc == 0 && !p->poll_ok[i])
        bp_info("head poll of rpc[%zu] works again", i);
    p->poll_ok[i] = rc == 0;
    if (rc == 0)
        bp_pool_set_head(&p->pool, (int)i, a->head.number);
    bp_pool_probed(&p->pool, (int)i, rc, rc != 0 ? a->err.msg : NULL);
    /* unreachable: when it answers again it may be another node (it is not asked for blocks
     * above its last head meanwhile, so it might never be ejected) */
    if (rc == BP_ETRANSPORT || rc == BP_ETIMEOUT || rc == BP_EHTTP)
        bp_pool_recheck(&p->pool, (int)i);
    return rc == 0;
}

/* Takes in every answer there is. The head is the highest of the heads they bring; the other
 * endpoints are not asked for blocks above their own head (the pool knows each one's). */
static int take_answers(pipeline *p, bp_error *err)
{
    bp_probe_answer a, best;
    int best_ep = -1;
    bool had = p->have_head;
    for (size_t i = 0; i < p->cfg->endpoint_count; i++) {
        if (!bp_prober_take(p->prober, i, &a))
            continue;
        if (a.chain_asked && !chain_answer(p, i, &a))
            continue;
        if (!a.head_asked || !head_answer(p, i, &a))
            continue;
        if (best_ep < 0 || a.head.number > best.head.number) {
            best = a;
            best_ep = (int)i;
        }
    }
    if (best_ep < 0)
        return 0; /* the next poll tries again; nothing depends on one poll */
    /* Answers come in one endpoint at a time, not as one poll's best: a head not above the
     * one we follow is news only from the endpoint that gave it (its chain changed branch or
     * got shorter); from another it is a node behind, maybe still on a branch we left, and
     * must not start a reorg walk that asks it. */
    if (had && best.head.number <= p->head.number && best_ep != p->walk_ep)
        return 0;
    p->walk_ep = best_ep;
    int rc = take_head(p, &best.head, best.done_ms, err);
    /* Again once the first head is known: what it taught counts. Before it the 1 s interval
     * put a second poll in the middle of a backfill that was meant to get a heartbeat. */
    if (!had && p->have_head && p->polled_ms)
        p->next_poll_ms = p->polled_ms + (int64_t)(poll_every(p) * 1000.0);
    return rc;
}

/* Every endpoint is asked for its head; the answers come in with the next steps. */
static void poll_head(pipeline *p)
{
    p->polled_ms = now_ms();
    ask_endpoints(p, true);
}

/* ---- scheduling --------------------------------------------------------------------- */

/* Sends blocks first .. first+count-1 (their slots must be free to fetch) as one job, charging
 * `grant` bytes per block to the budget. share_per_block 0: the answer is not cut (a block
 * that does not fit the budget at all). */
static int push_job(pipeline *p, uint64_t first, size_t count, int avoid_ep, size_t grant,
                    size_t share_per_block, bool alone, bool promised)
{
    bp_job *job = calloc(1, sizeof(*job));
    if (!job)
        return BP_ENOMEM;
    job->first = first;
    job->count = count;
    job->avoid_ep = avoid_ep;
    job->grant = grant * count;
    job->share_per_block = share_per_block;
    job->alone = alone;
    job->promised = promised;
    for (size_t i = 0; i < count; i++)
        job->epochs[i] = bp_reorder_slot(&p->rb, first + i)->epoch;
    if (bp_fetcher_submit(p->fetcher, job) != 0) {
        free(job);
        return BP_ETOOBIG;
    }
    if (promised)
        bp_budget_promise(&p->budget, job->grant);
    else
        bp_budget_charge(&p->budget, job->grant);
    bp_debug("job %" PRIu64 "+%zu grant %zu KiB share %zu KiB/block%s", first, count,
             job->grant >> 10, share_per_block >> 10,
             alone      ? " (alone)"
             : promised ? " (promised)"
                        : "");
    p->inflight++;
    p->inflight_blocks += count;
    p->alone_out |= alone;
    for (size_t i = 0; i < count; i++)
        bp_reorder_set_state(&p->rb, bp_reorder_slot(&p->rb, first + i), BP_SLOT_FETCHING);
    return 0;
}

/* Whether the budget's `used` holds job's grant (a promise counts there once a worker took it). */
static bool grant_held(const bp_job *job)
{
    return !job->promised || job->taken;
}

/* A job is back (or was taken off the queue): what its blocks did not take of its grant
 * (`unused`: all of it for a job taken off the queue) returns to the budget. */
static void job_returned(pipeline *p, const bp_job *job, size_t unused)
{
    p->inflight--;
    p->inflight_blocks -= job->count;
    if (job->alone)
        p->alone_out = false;
    if (!grant_held(job))
        bp_budget_drop_promise(&p->budget, job->grant);
    else
        bp_budget_refund(&p->budget, unused);
}

/* What one more block is granted: the largest recent cost and an eighth more, so that the
 * usual spread of sizes does not cut answers. 0 before the first block. */
static size_t block_grant(const pipeline *p)
{
    size_t est = bp_budget_estimate(&p->budget);
    return est + est / 8;
}

/* The answer bytes a grant allows (the answer is cut past them). */
static size_t share_of(const pipeline *p, size_t grant)
{
    double w = (double)grant / bp_budget_per_wire(&p->budget);
    return w < 1.0 ? 1 : (size_t)w;
}

/* Nothing will come back to the budget by waiting: no fetch out, no batch being built or
 * written. */
static bool nothing_to_free(pipeline *p)
{
    return p->inflight == 0 && p->nevents == 0 && !bp_writer_busy(&p->writer);
}

/* Makes room for the block at the base, which may always be fetched: the highest parked
 * blocks are dropped (and fetched again later, not as an attempt) until `need` bytes are
 * free. Only when nothing else would free memory: those blocks wait for the base anyway. */
static void evict_for_base(pipeline *p, size_t need)
{
    uint64_t lo = 0, hi = 0;
    for (uint64_t n = p->next_fetch; n-- > p->rb.base + 1 && bp_budget_free(&p->budget) < need;) {
        bp_slot *s = bp_reorder_slot(&p->rb, n);
        if (!s || s->state != BP_SLOT_DONE)
            continue;
        bp_reorder_discard(&p->rb, s);
        s->retry_at_ms = 0;
        bp_reorder_set_state(&p->rb, s, BP_SLOT_RETRY);
        hi = hi ? hi : n;
        lo = n;
    }
    if (hi)
        bp_info("memory: parked blocks %" PRIu64 "..%" PRIu64 " dropped to make room for block "
                "%" PRIu64 " (fetched again later; --max-memory %zu MiB)",
                lo, hi, p->rb.base, p->budget.limit >> 20);
}

static bool needs_fetch(const bp_slot *s, int64_t now)
{
    return (s->state == BP_SLOT_RETRY || s->state == BP_SLOT_FAILED) && s->retry_at_ms <= now;
}

/* One block at a time with all the memory that is free: at the start (nothing is known of
 * the blocks' size) and after an answer outgrew its grant (a new size class). The lowest
 * block that needs a fetch goes first; an answer cut again waits for twice the room. A block
 * that cannot fit even the whole budget is fetched anyway (the base must move), uncut, with
 * a warning. */
static void schedule_alone(pipeline *p, uint64_t t, int64_t now)
{
    uint64_t n = p->rb.base;
    bp_slot *s = NULL;
    if (p->alone_out)
        return;
    for (; n < p->next_fetch && !s; n++) {
        bp_slot *c = bp_reorder_slot(&p->rb, n);
        if (c && (c->state == BP_SLOT_RETRY || c->state == BP_SLOT_FAILED))
            s = c;
    }
    if (s && !needs_fetch(s, now))
        return; /* the lowest waits for its backoff: the commit waits on it anyway */
    n = s ? n - 1 : p->next_fetch;
    s = s ? s : (n <= t ? bp_reorder_slot(&p->rb, n) : NULL);
    if (!s)
        return;
    size_t usable = p->budget.limit - p->fixed_bytes;
    size_t want = s->too_big_at ? 2 * s->too_big_at : block_grant(p);
    /* cut with (nearly) the whole budget, or bigger than it by the estimate: another cut
     * would only waste the node's work. The estimate itself, not the grant: a grant's eighth
     * more is slack for the spread of sizes, and a block alone gets all there is anyway. */
    bool uncut =
        s->too_big_at + s->too_big_at / 4 > usable || bp_budget_estimate(&p->budget) > usable;
    want = want < BP_MIN_GRANT ? BP_MIN_GRANT : want > usable ? usable : want;
    if (bp_budget_free(&p->budget) < want && n == p->rb.base && nothing_to_free(p)) {
        /* the metrics module's sets and spare arena would otherwise wait for a batch that
         * waits for this block */
        if (p->cfg->metrics && bp_metrics_shed(p->cfg->metrics))
            bp_debug("block %" PRIu64 ": the metrics module let go of its memory for it", n);
        evict_for_base(p, want);
    }
    if (bp_budget_free(&p->budget) < want)
        return; /* the writer, the commit or the fetches out give memory back */
    if (uncut && !p->warned_big) {
        bp_warn("block %" PRIu64 " needs more than the %zu MiB --max-memory %zu MiB leaves for "
                "blocks: such blocks are fetched one at a time, beyond the budget",
                n, usable >> 20, p->budget.limit >> 20);
        p->warned_big = true;
    }
    size_t grant = bp_budget_free(&p->budget);
    if (push_job(p, n, 1, s->last_ep, grant, uncut ? 0 : share_of(p, grant), true, false) == 0 &&
        n == p->next_fetch)
        p->next_fetch++;
}

/* Retries (1 block each) within the memory a block is granted. Returns false when one of
 * them needs to be fetched alone (its answer outgrew what a block is granted now). */
static bool schedule_retries(pipeline *p, int64_t now, size_t grant)
{
    for (uint64_t n = p->rb.base; n < p->next_fetch; n++) {
        bp_slot *s = bp_reorder_slot(&p->rb, n);
        if (!s || !needs_fetch(s, now))
            continue;
        if (s->too_big_at >= grant)
            return false;
        if (bp_budget_free(&p->budget) < grant ||
            push_job(p, n, 1, s->last_ep, grant, share_of(p, grant), false, false) != 0)
            return true;
    }
    return true;
}

/* The base waits for memory that nothing will give back: it goes alone (making room). */
static bool base_starved(pipeline *p, int64_t now, size_t grant)
{
    bp_slot *s = bp_reorder_slot(&p->rb, p->rb.base);
    bool waits =
        s && (needs_fetch(s, now) || (s->state == BP_SLOT_EMPTY && p->next_fetch == p->rb.base));
    return waits && bp_budget_free(&p->budget) < grant && nothing_to_free(p);
}

/* Blocks per job: the pool's batch, but the last `left` numbers before the target are
 * spread over every worker, so a backfill does not end waiting on one long request. */
static size_t job_size(const pipeline *p, size_t hint, uint64_t left)
{
    if (left >= (uint64_t)hint * p->threads)
        return hint;
    size_t per = (size_t)((left + p->threads - 1) / p->threads);
    return per < 1 ? 1 : per;
}

/* Blocks that may be fetched now: as many as the free memory grants, and no more than the
 * ramp (doubled by every job that came back within its grant, back to 1 by a cut answer:
 * requests that would be cut are not sent by the dozen). When the memory is all taken but
 * on its way back, *promised: one job may go ahead with its grant promised (budget.h), so
 * that the node prepares its answer while the writer writes. Not while a block waits for a
 * retry: the blocks parked above it would keep the memory the promise waits for. */
static size_t memory_room(pipeline *p, size_t grant, bool *promised)
{
    *promised = false;
    if (p->next_fetch > p->rb.base && p->rb.parked_bytes >= p->window_max_bytes)
        return 0; /* the commit (or the writer) has to catch up: more would only wait */
    size_t room = bp_budget_free(&p->budget) / grant;
    size_t ramp = p->ramp > p->inflight_blocks ? p->ramp - p->inflight_blocks : 0;
    size_t usable = p->budget.limit - p->fixed_bytes;
    /* Not with several chains (a memory pool): what this chain waits for may be held by
     * another chain's promise, which waits for this chain's memory in turn - measured: every
     * chain stalled 10 s at a time, until the promises timed out. The other chains keep the
     * node and the CPU busy meanwhile, which is what a promise is for. */
    /* Nor for more than the blocks give back: the metrics module's windows may keep their
     * share until a window closes (measured: a promise of all the room for blocks timed out
     * after 10 s on every 50,000-tx block with the derived tables on). */
    *promised = room == 0 && !p->cfg->memory_pool && bp_budget_promised(&p->budget) == 0 &&
                grant + p->derived_max <= usable && p->rb.counts[BP_SLOT_RETRY] == 0 &&
                p->rb.counts[BP_SLOT_FAILED] == 0;
    if (*promised)
        room = usable / grant;
    return room < ramp ? room : ramp;
}

static void schedule(pipeline *p)
{
    uint64_t t;
    int64_t now = now_ms();
    if (p->stopping || !target(p, &t))
        return;
    if (p->next_fetch < p->rb.base)
        p->next_fetch = p->rb.base;
    size_t grant = block_grant(p);
    /* Alone: the first two blocks (block 0 is empty on most chains, and the blocks after it
     * would all be cut), after a cut, and when the base starves. Else retries first: the
     * commit waits on the lowest of them. */
    if (p->budget.seen < BP_ALONE_FIRST || p->alone || !schedule_retries(p, now, grant) ||
        base_starved(p, now, grant)) {
        schedule_alone(p, t, now);
        return;
    }
    size_t hint = (size_t)bp_pool_batch_hint(&p->pool);
    /* Spreading the last numbers costs requests, and a rate-limited pool counts them. */
    bool spread = !bp_pool_requests_scarce(&p->pool);
    while (p->next_fetch <= t) {
        /* A short queue: a job's size is fixed when it is made, so jobs made later get the
         * batch size the pool has learnt by then (the first ones start at 2 blocks). */
        if (p->inflight >= 2 * p->threads)
            return;
        bool promised;
        size_t max = spread ? job_size(p, hint, t - p->next_fetch + 1) : hint;
        size_t room = memory_room(p, grant, &promised);
        max = max < room ? max : room;
        size_t n = 0;
        while (n < max && p->next_fetch + n <= t && bp_reorder_slot(&p->rb, p->next_fetch + n))
            n++;
        if (n == 0 ||
            push_job(p, p->next_fetch, n, -1, grant, share_of(p, grant), false, promised) != 0)
            return; /* the window or the memory is full: back-pressure */
        p->next_fetch += n;
    }
}

static long backoff_ms(int attempts)
{
    long ms = 100L << (attempts < 7 ? attempts : 7); /* 200 ms .. 12.8 s */
    return ms > 10000 ? 10000 : ms;
}

/* quiet: the same error was just said for the block before, of the same request (one timeout
 * of a batch of N blocks is one warning, not N) */
static void fetch_failed(pipeline *p, uint64_t n, int rc, const bp_error *err, int ep, bp_slot *s,
                         bool quiet)
{
    s->attempts++;
    s->last_ep = ep;
    snprintf(s->last_error, sizeof(s->last_error), "%.255s", err->msg);
    long delay = backoff_ms(s->attempts);
    s->retry_at_ms = now_ms() + delay;
    int max = p->cfg->max_retries;
    if (s->attempts <= max) {
        if (!quiet)
            bp_warn("%s (attempt %d of %d, retrying in %ld ms%s)", err->msg, s->attempts, max + 1,
                    delay, p->cfg->endpoint_count > 1 ? " on another endpoint if one is free" : "");
        bp_reorder_set_state(&p->rb, s, BP_SLOT_RETRY);
        return;
    }
    if (s->attempts == max + 1) /* the first time it used up its retries */
        p->failed_total++;
    bp_reorder_set_state(&p->rb, s, BP_SLOT_FAILED);
    if (p->cfg->backfill) {
        bp_err("block %" PRIu64 " failed after %d attempts: %s", n, s->attempts, err->msg);
        if (!p->fatal_rc)
            p->fatal_rc = bp_error_set(&p->fatal, rc,
                                       "block %" PRIu64 " failed after %d "
                                       "attempts: %s",
                                       n, s->attempts, err->msg);
        p->stopping = true;
        return;
    }
    /* Following the head we never skip a block: keep trying, slowly (a provider that fails a
     * block --max-retries times in a row is not asked for it every backoff step), and say so. */
    double pause = p->cfg->failed_retry_interval > 0 ? p->cfg->failed_retry_interval
                                                     : BP_PIPELINE_FAILED_RETRY;
    s->retry_at_ms = now_ms() + (int64_t)(pause * 1000.0);
    bp_err("block %" PRIu64 " failed %d times, the chain waits on it (next try in %g s, "
           "--failed-retry-interval): %s",
           n, s->attempts, pause, err->msg);
}

/* Block i of the job outgrew the memory granted to it: not an attempt. It is fetched again
 * alone, with at least twice the room, and nothing else starts until a block fetched alone
 * shows how big blocks are now. */
static void too_big(pipeline *p, const bp_job *job, size_t i, bp_slot *s)
{
    size_t per_block = job->grant / job->count;
    s->too_big_at = per_block > s->too_big_at ? per_block : s->too_big_at;
    s->retry_at_ms = 0;
    bp_reorder_set_state(&p->rb, s, BP_SLOT_RETRY);
    if (i == 0 || job->rcs[i - 1] != BP_JOB_OVER_SHARE)
        bp_info("blocks %" PRIu64 "..%" PRIu64 ": the answer outgrew the %zu KiB per block "
                "granted to it; fetching them one at a time with more room (--max-memory)",
                job->first + i, job->first + job->count - 1, per_block >> 10);
    p->alone = true;
    p->ramp = 1;
}

/* What the blocks of a returned job teach: their cost, and per answer byte when the whole
 * job came back. A job that came back whole lets twice as many blocks out at once; a block
 * fetched alone ends the one-at-a-time mode. */
static void learn(pipeline *p, const bp_job *job)
{
    size_t arena = 0, ok = 0;
    for (size_t i = 0; i < job->count; i++)
        if (job->rcs[i] == 0) {
            bp_budget_learn(&p->budget, job->blocks[i]);
            arena += bp_arena_held(job->blocks[i]->arena);
            ok++;
        }
    if (ok == job->count)
        bp_budget_learn_wire(&p->budget, arena, job->wire);
    if (ok == job->count && p->ramp < BP_RAMP_MAX)
        p->ramp *= 2;
    if (ok > 0 && job->alone)
        p->alone = false;
}

static void job_block_result(pipeline *p, bp_job *job, size_t i)
{
    uint64_t n = job->first + i;
    if (job->rcs[i] == 0) {
        bp_slot *ok = bp_reorder_slot(&p->rb, n);
        if (bp_reorder_put(&p->rb, n, job->epochs[i], job->blocks[i]))
            ok->served_ep = job->ep; /* to avoid it if the block proves stale */
        job->blocks[i] = NULL;
        return;
    }
    bp_slot *s = bp_reorder_slot(&p->rb, n);
    if (!s || s->epoch != job->epochs[i] || s->state != BP_SLOT_FETCHING)
        return; /* invalidated by a reorg meanwhile */
    if (job->rcs[i] == BP_JOB_OVER_SHARE) {
        too_big(p, job, i, s);
        return;
    }
    if (job->rcs[i] == BP_ESTOPPED || job->rcs[i] == BP_JOB_NOT_TRIED ||
        job->rcs[i] == BP_ERATELIMIT) {
        /* not an attempt (a 429 is the provider saying "slower", and the pool already holds
         * the endpoint back): fetch it again as soon as the scheduler looks */
        s->retry_at_ms = 0;
        bp_reorder_set_state(&p->rb, s, job->rcs[i] == BP_ESTOPPED ? BP_SLOT_EMPTY : BP_SLOT_RETRY);
        return;
    }
    bool same = i > 0 && job->rcs[i - 1] == job->rcs[i] &&
                strcmp(job->errs[i - 1].msg, job->errs[i].msg) == 0;
    fetch_failed(p, n, job->rcs[i], &job->errs[i], job->ep, s, same);
}

static void drain_results(pipeline *p, long wait_ms)
{
    bp_job *job = bp_fetcher_result(p->fetcher, wait_ms);
    while (job) {
        learn(p, job);
        /* its blocks are paid out of its grant first, then the rest is refunded: the
         * counter never holds both (a peak, or another chain's pool, would see the blocks
         * twice), nor dips below the blocks (a worker waiting for a promise would see
         * their memory as free) */
        bp_reorder_prepay(&p->rb, grant_held(job) ? job->grant : 0);
        for (size_t i = 0; i < job->count; i++)
            job_block_result(p, job, i);
        job_returned(p, job, bp_reorder_prepaid_left(&p->rb));
        bp_job_free(job);
        job = bp_fetcher_result(p->fetcher, 0);
    }
}

/* ---- rolled-back transactions the outputs hold (pipeline.aws_rolled) ------------------ */

struct aws_rolled {
    bp_arch_hash txid;
    uint64_t height;
};

static void rolled_drop(pipeline *p, const char *txid)
{
    for (size_t i = 0; i < p->aws_nrolled; i++)
        if (strcmp(p->aws_rolled[i].txid, txid) == 0) {
            p->aws_rolled[i] = p->aws_rolled[--p->aws_nrolled];
            return;
        }
}

/* Out of memory: the entry is left out (logged), the re-read then may stay above it. */
static void rolled_add(pipeline *p, const char *txid, uint64_t height)
{
    rolled_drop(p, txid);
    if (p->aws_nrolled == p->aws_caprolled) {
        size_t cap = p->aws_caprolled ? p->aws_caprolled * 2 : 16;
        struct aws_rolled *r = realloc(p->aws_rolled, cap * sizeof(*r));
        if (!r) {
            bp_warn("arch websocket: out of memory: the rolled-back transaction %s is not "
                    "followed (its re-apply while the socket is down may be missed)",
                    txid);
            return;
        }
        p->aws_rolled = r;
        p->aws_caprolled = cap;
    }
    struct aws_rolled *e = &p->aws_rolled[p->aws_nrolled++];
    snprintf(e->txid, sizeof(e->txid), "%s", txid);
    e->height = height;
}

/* Forgets those of blocks lo..hi (read again, or below what the canon holds). */
static void rolled_forget(pipeline *p, uint64_t lo, uint64_t hi)
{
    for (size_t i = 0; i < p->aws_nrolled;)
        if (p->aws_rolled[i].height >= lo && p->aws_rolled[i].height <= hi)
            p->aws_rolled[i] = p->aws_rolled[--p->aws_nrolled];
        else
            i++;
}

static bool rolled_lowest(const pipeline *p, uint64_t *h)
{
    for (size_t i = 0; i < p->aws_nrolled; i++)
        if (i == 0 || p->aws_rolled[i].height < *h)
            *h = p->aws_rolled[i].height;
    return p->aws_nrolled > 0;
}

/* What the rows going out say of rollback state: a fetched block's rolled-back transactions,
 * and the socket's events (a resync's rolled-back ones are noted when read, resync_blocks). */
static void rolled_note(pipeline *p, const bp_arch_rows *r)
{
    for (size_t k = 0; k < r->tx_count; k++)
        if (r->txs[k].rolled_back)
            rolled_add(p, r->txs[k].txid, r->txs[k].block_height);
    for (size_t i = 0; i < r->event_count; i++) {
        const bp_arch_event *e = &r->events[i];
        for (size_t k = 0; k < e->hash_count; k++) {
            if (e->topic == BP_ARCH_T_REAPPLIED)
                rolled_drop(p, e->hashes[k]);
            else if (e->topic == BP_ARCH_T_ROLLEDBACK && e->has_height && !e->resync)
                rolled_add(p, e->hashes[k], e->block_height);
        }
    }
}

/* The lowest block the next start must read the rollback state of again, stored with the
 * outputs' checkpoints (bp_checkpoint.floor): what a start cannot know otherwise, the best
 * finalized block last seen while subscribed and the rolled-back transactions this process
 * follows, the outputs' own floor while it has not read from there yet. Computed when a batch is
 * handed over, after its rows were noted: the floor goes with the rows it covers. */
static bool resync_floor(const pipeline *p, uint64_t *floor)
{
    bool set = p->aws_final_set, r_set;
    uint64_t r;
    *floor = p->aws_final + 1;
    if ((r_set = rolled_lowest(p, &r)) && (!set || r < *floor))
        *floor = r;
    set = set || r_set;
    if (p->aws_floor_set && (!set || p->aws_floor < *floor))
        *floor = p->aws_floor;
    return set || p->aws_floor_set;
}

/* ---- the ordered commit ------------------------------------------------------------- */

static int add_event(pipeline *p, bp_event_kind kind, bp_block *b)
{
    if (p->nevents == p->cap_events) {
        size_t cap = p->cap_events ? p->cap_events * 2 : 64;
        bp_event *ev = realloc(p->events, cap * sizeof(*ev));
        if (!ev)
            return BP_ENOMEM;
        p->events = ev;
        p->cap_events = cap;
    }
    if (p->nevents == 0)
        p->batch_started_ms = now_ms();
    p->events[p->nevents++] = (bp_event){.kind = kind, .block = b};
    p->batch_bytes += bp_budget_block_cost(b);
    return 0;
}

static void free_batch(pipeline *p)
{
    p->batch_bytes = 0;
    for (size_t i = 0; i < p->nevents; i++)
        bp_budget_free_block(&p->budget, (bp_block *)p->events[i].block);
    p->nevents = 0;
}

/* The socket's events that may go out now (arch/arch_ws.h: those of blocks committed), as
 * one entry after the batch's blocks. */
static int add_ws_events(pipeline *p, bp_error *err)
{
    if (!p->aws)
        return 0;
    const bp_canon_entry *tip = bp_canon_tip(&p->canon);
    bp_arch_rows *r;
    int rc = bp_arch_ws_take(p->aws, tip != NULL, tip ? tip->number : 0, &r, err);
    if (rc != 0 || !r)
        return rc;
    bp_block *b = bp_block_new();
    if (b) {
        b->family = p->src->family;
        b->number = tip ? tip->number : 0;
        b->timestamp = tip ? tip->timestamp : 0;
        b->hash = bp_arena_strndup(b->arena, tip ? tip->hash : "", tip ? strlen(tip->hash) : 0);
        b->parent_hash = bp_arena_strndup(b->arena, "", 0);
    }
    if (!b || !b->hash || !b->parent_hash ||
        bp_arena_adopt_fn(b->arena, r, bp_arch_rows_bytes(r), bp_arch_rows_free) != 0) {
        bp_block_free(b);
        bp_arch_rows_free(r);
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    b->arch = r;
    rolled_note(p, r);
    bp_budget_charge(&p->budget, bp_budget_block_cost(b));
    if (add_event(p, BP_EVENT_ARCH_EVENTS, b) != 0) {
        bp_budget_free_block(&p->budget, b);
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    return 0;
}

static bool batch_full(const pipeline *p)
{
    return p->nevents >= (size_t)p->cfg->batch_size || p->batch_bytes >= p->batch_max_bytes;
}

/* bp_batch.more: the batch is full and blocks up to the target are left, so the next one
 * follows as soon as it is built. Not for a batch cut by time or by having caught up: the
 * next may then be long in coming, and an output would hold its transaction open meanwhile. */
static bool behind(const pipeline *p)
{
    uint64_t t;
    return batch_full(p) && !p->stopping && target(p, &t) && p->rb.base <= t;
}

/* bp_batch.head: every block up to the target is in the batch or an earlier one. */
static bool at_target(const pipeline *p)
{
    uint64_t t;
    return target(p, &t) && p->rb.base > t;
}

/* Hands the batch to the writer thread unless it is still writing the previous one:
 * returns 1 then (the batch stays; the writer wakes us when it is done), 0 when handed over
 * (or empty), or the error of an earlier write. */
static int hand_over(pipeline *p, bp_error *err)
{
    if (p->nevents == 0)
        return bp_writer_error(&p->writer, err);
    if (bp_writer_busy(&p->writer))
        return 1;
    int arc = add_ws_events(p, err);
    if (arc != 0)
        return arc;
    uint64_t received, malformed;
    size_t held = 0;
    if (p->aws && p->aws_floor_read)
        bp_arch_ws_stats(p->aws, &received, &malformed, &held);
    if (p->aws_floor_read && held == 0) /* the re-read from the outputs' floor goes out now */
        p->aws_floor_set = p->aws_floor_read = false;
    bp_batch batch = {
        .chain = p->chain,
        .chain_id = p->chain_id,
        .events = p->events,
        .count = p->nevents,
        .fetched = p->cfg->fetch,
        .more = behind(p),
        .head = at_target(p),
    };
    if (p->aws)
        batch.checkpoint.floor_set = resync_floor(p, &batch.checkpoint.floor);
    int rc = bp_writer_submit(&p->writer, &batch, err); /* owns the blocks from now on */
    p->nevents = 0;
    p->batch_bytes = 0;
    return rc;
}

static void canon_entry_of(const bp_block *b, bp_canon_entry *e)
{
    memset(e, 0, sizeof(*e));
    e->number = b->number;
    e->timestamp = b->timestamp;
    snprintf(e->hash, sizeof(e->hash), "%s", b->hash ? b->hash : "");
    snprintf(e->parent_hash, sizeof(e->parent_hash), "%s", b->parent_hash ? b->parent_hash : "");
}

static bp_block *revert_block_of(const pipeline *p, const bp_canon_entry *e)
{
    bp_block *b = bp_block_new();
    if (!b)
        return NULL;
    b->number = e->number;
    b->timestamp = e->timestamp;
    b->family = p->src->family;
    b->hash = bp_arena_strndup(b->arena, e->hash, strlen(e->hash));
    b->parent_hash = bp_arena_strndup(b->arena, e->parent_hash, strlen(e->parent_hash));
    if (!b->hash || !b->parent_hash) {
        bp_block_free(b);
        return NULL;
    }
    return b;
}

/* The node's hash at height k: the endpoint with the best head first, then the others (one
 * may be rate-limited or down right now). */
static int node_hash_at(void *ctx, uint64_t k, char hash[67], bp_error *err)
{
    pipeline *p = ctx;
    size_t n = p->cfg->endpoint_count;
    int rc = BP_ETRANSPORT;
    for (size_t i = 0; i < n; i++) {
        bp_header h;
        size_t ep = ((size_t)p->walk_ep + i) % n;
        bool due;
        if (chain_of(p, ep) != BP_EP_CHAIN_OK || bp_pool_needs_recheck(&p->pool, (int)ep, &due))
            continue;
        rc = may_ask(p, ep, err);
        if (rc == 0)
            rc = asked(p, ep, p->src->header(p->rpcs[ep], k, &h, err));
        if (rc == 0) {
            memcpy(hash, h.hash, sizeof(h.hash));
            return 0;
        }
    }
    return rc;
}

/* Reverts everything above the common ancestor at or below start_k and refetches. */
static int reorg_from(pipeline *p, uint64_t start_k, bp_error *err)
{
    const bp_canon_entry *tip = bp_canon_tip(&p->canon);
    if (!tip)
        return 0;
    if (start_k > tip->number)
        start_k = tip->number;
    uint64_t ancestor;
    int rc = bp_canon_find_ancestor(&p->canon, start_k, node_hash_at, p, &ancestor, err);
    if (bp_error_is_transient(rc)) {
        /* Nothing was reverted: the same mismatch is seen again and the walk retried. */
        bp_warn("reorg walk interrupted (%s); trying again shortly", err->msg);
        bp_error_clear(err);
        return 0;
    }
    if (rc != 0)
        return rc;
    if (ancestor == tip->number)
        return 0;
    uint64_t depth = tip->number - ancestor;
    bp_warn("reorg: %" PRIu64 " block(s) orphaned above common ancestor %" PRIu64
            "; reverting %" PRIu64 "..%" PRIu64,
            depth, ancestor, tip->number, ancestor + 1);
    for (uint64_t k = tip->number; k > ancestor; k--) {
        bp_canon_entry e = *bp_canon_at(&p->canon, k);
        const bp_canon_entry *below = bp_canon_at(&p->canon, k - 1);
        if (!e.parent_hash[0] && below) /* entries seeded after a restart lack it */
            memcpy(e.parent_hash, below->hash, sizeof(e.parent_hash));
        bp_block *b = revert_block_of(p, &e);
        if (b) /* every block of a batch is charged, like the APPLYs taken from the window */
            bp_budget_charge(&p->budget, bp_budget_block_cost(b));
        if (!b || add_event(p, BP_EVENT_REVERT, b) != 0) {
            bp_budget_free_block(&p->budget, b);
            return bp_error_set(err, BP_ENOMEM, "out of memory");
        }
        if (p->blocks_done > 0) /* blocks applied before this run may be reverted too */
            p->blocks_done--;
    }
    bp_canon_truncate(&p->canon, ancestor);
    bp_reorder_reset_from(&p->rb, ancestor + 1);
    p->next_fetch = ancestor + 1;
    p->reorgs++;
    return 0;
}

/* The block at base does not extend our tip: a reorg, or a stale answer. */
static int mismatch(pipeline *p, bp_slot *s, bp_error *err)
{
    const bp_canon_entry *tip = bp_canon_tip(&p->canon);
    uint64_t n = p->rb.base;
    if (tip->number + 1 != n) { /* cannot happen: base and tip move together */
        bp_warn("block %" PRIu64 " does not follow tip %" PRIu64 "; restarting the window", n,
                tip->number);
        bp_canon_clear(&p->canon);
        return 0;
    }
    bp_info("block %" PRIu64 " has parent %s but we applied %s at %" PRIu64, n,
            s->block->parent_hash, tip->hash, tip->number);
    uint64_t before = p->reorgs;
    int rc = reorg_from(p, tip->number, err);
    if (rc != 0 || p->reorgs != before)
        return rc;
    /* Our tip is still canonical: the block was from a branch the node has left. Fetch it
     * again, from another endpoint if there is one, as a failed attempt: an endpoint that
     * keeps answering so is reported, and a backfill gives up after --max-retries. */
    bp_error stale;
    bp_error_set(&stale, BP_EPARSE,
                 "block %" PRIu64 ": stale answer (parent %.66s is not the canonical %.66s)", n,
                 s->block->parent_hash, tip->hash);
    bp_reorder_discard(&p->rb, s);
    fetch_failed(p, n, BP_EPARSE, &stale, s->served_ep, s, false);
    return 0;
}

/* Moves the complete prefix of the window into the batch, handing full batches to the
 * writer. While the writer is still busy with the previous batch the blocks stay in the
 * window, so fetching goes on until the window is full (back-pressure, bounded memory). */
static int commit_ready(pipeline *p, bp_error *err)
{
    for (;;) {
        if (batch_full(p)) {
            int rc = hand_over(p, err);
            if (rc < 0)
                return rc;
            if (rc > 0)
                return 0;
        }
        bp_slot *s = bp_reorder_slot(&p->rb, p->rb.base);
        if (!s || s->state != BP_SLOT_DONE)
            break;
        if (!bp_canon_extends(&p->canon, s->block->number, s->block->parent_hash)) {
            int rc = mismatch(p, s, err);
            if (rc != 0)
                return rc;
            continue;
        }
        bp_block *b = bp_reorder_take(&p->rb);
        bp_canon_entry e;
        canon_entry_of(b, &e);
        if (add_event(p, BP_EVENT_APPLY, b) != 0) {
            bp_budget_free_block(&p->budget, b);
            return bp_error_set(err, BP_ENOMEM, "out of memory");
        }
        if (p->aws && b->arch)
            rolled_note(p, b->arch);
        bp_canon_push(&p->canon, &e);
        p->blocks_done++;
        p->txs_done += b->transaction_count;
        p->logs_done += b->log_count;
    }
    uint64_t t;
    bool caught_up = !target(p, &t) || p->rb.base > t;
    /* events without blocks to go with (a rollback of an older block, dkg) go out alone */
    if (p->aws && p->nevents == 0 && (caught_up || p->stopping) && !bp_writer_busy(&p->writer)) {
        int rc = add_ws_events(p, err);
        if (rc != 0)
            return rc;
    }
    if (p->nevents &&
        (batch_full(p) || caught_up || p->stopping || now_ms() - p->batch_started_ms >= 1000)) {
        int rc = hand_over(p, err);
        return rc < 0 ? rc : 0;
    }
    return bp_writer_error(&p->writer, err);
}

/* Commits everything complete and waits until the writer has written it (stop, end). */
static int commit_all(pipeline *p, bp_error *err)
{
    for (;;) {
        int rc = bp_writer_wait(&p->writer, err);
        if (rc == 0)
            rc = commit_ready(p, err);
        if (rc != 0)
            return rc;
        bp_slot *s = bp_reorder_slot(&p->rb, p->rb.base);
        if (p->nevents == 0 && (!s || s->state != BP_SLOT_DONE))
            return bp_writer_wait(&p->writer, err);
    }
}

/* ---- stats -------------------------------------------------------------------------- */

/* The rates of the snapshot: over the publications of the last RATE_WINDOW_MS. */
static void rate_sample(pipeline *p, int64_t now, bp_stats *st)
{
    rate_point *r = p->rates;
    size_t newest = (p->rate_next + RATE_POINTS - 1) % RATE_POINTS, oldest = newest;
    for (size_t k = 1; k < RATE_POINTS; k++) { /* the oldest point inside the window */
        size_t i = (newest + RATE_POINTS - k) % RATE_POINTS;
        if (r[i].ms == 0 || now - r[i].ms > RATE_WINDOW_MS)
            break;
        oldest = i;
    }
    if (r[oldest].ms && now > r[oldest].ms) {
        double secs = (double)(now - r[oldest].ms) / 1000.0;
        st->blocks_per_s = (double)(p->blocks_done - r[oldest].blocks) / secs;
        st->txs_per_s = (double)(p->txs_done - r[oldest].txs) / secs;
    }
    r[p->rate_next] = (rate_point){.ms = now, .blocks = p->blocks_done, .txs = p->txs_done};
    p->rate_next = (p->rate_next + 1) % RATE_POINTS;
}

static void fill_progress(pipeline *p, bp_stats *st)
{
    const bp_canon_entry *tip = bp_canon_tip(&p->canon);
    st->have_head = p->have_head;
    st->head = p->have_head ? p->head.number : 0;
    st->have_indexed = tip != NULL;
    st->indexed = tip ? tip->number : 0;
    st->lag = st->head > st->indexed ? st->head - st->indexed : 0;
    uint64_t t = 0;
    st->have_target = target(p, &t);
    st->target = t;
    /* rb.base: the next block to commit; the stats line and the progress line count the same */
    st->left = st->have_target && t + 1 > p->rb.base ? t + 1 - p->rb.base : 0;
    uint64_t unscheduled = st->have_target && t + 1 > p->next_fetch ? t + 1 - p->next_fetch : 0;
    size_t queued = bp_fetcher_queued(p->fetcher);
    st->pending = queued + p->rb.counts[BP_SLOT_RETRY] + unscheduled;
    st->processing = p->inflight > queued ? p->inflight - queued : 0;
    st->done = p->blocks_done;
    st->failed = p->rb.counts[BP_SLOT_FAILED];
    st->txs = p->txs_done;
    st->logs = p->logs_done;
    st->reorgs = p->reorgs;
    st->workers = worker_threads(p);
    bp_slot *s = bp_reorder_slot(&p->rb, p->rb.base);
    st->waiting = s && (s->state == BP_SLOT_RETRY || s->state == BP_SLOT_FAILED);
    st->waiting_on = p->rb.base;
    if (st->waiting)
        snprintf(st->waiting_error, sizeof(st->waiting_error), "%s", s->last_error);
    st->outputs_set_aside = bp_writer_set_aside(&p->writer);
    st->memory_used = bp_budget_used(&p->budget);
    st->memory_budget = p->budget.limit;
    st->memory_blocks = p->budget.limit > p->fixed_bytes ? p->budget.limit - p->fixed_bytes : 0;
    st->memory_push_ring = p->cfg->push_ring_bytes;
    st->memory_push = p->cfg->push_memory_bytes;
    st->memory_push_held = p->cfg->push_held ? p->cfg->push_held(p->cfg->batch_ctx) : 0;
}

/* With outputs, indexed is what every output not set aside committed (the lowest of their
 * checkpoints), not the newest block handed to them: a batch an output keeps failing to write
 * is not indexed, and the lag the health checks read grows while it fails. */
static void committed_progress(bp_stats *st)
{
    bool any = false, unset = false;
    uint64_t low = 0;
    for (size_t i = 0; i < st->output_count; i++) {
        const bp_stats_output *o = &st->outputs[i];
        if (o->set_aside)
            continue;
        unset |= !o->checkpoint_set;
        low = any && low < o->checkpoint ? low : o->checkpoint;
        any = true;
    }
    if (!any)
        return;
    st->have_indexed = !unset;
    st->indexed = unset ? 0 : low;
    st->lag = st->have_head && st->head > st->indexed ? st->head - st->indexed : 0;
}

/* Publishes the pipeline's state into the stats hub (the stats line, the API and the metrics
 * read it there). Coordinator thread. */
static void publish_stats(pipeline *p)
{
    bp_stats *st = &p->snap; /* a few KiB: kept in the pipeline, not on the stack */
    int64_t now = now_ms();
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    memset(st, 0, sizeof(*st));
    snprintf(st->chain, sizeof(st->chain), "%s", p->chain);
    st->chain_id = p->chain_id;
    st->backfill = p->cfg->backfill;
    st->following = !p->cfg->backfill;
    st->published_unix_ms = (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000;
    st->uptime_ms = now - p->started_ms;
    fill_progress(p, st);
    rate_sample(p, now, st);
    st->endpoint_count = bp_pool_stats(&p->pool, st->endpoints, BP_STATS_MAX_ENDPOINTS);
    if (p->writer.outs)
        st->output_count = bp_writer_outputs(&p->writer, st->outputs, BP_STATS_MAX_OUTPUTS);
    for (size_t i = 0; i < st->output_count; i++) {
        const bp_stats_output *o = &st->outputs[i];
        st->outputs[i].lag = st->have_head && o->checkpoint_set && st->head > o->checkpoint
                                 ? st->head - o->checkpoint
                                 : 0;
    }
    committed_progress(st);
    if (st->following && p->rt_started)
        bp_realtime_stats(&p->rt, &st->realtime);
    bp_stats_hub_publish(p->hub, st);
    p->next_publish_ms = now + STATS_PUBLISH_MS;
}

/* The stats lines, made from the snapshot just published; the rates are over the time since
 * the previous line. */
static void log_stats(pipeline *p)
{
    publish_stats(p);
    bp_stats_hub_read(p->hub, &p->snap);
    int64_t now = now_ms();
    double secs = (double)(now - p->stat_ms) / 1000.0;
    if (secs <= 0)
        secs = 1e-3;
    bp_buf lines;
    bp_buf_init(&lines, 0);
    bp_stats_lines(&p->snap, (double)(p->snap.done - p->stat_blocks) / secs,
                   (double)(p->snap.txs - p->stat_txs) / secs, p->snap.left, &lines);
    for (char *line = lines.data, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        bp_info("stats %s", line);
    }
    bp_buf_release(&lines);
    p->stat_blocks = p->snap.done;
    p->stat_txs = p->snap.txs;
    p->stat_ms = now;
}

/* The terminal's progress line (only where bp_log_status shows one), twice a second: how far
 * a backfill or a catch-up is and when it ends, what an ethereum-etl or cryo user watches. */
static void show_progress(pipeline *p)
{
    int64_t now = now_ms();
    if (now < p->bar_ms + 500 || !bp_log_status_shown())
        return;
    if (p->rb.base < p->bar_next) { /* a reorg or a rejoin moved the next block back */
        p->bar_bps = 0;
    } else if (p->bar_ms) {
        double bps = (double)(p->rb.base - p->bar_next) * 1000.0 / (double)(now - p->bar_ms);
        p->bar_bps = p->bar_bps > 0 ? 0.8 * p->bar_bps + 0.2 * bps : bps;
    }
    p->bar_ms = now;
    p->bar_next = p->rb.base;
    uint64_t t = 0;
    bool have = target(p, &t);
    uint64_t tip = p->rb.base ? p->rb.base - 1 : 0;
    uint64_t lag = p->have_head && p->head.number > tip ? p->head.number - tip : 0;
    char text[192];
    bp_progress_text(have, p->first, p->rb.base, t, lag, p->bar_bps, text, sizeof(text));
    bp_log_status(text);
}

/* ---- start-up ----------------------------------------------------------------------- */

/* The shortest pause the endpoints' rate limits have left (0: one may be asked now). */
static long start_pause_left(pipeline *p)
{
    long least = -1;
    for (size_t i = 0; i < p->cfg->endpoint_count; i++) {
        long left = bp_pool_pause_left(&p->pool, (int)i);
        if (least < 0 || left < least)
            least = left;
    }
    return least < 0 ? 0 : least;
}

/* Calls that must succeed before anything starts are retried a few times: a node that is
 * still starting should not need a second launch. A provider that says "slower" (a 429, its
 * Retry-After, or an endpoint still paused by one, which is skipped without a request) is
 * waited for and costs no attempt: a restart while the quota is spent must wait for it, not
 * fail after the five attempts' 15 s. */
static int retry_start(pipeline *p, int (*fn)(pipeline *, bp_error *), const char *what,
                       bp_error *err)
{
    bool told = false;
    for (int attempt = 1;;) {
        int rc = fn(p, err);
        if (rc == BP_ERATELIMIT && !*p->stop) {
            long left = start_pause_left(p);
            if (!told)
                bp_warn("%s: the provider asks for a pause (%s); waiting %ld ms, then asking "
                        "again (a rate limit is no failed attempt)",
                        what, err->msg, left);
            told = true;
            sleep_ms(left < 50 ? 50 : left > 250 ? 250 : left); /* *p->stop is seen soon */
            continue;
        }
        if (rc == 0 || !bp_error_is_transient(rc) || attempt == 5 || *p->stop)
            return rc ? bp_error_prefix(err, "%s: ", what) : 0;
        bp_warn("%s failed (attempt %d of 5): %s", what, attempt, err->msg);
        sleep_ms(500L << attempt);
        attempt++;
    }
}

/* Every endpoint must serve the same chain: a pool mixing chains would fork the output. One
 * that is down at start does not block the start: it gets no requests until a head poll
 * finds it answering with this chain's id (ask_endpoint). */
static int get_chain_id(pipeline *p, bp_error *err)
{
    bool have = false;
    size_t named = 0; /* the endpoint whose id p->chain_id is */
    bp_error first = {0};
    for (size_t i = 0; i < p->cfg->endpoint_count; i++) {
        uint64_t id;
        bp_error e;
        if (may_ask(p, i, &e) != 0 || asked(p, i, p->src->identity(p->rpcs[i], &id, &e)) != 0) {
            if (!first.code)
                first = e;
            bp_pool_set_chain(&p->pool, (int)i, BP_EP_CHAIN_UNCHECKED);
            if (p->cfg->endpoint_count > 1)
                bp_warn("rpc[%zu] %s: %s failed (%s); it gets no requests until it "
                        "answers with this chain's id",
                        i, p->pool.eps[i].url, p->src->identity_call, e.msg);
            continue;
        }
        if (p->cfg->expect_chain_id && id != p->cfg->expect_chain_id) {
            const bp_chain_preset *is = bp_chain_preset_by_id(id);
            return bp_error_set(err, BP_EINVAL,
                                "--chain-preset %s is chain id %" PRIu64 ", but rpc[%zu] %s "
                                "answers eth_chainId %" PRIu64 "%s%s%s: wrong endpoint or wrong "
                                "preset",
                                p->cfg->preset, p->cfg->expect_chain_id, i, p->pool.eps[i].url, id,
                                is ? " (" : "", is ? is->title : "", is ? ")" : "");
        }
        bp_pool_set_chain(&p->pool, (int)i, BP_EP_CHAIN_OK);
        if (have && id != p->chain_id)
            return bp_error_set(err, BP_EINVAL,
                                "rpc[%zu] %s serves %s %s but rpc[%zu] %s serves %s: every "
                                "endpoint of a chain must serve the same chain%s",
                                i, p->pool.eps[i].url, p->src->identity_name, show_id(p, id).s,
                                named, p->pool.eps[named].url, show_id(p, p->chain_id).s,
                                p->src->family == BP_FAMILY_EVM
                                    ? ""
                                    : " (the genesis block hashes, get_block_hash(0), differ: "
                                      "another network)");
        if (!have)
            named = i;
        p->chain_id = id;
        have = true;
    }
    if (!have)
        *err = first;
    if (have && p->cfg->chain_id_set && p->chain_id != p->cfg->chain_id)
        return bp_error_set(err, BP_EINVAL,
                            "rpc[%zu] %s serves chain id %" PRIu64 ", but chain_id %" PRIu64
                            " is configured: refusing to write another chain's blocks",
                            named, p->pool.eps[named].url, p->chain_id, p->cfg->chain_id);
    return have ? 0 : first.code;
}

/* The first answer with a head will do: the others raise it when they come (one that hangs
 * must not hold the start for the RPC timeout). */
static int get_head(pipeline *p, bp_error *err)
{
    poll_head(p);
    while (!p->have_head && bp_prober_any_busy(p->prober) && !*p->stop) {
        bp_prober_wait(p->prober, 100);
        int rc = take_answers(p, err);
        if (rc != 0)
            return rc;
    }
    return p->have_head ? 0 : bp_error_set(err, BP_ETRANSPORT, "no endpoint answered");
}

/* Seeds the reorg window from the output that is furthest behind: its most recent blocks, so
 * a reorg that happened while we were stopped is walked back like any other. An output that
 * cannot say which they are fails the start, as a failed checkpoint read does: seeded with
 * its checkpoint alone, such a reorg would stop the run later as "deeper than the window",
 * far from the cause. One that has none ending at its checkpoint (files from before the
 * "recent" list, a jump in its blocks) starts from the checkpoint alone. Nothing at or above
 * start stays in the window (the outputs may disagree above it). */
static int seed_canon(pipeline *p, const bp_checkpoint *low, size_t idx, uint64_t start,
                      bp_error *err)
{
    bp_sink *s = p->cfg->sinks[idx];
    size_t max = p->cfg->reorg_window, n = 0;
    bp_checkpoint *recent = calloc(max, sizeof(*recent));
    if (!recent)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    int rc = s->ops->recent ? s->ops->recent(s, p->chain, recent, max, &n, err) : 0;
    if (rc != 0) {
        bp_error_prefix(err, "output '%s': reading its recent blocks: ", s->url);
    } else if (n > 0 && recent[0].number == low->number) {
        for (size_t i = n; i-- > 0;) {
            bp_canon_entry ce = {.number = recent[i].number};
            snprintf(ce.hash, sizeof(ce.hash), "%s", recent[i].hash);
            bp_canon_push(&p->canon, &ce);
        }
    } else {
        if (s->ops->recent)
            bp_info("output '%s' lists no recent blocks up to its checkpoint %" PRIu64
                    ": the reorg window starts with that block alone",
                    s->url, low->number);
        bp_canon_entry ce = {.number = low->number};
        snprintf(ce.hash, sizeof(ce.hash), "%s", low->hash);
        bp_canon_push(&p->canon, &ce);
    }
    free(recent);
    if (start > 0)
        bp_canon_truncate(&p->canon, start - 1);
    return rc;
}

/* Where to start: after the lowest checkpoint; an empty output is seeded from --from,
 * --start-block or the head. Returns 1 when a backfill has nothing to do. */
static int resume_point(pipeline *p, uint64_t *start, bp_error *err)
{
    const bp_pipeline_config *c = p->cfg;
    bp_checkpoint low;
    size_t idx;
    bool any_unset;
    bp_outputs_lowest(&p->out, &low, &idx, &any_unset);
    p->aws_floor_set = low.floor_set;
    p->aws_floor = low.floor;
    p->aws_ahead = 0;
    for (size_t i = 0; i < p->out.count; i++)
        if (!(p->out.failed && p->out.failed[i]) && p->out.cps[i].set &&
            p->out.cps[i].number + 1 > p->aws_ahead)
            p->aws_ahead = p->out.cps[i].number + 1;
    /* low.number + 1, or lower where the outputs hold different blocks */
    uint64_t next = low.set ? bp_outputs_agreed(&p->out, idx) : 0;
    if (c->backfill) {
        if (!any_unset && low.number >= c->to) {
            bp_info("nothing to do: every output is at block %" PRIu64 " or beyond (--to %" PRIu64
                    ")",
                    low.number, c->to);
            return 1;
        }
        *start = (!any_unset && next > c->from) ? next : c->from;
    } else if (low.set) {
        /* An output with nothing yet is seeded at --start-block when that is lower; with
         * "latest" it joins where the others are. */
        *start = next;
        if (any_unset && c->start_set && c->start_block < *start)
            *start = c->start_block;
    } else if (c->start_set) {
        *start = c->start_block;
    } else {
        int rc = retry_start(p, get_head, "reading the chain head", err);
        if (rc != 0)
            return rc;
        uint64_t h = p->head.number;
        *start = h > c->confirmations ? h - c->confirmations : 0;
    }
    if (p->aws_ahead <= *start) /* no output holds blocks above where this start begins */
        p->aws_ahead = 0;
    int rc = low.set && *start == next ? seed_canon(p, &low, idx, next, err) : 0;
    if (rc != 0)
        return rc;
    bp_info("chain %s (%s %s): starting at block %" PRIu64 "%s", p->chain,
            p->src->family == BP_FAMILY_EVM ? "id" : p->src->identity_name,
            show_id(p, p->chain_id).s, *start,
            !low.set || *start != next ? ""
            : next == low.number + 1
                ? " (after the outputs' lowest checkpoint)"
                : " (below the outputs' lowest checkpoint: they hold different blocks there)");
    return 0;
}

static void wake_coordinator(void *ctx)
{
    bp_fetcher_wake(((pipeline *)ctx)->fetcher);
}

static int start_realtime(pipeline *p, bp_error *err)
{
    const bp_pipeline_config *c = p->cfg;
    if (c->ws_url && !c->backfill && p->src->ws_events) {
        int arc = bp_arch_ws_new(&p->aws, err);
        if (arc != 0)
            return arc;
    }
    bp_realtime_config rc = {
        .protocol = p->aws ? bp_arch_ws_protocol(p->aws) : NULL,
        .ws_url = c->backfill ? NULL : c->ws_url,
        .ws_auth = c->ws_auth,
        .reconnect_interval_s = c->ws_reconnect_interval,
        .max_reconnect_attempts = c->ws_max_reconnect_attempts,
        .stale_after_s = c->ws_stale_after,
        .wake = wake_coordinator,
        .wake_ctx = p,
    };
    p->rt_started = true;
    return bp_realtime_start(&p->rt, &rc, err);
}

static void block_committed(void *ctx, uint64_t number, int64_t now)
{
    bp_realtime_committed(&((pipeline *)ctx)->rt, number, now);
}

/* Last: from here on the outputs are the writer thread's (the start-up above read them). */
static int start_writer(pipeline *p, bp_error *err)
{
    bp_writer_config wc = {
        .out = &p->out,
        .committed = block_committed,
        .written = wake_coordinator, /* a full batch may be waiting for the writer */
        .ctx = p,
        .budget = &p->budget,
        .batch_committed = p->cfg->batch_committed,
        .batch_ctx = p->cfg->batch_ctx,
    };
    return bp_writer_start(&p->writer, &wc, err);
}

/* The budget with its fixed part charged; refused when too little is left for blocks. */
static int setup_budget(pipeline *p, bp_error *err)
{
    const bp_pipeline_config *c = p->cfg;
    size_t limit = c->max_memory;
    int threads = worker_threads(p);
    size_t derived = 0;
    for (size_t i = 0; c->metrics && i < c->sink_count; i++)
        derived += c->sinks[i]->derived;
    if (c->memory_pool) { /* the process and the outputs are the pool owner's to charge */
        p->fixed_bytes = BP_MEM_PER_CHAIN + (size_t)threads * BP_MEM_PER_WORKER;
        limit = p->fixed_bytes + c->memory_reserved + c->memory_pool->limit;
    } else { /* the push ring is the process's: one chain's budget holds it */
        p->fixed_bytes = BP_MEM_PROCESS + (size_t)threads * BP_MEM_PER_WORKER +
                         c->sink_count * BP_MEM_PER_OUTPUT + derived * BP_MEM_PER_DERIVED_OUTPUT +
                         c->push_ring_bytes + c->push_memory_bytes;
        if (!limit)
            limit = bp_pipeline_default_memory(1, p->fixed_bytes);
    }
    if (limit < p->fixed_bytes + BP_MEM_MIN_BLOCKS) {
        char ring[160] = "";
        if (c->push_ring_bytes && !c->memory_pool)
            snprintf(ring, sizeof(ring),
                     " and the API's push ring and memory (%.1f MiB: --api-push-ring, "
                     "--api-push-memory)",
                     (double)(c->push_ring_bytes + c->push_memory_bytes) / 1048576.0);
        size_t need = p->fixed_bytes + BP_MEM_MIN_BLOCKS;
        return bp_error_set(err, BP_EINVAL,
                            "--max-memory %zu MiB is too small for %d fetch workers and %zu "
                            "output(s) (%zu with derived tables)%s: they take %zu MiB, and blocks "
                            "need %zu MiB more (give at least %zu MiB, or fewer --workers)",
                            limit >> 20, threads, c->sink_count, derived, ring,
                            p->fixed_bytes >> 20, BP_MEM_MIN_BLOCKS >> 20,
                            (need + (1 << 20) - 1) >> 20);
    }
    bp_budget_init(&p->budget, limit);
    if (c->memory_pool)
        bp_budget_share(&p->budget, c->memory_pool, p->fixed_bytes + c->memory_reserved);
    bp_budget_charge(&p->budget, p->fixed_bytes);
    bp_budget_tune_malloc();
    if (derived) {
        p->derived_max = (limit - p->fixed_bytes) / BP_DERIVED_SHARE;
        /* (tests: the sets' share in bytes, to see windows given up on a chain whose sets
         * fit the share) */
        const char *sets = getenv("BP_SETS_BYTES");
        if (sets && *sets)
            p->derived_max = (size_t)strtoull(sets, NULL, 10);
        bp_metrics_set_budget(c->metrics, &p->budget, p->derived_max);
    }
    p->batch_max_bytes = (limit - p->fixed_bytes) / BP_BATCH_SHARE;
    p->window_max_bytes = (limit - p->fixed_bytes) / BP_WINDOW_SHARE;
    p->ramp = 1;
    return 0;
}

/* ---- the chain's writer lock in each output (docs/ARCHITECTURE.md "Chains over several
 * hosts") ---- */

/* The snapshot says the chain waits for its writer lock (/api/sync-status mode
 * waiting-for-lock, /ready not ready) until the pipeline's own first one replaces it. */
static void say_lock_waiting(pipeline *p, const char *holder)
{
    bp_stats *st = &p->snap;
    memset(st, 0, sizeof(*st));
    snprintf(st->chain, sizeof(st->chain), "%s", p->chain);
    st->chain_id = p->chain_id;
    st->backfill = p->cfg->backfill;
    st->lock_waiting = true;
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    st->published_unix_ms = (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000;
    snprintf(st->lock_holder, sizeof(st->lock_holder), "%s", holder);
    bp_stats_hub_publish(p->hub, st);
}

/* Takes the chain's lock in output i, never waiting: 0 when held (p->claimed[i]), BP_EBUSY
 * with the holder in holder, else the error. */
static int claim_one(pipeline *p, size_t i, char *holder, size_t cap, bp_error *err)
{
    bp_sink *s = p->cfg->sinks[i];
    if (!s->ops->claim || p->claimed[i])
        return 0;
    int rc = s->ops->claim(s, p->chain, holder, cap, err);
    if (rc == 0)
        p->claimed[i] = true;
    else if (rc != BP_EBUSY)
        bp_error_prefix(err, "chain '%s': output '%s': ", p->chain, s->url);
    return rc;
}

/* Every lock taken so far given back: a chain never waits for one while it holds another. */
static void give_back(pipeline *p, size_t busy)
{
    for (size_t i = 0; i < p->cfg->sink_count; i++) {
        if (!p->claimed[i])
            continue;
        p->cfg->sinks[i]->ops->unclaim(p->cfg->sinks[i], p->chain);
        p->claimed[i] = false;
        bp_debug("chain '%s': output '%s': its lock given back while output '%s' is busy", p->chain,
                 p->cfg->sinks[i]->url, p->cfg->sinks[busy]->url);
    }
}

/* One try at every lock, the busy one first (taken when free: it is the one waited for),
 * then the others in order: 0 when all are held; BP_EBUSY (*busy the output, none held)
 * when one is held by another process; else the error. */
static int claim_all(pipeline *p, size_t *busy, char *holder, size_t cap, bp_error *err)
{
    size_t n = p->cfg->sink_count;
    int rc = *busy < n ? claim_one(p, *busy, holder, cap, err) : 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        if ((rc = claim_one(p, i, holder, cap, err)) == BP_EBUSY)
            *busy = i;
    if (rc == BP_EBUSY)
        give_back(p, *busy);
    return rc;
}

/* Takes the chain's lock in every output that has one, waiting (cfg->lock_wait) while another
 * process holds one: 0 when all are held, 1 when stopped meanwhile, else the error. While it
 * waits it holds none of them: a process that held one lock while it waited for another could
 * wait for a process doing the reverse (a writer that lost its PostgreSQL lock and waits for
 * it again, holding its jsonl directory, and a standby that took the PostgreSQL lock and waits
 * for the directory), whatever order each lists its outputs in. So locks are never waited
 * for holding one, and a deadlock across processes cannot form; the polls are a second apart
 * with some jitter, so that two processes giving each other's lock back do not meet again. */
static int claim_outputs(pipeline *p, bp_error *err)
{
    const bp_pipeline_config *c = p->cfg;
    if (!(p->claimed = calloc(c->sink_count + 1, sizeof(*p->claimed))))
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    double wait = c->lock_wait;
    int64_t since = now_ms(), next_say = since;
    unsigned seed = (unsigned)getpid() ^ (unsigned)since;
    size_t busy = SIZE_MAX;
    char holder[512] = "";
    for (;;) {
        int rc = claim_all(p, &busy, holder, sizeof(holder), err);
        if (rc == 0) {
            if (next_say != since)
                bp_info("chain '%s': output '%s': its writer let go; this process writes the "
                        "chain now, from its checkpoint (waited %.0f s)",
                        p->chain, c->sinks[busy]->url, (double)(now_ms() - since) / 1000.0);
            return 0;
        }
        if (rc != BP_EBUSY)
            return rc;
        const char *url = c->sinks[busy]->url;
        double waited = (double)(now_ms() - since) / 1000.0;
        /* a range beside the chain's writer is a legitimate backfill: say how */
        const char *hint = c->lock_hint  ? c->lock_hint
                           : c->backfill ? "; to backfill a range beside it, give this "
                                           "process a checkpoint name of its own "
                                           "(--checkpoint-name NAME)"
                                         : "";
        if (wait >= 0 && waited >= wait)
            return bp_error_set(err, BP_EBUSY,
                                "chain '%s' is already written to output '%s' by %s; not "
                                "writing it too (--lock-wait %g: %s)%s",
                                p->chain, url, holder, wait,
                                wait == 0 ? "refuse at once" : "waited that long", hint);
        if (next_say == since)
            say_lock_waiting(p, holder);
        if (now_ms() >= next_say) { /* said at once, then every 5 minutes */
            char limit[32] = "forever";
            if (wait >= 0)
                snprintf(limit, sizeof(limit), "%g s", wait);
            bp_warn("chain '%s' is already written to output '%s' by %s; waiting for it to let "
                    "go (--lock-wait %s)%s",
                    p->chain, url, holder, limit, hint);
            next_say = now_ms() + 300000;
        }
        int steps = 7 + (int)(rand_r(&seed) % 7); /* 0.7 to 1.3 s */
        for (int t = 0; t < steps && !*p->stop; t++)
            sleep_ms(100);
        if (*p->stop)
            return 1;
    }
}

static void unclaim_outputs(pipeline *p)
{
    for (size_t i = 0; p->claimed && i < p->cfg->sink_count; i++)
        if (p->claimed[i])
            p->cfg->sinks[i]->ops->unclaim(p->cfg->sinks[i], p->chain);
    free(p->claimed);
}

/* What a family other than EVM cannot do yet (docs/ARCHITECTURE.md "The chain source
 * interface"): said at start, not found out from wrong rows. */
static int family_supported(const pipeline *p, bp_error *err)
{
    const bp_pipeline_config *c = p->cfg;
    if (p->src->family == BP_FAMILY_EVM)
        return 0;
    if (c->ws_url && !c->backfill && !p->src->newheads_ws && !p->src->ws_events)
        return bp_error_set(err, BP_EINVAL,
                            "--chain-type %s follows the head by HTTP polling only: drop --ws "
                            "(its WebSocket topics are not read yet)",
                            p->src->name);
    if (c->metrics)
        return bp_error_set(err, BP_EINVAL,
                            "--chain-type %s: the analytics tables (--metrics) are EVM-only",
                            p->src->name);
    for (size_t i = 0; i < c->sink_count; i++) {
        const bp_sink *o = c->sinks[i];
        if (!(o->families & (1u << p->src->family)) && strcmp(o->ops->scheme, "callbacks") != 0)
            return bp_error_set(err, BP_EINVAL, "--chain-type %s: output %s has no %s tables: %s",
                                p->src->name, o->url, p->src->name,
                                o->families_why ? o->families_why
                                                : "not yet (a sqlite:, postgres:, clickhouse:, "
                                                  "jsonl:, redis: or kafka: output has them)");
    }
    return 0;
}

static int setup(pipeline *p, uint64_t *start, bp_error *err)
{
    const bp_pipeline_config *c = p->cfg;
    int rc = family_supported(p, err);
    if (rc == 0)
        rc = open_endpoints(p, err);
    if (rc == 0)
        rc = setup_budget(p, err);
    if (rc == 0)
        rc = retry_start(p, get_chain_id,
                         p->src == &bp_source_evm ? "reading eth_chainId"
                                                  : "asking is_node_ready and get_block_hash(0)",
                         err);
    if (rc != 0)
        return rc;
    if (c->preset)
        bp_info("chain preset %s: eth_chainId %" PRIu64 " as expected; confirmations %" PRIu64
                ", reorg window %" PRIu64,
                c->preset, p->chain_id, c->confirmations, c->reorg_window);
    if (c->chain)
        snprintf(p->chain, sizeof(p->chain), "%s", c->chain);
    else if (p->src->family != BP_FAMILY_EVM) /* no chain id: the family names it */
        snprintf(p->chain, sizeof(p->chain), "%s", p->src->name);
    else
        snprintf(p->chain, sizeof(p->chain), "%" PRIu64, p->chain_id);
    bp_fetch_shared_init(&p->shared, c->fetch);
    p->shared.strict_node = c->strict_node;
    /* Room for every worker's largest request twice over: a slow request at the base (or a
     * busy writer) must not leave the other workers without numbers to fetch. Memory is
     * capped by the budget, not by this count. */
    size_t window = (size_t)worker_threads(p) * BP_JOB_MAX * 2;
    window = window < 64 ? 64 : window > 4096 ? 4096 : window;
    if (bp_canon_init(&p->canon, (size_t)c->reorg_window) != 0)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    /* before the checkpoints are read: the holder's may still move */
    rc = claim_outputs(p, err);
    if (rc == 0)
        rc = bp_outputs_init(&p->out, c->sinks, c->sink_count, p->chain, c->output_keep_going, err);
    if (rc != 0)
        return rc;
    p->out.metrics = c->metrics;
    p->out.budget = &p->budget; /* what an output's buffers hold beyond its fixed part */
    p->out.commit_each = c->batch_committed != NULL; /* the API's push: written = committed */
    rc = resume_point(p, start, err);
    if (rc != 0)
        return rc;
    if (bp_reorder_init(&p->rb, window, *start) != 0)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    p->rb.budget = &p->budget;
    p->next_fetch = p->first = *start;
    rc = start_workers(p, window, err);
    if (rc == 0)
        bp_prober_set_wake(p->prober, wake_coordinator, p); /* an answer ends its wait */
    if (rc == 0)
        rc = start_realtime(p, err);
    return rc ? rc : start_writer(p, err);
}

/* ---- an output set aside comes back ---------------------------------------------------- */

/* Output idx (set aside, --output-failure continue) answers again at its checkpoint cp: go
 * back to it as a restart would (the window re-seeded from its recent blocks, everything
 * above refetched; the other outputs skip what they hold), and take it back. */
static int rejoin(pipeline *p, size_t idx, const bp_checkpoint *cp, bp_error *err)
{
    /* What was committed goes out first: the batch being built may hold REVERTs the other
     * outputs need (dropping them would leave those outputs on an orphaned branch). */
    int rc = bp_writer_wait(&p->writer, err);
    if (rc == 0 && p->nevents)
        rc = hand_over(p, err);
    if (rc == 0)
        rc = bp_writer_wait(&p->writer, err);
    if (rc != 0)
        return rc;
    bp_sink *s = p->cfg->sinks[idx];
    bp_outputs_rejoin(&p->out, idx);
    /* The socket's events written while it was set aside are not replayed to it below its
     * checkpoint: its floor is kept (the next batches carry it) and read from again now. */
    if (p->aws && cp->set && cp->floor_set) {
        if (!p->aws_floor_set || cp->floor < p->aws_floor)
            p->aws_floor = cp->floor;
        p->aws_floor_set = true;
        p->aws_floor_read = false;
        p->aws_epoch = bp_arch_ws_epoch(p->aws, NULL) - 1; /* resync_rollbacks reads again */
    }
    /* where it agrees with the others, as at a start (it may hold another branch) */
    uint64_t from = cp->set ? bp_outputs_agreed(&p->out, idx) : p->first;
    if (from >= p->rb.base) /* not behind what was handed over: the filter skips the rest */
        return 0;
    bp_canon_clear(&p->canon);
    if (cp->set && (rc = seed_canon(p, cp, idx, from, err)) != 0)
        return rc;
    bp_info("output '%s' is back at block %" PRIu64 "; going back from %" PRIu64
            " to catch it up (the other outputs skip what they hold)",
            s->url, from ? from - 1 : 0, p->rb.base);
    bp_reorder_reset_from(&p->rb, from);
    p->next_fetch = from;
    return 0;
}

static int take_back_outputs(pipeline *p, bp_error *err)
{
    bp_checkpoint cp;
    size_t idx;
    /* (without --output-failure continue only an output that lost a group of batches it held
     * open is set aside: bp_sink.rewind) */
    if (p->stopping || !bp_outputs_rejoin_point(&p->out, &cp, &idx))
        return 0;
    return rejoin(p, idx, &cp, err);
}

/* ---- main loop ---------------------------------------------------------------------- */

static bool backfill_done(pipeline *p)
{
    /* (an output going back to its checkpoint is caught up first; and the last batch must be
     * written, not only handed to the writer: its write may lose a group and send the output
     * back, which the counter below only shows once the write returned) */
    return p->cfg->backfill && p->rb.base > p->cfg->to && p->nevents == 0 &&
           !bp_writer_busy(&p->writer) && !bp_outputs_rewinding(&p->out);
}

/* Seconds to the next HTTP head poll: the poll interval, or a sparse heartbeat while the
 * socket brings the heads (it verifies the socket is not lagging) or while a backfill is
 * below the head anyway. */
static double poll_every(pipeline *p)
{
    uint64_t t;
    bool ws = bp_realtime_use_ws(&p->rt);
    bool below = p->cfg->backfill && target(p, &t) && t >= p->cfg->to;
    /* A backfill that ends more than a reorg window below the head: a poll cannot show
     * anything about its blocks (take_head compares heights we applied), and the poll is a
     * request the coordinator waits for, behind our own fetches on a busy node (measured:
     * 0.52 s of a 1.8 s backfill from anvil). Endpoint heads are still refreshed, slowly. */
    if (below && p->head.number - p->cfg->to > p->cfg->reorg_window)
        return 60.0;
    if (ws || below) {
        double hb = p->cfg->poll_interval * 10;
        return hb < 5.0 ? 5.0 : hb;
    }
    return p->cfg->poll_interval;
}

/* Blocks whose rollback state is read again at most, per (re)subscription: the span above the
 * node's best finalized block is normally a few blocks; a node whose finality stalls must not
 * make every reconnect fetch thousands of blocks. */
#define RESYNC_MAX 1024
/* ... and at least, at a start, the last this many (resync_low). */
#define RESYNC_START 64

/* Whether a block read again at height h is the one the outputs hold (the node may have
 * replaced it since: that is the reorg path's, not the re-read's). */
static bool still_ours(const pipeline *p, uint64_t h, const bp_block *b, int rc)
{
    const bp_canon_entry *e = bp_canon_at(&p->canon, h);
    return rc == 0 && b && b->arch && e && strcmp(e->hash, b->hash) == 0;
}

/* The rolled-back transactions followed (pipeline.aws_rolled) of blocks lo..lo+n-1: those the
 * node has now (a block it replaced has none: the reorg path's). */
static void note_resync(pipeline *p, uint64_t lo, size_t n, bp_block **out, const int *rcs)
{
    rolled_forget(p, lo, lo + n - 1);
    for (size_t i = 0; i < n; i++) {
        if (!still_ours(p, lo + i, out[i], rcs[i]))
            continue;
        for (size_t k = 0; k < out[i]->arch->tx_count; k++)
            if (out[i]->arch->txs[k].rolled_back)
                rolled_add(p, out[i]->arch->txs[k].txid, lo + i);
    }
}

/* The rollback state of blocks lo..lo+n-1 as the node has it now, into the socket's queue:
 * only blocks still ours (a block the node replaced is the reorg path's). */
static int resync_blocks(pipeline *p, const char *why, size_t mark, uint64_t lo, size_t n,
                         bp_block **out, int *rcs, bp_error *errs)
{
    size_t ntx = 0, nr = 0, nk = 0;
    for (size_t i = 0; i < n; i++)
        ntx += out[i] && out[i]->arch ? out[i]->arch->tx_count : 0;
    bp_arch_hash *rolled = calloc(ntx ? ntx : 1, sizeof(*rolled));
    bp_arch_hash *kept = calloc(ntx ? ntx : 1, sizeof(*kept));
    for (size_t i = 0; rolled && kept && i < n; i++) {
        if (!still_ours(p, lo + i, out[i], rcs[i]))
            continue;
        for (size_t k = 0; k < out[i]->arch->tx_count; k++) {
            const bp_arch_tx *t = &out[i]->arch->txs[k];
            memcpy(t->rolled_back ? rolled[nr++] : kept[nk++], t->txid, sizeof(t->txid));
        }
    }
    int rc = rolled && kept ? bp_arch_ws_resync(p->aws, mark, rolled, nr, kept, nk, errs)
                            : bp_error_set(errs, BP_ENOMEM, "out of memory");
    if (rc == 0) /* what the outputs will hold of these blocks: the node's state now */
        note_resync(p, lo, n, out, rcs);
    free(rolled);
    free(kept);
    if (rc == 0)
        bp_info("arch websocket: %s: rollback state of blocks %" PRIu64 "..%" PRIu64
                " re-read (%zu rolled back, %zu not)",
                why, lo, lo + n - 1, nr, nk);
    return rc;
}

/* The lowest committed block whose rollback state is read again: the one above the node's
 * best finalized block as it was when the socket was last subscribed (a rollback only
 * touches blocks that are not final; one that happened while the socket was down may be in a
 * block final since), or, not known (a start), as it is now; with no finality, the lowest the
 * reorg window holds. At most RESYNC_MAX and the window below the tip, with a warning naming
 * what stays unread. */
static uint64_t resync_low(pipeline *p, const bp_canon_entry *tip, const bp_canon_entry *low)
{
    bool final = p->head.has_final || p->aws_final_set;
    uint64_t f = p->head.has_final ? p->head.final_number : p->aws_final;
    if (p->aws_final_set && p->aws_final < f)
        f = p->aws_final;
    uint64_t lo = final ? f + 1 : 0, r;
    /* A re-apply touches the block of its rollback, which may be final by then: down to the
     * lowest block holding a transaction the outputs hold as rolled back. */
    if (final && rolled_lowest(p, &r) && r < lo)
        lo = r;
    /* A start: down to the floor an earlier process stored (resync_floor). */
    if (final && p->aws_floor_set && p->aws_floor < lo)
        lo = p->aws_floor;
    uint64_t want = lo;
    /* A start: what became final while no process of ours listened is not known (a rollback
     * re-applied, or rolled back, while this one was down may be in a block final since), so
     * at least the last RESYNC_START blocks, as before finality was followed. */
    if (!p->aws_final_set && tip->number + 1 >= RESYNC_START && lo > tip->number + 1 - RESYNC_START)
        lo = tip->number + 1 - RESYNC_START;
    if (tip->number >= lo && tip->number - lo + 1 > RESYNC_MAX)
        lo = tip->number + 1 - RESYNC_MAX;
    if (low && low->number > lo)
        lo = low->number;
    if (final && lo > want)
        bp_warn("arch websocket: %" PRIu64 " committed blocks are above the node's best "
                "finalized block %" PRIu64 " (tip %" PRIu64 "), more than the %" PRIu64
                " whose rollback state is read again (at most %d, and what --reorg-window "
                "holds): a rollback of blocks %" PRIu64 "..%" PRIu64
                " while the socket was down stays missed",
                tip->number - want + 1, f, tip->number, tip->number - lo + 1, RESYNC_MAX, want,
                lo - 1);
    return lo;
}

/* A lost event (a malformed one, or any sent while the socket was down) may have been the
 * rollback of a block fetched before it and committed after the re-read (a well-formed event
 * waits for its block, arch_ws.h): the re-read waits until every block asked for before the
 * loss was first seen (below next_fetch then) is committed; blocks asked for later show the
 * node's state after it. A reorg that sends the fetch back below that mark ends the wait (the
 * blocks above are asked again). key changes with every loss. True: wait. */
static bool lost_wait(pipeline *p, uint64_t key, const bp_canon_entry *tip)
{
    if (key != p->aws_lost_seen) {
        p->aws_lost_seen = key;
        p->aws_lost_upto = p->next_fetch;
        p->aws_lost_told = false;
    }
    uint64_t committed = tip ? tip->number + 1 : 0;
    bool wait = committed < p->aws_lost_upto && p->next_fetch >= p->aws_lost_upto;
    if (wait && !p->aws_lost_told) { /* once per loss: what the re-read waits for */
        p->aws_lost_told = true;
        bp_info("arch websocket: the rollback state is read again once blocks %" PRIu64 "..%" PRIu64
                ", asked for before the events that may be lost, are committed",
                committed, p->aws_lost_upto - 1);
    }
    return wait;
}

/* The socket was (re)subscribed: events the node sent while it was down (or to a process
 * killed before it committed them) are not replayed, so the rollback state of the committed
 * blocks that are not final yet (resync_low) is read again from the node and queued after
 * what was received before the question, before what came while it was asked (arch_ws.h
 * bp_arch_ws_resync). A failure is logged and tried again 2 s later (the next endpoint
 * the walk uses), until one succeeds or the socket subscribes again. */
static void resync_rollbacks(pipeline *p)
{
    uint64_t lost, epoch = bp_arch_ws_epoch(p->aws, &lost);
    const bp_canon_entry *tip = bp_canon_tip(&p->canon), *low = bp_canon_lowest(&p->canon);
    if (epoch == p->aws_epoch && bp_realtime_use_ws(&p->rt) && p->head.has_final) {
        p->aws_final = p->head.final_number; /* listening: a rollback from now on is heard */
        p->aws_final_set = true;
    }
    if (epoch == p->aws_epoch || now_ms() < p->aws_retry_ms)
        return;
    /* a malformed event may have been a rollback / re-apply: read as after a reconnect */
    bool only_lost = lost != p->aws_lost && epoch - p->aws_epoch <= lost - p->aws_lost;
    if (lost_wait(p, epoch + lost, tip))
        return;
    if (p->aws_ahead && (tip ? tip->number + 1 : 0) < p->aws_ahead) {
        if (!p->aws_ahead_told)
            bp_info("arch websocket: the rollback state is read again once blocks up to %" PRIu64
                    " (an output's checkpoint, above the lowest) are committed",
                    p->aws_ahead - 1);
        p->aws_ahead_told = true;
        return;
    }
    const char *why = only_lost ? "a malformed event was dropped" : "subscribed again";
    if (low && low->number > 0) /* no longer read again: the reorg window is above them */
        rolled_forget(p, 0, low->number - 1);
    uint64_t lo = tip ? resync_low(p, tip, low) : 0;
    if (!tip || lo > tip->number) { /* nothing committed that is not final: nothing to read */
        if (tip)
            bp_info("arch websocket: %s: every committed block is final (tip %" PRIu64
                    "): no rollback state to read again",
                    why, tip->number);
        p->aws_epoch = epoch;
        p->aws_lost = lost;
        p->aws_floor_set = false;
        p->aws_ahead = 0;
        return;
    }
    size_t n = (size_t)(tip->number - lo + 1);
    size_t ep = ((size_t)p->walk_ep + p->aws_tries) % p->cfg->endpoint_count;
    for (size_t i = 0; i < p->cfg->endpoint_count && chain_of(p, ep) != BP_EP_CHAIN_OK; i++)
        ep = (ep + 1) % p->cfg->endpoint_count; /* another chain's endpoint is never asked */
    size_t mark = bp_arch_ws_mark(p->aws);
    bp_block **out = calloc(n, sizeof(*out));
    int *rcs = calloc(n, sizeof(*rcs));
    bp_error *errs = calloc(n, sizeof(*errs));
    int rc = out && rcs && errs ? may_ask(p, ep, errs) : BP_ENOMEM;
    if (rc == 0)
        rc = asked(p, ep, p->src->fetch_range(p->rpcs[ep], &p->shared, lo, n, out, rcs, errs));
    if (rc == 0 || rc == BP_ENOTFOUND || rc == BP_EPARSE) /* per block: those that came */
        rc = resync_blocks(p, why, mark, lo, n, out, rcs, errs);
    if (rc == 0) {
        p->aws_epoch = epoch;
        p->aws_lost = lost;
        p->aws_tries = 0;
        p->aws_ahead = 0;
        /* Kept as the floor until the re-read's results are handed over (hand_over): they
         * may queue behind events held for blocks above the tip, while aws_final and the
         * followed rolled-back transactions below move on now; a crash before would leave no
         * floor as low as this re-read (the reviewer's finding). */
        if (!p->aws_floor_set || lo < p->aws_floor)
            p->aws_floor = lo;
        p->aws_floor_set = true;
        p->aws_floor_read = true;
        if (p->head.has_final) { /* the re-read went down to it: from now on a rollback is heard */
            p->aws_final = p->head.final_number;
            p->aws_final_set = true;
        }
    } else {
        p->aws_retry_ms = now_ms() + 2000;
        p->aws_tries++;
        bp_warn("arch websocket: %s, but the rollback state of blocks %" PRIu64 "..%" PRIu64
                " could not be read again (%s): trying again in 2 s",
                why, lo, tip->number, errs ? errs[0].msg : "out of memory");
    }
    for (size_t i = 0; out && i < n; i++)
        bp_block_free(out[i]);
    free(out);
    free(rcs);
    free(errs);
}

static int step(pipeline *p, bp_error *err)
{
    int rc = take_announced(p, err);
    if (rc == 0)
        rc = take_answers(p, err);
    if (rc != 0)
        return rc;
    bool was_ws = p->rt.mode_ws;
    (void)poll_every(p); /* notices a socket that just failed (mode_ws) */
    if (p->aws && !p->stopping)
        resync_rollbacks(p);
    int64_t now = now_ms();
    if (was_ws && !p->rt.mode_ws)
        p->next_poll_ms = now; /* the socket just failed: poll at once */
    if (now >= p->next_poll_ms && !p->stopping) {
        poll_head(p);
        p->next_poll_ms = now + (int64_t)(poll_every(p) * 1000.0);
    } else if (!p->stopping) {
        ask_endpoints(p, false); /* rechecks and probes due, not at the next poll (a heartbeat
                                    of 5 s or more while the socket brings the heads) */
    }
    schedule(p);
    long wait = (long)(p->next_poll_ms - now_ms());
    wait = wait < 1 ? 1 : wait > 100 ? 100 : wait;
    drain_results(p, wait);
    rc = commit_ready(p, err);
    if (rc == 0)
        rc = take_back_outputs(p, err);
    if (rc != 0)
        return rc;
    if (now_ms() >= p->next_stats_ms) {
        log_stats(p);
        p->next_stats_ms = now_ms() + (int64_t)(p->cfg->stats_interval * 1000.0);
    } else if (now_ms() >= p->next_publish_ms) {
        publish_stats(p);
    }
    show_progress(p);
    return 0;
}

/* Stop taking work, drop queued and abort in-flight fetches, commit the complete prefix,
 * flush. */
static int shutdown_pipeline(pipeline *p, bp_error *err)
{
    p->stopping = true;
    p->abort_fetch = 1;
    bp_pool_close(&p->pool); /* workers waiting for an endpoint give up */
    bp_job *job;
    while ((job = bp_fetcher_unqueue(p->fetcher)) != NULL) {
        job_returned(p, job, job->grant);
        for (size_t i = 0; i < job->count; i++) {
            bp_slot *s = bp_reorder_slot(&p->rb, job->first + i);
            if (s && s->epoch == job->epochs[i] && s->state == BP_SLOT_FETCHING)
                bp_reorder_set_state(&p->rb, s, BP_SLOT_EMPTY);
        }
        bp_job_free(job);
    }
    while (p->inflight > 0)
        drain_results(p, 100);
    int rc = commit_all(p, err);
    if (rc == 0) /* the writer is idle: the outputs may be touched here */
        rc = bp_outputs_flush(&p->out, err);
    return rc;
}

static void log_summary(const pipeline *p)
{
    double secs = (double)(now_ms() - p->started_ms) / 1000.0;
    if (secs <= 0)
        secs = 1e-3;
    bp_info("%s done: blocks=%" PRIu64 " txs=%" PRIu64 " logs=%" PRIu64
            " seconds=%.2f blocks/s=%.1f tx/s=%.1f reorgs=%" PRIu64,
            p->cfg->job        ? p->cfg->job
            : p->cfg->backfill ? "backfill"
                               : "run",
            p->blocks_done, p->txs_done, p->logs_done, secs, (double)p->blocks_done / secs,
            (double)p->txs_done / secs, p->reorgs);
    for (size_t i = 0; i < p->cfg->sink_count; i++) {
        const bp_sink *s = p->cfg->sinks[i];
        if (s->memory_peak)
            bp_info("output '%s': its buffers held up to %.1f MiB beyond its fixed part of the "
                    "memory budget, charged to it while held",
                    s->url, (double)s->memory_peak / 1048576.0);
    }
}

static void fill_report(pipeline *p, bp_pipeline_report *r)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->chain, sizeof(r->chain), "%s", p->chain);
    const bp_canon_entry *tip = bp_canon_tip(&p->canon);
    r->tip_set = tip != NULL;
    r->tip = tip ? tip->number : 0;
    for (size_t i = 0; p->rb.slots && i < p->rb.cap; i++) {
        uint64_t n = p->rb.base + i;
        bp_slot *s = bp_reorder_slot(&p->rb, n);
        if (!s || s->state != BP_SLOT_FAILED)
            continue;
        if (r->failed_count < BP_REPORT_MAX_FAILED) {
            r->failed[r->failed_count].number = n;
            r->failed[r->failed_count].attempts = s->attempts;
            snprintf(r->failed[r->failed_count].error, sizeof(r->failed[0].error), "%s",
                     s->last_error);
        }
        r->failed_count++;
    }
}

static void release(pipeline *p)
{
    p->abort_fetch = 1;         /* an error exit must not wait for requests still in flight */
    bp_writer_stop(&p->writer); /* first: it writes what it was handed (a complete prefix) */
    if (p->cfg->report)
        fill_report(p, p->cfg->report);
    if (p->rt_started)
        bp_realtime_stop(&p->rt); /* before bp_fetcher_stop: its thread wakes the fetcher */
    if (p->aws) {                 /* after the socket: nothing pushes events any more */
        uint64_t got, bad;
        size_t held;
        bp_arch_ws_stats(p->aws, &got, &bad, &held);
        bp_info("arch websocket: %" PRIu64 " events received, %" PRIu64 " malformed, %zu not "
                "written (their blocks were not committed)",
                got, bad, held);
        bp_arch_ws_free(p->aws);
    }
    free(p->aws_rolled);
    if (p->prober) /* so do the prober's threads */
        bp_prober_set_wake(p->prober, NULL, NULL);
    bp_fetcher_stop(p->fetcher);
    bp_log_status(NULL); /* the summary lines that follow stay on the screen */
    free_batch(p);
    free(p->events);
    bp_reorder_release(&p->rb);
    bp_canon_release(&p->canon);
    if (p->cfg->metrics) {
        bp_metrics_log_sets(p->cfg->metrics);
        bp_metrics_set_budget(p->cfg->metrics, NULL, 0);
    }
    bp_budget_release(&p->budget); /* last: the writer, the workers and the window refund */
    bp_outputs_release(&p->out);
    unclaim_outputs(p); /* after the last write */
    close_endpoints(p);
    bp_stats_hub_free(p->own_hub);
}

static int run_once(const bp_pipeline_config *cfg, volatile sig_atomic_t *stop, bp_error *err)
{
    pipeline p = {.cfg = cfg, .stop = stop, .src = cfg->source ? cfg->source : &bp_source_evm};
    p.started_ms = p.stat_ms = now_ms();
    p.next_stats_ms = p.started_ms + (int64_t)(cfg->stats_interval * 1000.0);
    uint64_t start = 0;
    p.hub = cfg->stats ? cfg->stats : (p.own_hub = bp_stats_hub_new());
    int rc = p.hub ? setup(&p, &start, err) : bp_error_set(err, BP_ENOMEM, "out of memory");
    if (rc == 1) {
        rc = 0;
        goto out;
    }
    while (rc == 0 && !*stop && !p.stopping && !backfill_done(&p))
        rc = step(&p, err);
    if (rc == 0) {
        rc = shutdown_pipeline(&p, err);
        if (rc == 0 && p.fatal_rc) {
            *err = p.fatal;
            rc = p.fatal_rc;
        }
        log_stats(&p);
        log_summary(&p);
    }
out:
    release(&p);
    return rc;
}

/* A chain whose writer lock another process took while this one was cut off from the output
 * (BP_ELOCKLOST: nothing of the failed batch was written) goes back to waiting for the lock, as
 * a process started on a held chain does, and resumes from the checkpoint once it holds it. */
int bp_pipeline_run(const bp_pipeline_config *cfg, volatile sig_atomic_t *stop, bp_error *err)
{
    for (;;) {
        int rc = run_once(cfg, stop, err);
        if (rc != BP_ELOCKLOST || *stop || cfg->lock_wait == 0)
            return rc;
        bp_warn("%s; waiting to take the chain's lock again (--lock-wait), then resuming from "
                "its checkpoint",
                err->msg);
        bp_error_clear(err);
    }
}
