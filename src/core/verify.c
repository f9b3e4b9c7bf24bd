/* verify.c - an output compared with the node, block by block, and repaired (verify.h). */
#include "core/verify.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/vrow.h"
#include "metrics/keymap.h"
#include "metrics/metrics.h"
#include "util/log.h"

#define NT BP_TABLE_COUNT
#define MAX_HASHES 4 /* block hashes a differing block's stored rows name, the node's included */
#define SHOW_MAX 66  /* characters of a value shown in a report line */

typedef struct digest {
    uint64_t d, rows;
} digest;

/* Rows kept for a row-by-row comparison: their encodings (vrow.h) and their index key. */
typedef struct rowset {
    bp_buf text;
    struct vrow_ref {
        size_t off, len;
        uint64_t key;
    } * r;
    size_t n, cap;
} rowset;

/* A differing block to repair, and the hashes its stored rows carry (each gets a REVERT). */
typedef struct fix {
    const bp_block *b;
    char hashes[MAX_HASHES][67];
    int nh;
} fix;

typedef struct vsink {
    bp_sink base;
    const bp_verify_config *vc;
    bp_verify_result *res;
    bp_sink_reader *reader;
    const char *chain;
    bp_buf row, tmp;
    uint64_t lo;           /* first block of the run being compared */
    size_t span;           /* blocks in it */
    digest *node, *stored; /* [i * NT + t], i = number - lo */
    size_t dcap;
    rowset mine, theirs; /* the node's and the output's rows of one block and table */
    fix *fixes;          /* the run's differing blocks */
    size_t nfix, fixcap;
    uint64_t *bad; /* differing blocks found so far (a reorg takes some back) */
    size_t nbad, badcap;
} vsink;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the columns that place a row ---- */

/* Position in table t's columns of its block number (first) or of its index in the block
 * (last key column: transaction_index, log_index; the number for blocks). */
static size_t key_col(bp_table t, bool last)
{
    size_t first, n = bp_table_columns(t, &first), at = 0;
    for (size_t i = 0; i < n; i++) {
        const bp_column *c = &bp_columns[first + i];
        if ((c->flags & BP_COL_KEY) && c->type == BP_COL_INT64) {
            at = i;
            if (!last)
                break;
        }
    }
    return at;
}

static size_t col_named(bp_table t, const char *name)
{
    size_t first, n = bp_table_columns(t, &first);
    for (size_t i = 0; i < n; i++)
        if (strcmp(bp_columns[first + i].name, name) == 0)
            return i;
    return n;
}

static bool parse_u64(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (!s || n == 0 || n > 20)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

/* ---- digests of a run of blocks ---- */

/* The node's rows of table t in block b. */
static size_t node_rows(const bp_block *b, bp_table t)
{
    return t == BP_TABLE_BLOCKS ? 1 : t == BP_TABLE_TRANSACTIONS ? b->tx_count : b->log_count;
}

static bp_row node_row(const char *chain, const bp_block *b, bp_table t, size_t k)
{
    bp_row r = {.chain = chain, .block = b};
    if (t == BP_TABLE_TRANSACTIONS)
        r.tx = &b->txs[k];
    else if (t == BP_TABLE_LOGS)
        r.log = &b->logs[k];
    return r;
}

static int node_digest(vsink *s, const bp_block *b, digest *d)
{
    for (int t = 0; t < NT; t++) {
        d[t] = (digest){0};
        size_t n = node_rows(b, (bp_table)t);
        for (size_t k = 0; k < n; k++) {
            bp_row r = node_row(s->chain, b, (bp_table)t, k);
            bp_buf_reset(&s->row);
            if (bp_vrow_from_model(&s->row, (bp_table)t, &r, &s->tmp) != 0)
                return BP_ENOMEM;
            d[t].d = bp_vdigest_add(d[t].d, bp_vhash(s->row.data, s->row.len));
            d[t].rows++;
        }
    }
    return 0;
}

typedef struct read_ctx {
    vsink *s;
    bp_table t;
    size_t num_col;
    rowset *keep; /* NULL: digests only */
    int rc;
} read_ctx;

static int on_stored_row(void *ctx, const bp_read_cell *cells, size_t n)
{
    read_ctx *c = ctx;
    vsink *s = c->s;
    uint64_t number;
    if (c->num_col >= n || !parse_u64(cells[c->num_col].s, cells[c->num_col].len, &number) ||
        number < s->lo || number - s->lo >= s->span)
        return 0; /* the query asked for the run's numbers only */
    bp_buf *out = c->keep ? &c->keep->text : &s->row;
    size_t off = c->keep ? out->len : 0;
    if (!c->keep)
        bp_buf_reset(out);
    if (bp_vrow_from_cells(out, c->t, cells, n) != 0)
        return c->rc = BP_ENOMEM;
    if (c->keep) {
        rowset *rs = c->keep;
        if (bp_grow((void **)&rs->r, &rs->cap, rs->n + 1, sizeof(*rs->r)) != 0)
            return c->rc = BP_ENOMEM;
        size_t ki = key_col(c->t, true);
        uint64_t key = UINT64_MAX;
        if (ki < n)
            parse_u64(cells[ki].s, cells[ki].len, &key);
        rs->r[rs->n++] = (struct vrow_ref){off, out->len - off, key};
        return 0;
    }
    digest *d = &s->stored[(number - s->lo) * NT + c->t];
    d->d = bp_vdigest_add(d->d, bp_vhash(out->data, out->len));
    d->rows++;
    return 0;
}

/* The output's rows of table t for blocks lo..hi, ordered: into the digests, or into keep. */
static int read_stored(vsink *s, bp_table t, uint64_t lo, uint64_t hi, rowset *keep, bp_error *err)
{
    bp_read_query q = {.table = t,
                       .chain = s->chain,
                       .has_min = true,
                       .has_max = true,
                       .min = lo,
                       .max = hi,
                       .ascending = true};
    read_ctx c = {.s = s, .t = t, .num_col = key_col(t, false), .keep = keep};
    double t0 = now_s();
    int rc = bp_sink_read(s->reader, &q, on_stored_row, &c, err);
    s->res->read_s += now_s() - t0;
    if (c.rc != 0)
        return bp_error_set(err, c.rc, "out of memory");
    return rc ? bp_error_prefix(err, "reading %s %" PRIu64 "..%" PRIu64 " back: ", bp_table_name(t),
                                lo, hi)
              : 0;
}

/* ---- one block row by row ---- */

static void rowset_reset(rowset *rs)
{
    bp_buf_reset(&rs->text);
    rs->n = 0;
}

static int node_rowset(vsink *s, const bp_block *b, bp_table t, rowset *rs)
{
    rowset_reset(rs);
    size_t n = node_rows(b, t), ki = key_col(t, true);
    if (bp_grow((void **)&rs->r, &rs->cap, n + 1, sizeof(*rs->r)) != 0)
        return BP_ENOMEM;
    for (size_t k = 0; k < n; k++) {
        bp_row r = node_row(s->chain, b, t, k);
        size_t off = rs->text.len;
        if (bp_vrow_from_model(&rs->text, t, &r, &s->tmp) != 0)
            return BP_ENOMEM;
        bool null;
        const char *v;
        size_t len;
        uint64_t key = UINT64_MAX;
        if (bp_vrow_cell(rs->text.data + off, rs->text.len - off, ki, &null, &v, &len) && !null)
            parse_u64(v, len, &key);
        rs->r[rs->n++] = (struct vrow_ref){off, rs->text.len - off, key};
    }
    return 0;
}

static const char *row_at(const rowset *rs, size_t i)
{
    return rs->text.data + rs->r[i].off;
}

/* A value for a report line: quoted and cut. */
static void show(char *out, size_t cap, bool null, const char *v, size_t n)
{
    if (null)
        snprintf(out, cap, "NULL");
    else if (n > SHOW_MAX)
        snprintf(out, cap, "'%.*s...'", SHOW_MAX, v);
    else
        snprintf(out, cap, "'%.*s'", (int)n, v);
}

static void report_altered(vsink *s, uint64_t number, bp_table t, const rowset *a, size_t i,
                           const rowset *b, size_t j)
{
    size_t first, n = bp_table_columns(t, &first);
    FILE *f = s->vc->report;
    const bp_column *key = &bp_columns[first + key_col(t, true)];
    fprintf(f, "block %" PRIu64 " %s: altered row %s=%" PRIu64 ":", number, bp_table_name(t),
            key->name, a->r[i].key);
    for (size_t c = 0, shown = 0; c < n; c++) {
        bool n1, n2;
        const char *v1, *v2;
        size_t l1, l2;
        bp_vrow_cell(row_at(b, j), b->r[j].len, c, &n1, &v1, &l1);
        bp_vrow_cell(row_at(a, i), a->r[i].len, c, &n2, &v2, &l2);
        if (n1 == n2 && l1 == l2 && (n1 || memcmp(v1, v2, l1) == 0))
            continue;
        char o[SHOW_MAX + 8], w[SHOW_MAX + 8];
        show(o, sizeof(o), n1, v1, l1);
        show(w, sizeof(w), n2, v2, l2);
        fprintf(f, "%s %s (output %s, node %s)", shown++ ? "," : "", bp_columns[first + c].name, o,
                w);
    }
    fputc('\n', f);
}

static void report_row(vsink *s, uint64_t number, bp_table t, const char *what, uint64_t key)
{
    size_t first;
    bp_table_columns(t, &first);
    fprintf(s->vc->report, "block %" PRIu64 " %s: %s row %s=%" PRIu64 "\n", number,
            bp_table_name(t), what, bp_columns[first + key_col(t, true)].name, key);
}

/* Another row of rs equal to row j but for the key cell (a copy stored under another key,
 * which is how a table with a primary key holds a duplicated row), or rs->n. */
static size_t copy_of(const rowset *rs, size_t j, size_t key)
{
    for (size_t k = 0; k < rs->n; k++) {
        if (k == j || rs->r[k].key == rs->r[j].key)
            continue;
        bool same = true;
        for (size_t c = 0; same; c++) {
            bool n1, n2;
            const char *v1, *v2;
            size_t l1, l2;
            bool h1 = bp_vrow_cell(row_at(rs, j), rs->r[j].len, c, &n1, &v1, &l1);
            bool h2 = bp_vrow_cell(row_at(rs, k), rs->r[k].len, c, &n2, &v2, &l2);
            if (!h1 || !h2) {
                same = h1 == h2;
                break;
            }
            same = c == key || (n1 == n2 && l1 == l2 && (n1 || memcmp(v1, v2, l1) == 0));
        }
        if (same)
            return k;
    }
    return rs->n;
}

static void duplicated(vsink *s, uint64_t number, bp_table t, uint64_t key, uint64_t orig)
{
    size_t first;
    bp_table_columns(t, &first);
    const char *name = bp_columns[first + key_col(t, true)].name;
    fprintf(s->vc->report,
            "block %" PRIu64 " %s: duplicated row %s=%" PRIu64 " (a copy of %s=%" PRIu64 ")\n",
            number, bp_table_name(t), name, key, name, orig);
}

static bool same_row(const rowset *a, size_t i, const rowset *b, size_t j)
{
    return a->r[i].len == b->r[j].len && memcmp(row_at(a, i), row_at(b, j), a->r[i].len) == 0;
}

/* Both row sets are ordered by key; the output's may hold a key twice (a table without that
 * primary key) or keys the node does not have. */
static void compare_rows(vsink *s, uint64_t number, bp_table t)
{
    const rowset *a = &s->mine, *b = &s->theirs;
    bp_verify_result *res = s->res;
    size_t i = 0, j = 0;
    while (i < a->n || j < b->n) {
        if (j < b->n && j > 0 && b->r[j].key == b->r[j - 1].key) {
            report_row(s, number, t, "duplicated", b->r[j++].key);
            res->duplicated++;
        } else if (j < b->n && (i == a->n || b->r[j].key < a->r[i].key)) {
            size_t orig = copy_of(b, j, key_col(t, true));
            if (orig < b->n) {
                duplicated(s, number, t, b->r[j].key, b->r[orig].key);
                res->duplicated++;
            } else {
                report_row(s, number, t, "extra", b->r[j].key);
                res->extra++;
            }
            j++;
        } else if (j == b->n || a->r[i].key < b->r[j].key) {
            report_row(s, number, t, "missing", a->r[i++].key);
            res->missing++;
        } else {
            if (!same_row(a, i, b, j)) {
                report_altered(s, number, t, a, i, b, j);
                res->altered++;
            }
            i++, j++;
        }
    }
}

/* The block hashes the output's rows of the block carry (blocks.hash, block_hash), each once. */
static void collect_hashes(fix *fx, bp_table t, const rowset *rs)
{
    size_t col = col_named(t, t == BP_TABLE_BLOCKS ? "hash" : "block_hash");
    for (size_t i = 0; i < rs->n; i++) {
        bool null;
        const char *v;
        size_t n;
        if (!bp_vrow_cell(row_at(rs, i), rs->r[i].len, col, &null, &v, &n) || null ||
            n >= sizeof(fx->hashes[0]))
            continue;
        bool seen = false;
        for (int k = 0; k < fx->nh && !seen; k++)
            seen = strlen(fx->hashes[k]) == n && memcmp(fx->hashes[k], v, n) == 0;
        if (!seen && fx->nh < MAX_HASHES)
            snprintf(fx->hashes[fx->nh++], sizeof(fx->hashes[0]), "%.*s", (int)n, v);
    }
}

static int diff_block(vsink *s, const bp_block *b, const digest *mine, const digest *theirs,
                      fix *fx, bp_error *err)
{
    *fx = (fix){.b = b, .nh = 1};
    snprintf(fx->hashes[0], sizeof(fx->hashes[0]), "%s", b->hash ? b->hash : "");
    for (int t = 0; t < NT; t++) {
        if (mine[t].d == theirs[t].d && mine[t].rows == theirs[t].rows)
            continue;
        rowset_reset(&s->theirs);
        if (node_rowset(s, b, (bp_table)t, &s->mine) != 0)
            return bp_error_set(err, BP_ENOMEM, "out of memory");
        int rc = read_stored(s, (bp_table)t, b->number, b->number, &s->theirs, err);
        if (rc != 0)
            return rc;
        compare_rows(s, b->number, (bp_table)t);
        collect_hashes(fx, (bp_table)t, &s->theirs);
    }
    return 0;
}

/* ---- repair ---- */

typedef struct header {
    bp_block b;
    char hash[67];
} header;

/* The batch of the run's fixes at or below the checkpoint: per block its REVERTs (one per
 * stored hash), then its APPLY. */
static void repair_batch(const fix *fixes, size_t n, const bp_checkpoint *cp, bp_event *ev,
                         header *h, size_t *count)
{
    size_t k = 0, hk = 0;
    for (size_t i = 0; i < n; i++) {
        const bp_block *b = fixes[i].b;
        if (b->number > cp->number)
            continue;
        for (int j = 0; j < fixes[i].nh; j++) {
            header *x = &h[hk++];
            memset(x, 0, sizeof(*x));
            snprintf(x->hash, sizeof(x->hash), "%s", fixes[i].hashes[j]);
            x->b.number = b->number;
            x->b.hash = x->hash;
            x->b.parent_hash = b->parent_hash;
            x->b.timestamp = b->timestamp;
            ev[k++] = (bp_event){BP_EVENT_REVERT, &x->b};
        }
        ev[k++] = (bp_event){BP_EVENT_APPLY, b};
    }
    *count = k;
}

static int write_repair(vsink *s, const bp_batch *in, bp_event *ev, size_t n,
                        const bp_checkpoint *cp, bp_error *err)
{
    bp_sink *out = s->vc->repair;
    bp_batch batch = {.chain = in->chain,
                      .chain_id = in->chain_id,
                      .events = ev,
                      .count = n,
                      .checkpoint = *cp,
                      .fetched = in->fetched,
                      .rewrite = true};
    if (out->derived && s->vc->metrics) {
        const bp_derived *d = NULL;
        int rc = bp_metrics_compute(s->vc->metrics, &batch, false, &d, err);
        if (rc != 0)
            return rc;
        batch.derived = d;
    }
    int rc = out->ops->write(out, &batch, err);
    if (s->vc->metrics)
        bp_metrics_written(s->vc->metrics);
    return rc ? bp_error_prefix(err, "repair: output '%s': ", out->url) : 0;
}

/* Compares block b with the output again after its repair. */
static int recheck(vsink *s, const bp_block *b, bool *equal, bp_error *err)
{
    digest *mine = &s->node[(b->number - s->lo) * NT],
           *theirs = &s->stored[(b->number - s->lo) * NT];
    *equal = true;
    for (int t = 0; t < NT; t++) {
        theirs[t] = (digest){0};
        int rc = read_stored(s, (bp_table)t, b->number, b->number, NULL, err);
        if (rc != 0)
            return rc;
        *equal &= mine[t].d == theirs[t].d && mine[t].rows == theirs[t].rows;
    }
    return 0;
}

static int repair(vsink *s, const bp_batch *in, bp_error *err)
{
    bp_sink *out = s->vc->repair;
    bp_checkpoint cp;
    int rc = out->ops->checkpoint(out, in->chain, &cp, err);
    if (rc != 0)
        return bp_error_prefix(err, "repair: output '%s': checkpoint: ", out->url);
    size_t events = 0;
    for (size_t i = 0; i < s->nfix; i++)
        events += (size_t)s->fixes[i].nh + 1;
    bp_event *ev = calloc(events, sizeof(*ev));
    header *h = calloc(events, sizeof(*h));
    size_t n = 0;
    if (!ev || !h) {
        rc = bp_error_set(err, BP_ENOMEM, "out of memory");
        goto out;
    }
    if (cp.set) /* nothing to rewrite in an output that holds no block of the chain */
        repair_batch(s->fixes, s->nfix, &cp, ev, h, &n);
    if (n > 0 && (rc = write_repair(s, in, ev, n, &cp, err)) != 0)
        goto out;
    for (size_t i = 0; i < s->nfix; i++) {
        const bp_block *b = s->fixes[i].b;
        bool equal = false;
        if (!cp.set || b->number > cp.number) {
            fprintf(s->vc->report,
                    "block %" PRIu64 ": not repaired: above the output's checkpoint (%s%" PRIu64
                    "); a backfill writes it\n",
                    b->number, cp.set ? "" : "none, ", cp.set ? cp.number : 0);
        } else if ((rc = recheck(s, b, &equal, err)) != 0) {
            goto out;
        } else if (!equal) {
            fprintf(s->vc->report, "block %" PRIu64 ": still differs after the repair\n",
                    b->number);
        }
        if (equal) {
            s->res->repaired++;
            fprintf(s->vc->report, "block %" PRIu64 ": repaired\n", b->number);
        } else {
            s->res->unrepaired++;
        }
    }
out:
    free(ev);
    free(h);
    return rc;
}

/* ---- the comparing output ---- */

static int compare_run(vsink *s, const bp_batch *batch, const bp_event *ev, size_t n, bp_error *err)
{
    s->lo = ev[0].block->number;
    s->span = n;
    size_t cap = s->dcap;
    digest *stored = NULL;
    if (bp_grow((void **)&s->node, &s->dcap, n * NT, sizeof(digest)) != 0 ||
        (s->dcap != cap && !(stored = realloc(s->stored, s->dcap * sizeof(digest)))))
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    if (stored)
        s->stored = stored;
    memset(s->stored, 0, n * NT * sizeof(digest));
    for (size_t i = 0; i < n; i++)
        if (node_digest(s, ev[i].block, &s->node[i * NT]) != 0)
            return bp_error_set(err, BP_ENOMEM, "out of memory");
    for (int t = 0; t < NT; t++) {
        int rc = read_stored(s, (bp_table)t, s->lo, s->lo + n - 1, NULL, err);
        if (rc != 0)
            return rc;
    }
    s->nfix = 0;
    for (size_t i = 0; i < n; i++) {
        const digest *a = &s->node[i * NT], *b = &s->stored[i * NT];
        s->res->blocks++;
        for (int t = 0; t < NT; t++)
            s->res->rows += a[t].rows;
        if (memcmp(a, b, NT * sizeof(digest)) == 0)
            continue;
        if (bp_grow((void **)&s->fixes, &s->fixcap, s->nfix + 1, sizeof(fix)) != 0 ||
            bp_grow((void **)&s->bad, &s->badcap, s->nbad + 1, sizeof(uint64_t)) != 0)
            return bp_error_set(err, BP_ENOMEM, "out of memory");
        int rc = diff_block(s, ev[i].block, a, b, &s->fixes[s->nfix++], err);
        if (rc != 0)
            return rc;
        s->bad[s->nbad++] = ev[i].block->number;
    }
    fflush(s->vc->report);
    return s->nfix && s->vc->repair ? repair(s, batch, err) : 0;
}

/* The node reorganized blocks of the range while they were compared: what was found for
 * them no longer counts; the new blocks come next and are compared in their turn. */
static void forget_from(vsink *s, uint64_t number)
{
    size_t k = 0;
    for (size_t i = 0; i < s->nbad; i++)
        if (s->bad[i] < number)
            s->bad[k++] = s->bad[i];
    s->nbad = k;
    bp_warn("verify: block %" PRIu64 " left the chain while the range was compared; its "
            "replacement is compared instead",
            number);
}

static int vsink_write(bp_sink *base, const bp_batch *batch, bp_error *err)
{
    vsink *s = (vsink *)base;
    s->chain = batch->chain;
    for (size_t i = 0; i < batch->count;) {
        const bp_event *ev = &batch->events[i];
        if (ev->kind == BP_EVENT_REVERT) {
            forget_from(s, ev->block->number);
            i++;
            continue;
        }
        size_t j = i + 1; /* a run of consecutive APPLYs */
        while (j < batch->count && batch->events[j].kind == BP_EVENT_APPLY &&
               batch->events[j].block->number == batch->events[j - 1].block->number + 1)
            j++;
        double t0 = now_s();
        int rc = compare_run(s, batch, ev, j - i, err);
        s->res->compare_s += now_s() - t0;
        if (rc != 0)
            return rc;
        i = j;
    }
    return 0;
}

static int vsink_checkpoint(bp_sink *base, const char *chain, bp_checkpoint *out, bp_error *err)
{
    (void)base, (void)chain, (void)err;
    memset(out, 0, sizeof(*out)); /* the whole range is wanted */
    return 0;
}

/* --repair writes the output as the chain's writer does: it takes the chain's writer lock there
 * first (the pipeline waits for it per --lock-wait), so that a repair never races a running
 * `run` or backfill of the chain (docs/ARCHITECTURE.md "Chains over several hosts"). */
static int vsink_claim(bp_sink *base, const char *chain, char *holder, size_t cap, bp_error *err)
{
    bp_sink *out = ((vsink *)base)->vc->repair;
    return out && out->ops->claim ? out->ops->claim(out, chain, holder, cap, err) : 0;
}

static void vsink_unclaim(bp_sink *base, const char *chain)
{
    bp_sink *out = ((vsink *)base)->vc->repair;
    if (out && out->ops->unclaim)
        out->ops->unclaim(out, chain);
}

static void vsink_close(bp_sink *base)
{
    (void)base; /* released by bp_verify_run */
}

static const bp_sink_ops g_vsink_ops = {
    .scheme = "verify",
    .title = "verify",
    .checkpoint = vsink_checkpoint,
    .write = vsink_write,
    .claim = vsink_claim,
    .unclaim = vsink_unclaim,
    .close = vsink_close,
};

static void vsink_release(vsink *s)
{
    bp_sink_reader_close(s->reader);
    bp_buf_release(&s->row);
    bp_buf_release(&s->tmp);
    bp_buf_release(&s->mine.text);
    bp_buf_release(&s->theirs.text);
    free(s->mine.r);
    free(s->theirs.r);
    free(s->node);
    free(s->stored);
    free(s->fixes);
    free(s->bad);
}

int bp_verify_run(const bp_pipeline_config *pc, const bp_verify_config *vc,
                  volatile sig_atomic_t *stop, bp_verify_result *res, bp_error *err)
{
    vsink s = {.base = {.ops = &g_vsink_ops, .url = "verify"}, .vc = vc, .res = res};
    memset(res, 0, sizeof(*res));
    bp_buf_init(&s.row, 0);
    bp_buf_init(&s.tmp, 0);
    bp_buf_init(&s.mine.text, 0);
    bp_buf_init(&s.theirs.text, 0);
    int rc = bp_sink_reader_open(vc->url, vc->settings, &s.reader, err);
    if (rc == 0) {
        bp_pipeline_config c = *pc;
        bp_sink *sinks[1] = {&s.base};
        c.sinks = sinks;
        c.sink_count = 1;
        c.backfill = true;
        c.job = "verify"; /* its summary is not a backfill's */
        c.metrics = NULL;
        c.batch_committed = NULL;
        if (vc->repair) {
            s.base.url = vc->repair->url; /* the lock's messages name the output */
            c.lock_hint = "; verify --repair writes the chain as its writer does: stop that "
                          "process first, or verify without --repair";
        }
        rc = bp_pipeline_run(&c, stop, err);
    }
    res->blocks_differ = s.nbad;
    vsink_release(&s);
    return rc;
}
