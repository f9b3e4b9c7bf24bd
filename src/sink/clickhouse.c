/* clickhouse.c - the ClickHouse output: the raw tables over ClickHouse's HTTP interface, exactly
 * once and reorg-safe without transactions.
 *
 * Rows are never updated or deleted. Every table is a CollapsingMergeTree keyed by (chain,
 * block number, block hash, index) with two bookkeeping columns: _sign, +1 for a row written and
 * -1 for a row taken back, and _seq, the output's batch that wrote it. An APPLY writes its
 * block's rows with +1. A REVERT (it carries only the block's number and hash) is an INSERT ...
 * SELECT on the server that brings the sign sum of each of the block's row keys to 0. What a
 * query sees is the sum of the signs per row key: `FINAL` (the merges collapse +1/-1 pairs,
 * FINAL does it at read time), or sign weights (`sum(_sign)` counts, `sum(x * _sign)` sums);
 * rows and signs flow through materialized views the same way. Each key's signs alternate
 * (+1, -1, +1, ...: a block is applied only when not held, taken back only when held), which
 * is what keeps the merges and FINAL exact.
 *
 * A batch: (1) its events reduced to what it changes (a block applied and reverted in the same
 * batch is neither: what is left are REVERTs of blocks the output holds and APPLYs of new
 * ones); (2) when it reverts (or is a chain's first), an intent row: seq (the checkpoint's +
 * 1), the block range it applies, the blocks it reverts, its checkpoint; (3) the APPLY rows
 * with _seq = seq, one INSERT per table; with REVERTs (4) the commit (the intent again, marked
 * committed) and (5) the REVERTs; (6) the checkpoint row (number, hash, seq), last, so that
 * whoever waits for it sees the batch whole. A failure or crash before the commit leaves APPLY
 * rows of seq (above the checkpoint's block, or where the intent says): before anything else is
 * written (at open, and before the batch is tried again) they are taken back (their keys brought
 * to a sign sum of 0 among the rows of that _seq; a merge never removes such a +1 row before:
 * the engine drops a +1 only with a -1 after it). One after the commit leaves the reverts or
 * the checkpoint undone: they are finished (the sums over all the block's rows, which merges
 * keep). Both are idempotent, so a crash during a recovery is recovered by the next. REVERTs
 * come after the commit because a -1 row may merge with the +1 it cancels, after which nothing
 * could bring the row back.
 *
 * FINAL and sign weights are exact once the checkpoint is written, except between a crash and
 * the next start (or the failed batch's retry), when the unfinished batch's APPLY rows (or,
 * past the commit, its reverted blocks) still count; a batch the output gives up on is
 * recovered before the error is returned. One writer per chain and database. */
#include "blockpipe/sink.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "arch/arch_rows.h"
#include "blockpipe/columns.h"
#include "core/budget.h"
#include "metrics/metrics.h"
#include "sink/clickhouse_arch.h"
#include "sink/clickhouse_conn.h"
#include "sink/clickhouse_derived.h"
#include "sink/format.h"
#include "sink/clickhouse_read.h"
#include "sink/options.h"
#include "util/crashpoint.h"
#include "util/log.h"

/* The raw tables come first in tabs[]; a derived table is one more entry after them (its
 * bp_ch_table, its rows in encode()): the inserts, reverts, recovery and types go over all. */
enum {
    T_BLOCKS = BP_TABLE_BLOCKS,
    T_TXS = BP_TABLE_TRANSACTIONS,
    T_LOGS = BP_TABLE_LOGS,
    T_RAW = BP_TABLE_COUNT,
    T_MAX = 16
};

typedef struct ch_tab {
    bp_ch_table t; /* column types as the server has them */
    bp_ch_enc enc;
    bp_buf insert; /* "INSERT INTO t(cols) FORMAT ..." */
    bool on;       /* written (the tables option) */
} ch_tab;

/* What the output holds for one chain (the chain the last call named). */
typedef struct ch_state {
    char *chain;
    bp_checkpoint cp;
    uint64_t seq;    /* of the checkpoint; 0: none */
    bool recovering; /* rows of seq + 1 may be in the tables: recover before writing */
    bool arch;       /* an Arch chain (arch_blocks has rows of it): hashes without 0x */
} ch_state;

typedef struct ch_sink {
    struct bp_sink base;
    bp_ch_target t;
    bp_ch_http *http;
    bp_ch_caps caps;
    ch_tab tabs[T_MAX];
    size_t ntabs;
    size_t arch_first; /* tabs[arch_first + BP_CHA_*]: the Arch tables an APPLY writes */
    bp_ch_arch *arch;  /* arch_events and arch_rollbacks (clickhouse_arch.h) */
    ch_state st;
    bp_buf sql, ans, json, gz;
    bp_buf intents; /* recovery: the intents read */
    bp_buf refs;    /* "number:hash ..." of the batch's reverts */
    /* chains paused longer than the slack (bp_ch_derived_check_pause): their batches are
     * checked against the windows at risk (pause_check) */
    bp_ch_pauses paused;
    bool ours_known; /* the process's chains were given (bp_sink_opts.chains) */
    bool ttl_due;    /* the TTLs are to be brought to this run's options (ttl_sync) */
    const bp_block **reverts, **applies; /* the batch reduced */
    size_t nrev, napp, cap;
    /* the derived tables: written with metrics on; with it off only their reverted blocks' rows
     * taken back and windows recomputed (clickhouse_derived.h) */
    bp_ch_derived *derived;
    const bp_derived *der; /* the batch's derived rows, NULL: none */
    /* Memory (mem_follow): what the buffers may hold within the output's fixed part of the
     * budget, and what is charged to the writing batch's budget beyond it */
    size_t keep;
    bp_budget *budget;
    size_t charged;
    size_t held_peak; /* the most held during this write (debug) */
} ch_sink;

/* ---- SQL helpers ---- */

static int oom(bp_error *err)
{
    return bp_error_set(err, BP_ENOMEM, "out of memory");
}

/* The 64 lower-case hex digits of hash h ("0x" + 64 of them for EVM, the 64 alone for Arch):
 * safe to splice into SQL as unhex('...'); NULL for anything else. */
static const char *hex64(const char *h)
{
    if (h && h[0] == '0' && h[1] == 'x')
        h += 2;
    return h && strlen(h) == 64 && strspn(h, "0123456789abcdef") == 64 ? h : NULL;
}

/* Runs the statement built in s->sql (sql_start, then bp_buf_* and bp_ch_quote). */
static int run(ch_sink *s, bp_buf *answer, const char *what, bp_error *err)
{
    return bp_ch_query(s->http, s->sql.data, answer, what, err);
}

static int sql_start(ch_sink *s, const char *text)
{
    bp_buf_reset(&s->sql);
    return bp_buf_puts(&s->sql, text);
}

/* " WHERE chain = '...' AND output = 'clickhouse'" */
static int where_ours(ch_sink *s, const char *chain)
{
    return bp_buf_puts(&s->sql, " WHERE chain = ") | bp_ch_quote(&s->sql, chain) |
           bp_buf_puts(&s->sql, " AND output = '" BP_CH_OUTPUT "'");
}

/* ---- state: checkpoint and intents ---- */

/* A resync_floor cell (NULL: \N, bp_ch_tsv_row's NULL) into cp. */
static void get_floor(bp_checkpoint *cp, const char *cell)
{
    cp->floor_set = cp->set && cell;
    cp->floor = cp->floor_set ? strtoull(cell, NULL, 10) : 0;
}

static int load_state(ch_sink *s, const char *chain, bp_error *err)
{
    ch_state *st = &s->st;
    if (!st->chain || strcmp(st->chain, chain) != 0) {
        free(st->chain);
        memset(st, 0, sizeof(*st));
        if (!(st->chain = strdup(chain)))
            return oom(err);
    }
    /* an Arch chain's hashes are spelled without 0x (as PostgreSQL's BP_PG_ARCH_CP_HASH) */
    int rc = sql_start(s, "SELECT number, lower(hex(hash)), seq, (SELECT count() FROM (SELECT 1 "
                          "FROM arch_blocks WHERE chain = ") |
             bp_ch_quote(&s->sql, chain) |
             bp_buf_puts(&s->sql, " LIMIT 1)), resync_floor FROM checkpoints") |
             where_ours(s, chain) | bp_buf_puts(&s->sql, " ORDER BY seq DESC LIMIT 1");
    rc = rc ? oom(err) : run(s, &s->ans, "reading the checkpoint", err);
    if (rc != 0)
        return rc;
    char *p = s->ans.data, *cells[5];
    memset(&st->cp, 0, sizeof(st->cp));
    st->seq = 0;
    st->arch = false;
    if (bp_ch_tsv_row(&p, cells, 5) == 5) {
        if (!cells[2]) /* only a hand-edited table has it: blockpipe always writes one */
            return bp_error_set(err, BP_EPARSE, "reading the checkpoint: its seq is NULL");
        st->seq = strtoull(cells[2], NULL, 10);
        st->arch = cells[3] && strcmp(cells[3], "0") != 0;
        st->cp.set = cells[0] && cells[1];
        if (st->cp.set) {
            st->cp.number = strtoull(cells[0], NULL, 10);
            snprintf(st->cp.hash, sizeof(st->cp.hash), "%s%s", st->arch ? "" : "0x", cells[1]);
        }
        get_floor(&st->cp, cells[4]);
    }
    return 0;
}

/* INSERT INTO t(cols) SELECT keys, any(others)..., -sum(_sign), seq FROM t WHERE chain = ...
 * <the caller's conditions> GROUP BY keys HAVING sum(_sign) != 0: brings every row key the
 * conditions select to a sign sum of 0 (taken back), whatever rows it has (a part of a batch,
 * rows merged or not). Run twice, the second finds nothing to do. */
static int settle_sql(ch_sink *s, const bp_ch_table *t, uint64_t seq, const char *chain)
{
    int rc = sql_start(s, "INSERT INTO ") | bp_buf_printf(&s->sql, "%s (", t->name) |
             bp_ch_col_list(&s->sql, t->cols, t->ncols) | bp_buf_puts(&s->sql, ") SELECT ");
    for (size_t i = 0; i < t->ncols; i++) {
        const char *name = t->cols[i].name, *sep = i ? ", " : "";
        if (strcmp(name, BP_CH_SIGN) == 0)
            rc |= bp_buf_printf(&s->sql, "%s-sum(" BP_CH_SIGN ")", sep);
        else if (strcmp(name, BP_CH_SEQ) == 0)
            rc |= bp_buf_printf(&s->sql, "%stoUInt64(%" PRIu64 ")", sep, seq);
        else
            rc |= bp_buf_printf(&s->sql, t->cols[i].key ? "%s%s" : "%sany(%s)", sep, name);
    }
    return rc | bp_buf_printf(&s->sql, " FROM %s WHERE %s = ", t->name, t->chain_col) |
           bp_ch_quote(&s->sql, chain);
}

static int settle_run(ch_sink *s, const bp_ch_table *t, const char *what, bp_error *err)
{
    if (bp_buf_printf(&s->sql, " GROUP BY %s HAVING sum(" BP_CH_SIGN ") != 0", t->order_by))
        return oom(err);
    return run(s, NULL, what, err);
}

/* Takes back the rows batch seq wrote for blocks from..to (every table): the rollback of a
 * batch that has no checkpoint. Its rows are the only ones of that _seq there (a _seq is
 * reused only after this), and no merge removes them before this: the engine drops a +1 row
 * only with a -1 row after it. Says so when the blocks table has rows of it (written first: no
 * rows there, nothing of the batch reached the tables, or a recovery took them back and the
 * pairs merged away). */
static int rollback(ch_sink *s, const char *chain, uint64_t seq, uint64_t from, uint64_t to,
                    long *found, bp_error *err)
{
    char cond[160], *p, *cell[1];
    snprintf(cond, sizeof(cond),
             " BETWEEN %" PRIu64 " AND %" PRIu64 " AND " BP_CH_SEQ " = %" PRIu64, from, to, seq);
    int rc = sql_start(s, "SELECT count() FROM blocks WHERE chain = ") |
             bp_ch_quote(&s->sql, chain) | bp_buf_printf(&s->sql, " AND number%s", cond);
    rc = rc ? oom(err) : run(s, &s->ans, "reading an unfinished batch", err);
    long rows = rc == 0 && (p = s->ans.data, bp_ch_tsv_row(&p, cell, 1) == 1) && cell[0]
                    ? atol(cell[0])
                    : 0;
    *found += rows;
    if (rc == 0 && rows > 0)
        bp_info("clickhouse %s: chain %s: taking back the rows of batch %" PRIu64
                " (not committed)",
                s->t.where, chain, seq);
    for (size_t k = 0; rc == 0 && k < s->ntabs; k++) {
        const bp_ch_table *t = &s->tabs[k].t;
        rc = settle_sql(s, t, seq, chain) | bp_buf_printf(&s->sql, " AND %s%s", t->block_col, cond);
        rc = rc ? oom(err) : settle_run(s, t, "taking back an unfinished batch", err);
        if (rc == 0)
            bp_crashpoint("clickhouse.mid_recovery");
    }
    return rc;
}

#define CH_REFS_PER_QUERY 400 /* (number, hash) pairs per statement: far below max_query_size */

/* Takes back the rows of the blocks in refs ("number:hexhash ..." as the intent keeps them),
 * written by batch seq: the REVERTs of a batch, written after its commit. */
static int settle_blocks(ch_sink *s, const char *chain, uint64_t seq, const char *refs,
                         bp_error *err)
{
    for (const char *chunk = refs; *chunk;) {
        const char *next = chunk;
        for (size_t k = 0; k < s->ntabs; k++) {
            const bp_ch_table *t = &s->tabs[k].t;
            int rc = settle_sql(s, t, seq, chain) |
                     bp_buf_printf(&s->sql, " AND (%s, %s) IN (", t->block_col, t->hash_col);
            next = chunk;
            for (int i = 0; *next && i < CH_REFS_PER_QUERY; i++) {
                size_t n = strcspn(next, " ");
                const char *colon = memchr(next, ':', n);
                if (!colon || n - (size_t)(colon - next) != 65)
                    return bp_error_set(err, BP_EDB, "intent: bad block '%.*s'", (int)n, next);
                rc |= bp_buf_printf(&s->sql, "%s(%.*s, unhex('%.64s'))", i ? ", " : "",
                                    (int)(colon - next), next, colon + 1);
                next += n + (next[n] == ' ');
            }
            rc = rc | bp_buf_putc(&s->sql, ')') ? oom(err) : settle_run(s, t, "revert", err);
            if (rc != 0)
                return rc;
        }
        chunk = next;
    }
    return 0;
}

static int write_checkpoint(ch_sink *s, const char *chain, const bp_checkpoint *cp, uint64_t seq,
                            bp_error *err);

/* The intents of batch seq (its attempts): what it applies and reverts, its checkpoint, and
 * whether one of them is the commit. */
typedef struct ch_intent {
    bool found, committed;
    uint64_t from, to;
    const char *refs;
    bp_checkpoint cp;
} ch_intent;

static int read_intent(ch_sink *s, const char *chain, uint64_t seq, ch_intent *in, bp_error *err)
{
    memset(in, 0, sizeof(*in));
    in->from = UINT64_MAX;
    int rc = sql_start(s, "SELECT applied_from, applied_to, reverted, number, lower(hex(hash)), "
                          "committed, resync_floor FROM checkpoint_intents") |
             where_ours(s, chain) | bp_buf_printf(&s->sql, " AND seq = %" PRIu64, seq);
    rc = rc ? oom(err) : run(s, &s->intents, "reading the intents", err);
    char *p = s->intents.data, *c[7];
    while (rc == 0 && bp_ch_tsv_row(&p, c, 7) == 7 && c[0] && c[1] && c[2] && c[5]) {
        uint64_t from = strtoull(c[0], NULL, 10), to = strtoull(c[1], NULL, 10);
        in->found = true;
        in->from = from < in->from ? from : in->from;
        in->to = to > in->to ? to : in->to;
        in->refs = c[2]; /* the same in every attempt's rows: the batch is the same */
        in->committed |= strcmp(c[5], "1") == 0;
        in->cp.set = c[3] && c[4];
        if (in->cp.set) {
            in->cp.number = strtoull(c[3], NULL, 10);
            snprintf(in->cp.hash, sizeof(in->cp.hash), "0x%s", c[4]);
        }
        get_floor(&in->cp, c[6]);
    }
    return rc;
}

/* The lowest block below which batch seq (its intent in) changes nothing: the checkpoint's,
 * below what it applies and reverts; UINT64_MAX when the chain has no checkpoint. */
static uint64_t unchanged_below(const ch_state *st, const ch_intent *in)
{
    uint64_t below = st->cp.set ? st->cp.number : UINT64_MAX;
    if (in->found && in->from <= in->to && in->from > 0 && in->from - 1 < below)
        below = in->from - 1;
    for (const char *p = in->refs; p && *p; p += strcspn(p, " "), p += *p == ' ') {
        uint64_t n = strtoull(p, NULL, 10);
        below = n > 0 && n - 1 < below ? n - 1 : below;
    }
    return below;
}

/* The query_id prefix of every writer of this database: "bpw_<hash of the database>_". A
 * writer's own queries carry <prefix><pid>_<start>_<n>. */
static void writers_prefix(const char *database, char *out, size_t cap)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const char *c = database ? database : ""; *c; c++)
        h = (h ^ (unsigned char)*c) * 1099511628211ull;
    snprintf(out, cap, "bpw_%016" PRIx64 "_", h);
}

static int tag_writes(ch_sink *s, bp_error *err)
{
    char prefix[64];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    writers_prefix(s->t.database, prefix, sizeof(prefix));
    size_t n = strlen(prefix);
    snprintf(prefix + n, sizeof(prefix) - n, "%ld_%lx%05lx_", (long)getpid(), (long)ts.tv_sec,
             (long)(ts.tv_nsec >> 14));
    return bp_ch_http_tag(s->http, prefix, err);
}

/* A writer that died (SIGKILL) or gave up on a request (a timeout) may have left its INSERT
 * running on the server: the server reads the body it was sent and commits it whether or not
 * anyone waits for the answer. A recovery that ran before it landed would leave its rows
 * behind (seen: sum(_sign) 2 for keys of a batch written again after a SIGKILL on a loaded
 * machine). So the recovery first waits until the writers' queries running now are gone (the
 * ones it sees: those that start later are other writers' of other chains, or its own). */
static int wait_for_orphans(ch_sink *s, bp_error *err)
{
    char prefix[64], seen[4096] = "";
    writers_prefix(s->t.database, prefix, sizeof(prefix));
    time_t deadline = time(NULL) + (s->t.wait_for_db > 0 ? s->t.wait_for_db : 30);
    for (bool first = true;; first = false) {
        bp_buf_reset(&s->sql);
        int rc = bp_buf_printf(&s->sql,
                               "SELECT query_id FROM system.processes WHERE substring(query_id, "
                               "1, %zu) = '%s' AND query_id != '%s'",
                               strlen(prefix), prefix, bp_ch_http_next_id(s->http));
        if (!first && rc == 0 && seen[0]) /* only those seen first */
            rc = bp_buf_printf(&s->sql, " AND has([%s], query_id)", seen);
        if (rc != 0)
            return oom(err);
        if ((rc = run(s, &s->ans, "waiting for earlier writes", err)) != 0)
            return rc;
        if (s->ans.len == 0)
            return 0;
        if (first) { /* the ids as an array literal: [a-z0-9_] only, nothing to quote */
            size_t at = 0;
            for (char *p = s->ans.data, *cells[1]; bp_ch_tsv_row(&p, cells, 1) == 1;)
                if (cells[0] && at + strlen(cells[0]) + 4 < sizeof(seen))
                    at += (size_t)snprintf(seen + at, sizeof(seen) - at, "%s'%s'", at ? "," : "",
                                           cells[0]);
            bp_info("clickhouse %s: waiting for %s, left running by an earlier writer, before "
                    "the recovery",
                    s->t.where, seen);
        }
        if (time(NULL) > deadline)
            return bp_error_set(err, BP_ETIMEOUT,
                                "queries of an earlier writer (%s) still run on the server "
                                "after %d s: recovering under them could leave their rows",
                                seen, s->t.wait_for_db);
        struct timespec ms100 = {0, 100000000L};
        nanosleep(&ms100, NULL);
    }
}

/* What a failure or a crash left of the batch after the checkpoint (seq + 1). Committed (its
 * intent has the commit): its reverts and its checkpoint are written now. Not committed: its
 * rows are taken back: those above the checkpoint's block (a batch that reverts nothing writes
 * no intent, but a chain's first one does, so that the recovery at open finds the chain) and
 * those of the block range its intent names. */
static int recover(ch_sink *s, const char *chain, bp_error *err)
{
    ch_intent in;
    long rows = 0; /* of the unfinished batch, taken back */
    int rc = load_state(s, chain, err);
    uint64_t seq = s->st.seq + 1, below = UINT64_MAX;
    if (rc == 0)
        rc = read_intent(s, chain, seq, &in, err);
    if (rc == 0)
        below = unchanged_below(&s->st, &in);
    if (rc == 0 && in.committed) {
        rc = in.refs && *in.refs ? settle_blocks(s, chain, seq, in.refs, err) : 0;
        if (rc == 0)
            rc = write_checkpoint(s, chain, &in.cp, seq, err);
        if (rc == 0) {
            s->st.seq = seq;
            s->st.cp = in.cp;
            bp_info("clickhouse %s: chain %s: finished batch %" PRIu64 " (committed; its reverts "
                    "and checkpoint were not written)",
                    s->t.where, chain, seq);
        }
    } else if (rc == 0) {
        rc =
            rollback(s, chain, seq, s->st.cp.set ? s->st.cp.number + 1 : 0, UINT64_MAX, &rows, err);
        if (rc == 0 && in.found && in.from <= in.to)
            rc = rollback(s, chain, seq, in.from, in.to, &rows, err);
    }
    /* rollups written before a crash may count rows taken back since: recomputed, except the
     * windows a pause put at risk (bp_ch_paused): unchanged since the chain's last batch
     * unless an unfinished one is found at open (then recomputed, or left for the refusal
     * when the chain's slack is unchanged) or a batch of this run wrote there */
    bp_ch_paused *g = bp_ch_pauses_find(&s->paused, chain);
    uint64_t after = g ? g->past : 0;
    if (g && !g->opened && (in.found || rows > 0)) {
        g->recompute = g->refuse;
        after = 0;
    }
    if (g)
        g->opened = true;
    if (rc == 0 && s->derived && !(g && g->recompute))
        rc = bp_ch_derived_recover(s->derived, chain, below, after, err);
    if (rc != 0)
        return bp_error_prefix(err, "chain %s: ", chain);
    s->st.recovering = false;
    return 0;
}

/* At open: every chain of this output (with a checkpoint or an intent). */
static int recover_all(ch_sink *s, bp_error *err)
{
    bp_buf chains;
    bp_buf_init(&chains, 16 << 20);
    int rc = wait_for_orphans(s, err);
    rc = rc ? rc
            : sql_start(s, "SELECT DISTINCT chain FROM (SELECT chain FROM checkpoint_intents"
                           " WHERE output = '" BP_CH_OUTPUT "' UNION ALL SELECT chain FROM "
                           "checkpoints WHERE output = '" BP_CH_OUTPUT "')");
    rc = rc ? oom(err) : run(s, &chains, "reading the chains", err);
    char *p = chains.data, *cells[1];
    while (rc == 0 && bp_ch_tsv_row(&p, cells, 1) == 1)
        if (cells[0])
            rc = recover(s, cells[0], err);
    bp_buf_release(&chains);
    return rc;
}

/* ---- rows ---- */

static void put_withdrawals(ch_sink *s, bp_ch_enc *e, const bp_block *b)
{
    bp_fmt f = {.buf = &s->json};
    bp_buf_reset(&s->json);
    bp_fmt_char(&f, '[');
    bp_fmt_withdrawals(&f, b, "\"");
    bp_fmt_char(&f, ']');
    if (f.rc != 0 && e->rc == 0)
        e->rc = f.rc, e->bad = e->col;
    bp_ch_put_text(e, s->json.data ? s->json.data : "", s->json.len);
}

/* The loops over a table's columns are unrolled into one function per table, so that each
 * cell's value and type fold to a field read and one encoder call. */
#define UNROLL _Pragma("GCC unroll 40")
#define INLINE static inline __attribute__((always_inline))

INLINE void put_value(ch_sink *s, bp_ch_enc *e, bp_col_id id, const bp_value *v)
{
    if (v->kind == BP_VAL_WITHDRAWALS)
        put_withdrawals(s, e, v->block);
    else
        bp_ch_put_value(e, bp_col_type_of(id), v);
}

INLINE void enc_row(ch_sink *s, bp_ch_enc *e, int first, int end, const bp_row *r, uint64_t seq)
{
    UNROLL
    for (int i = first; i < end; i++) {
        bp_value v = bp_value_of((bp_col_id)i, r);
        put_value(s, e, (bp_col_id)i, &v);
    }
    bp_ch_put_i8(e, 1);
    bp_ch_put_u64(e, seq);
    bp_ch_row_end(e);
}

static void enc_block(ch_sink *s, const bp_row *r, uint64_t seq)
{
    enc_row(s, &s->tabs[T_BLOCKS].enc, BP_C_BLOCKS_FIRST, BP_C_TRANSACTIONS_FIRST, r, seq);
}

static void enc_tx(ch_sink *s, const bp_row *r, uint64_t seq)
{
    enc_row(s, &s->tabs[T_TXS].enc, BP_C_TRANSACTIONS_FIRST, BP_C_LOGS_FIRST, r, seq);
}

static void enc_log(ch_sink *s, const bp_row *r, uint64_t seq)
{
    enc_row(s, &s->tabs[T_LOGS].enc, BP_C_LOGS_FIRST, BP_C_COUNT, r, seq);
}

static int enc_failed(const ch_tab *tab, const bp_block *b, bp_error *err)
{
    const bp_ch_enc *e = &tab->enc;
    if (e->rc != BP_EINVAL)
        return bp_error_set(err, e->rc, "block %" PRIu64 ": encoding %s rows: %s", b->number,
                            tab->t.name, bp_strerror(e->rc));
    char type[48];
    bp_ch_type_name(&tab->t.cols[e->bad].type, type, sizeof(type));
    return bp_error_set(err, BP_EINVAL,
                        "block %" PRIu64 ": column %s.%s: the value does not fit its ClickHouse "
                        "type %s",
                        b->number, tab->t.name, tab->t.cols[e->bad].name, type);
}

/* ---- memory: the buffers against the budget ---- */

/* What the buffers of a batch's write may hold within the output's fixed part of the budget
 * (BP_MEM_PER_OUTPUT, and BP_MEM_PER_DERIVED_OUTPUT less the window sets' CACHE_BYTES with
 * derived tables: core/pipeline.h). BP_CH_KEEP_BYTES (tests) sets it. */
#define CH_KEEP_BYTES ((size_t)4 << 20)

static size_t keep_bytes(bool derived)
{
    const char *env = getenv("BP_CH_KEEP_BYTES");
    if (env && *env)
        return (size_t)strtoull(env, NULL, 10);
    return derived ? 2 * CH_KEEP_BYTES : CH_KEEP_BYTES;
}

/* Bytes the buffers hold now: the encoders (a part each, once streamed), the gzip copy, the answers
 * and the SQL, the derived tables' per-batch state. */
static size_t held_bytes(const ch_sink *s)
{
    size_t n = s->sql.cap + s->ans.cap + s->json.cap + s->gz.cap + s->intents.cap + s->refs.cap;
    for (size_t k = 0; k < s->ntabs; k++)
        n += bp_ch_enc_held(&s->tabs[k].enc);
    return n + (s->derived ? bp_ch_derived_held(s->derived) : 0) + bp_ch_arch_held(s->arch);
}

/* The budget follows what the buffers hold beyond s->keep (memory in use: charged even past the
 * limit; the fetches then wait for it). Called where they may have grown. */
static void mem_follow(ch_sink *s)
{
    size_t held = held_bytes(s), now = held > s->keep ? held - s->keep : 0;
    if (held > s->held_peak)
        s->held_peak = held;
    if (!s->budget)
        return;
    bp_budget_follow(s->budget, &s->charged, now);
    if (now > s->base.memory_peak)
        s->base.memory_peak = now;
}

/* The write's end: buffers that hold more than s->keep are given back (they grow again with the
 * next big batch), and nothing stays charged (the next write may be another chain's budget). */
static void mem_settle(ch_sink *s)
{
    mem_follow(s);
    bp_debug("clickhouse %s: the write's buffers held up to %zu bytes (%zu within the fixed part)",
             s->t.where, s->held_peak, s->keep);
    s->held_peak = 0;
    if (held_bytes(s) > s->keep) {
        for (size_t k = 0; k < s->ntabs; k++)
            bp_ch_enc_trim(&s->tabs[k].enc);
        bp_buf_release(&s->gz);
        bp_buf_release(&s->ans);
        bp_buf_release(&s->json);
        bp_buf_release(&s->intents);
        if (s->derived)
            bp_ch_derived_trim(s->derived);
        bp_ch_arch_trim(s->arch);
    }
    if (s->budget && s->charged)
        bp_budget_refund(s->budget, s->charged);
    s->charged = 0;
    s->budget = NULL;
}

/* deflate of pieces[0..n) appended to s->gz (finish: the stream's end) */
static int gzip_add(ch_sink *s, z_stream *z, const bp_ch_piece *pieces, size_t n, bool finish,
                    bp_error *err)
{
    int zr = Z_OK;
    for (size_t i = 0; i <= n && zr != Z_STREAM_ERROR; i++) {
        if (i == n && !finish)
            break;
        z->next_in = i < n ? (Bytef *)pieces[i].data : NULL;
        z->avail_in = i < n ? (uInt)pieces[i].len : 0;
        do {
            if (bp_buf_reserve(&s->gz, 1 << 16) != 0)
                return oom(err);
            z->next_out = (Bytef *)s->gz.data + s->gz.len;
            z->avail_out = 1 << 16;
            zr = deflate(z, i < n ? Z_NO_FLUSH : Z_FINISH);
            s->gz.len = (size_t)((char *)z->next_out - s->gz.data);
        } while (z->avail_out == 0 || (i == n && zr == Z_OK));
    }
    if (zr == Z_STREAM_ERROR || (finish && zr != Z_STREAM_END))
        return bp_error_set(err, BP_EINVAL, "gzip of the INSERT data failed (%d)", zr);
    return 0;
}

static int gzip_start(z_stream *z, bp_error *err)
{
    memset(z, 0, sizeof(*z));
    return deflateInit2(z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK ? 0 : oom(err);
}

/* ---- the rows: one streamed INSERT per table ---- */

/* The rows of a table's INSERT (raw or derived) are encoded a part at a time while the request
 * is sent (bp_ch_insert_stream): a Native block, or RowBinary rows, of about this many bytes.
 * The encoder's buffers are reused part after part (they neither grow nor take fresh pages),
 * the server parses a part while the next one is encoded, and the batch is one INSERT per table
 * (one part on the server: it squashes the blocks), as big as the batch. */
#define CH_PART_BYTES ((size_t)1 << 20)

static size_t part_bytes(void)
{
    const char *env = getenv("BP_CH_PART_BYTES"); /* (experiments, tests) */
    return env && *env ? (size_t)strtoull(env, NULL, 10) : CH_PART_BYTES;
}

typedef struct ch_stream {
    ch_sink *s;
    size_t k; /* the table: T_BLOCKS, T_TXS, T_LOGS or a derived one (T_RAW + BP_CHD_*) */
    const char *chain;
    uint64_t seq;
    size_t blk, row;     /* raw: the next row, applies[blk]'s row-th transaction or log */
    bp_ch_derived_at at; /* derived: the next row */
    size_t rows;         /* encoded so far */
    size_t part;         /* bytes of a part */
    bool primed;         /* the encoder holds the first part, made before the request */
    bool gzip, finished;
    bool arch_sent; /* an Arch table's rows, encoded before the stream, made its part */
    z_stream z;
    bp_ch_piece pieces[BP_CH_MAX_PIECES(BP_CH_MAX_COLS)];
} ch_stream;

/* Rows of raw table k in block b. */
static size_t raw_rows(size_t k, const bp_block *b)
{
    if (k == T_BLOCKS)
        return 1;
    if (k == T_TXS)
        return b->tx_count;
    return b->has_receipts ? b->log_count : 0;
}

/* The next part's rows of a raw table into its encoder (from the stream's row on, until it
 * holds a part or the batch's rows end). An encoding error leaves st->blk at its block. */
static void encode_raw(ch_stream *st)
{
    ch_sink *s = st->s;
    bp_ch_enc *e = &s->tabs[st->k].enc;
    for (; st->blk < s->napp; st->blk++, st->row = 0) {
        const bp_block *b = s->applies[st->blk];
        bp_row r = {.chain = st->chain, .block = b};
        for (size_t n = raw_rows(st->k, b); st->row < n && e->rc == 0;) {
            if (st->k == T_BLOCKS)
                enc_block(s, &r, st->seq);
            else if (st->k == T_TXS)
                r.tx = &b->txs[st->row], enc_tx(s, &r, st->seq);
            else
                r.log = &b->logs[st->row], enc_log(s, &r, st->seq);
            if (++st->row % 64 == 0 && st->row < n && bp_ch_enc_bytes(e) >= st->part)
                return;
        }
        if (e->rc != 0)
            return;
        if (bp_ch_enc_bytes(e) >= st->part) {
            st->blk++, st->row = 0;
            return;
        }
    }
}

/* The table's next part into its encoder (no rows: the table's rows are done). */
static int encode_part(ch_stream *st, bp_error *err)
{
    ch_sink *s = st->s;
    ch_tab *tab = &s->tabs[st->k];
    if (st->k >= s->arch_first) { /* encoded before (apply_arch): that is the one part */
        if (st->arch_sent)
            bp_ch_enc_reset(&tab->enc);
        st->arch_sent = true;
        return 0;
    }
    bp_ch_enc_reset(&tab->enc);
    int rc = 0;
    size_t blk = st->blk;
    if (st->k < T_RAW)
        encode_raw(st), blk = st->blk;
    else
        rc = bp_ch_derived_encode_part(s->derived, s->der, s->applies, s->napp, st->seq,
                                       (int)(st->k - T_RAW), &tab->enc, &st->at, st->part, err),
        blk = st->at.blk;
    mem_follow(s);
    if (rc == 0 && tab->enc.rc != 0)
        rc = enc_failed(tab, s->applies[blk < s->napp ? blk : s->napp - 1], err);
    return rc;
}

static int produce_part(void *ctx, const bp_ch_piece **out, size_t *n, bp_error *err)
{
    ch_stream *st = ctx;
    ch_tab *tab = &st->s->tabs[st->k];
    *n = 0;
    while (!st->finished) {
        int rc = st->primed ? 0 : encode_part(st, err);
        st->primed = false;
        if (rc != 0)
            return rc;
        st->rows += tab->enc.rows;
        st->finished = tab->enc.rows == 0;
        size_t np = st->finished ? 0
                                 : bp_ch_enc_pieces(&tab->enc, st->pieces,
                                                    sizeof(st->pieces) / sizeof(st->pieces[0]));
        if (tab->enc.rc != 0)
            return bp_error_set(err, tab->enc.rc, "%s: encoding the block header: %s", tab->t.name,
                                bp_strerror(tab->enc.rc));
        if (!st->gzip) {
            *out = st->pieces;
            *n = np;
            return 0;
        }
        bp_buf_reset(&st->s->gz);
        rc = gzip_add(st->s, &st->z, st->pieces, np, st->finished, err);
        if (rc != 0)
            return rc;
        if (st->s->gz.len > 0) { /* (deflate may keep a part's output for the next) */
            st->pieces[0] = (bp_ch_piece){st->s->gz.data, st->s->gz.len};
            *out = st->pieces;
            *n = 1;
            return 0;
        }
    }
    return 0;
}

/* The batch's rows of table k: one INSERT, encoded while it is sent; none when it has no rows
 * (the first part is made before the request: an error in it sends nothing). */
static int stream_rows(ch_sink *s, size_t k, const char *chain, uint64_t seq, bp_error *err)
{
    ch_stream *st = calloc(1, sizeof(*st));
    if (!st)
        return oom(err);
    *st = (ch_stream){
        .s = s, .k = k, .chain = chain, .seq = seq, .gzip = s->t.gzip, .part = part_bytes()};
    int rc = encode_part(st, err);
    st->primed = true;
    bool any = rc == 0 && s->tabs[k].enc.rows > 0;
    if (any && st->gzip)
        rc = gzip_start(&st->z, err);
    char what[96];
    snprintf(what, sizeof(what), "INSERT into %s", s->tabs[k].t.name);
    if (any && rc == 0)
        rc = bp_ch_insert_stream(s->http, s->tabs[k].insert.data, produce_part, st, st->gzip, what,
                                 err);
    if (any && rc == 0)
        bp_debug("clickhouse %s: %zu rows into %s", s->t.where, st->rows, s->tabs[k].t.name);
    if (any && st->gzip)
        deflateEnd(&st->z);
    bp_ch_enc_reset(&s->tabs[k].enc);
    free(st);
    return rc;
}

/* ---- a batch ---- */

static int grow(ch_sink *s, size_t need, bp_error *err)
{
    if (need <= s->cap)
        return 0;
    size_t cap = need < 64 ? 64 : 2 * need;
    const bp_block **r = realloc(s->reverts, cap * sizeof(*r));
    if (r)
        s->reverts = r;
    const bp_block **a = r ? realloc(s->applies, cap * sizeof(*a)) : NULL;
    if (a)
        s->applies = a;
    if (!r || !a)
        return oom(err);
    s->cap = cap;
    return 0;
}

/* What the batch changes: a block applied and then reverted in it is neither; what is left
 * are REVERTs of blocks the output held before (highest first) and the APPLYs after them. */
static int reduce(ch_sink *s, const bp_batch *b, bp_error *err)
{
    s->nrev = s->napp = 0;
    int rc = grow(s, b->count, err);
    for (size_t i = 0; rc == 0 && i < b->count; i++) {
        const bp_block *blk = b->events[i].block;
        if (b->events[i].kind == BP_EVENT_ARCH_EVENTS) /* rows of their own (write_once) */
            continue;
        if (b->events[i].kind == BP_EVENT_APPLY && blk->family == BP_FAMILY_ARCH && !blk->arch) {
            rc = bp_error_set(err, BP_EINVAL, "block %" PRIu64 ": an Arch block without its rows",
                              blk->number);
        } else if (b->events[i].kind == BP_EVENT_APPLY) {
            s->applies[s->napp++] = blk;
        } else if (s->napp == 0) {
            s->reverts[s->nrev++] = blk;
        } else if (strcmp(s->applies[s->napp - 1]->hash, blk->hash) == 0) {
            s->napp--;
        } else {
            rc = bp_error_set(err, BP_EINVAL,
                              "revert of block %" PRIu64 " %s, but the batch applied %s there",
                              blk->number, blk->hash, s->applies[s->napp - 1]->hash);
        }
    }
    for (size_t i = 0; rc == 0 && i < s->nrev; i++)
        if (!hex64(s->reverts[i]->hash))
            rc = bp_error_set(err, BP_EINVAL, "revert of block %" PRIu64 ": bad hash '%s'",
                              s->reverts[i]->number, s->reverts[i]->hash);
    return rc;
}

/* ", number, unhex('hash')" of cp, or ", NULL, NULL" when unset. */
static int put_cp(bp_buf *sql, const bp_checkpoint *cp)
{
    if (!cp->set)
        return bp_buf_puts(sql, ", NULL, NULL");
    return bp_buf_printf(sql, ", %" PRIu64 ", unhex('%s')", cp->number, hex64(cp->hash));
}

/* ", resync_floor" of cp (the last column of checkpoints and checkpoint_intents). */
static int put_floor(bp_buf *sql, const bp_checkpoint *cp)
{
    return cp->set && cp->floor_set ? bp_buf_printf(sql, ", toUInt64(%" PRIu64 ")", cp->floor)
                                    : bp_buf_puts(sql, ", NULL");
}

/* The intent of batch seq (committed 0: before its rows) or its commit (1: after them): the
 * block range it applies, "number:hash ..." of what it reverts, its checkpoint. */
static int write_intent(ch_sink *s, const bp_batch *b, uint64_t seq, int committed, bp_error *err)
{
    uint64_t from = s->napp ? s->applies[0]->number : 1,
             to = s->napp ? s->applies[s->napp - 1]->number : 0;
    int rc = 0;
    if (!committed) {
        bp_buf_reset(&s->refs);
        for (size_t i = 0; i < s->nrev; i++)
            rc |= bp_buf_printf(&s->refs, "%s%" PRIu64 ":%s", i ? " " : "", s->reverts[i]->number,
                                hex64(s->reverts[i]->hash));
    }
    rc |= sql_start(s, "INSERT INTO checkpoint_intents SELECT ") | bp_ch_quote(&s->sql, b->chain) |
          bp_buf_printf(&s->sql, ", '" BP_CH_OUTPUT "', %" PRIu64 ", %" PRIu64 ", %" PRIu64 ", ",
                        seq, from, to) |
          bp_ch_quote(&s->sql, s->refs.data ? s->refs.data : "") | put_cp(&s->sql, &b->checkpoint) |
          bp_buf_printf(&s->sql, ", %d, now()", committed) | put_floor(&s->sql, &b->checkpoint);
    return rc ? oom(err)
              : run(s, NULL, committed ? "committing the batch" : "writing the batch's intent",
                    err);
}

/* An Arch batch's APPLY rows: every block's rows of the three tables encoded at once
 * (bp_ch_arch_encode), then each table one INSERT of them (stream_rows sends what is encoded
 * as its one part: encode_part), arch_blocks first (the recovery's count looks at blocks, but
 * takes back every table's rows of seq either way). Arch batches are small beside EVM's. */
static int apply_arch(ch_sink *s, const char *chain, uint64_t seq, bp_error *err)
{
    bp_ch_enc *enc[BP_CHA_ROW_TABLES];
    for (size_t k = 0; k < BP_CHA_ROW_TABLES; k++) {
        enc[k] = &s->tabs[s->arch_first + k].enc;
        bp_ch_enc_reset(enc[k]);
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < s->napp; i++) {
        bp_ch_arch_encode(enc, chain, s->applies[i], seq);
        for (size_t k = 0; rc == 0 && k < BP_CHA_ROW_TABLES; k++)
            if (enc[k]->rc != 0)
                rc = enc_failed(&s->tabs[s->arch_first + k], s->applies[i], err);
    }
    mem_follow(s);
    for (size_t k = 0; rc == 0 && k < BP_CHA_ROW_TABLES; k++) {
        rc = stream_rows(s, s->arch_first + k, chain, seq, err);
        if (rc == 0 && k == BP_CHA_BLOCKS)
            bp_crashpoint("clickhouse.after_blocks");
    }
    for (size_t k = 0; k < BP_CHA_ROW_TABLES; k++)
        bp_ch_enc_reset(enc[k]);
    return rc;
}

/* The raw tables' rows (blocks first: the recovery looks there), then the derived ones: one
 * streamed INSERT per table with rows. */
static int apply_rows(ch_sink *s, const char *chain, uint64_t seq, bp_error *err)
{
    int rc = 0;
    if (s->applies[0]->family == BP_FAMILY_ARCH)
        rc = apply_arch(s, chain, seq, err);
    for (size_t k = 0; rc == 0 && s->applies[0]->family != BP_FAMILY_ARCH && k < s->arch_first;
         k++) {
        if (!s->tabs[k].on || (k >= T_RAW && !s->der))
            continue;
        rc = stream_rows(s, k, chain, seq, err);
        if (rc == 0 && k == T_BLOCKS)
            bp_crashpoint("clickhouse.after_blocks");
        if (rc == 0 && k == T_RAW + BP_CHD_BLOCK)
            bp_crashpoint("clickhouse.mid_derived");
    }
    if (rc != 0)
        bp_error_prefix(err, "blocks %" PRIu64 "..%" PRIu64 ": ", s->applies[0]->number,
                        s->applies[s->napp - 1]->number);
    return rc;
}

static int write_checkpoint(ch_sink *s, const char *chain, const bp_checkpoint *cp, uint64_t seq,
                            bp_error *err)
{
    int rc = sql_start(s, "INSERT INTO checkpoints SELECT ") | bp_ch_quote(&s->sql, chain) |
             bp_buf_puts(&s->sql, ", '" BP_CH_OUTPUT "'") | put_cp(&s->sql, cp) |
             bp_buf_printf(&s->sql, ", %" PRIu64 ", now()", seq) | put_floor(&s->sql, cp);
    char what[64];
    snprintf(what, sizeof(what), "checkpoint %" PRIu64, cp->number);
    return rc ? oom(err) : run(s, NULL, what, err);
}

/* See the header comment: intent, rows, commit, reverts, checkpoint. */
static int write_once(ch_sink *s, const bp_batch *b, bp_error *err)
{
    uint64_t seq = s->st.seq + 1;
    int rc = 0;
    if (b->checkpoint.set && !hex64(b->checkpoint.hash))
        return bp_error_set(err, BP_EINVAL, "checkpoint %" PRIu64 " %s: not storable",
                            b->checkpoint.number, b->checkpoint.hash);
    if (s->nrev + s->napp > 0)
        s->st.recovering = true; /* from here on a failure leaves rows of seq behind */
    /* (also a batch without events: it may bring prices) */
    s->der = s->t.metrics && b->derived ? b->derived : NULL;
    /* (an Arch chain has no derived rows: the analytics are EVM's) */
    bool arch = b->count > 0 && b->events[0].block->family == BP_FAMILY_ARCH;
    bool dwork = !arch && (s->der || s->nrev > 0);
    if (dwork)
        rc = bp_ch_derived_prepare(s->derived, b->chain, s->der, s->reverts, s->nrev, s->applies,
                                   s->napp, err);
    mem_follow(s); /* what it read, the set rows it made */
    /* without reverts the rows are above the checkpoint, where the recovery looks anyway */
    if (rc == 0 && (s->nrev > 0 || (s->napp > 0 && s->st.seq == 0)))
        rc = write_intent(s, b, seq, 0, err);
    if (rc == 0 && s->napp > 0)
        rc = apply_rows(s, b->chain, seq, err);
    /* an entry of events alone carries the checkpoint stored already: written all the same,
     * before the checkpoint (clickhouse_arch.h: a repeat is harmless) */
    if (rc == 0 && arch && bp_ch_arch_has_events(b))
        rc = bp_ch_arch_events(s->arch, s->http, b, err);
    if (rc == 0)
        bp_crashpoint("clickhouse.before_commit");
    if (rc == 0 && s->nrev > 0) {
        /* the reverts come before the checkpoint, so that whoever reads the tables after the
         * checkpoint sees the batch whole; the commit row is what says they are due */
        rc = write_intent(s, b, seq, 1, err);
        if (rc == 0)
            bp_crashpoint("clickhouse.before_reverts");
        if (rc == 0 && (rc = settle_blocks(s, b->chain, seq, s->refs.data, err)) != 0)
            bp_error_prefix(err, "revert of blocks %" PRIu64 "..%" PRIu64 ": ",
                            s->reverts[s->nrev - 1]->number, s->reverts[0]->number);
        if (rc == 0)
            bp_crashpoint("clickhouse.before_checkpoint");
    }
    /* the windows the batch touched, from the rows as they are now (a crash before the
     * checkpoint leaves them for the recovery to recompute) */
    if (rc == 0 && dwork) {
        bp_crashpoint("clickhouse.before_rollups");
        rc = bp_ch_derived_rollups(s->derived, seq, err);
        mem_follow(s);
    }
    if (rc == 0)
        rc = write_checkpoint(s, b->chain, &b->checkpoint, seq, err);
    if (rc != 0)
        return rc;
    s->st.seq = seq;
    s->st.cp = b->checkpoint;
    s->st.recovering = false;
    s->st.arch |= arch;
    /* retention only removes what can no longer change: no part of the batch's promise */
    if (s->der && (rc = bp_ch_derived_expire(s->derived, b->derived, err)) != 0)
        bp_warn("clickhouse %s: %s (tried again after the next batch)", s->t.where, err->msg);
    return 0;
}

static bool same_cp(const bp_checkpoint *a, const bp_checkpoint *b)
{
    return a->set == b->set && (!a->set || (a->number == b->number && !strcmp(a->hash, b->hash)));
}

/* After a failed attempt: the recovery takes back what it wrote, or finishes its reverts when
 * its checkpoint landed (a lost reply): then the batch is done. */
static int after_failure(ch_sink *s, const bp_batch *b, uint64_t seq, bool *done, bp_error *err)
{
    int rc = wait_for_orphans(s, err);
    rc = rc ? rc : recover(s, b->chain, err);
    *done = rc == 0 && s->st.seq == seq && same_cp(&s->st.cp, &b->checkpoint);
    return rc;
}

/* A refusal from a server that went down or restarted since the attempt began (a server on its
 * way down cancels the queries it is running, with one exception or another): worth another
 * attempt like a lost connection. */
static bool went_away(ch_sink *s, time_t since)
{
    bp_error e = {0};
    int rc = bp_ch_query(s->http, "SELECT uptime()", &s->ans, "uptime", &e);
    if (rc != 0)
        return bp_ch_transient(s->http, rc);
    return strtoll(s->ans.data, NULL, 10) <= (long long)(time(NULL) - since) + 1;
}

/* A batch given up (a failure another attempt would meet, such as a value that does not fit
 * its column, or wait_for_db spent) after it may have written rows: the recovery runs now
 * instead of at the next start, so that readers never see the unfinished batch's rows (an
 * output that stops may not start again soon). It waits for the batch's INSERT the failure cut
 * short (the server may commit what it got). True when the batch turns out written (a lost
 * reply: its checkpoint landed, or its commit did and the recovery finished it). */
static bool give_up(ch_sink *s, const bp_batch *b, uint64_t seq)
{
    bp_error e = {0};
    bool done = false;
    if (after_failure(s, b, seq, &done, &e) != 0) {
        bp_warn("clickhouse %s: taking back the unfinished batch %" PRIu64 ": %s (the next "
                "start's recovery takes it back)",
                s->t.where, seq, e.msg);
        s->st.recovering = true;
        return false;
    }
    bp_info("clickhouse %s: chain %s: the unfinished batch %" PRIu64 " %s", s->t.where, b->chain,
            seq, done ? "was written after all" : "was taken back");
    return done;
}

/* The TTLs brought to this run's retention and slack (once), unless a chain of this process
 * may still be refused: a TTL changed before its refusal could delete rows of its windows at
 * risk (a shorter retention, applied to the rows there), which the refusal is to keep. Then
 * after its first block (pause_check). */
static int ttl_sync(ch_sink *s, bp_error *err)
{
    if (!s->ttl_due)
        return 0;
    for (size_t i = 0; i < s->paused.n; i++)
        if (s->paused.v[i].refuse && !s->paused.v[i].passed)
            return 0;
    int rc = bp_ch_derived_sync_ttl(s->http, &s->caps, &s->t.ret, s->t.ttl_slack, s->t.where, err);
    s->ttl_due = rc != 0; /* a failed one is tried again by the next batch */
    return rc;
}

/* A chain paused longer than the slack (bp_ch_paused): a batch that reads a window at risk is
 * refused before anything of it is written, when the slack is unchanged; else (a changed
 * slack, warned at open) those windows are recomputed from what is left and the recovery
 * must see them again. Checked at every batch: a reorg can reach back later. */
static int pause_check(ch_sink *s, const bp_batch *b, bp_error *err)
{
    bp_ch_paused *g = bp_ch_pauses_find(&s->paused, b->chain);
    if (!g)
        return 0;
    char why[160] = "";
    const char *name = NULL;
    const bp_block *past = NULL;
    if (g->recompute)
        snprintf(why, sizeof(why), "the recovery of an unfinished batch reads windows at risk");
    for (size_t i = 0; !why[0] && i < b->count; i++) {
        const bp_block *blk = b->events[i].block;
        if (b->events[i].kind == BP_EVENT_REVERT && blk->number <= g->number)
            snprintf(why, sizeof(why), "a revert of block %" PRIu64 " reads windows at risk",
                     blk->number);
        else if (b->events[i].kind != BP_EVENT_APPLY || blk->family != BP_FAMILY_EVM)
            continue;
        else if (bp_ch_paused_at(g, blk->timestamp, &name))
            snprintf(why, sizeof(why), "block %" PRIu64 " (time %" PRIu64 ") falls in a %s at risk",
                     blk->number, blk->timestamp, name);
        else if (!past)
            past = blk;
    }
    if (why[0] && g->refuse)
        return bp_error_set(err, BP_EINVAL, "chain '%s': %s: %s", b->chain, why, g->msg);
    if (why[0]) { /* read again now: a recovery recomputes them too */
        g->past = 0;
        return 0;
    }
    if (!past || !g->refuse || g->passed)
        return 0;
    g->passed = true;
    bp_info("clickhouse %s: chain '%s': block %" PRIu64 " (time %" PRIu64 ") is past the windows "
            "open at block %" PRIu64 " that its pause put at risk; no batch reads them again "
            "(a reorg back to that block would be refused)",
            s->t.where, b->chain, past->number, past->timestamp, g->number);
    return ttl_sync(s, err);
}

static int write_batch(ch_sink *s, const bp_batch *b, bp_error *err)
{
    bool known = s->st.chain && strcmp(s->st.chain, b->chain) == 0 && !s->st.recovering;
    int rc = pause_check(s, b, err);
    rc = rc || known ? rc : recover(s, b->chain, err);
    rc = rc ? rc : reduce(s, b, err);
    if (rc != 0)
        return bp_error_prefix(err, "%s: ", s->t.where);
    uint64_t seq = s->st.seq + 1;
    time_t deadline = time(NULL) + s->t.wait_for_db;
    for (long delay = BP_CH_BACKOFF_FIRST_MS, attempt = 1;; attempt++) {
        bool done = false;
        time_t began = time(NULL);
        rc = s->st.recovering ? after_failure(s, b, seq, &done, err) : 0;
        if (rc == 0 && !done)
            rc = write_once(s, b, err);
        if (rc == 0 || time(NULL) > deadline)
            break;
        if (!bp_ch_transient(s->http, rc) && !(rc == BP_EDB && went_away(s, began)))
            break;
        bp_warn("clickhouse %s: %s; writing the batch again in %.2f s (attempt %ld, "
                "wait_for_db=%d s)",
                s->t.where, err->msg, (double)delay / 1000.0, attempt + 1, s->t.wait_for_db);
        bp_ch_backoff(&delay);
        s->st.recovering = true;
    }
    if (rc != 0 && s->st.recovering && give_up(s, b, seq))
        rc = 0;
    return rc ? bp_error_prefix(err, "%s: ", s->t.where) : 0;
}

static int ch_write(bp_sink *base, const bp_batch *b, bp_error *err)
{
    ch_sink *s = (ch_sink *)base;
    s->budget = b->budget;
    int rc = write_batch(s, b, err);
    mem_settle(s);
    return rc;
}

/* ---- reads ---- */

static int ch_checkpoint(bp_sink *base, const char *chain, bp_checkpoint *out, bp_error *err)
{
    ch_sink *s = (ch_sink *)base;
    *out = (bp_checkpoint){0};
    int rc = 0;
    /* a process of one chain: the others' batches are their processes' to refuse */
    for (size_t i = 0; !s->ours_known && i < s->paused.n; i++) {
        bp_ch_paused *g = &s->paused.v[i];
        if (!g->refuse || strcmp(g->chain, chain) == 0)
            continue;
        bp_warn("clickhouse %s: chain '%s': %s; not a chain of this process: the one that "
                "writes it decides",
                s->t.where, g->chain, g->msg);
        g->refuse = false;
    }
    s->ours_known = true;
    rc = ttl_sync(s, err);
    if (rc == 0)
        rc = load_state(s, chain, err);
    *out = s->st.cp;
    return rc ? bp_error_prefix(err, "%s: ", s->t.where) : 0;
}

static int ch_recent(bp_sink *base, const char *chain, bp_checkpoint *out, size_t max, size_t *n,
                     bp_error *err)
{
    ch_sink *s = (ch_sink *)base;
    *n = 0;
    int rc = load_state(s, chain, err);
    if (rc != 0 || !s->st.cp.set)
        return rc ? bp_error_prefix(err, "%s: ", s->t.where) : 0;
    /* at or below the checkpoint: the recovery at open took back anything above it */
    const char *num = s->st.arch ? "height" : "number";
    rc = sql_start(s, "SELECT ") |
         bp_buf_printf(&s->sql, "%s, lower(hex(hash)) FROM %s WHERE chain = ", num,
                       s->st.arch ? "arch_blocks" : "blocks") |
         bp_ch_quote(&s->sql, chain) |
         bp_buf_printf(&s->sql,
                       " AND %s <= %" PRIu64 " GROUP BY %s, hash HAVING sum(" BP_CH_SIGN
                       ") > 0 ORDER BY %s DESC LIMIT %zu",
                       num, s->st.cp.number, num, num, max);
    rc = rc ? oom(err) : run(s, &s->ans, "reading recent blocks", err);
    char *p = s->ans.data, *cells[2];
    while (rc == 0 && *n < max && bp_ch_tsv_row(&p, cells, 2) == 2 && cells[0] && cells[1]) {
        bp_checkpoint *c = &out[(*n)++];
        c->set = true;
        c->number = strtoull(cells[0], NULL, 10);
        snprintf(c->hash, sizeof(c->hash), "%s%s", s->st.arch ? "" : "0x", cells[1]);
    }
    return rc ? bp_error_prefix(err, "%s: ", s->t.where) : 0;
}

/* ---- open / close ---- */

static void ch_close(bp_sink *base)
{
    ch_sink *s = (ch_sink *)base;
    if (!s)
        return;
    for (size_t k = 0; k < T_MAX; k++) {
        bp_ch_enc_release(&s->tabs[k].enc);
        bp_buf_release(&s->tabs[k].insert);
    }
    bp_ch_derived_free(s->derived);
    bp_ch_arch_free(s->arch);
    bp_ch_http_free(s->http);
    bp_ch_target_release(&s->t);
    bp_buf_release(&s->sql);
    bp_buf_release(&s->ans);
    bp_buf_release(&s->json);
    bp_buf_release(&s->gz);
    bp_buf_release(&s->intents);
    bp_buf_release(&s->refs);
    bp_ch_pauses_release(&s->paused);
    free(s->st.chain);
    free(s->reverts);
    free(s->applies);
    free(s);
}

/* The tables as the server has them, their INSERT statements and encoders. */
static int prepare_tables(ch_sink *s, bp_error *err)
{
    bp_ch_table defs[T_MAX];
    for (int k = 0; k < T_RAW; k++)
        bp_ch_raw_table((bp_table)k, &s->caps, &defs[k]);
    s->ntabs = T_RAW;
    /* the derived per-block tables: taken back and recovered with the raw ones (also with
     * metrics off: the rows written while it was on leave with their blocks) */
    for (int k = 0; k < BP_CHD_ROW_TABLES; k++)
        bp_ch_derived_row_table(k, &s->caps, &defs[s->ntabs++]);
    /* the Arch tables an APPLY writes: taken back and recovered with the others; then the
     * events' two, which are not (clickhouse_arch.h) */
    s->arch_first = s->ntabs;
    for (int k = 0; k < BP_CHA_TABLES; k++)
        bp_ch_arch_table(k, &defs[s->ntabs + (size_t)k]);
    s->ntabs += BP_CHA_ROW_TABLES;
    int rc = bp_ch_load_types(s->http, s->t.database, defs,
                              s->ntabs + BP_CHA_TABLES - BP_CHA_ROW_TABLES, err);
    if (rc == 0)
        rc = bp_ch_arch_new(&s->arch, s->t.format,
                            &defs[s->ntabs + (BP_CHA_EVENTS - BP_CHA_ROW_TABLES)],
                            &defs[s->ntabs + (BP_CHA_ROLLBACKS - BP_CHA_ROW_TABLES)], err);
    for (size_t k = 0; rc == 0 && k < s->ntabs; k++) {
        ch_tab *tab = &s->tabs[k];
        tab->t = defs[k];
        tab->on = k >= s->arch_first ? true : k >= T_RAW ? s->t.metrics : s->t.tables[k];
        if (bp_buf_printf(&tab->insert, "INSERT INTO %s (", tab->t.name) |
            bp_ch_col_list(&tab->insert, tab->t.cols, tab->t.ncols) |
            bp_buf_printf(&tab->insert, ") FORMAT %s", bp_ch_format_name(s->t.format)) |
            bp_ch_enc_init(&tab->enc, s->t.format, tab->t.cols, tab->t.ncols))
            rc = oom(err);
    }
    return rc;
}

static int ch_open(bp_sink **out, const char *target, const bp_sink_opts *opts, bp_error *err)
{
    *out = NULL;
    ch_sink *s = calloc(1, sizeof(*s));
    if (!s)
        return oom(err);
    bp_buf_init(&s->sql, 0);
    bp_buf_init(&s->ans, 64 << 20);
    bp_buf_init(&s->json, 0);
    bp_buf_init(&s->gz, 0);
    bp_buf_init(&s->intents, 256 << 20);
    bp_buf_init(&s->refs, 0);
    for (size_t k = 0; k < T_MAX; k++)
        bp_buf_init(&s->tabs[k].insert, 0);
    int rc = bp_ch_target_init(&s->t, target, opts, err);
    if (rc == 0)
        rc = bp_ch_connect(&s->t, &s->http, &s->caps, err);
    if (rc == 0)
        rc = tag_writes(s, err);
    if (rc == 0)
        rc = bp_ch_migrate(s->http, &s->t, &s->caps, NULL, NULL, err);
    /* the TTLs of this writer's retention (once per change): with the slack they never take a
     * row of a window still open, so no batch has to lift them (bp_ch_derived_ttl), unless a
     * chain paused longer than the slack: checked first, against the TTLs there now; its
     * batches are checked against the windows at risk (pause_check), and the TTLs wait for
     * the ones that may be refused (ttl_sync) */
    const char *ours = opts ? opts->chains : NULL;
    s->ours_known = ours != NULL;
    s->ttl_due = s->t.metrics && s->t.ttl;
    if (rc == 0 && s->ttl_due)
        rc = bp_ch_derived_check_pause(s->http, &s->caps, &s->t.ret, s->t.ttl_slack, ours,
                                       s->t.where, &s->paused, err);
    if (rc == 0)
        rc = ttl_sync(s, err);
    if (rc == 0 && s->ttl_due)
        bp_info("clickhouse %s: the TTLs are brought to this run's retention and ttl_slack after "
                "the paused chains' first blocks (a TTL changed before a refusal could delete the "
                "rows it keeps)",
                s->t.where);
    if (rc == 0)
        rc = prepare_tables(s, err);
    if (rc == 0) {
        rc = bp_ch_derived_new(s->http, s->t.database, s->t.format, &s->caps, &s->t.ret,
                               s->t.groups, &s->derived, err);
    }
    s->base.derived = s->derived != NULL && s->t.metrics;
    s->base.derived_groups = s->t.groups;
    s->base.families = 1u << BP_FAMILY_ARCH;
    s->keep = keep_bytes(s->base.derived);
    if (rc == 0)
        rc = recover_all(s, err);
    if (rc != 0) {
        ch_close(&s->base);
        return rc;
    }
    bp_info("clickhouse %s: server %s (%s), %s inserts%s", s->t.where, s->caps.version,
            s->caps.uint256 ? "UInt256 amounts" : "no UInt256: amounts as decimal String",
            bp_ch_format_name(s->t.format), s->t.gzip ? " (gzip)" : "");
    *out = &s->base;
    return 0;
}

static int ch_migrate(const char *target, const bp_sink_opts *opts, char *report, size_t cap,
                      bp_error *err)
{
    bp_ch_target t;
    bp_ch_http *h = NULL;
    bp_ch_caps caps;
    int from = 0, to = 0;
    int rc = bp_ch_target_init(&t, target, opts, err);
    if (rc != 0)
        return rc;
    rc = bp_ch_connect(&t, &h, &caps, err);
    if (rc == 0)
        rc = bp_ch_migrate(h, &t, &caps, &from, &to, err);
    if (rc == 0 && from == to)
        snprintf(report, cap, "database \"%s\" at %s is up to date (version %d; server %s)",
                 t.database, t.srv.where, to, caps.version);
    else if (rc == 0)
        snprintf(report, cap, "database \"%s\" at %s migrated from version %d to %d (server %s)",
                 t.database, t.srv.where, from, to, caps.version);
    bp_ch_http_free(h);
    bp_ch_target_release(&t);
    return rc;
}

static const bp_sink_option g_options[] = {
    {.name = "database",
     .flag = "clickhouse-db",
     .env = "CLICKHOUSE_DB",
     .key = "clickhouse_db",
     .type = BP_SINK_OPT_STRING,
     .arg = "NAME",
     .def = BP_CH_DEFAULT_DATABASE,
     .help = "database of the tables, created if missing (the URL's path wins)"},
    BP_SINK_OPTION_WAIT_FOR_DB("30"),
    {.name = "tables",
     .flag = "clickhouse-tables",
     .env = "CLICKHOUSE_TABLES",
     .key = "clickhouse_tables",
     .type = BP_SINK_OPT_STRING,
     .arg = "LIST",
     .def = "blocks,transactions,logs",
     .help = "the raw tables written, a list of blocks (needed), transactions, logs (the "
             "derived ones: derived=)"},
    {.name = "format",
     .flag = "clickhouse-format",
     .env = "CLICKHOUSE_FORMAT",
     .key = "clickhouse_format",
     .type = BP_SINK_OPT_ENUM,
     .arg = "F",
     .def = "native",
     .choices = "native|rowbinary",
     .help = "format of the INSERT data (docs/PERFORMANCE.md compares them)"},
    {.name = "compression",
     .type = BP_SINK_OPT_ENUM,
     .arg = "C",
     .def = "none",
     .choices = "none|gzip",
     .help = "gzip the INSERT data (for a slow link; costs CPU)"},
    {.name = "timeout",
     .type = BP_SINK_OPT_INT,
     .arg = "S",
     .def = "300",
     .min = 1,
     .max = 86400,
     .help = "seconds one request may take"},
    {.name = "tls",
     .type = BP_SINK_OPT_BOOL,
     .arg = "on|off",
     .def = "off",
     .help = "HTTPS (default port 8443)"},
    {.name = "ttl",
     .type = BP_SINK_OPT_BOOL,
     .arg = "on|off",
     .def = "on",
     .help = "on: the derived tables with a retention also get a TTL where the server has it "
             "(20.10 on), so the server removes expired rows when blockpipe no longer runs: a "
             "row goes once both its window's end plus the retention and its write plus "
             "ttl_slack are past by the server's clock (docs/ARCHITECTURE.md); off: retention "
             "by partition drops in chain time only"},
    {.name = "ttl_slack",
     .type = BP_SINK_OPT_INT,
     .arg = "S",
     .def = "604800",
     .min = 1,
     .max = 3153600000,
     .help = "seconds a derived row lives at least after it was written, whatever its chain "
             "time (ttl=on): a downtime, or pause of one chain, longer than it less up to a day "
             "can take rows of the windows still open (checked per chain: a batch that would "
             "recompute them short is refused; an idle chain goes on)"},
    BP_METRICS_SINK_OPTIONS,
};

static const char *const g_aliases[] = {"ch", NULL};

const bp_sink_ops bp_sink_clickhouse_ops = {
    .scheme = "clickhouse",
    .aliases = g_aliases,
    .title = "ClickHouse",
    .usage = "clickhouse://user:pass@host:8123/db",
    .description = "ClickHouse over HTTP: CollapsingMergeTree tables (+1/-1 rows for reorgs, "
                   "read with FINAL), large Native inserts, exactly once without transactions",
    .options = g_options,
    .option_count = sizeof(g_options) / sizeof(g_options[0]),
    .open = ch_open,
    .checkpoint = ch_checkpoint,
    .recent = ch_recent,
    .write = ch_write,
    .flush = NULL,
    .close = ch_close,
    .migrate = ch_migrate,
    .open_reader = bp_ch_open_reader,
    .read = bp_ch_read,
    .close_reader = bp_ch_close_reader,
};
