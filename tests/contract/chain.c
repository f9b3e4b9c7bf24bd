/* chain.c - the contract test's synthetic chain and the normalised form of its content. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arch_rows.h"
#include "contract.h"
#include "sink_fixture.h"

bool ct_arch;

void ct_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("FAIL: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    exit(1);
}

/* ---- lines ------------------------------------------------------------------------------ */

void ct_lines_add(ct_lines *l, const char *fmt, ...)
{
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    CT_CHECK(s, "out of memory");
    vsnprintf(s, (size_t)n + 1, fmt, again);
    va_end(again);
    va_end(ap);
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->v = realloc(l->v, l->cap * sizeof(*l->v));
        CT_CHECK(l->v, "out of memory");
    }
    l->v[l->n++] = s;
}

static int cmp_line(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void ct_lines_sort(ct_lines *l)
{
    if (l->n)
        qsort(l->v, l->n, sizeof(*l->v), cmp_line);
}

void ct_lines_free(ct_lines *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* Appends "  <tag> <line>\n" while there is room. */
static void note(char *msg, size_t cap, const char *tag, const char *line)
{
    size_t len = strlen(msg);
    if (len + 1 < cap)
        snprintf(msg + len, cap - len, "  %s %s\n", tag, line);
}

bool ct_lines_equal(const ct_lines *want, const ct_lines *got, char *msg, size_t cap)
{
    size_t i = 0, j = 0, shown = 0;
    msg[0] = '\0';
    while ((i < want->n || j < got->n) && shown < 12) {
        int c = i == want->n ? 1 : j == got->n ? -1 : strcmp(want->v[i], got->v[j]);
        if (c == 0) {
            i++, j++;
            continue;
        }
        if (c < 0)
            note(msg, cap, "missing:", want->v[i++]);
        else
            note(msg, cap, "extra:  ", got->v[j++]);
        shown++;
    }
    return shown == 0;
}

static const char *or_dash(const char *s)
{
    return s ? s : "-";
}

static void render_tx(ct_lines *l, const bp_block *b, const bp_tx *t)
{
    char value[BP_U256_DEC_MAX] = "-";
    if (t->value.set)
        value[bp_u256_to_dec(&t->value.v, value)] = '\0';
    ct_lines_add(l, "T %" PRIu64 " %" PRIu64 " %s %s %s %s %s", b->number, t->transaction_index,
                 t->hash, b->hash, or_dash(t->from_address), or_dash(t->to_address), value);
    char status[24] = "-";
    if (t->receipt_status.set)
        snprintf(status, sizeof(status), "%" PRIu64, t->receipt_status.v);
    ct_lines_add(l, "R %" PRIu64 " %" PRIu64 " %s %s %" PRIu64, b->number, t->transaction_index,
                 t->hash, status, t->receipt_gas_used);
}

/* An Arch block's lines (an account a transaction lists twice is one U line). */
static void render_arch(ct_lines *l, const bp_block *b)
{
    const bp_arch_rows *r = b->arch;
    char btc[24] = "-";
    if (!r->block.no_bitcoin_height)
        snprintf(btc, sizeof(btc), "%" PRIu64, r->block.bitcoin_height);
    ct_lines_add(l, "A %" PRIu64 " %s %s %" PRIu64 " %s %" PRIu64 " %s", b->number, b->hash,
                 b->parent_hash, r->block.timestamp, btc, r->block.tx_count,
                 r->block.merkle_root[0] ? r->block.merkle_root : "-");
    for (size_t i = 0; i < r->tx_count; i++) {
        const bp_arch_tx *t = &r->txs[i];
        ct_lines_add(l, "X %" PRIu64 " %zu %s %s %s %s %d %s %s", b->number, i, t->txid, b->hash,
                     bp_arch_status_name(t->status), or_dash(t->failure), t->rolled_back,
                     t->program_ids, t->bitcoin_txids);
        for (size_t k = 0; k < t->account_count; k++) {
            size_t j = 0;
            while (j < k && strcmp(t->accounts[j], t->accounts[k]) != 0)
                j++;
            if (j == k)
                ct_lines_add(l, "U %" PRIu64 " %zu %s %s", b->number, i, t->accounts[k], t->txid);
        }
    }
}

void ct_render_block(ct_lines *l, const bp_block *b)
{
    if (b->family == BP_FAMILY_ARCH) {
        render_arch(l, b);
        return;
    }
    ct_lines_add(l, "B %" PRIu64 " %s %s %" PRIu64 " %zu", b->number, b->hash, b->parent_hash,
                 b->timestamp, b->transaction_count);
    for (size_t i = 0; i < b->tx_count; i++)
        render_tx(l, b, &b->txs[i]);
    for (size_t i = 0; i < b->log_count; i++) {
        const bp_log *g = &b->logs[i];
        char topics[4 * BP_HASH_STRLEN + 4] = "-";
        size_t off = 0;
        for (unsigned k = 0; k < g->topic_count; k++)
            off += (size_t)snprintf(topics + off, sizeof(topics) - off, "%s%s", k ? "," : "",
                                    g->topics[k]);
        ct_lines_add(l, "L %" PRIu64 " %" PRIu64 " %s %s %" PRIu64 " %s %s %s", b->number,
                     g->log_index, b->hash, g->transaction_hash, g->transaction_index, g->address,
                     g->data, topics);
    }
}

void ct_render_view(ct_lines *l, const ct_view *v)
{
    for (size_t k = 0; k < v->len; k++)
        ct_render_block(l, v->at[k]);
}

/* ---- blocks ----------------------------------------------------------------------------- */

/* splitmix64: every field of block (branch, number) comes from its seed, nothing else. */
static uint64_t mix(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* The id that tags every hash of block (branch, number) and its rows. */
static uint64_t block_id(unsigned branch, uint64_t number)
{
    return ((uint64_t)branch << 40) | number;
}

/* Transaction i: a value above 2^64 on some, contract creations, failed and pre-Byzantium
 * (status-less) receipts. */
static void gen_tx(bp_block *b, unsigned branch, size_t i, uint64_t *rng)
{
    bp_tx *t = &b->txs[i];
    uint64_t id = block_id(branch, b->number), r = mix(rng);
    fx_tx_common(b, t, i);
    t->hash = fx_hash(b, 0xe0, (id << 8) | i);
    t->from_address = fx_addr(b, 0xf0, (id << 8) | i);
    t->to_address = r % 5 == 0 ? NULL : fx_addr(b, 0x70, r % 1000);
    if (!t->to_address)
        t->receipt_contract_address = fx_addr(b, 0xcc, (id << 8) | i);
    t->value = r % 3 == 0 ? fx_qty_dec("55340232221128654853") : fx_qty((r >> 8) % 1000000007u);
    t->transaction_type = fx_opt(2);
    t->receipt_gas_used = 21000 + (r >> 20) % 50000;
    if ((r >> 40) % 7 == 0) {
        t->rare = bp_arena_calloc(b->arena, 1, sizeof(*t->rare));
        t->rare->receipt_root = fx_hash(b, 0x2f, id);
    } else
        t->receipt_status = fx_opt((r >> 44) % 4 != 0);
}

/* 0..2 logs per transaction, 0..4 topics each, empty and non-empty data. */
static void gen_logs(bp_block *b, unsigned branch, uint64_t *rng)
{
    size_t per[8], total = 0;
    for (size_t i = 0; i < b->tx_count; i++)
        total += per[i] = mix(rng) % 3;
    b->logs = bp_arena_calloc(b->arena, total ? total : 1, sizeof(bp_log));
    b->log_count = total;
    uint64_t id = block_id(branch, b->number);
    for (size_t i = 0, k = 0; i < b->tx_count; i++) {
        b->txs[i].log_offset = k;
        b->txs[i].log_count = per[i];
        for (size_t j = 0; j < per[i]; j++, k++) {
            bp_log *g = &b->logs[k];
            unsigned topics = (unsigned)(mix(rng) % 5);
            g->log_index = k;
            g->transaction_index = i;
            g->transaction_hash = b->txs[i].hash;
            g->address = fx_addr(b, 0xf4, (id << 8) | k);
            g->data = k % 2 ? fx_str(b, "0x") : fx_hash(b, 0xda, (id << 8) | k);
            g->topic_count = (uint8_t)topics;
            for (unsigned q = 0; q < topics; q++)
                g->topics[q] = fx_hash(b, 0x10 + q, (id << 8) | k);
        }
    }
}

/* 64 hex digits (an Arch hash: no 0x) of tag and id. */
static void arch_hex(bp_arch_hash out, unsigned tag, uint64_t id)
{
    snprintf(out, BP_ARCH_HEX, "%016x%016" PRIx64 "%016" PRIx64 "%016x", tag, id, id * 31 + tag,
             tag);
}

static char *dup_str(const char *s)
{
    char *d = strdup(s);
    CT_CHECK(d, "out of memory");
    return d;
}

/* Arch transaction i of block id: failed and rolled-back ones, 0..2 programs and bitcoin
 * txids, 1..3 writable accounts (some listed twice). */
static void gen_arch_tx(bp_arch_tx *t, uint64_t id, uint64_t number, size_t i, uint64_t *rng)
{
    uint64_t r = mix(rng), tid = (id << 8) | i;
    char a[BP_ARCH_HEX], b[BP_ARCH_HEX], json[2 * BP_ARCH_HEX + 16];
    arch_hex(t->txid, 0xa0, tid);
    t->block_height = number;
    t->status = r % 4 == 0 ? BP_ARCH_FAILED : BP_ARCH_PROCESSED;
    t->failure = t->status == BP_ARCH_FAILED ? dup_str("custom program error: 0x1") : NULL;
    t->rolled_back = (r >> 8) % 5 == 0;
    t->rollback_reason = t->rolled_back ? dup_str("rolled back by the node") : NULL;
    arch_hex(a, 0xc0, r % 7);
    arch_hex(b, 0xc1, tid);
    unsigned np = (unsigned)((r >> 16) % 3);
    snprintf(json, sizeof(json), np == 0 ? "[]" : np == 1 ? "[\"%s\"]" : "[\"%s\",\"%s\"]", a, b);
    t->program_ids = dup_str(json);
    t->bitcoin_txids = dup_str((r >> 20) % 3 ? "[]" : "[\"0a0b\"]");
    t->account_count = 1 + (size_t)((r >> 24) % 3);
    t->accounts = calloc(t->account_count, sizeof(*t->accounts));
    CT_CHECK(t->accounts, "out of memory");
    for (size_t k = 0; k < t->account_count; k++)
        arch_hex(t->accounts[k], 0xac, k == 2 && (r >> 28) % 2 ? tid << 2 : (tid << 2) | k);
}

static bp_block *gen_arch_block(unsigned branch, uint64_t number, const char *parent_hash)
{
    bp_block *b = bp_block_new();
    bp_arch_rows *r = calloc(1, sizeof(*r));
    CT_CHECK(b && r, "out of memory");
    uint64_t id = block_id(branch, number), rng = id;
    arch_hex(r->block.hash, 0xb0, id);
    if (parent_hash)
        snprintf(r->block.prev_hash, BP_ARCH_HEX, "%s", parent_hash);
    else
        arch_hex(r->block.prev_hash, 0, 0);
    /* every third block as a current node sends it (arch-sdk's Block): no merkle_root; every
     * fifth with a null bitcoin_block_height (arch-rust-indexer's Option): NULL columns */
    if (number % 3 != 0)
        arch_hex(r->block.merkle_root, 0x3e, id);
    r->block.height = number;
    r->block.timestamp = 1700000000 + 2 * number + branch;
    r->block.bitcoin_height = 800000 + number / 10;
    r->block.no_bitcoin_height = number % 5 == 0;
    r->block.tx_count = r->tx_count = mix(&rng) % 5;
    r->txs = calloc(r->tx_count ? r->tx_count : 1, sizeof(*r->txs));
    CT_CHECK(r->txs, "out of memory");
    for (size_t i = 0; i < r->tx_count; i++)
        gen_arch_tx(&r->txs[i], id, number, i, &rng);
    b->family = BP_FAMILY_ARCH;
    b->number = number;
    b->timestamp = r->block.timestamp;
    b->hash = fx_str(b, r->block.hash);
    b->parent_hash = fx_str(b, r->block.prev_hash);
    CT_CHECK(bp_arena_adopt_fn(b->arena, r, bp_arch_rows_bytes(r), bp_arch_rows_free) == 0,
             "out of memory");
    b->arch = r;
    return b;
}

static bp_block *gen_block(unsigned branch, uint64_t number, const char *parent_hash)
{
    if (ct_arch)
        return gen_arch_block(branch, number, parent_hash);
    bp_block *b = bp_block_new();
    CT_CHECK(b, "out of memory");
    fx_fill_header(b, 0, number);
    b->hash = fx_hash(b, 0xb0, block_id(branch, number));
    b->parent_hash = parent_hash ? fx_str(b, parent_hash) : fx_hash(b, 0, 0);
    b->timestamp = 1700000000 + 12 * number + branch;
    b->has_receipts = true;
    fx_fill_withdrawals(b);
    uint64_t rng = block_id(branch, number);
    b->tx_count = b->transaction_count = mix(&rng) % 5;
    b->txs = bp_arena_calloc(b->arena, b->tx_count ? b->tx_count : 1, sizeof(bp_tx));
    for (size_t i = 0; i < b->tx_count; i++)
        gen_tx(b, branch, i, &rng);
    gen_logs(b, branch, &rng);
    return b;
}

/* ---- world and views -------------------------------------------------------------------- */

void ct_world_free(ct_world *w)
{
    for (size_t i = 0; i < w->n; i++)
        bp_block_free(w->blocks[i]);
    free(w->blocks);
    memset(w, 0, sizeof(*w));
}

const bp_block *ct_world_find(const ct_world *w, const char *hash)
{
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->blocks[i]->hash, hash) == 0)
            return w->blocks[i];
    return NULL;
}

/* Block (branch, number) on top of parent: made once, the same object ever after. */
static const bp_block *world_block(ct_world *w, unsigned branch, uint64_t number,
                                   const char *parent_hash)
{
    bp_block *b = gen_block(branch, number, parent_hash);
    const bp_block *have = ct_world_find(w, b->hash);
    if (have) {
        CT_CHECK(strcmp(have->parent_hash, b->parent_hash) == 0,
                 "test bug: block %" PRIu64 " of branch %u made on two parents", number, branch);
        bp_block_free(b);
        return have;
    }
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 64;
        w->blocks = realloc(w->blocks, w->cap * sizeof(*w->blocks));
        CT_CHECK(w->blocks, "out of memory");
    }
    w->blocks[w->n++] = b;
    return b;
}

void ct_extend(ct_world *w, ct_view *v, unsigned branch, size_t count)
{
    CT_CHECK(v->len + count <= CT_MAX_BLOCKS, "test bug: chain longer than %d", CT_MAX_BLOCKS);
    for (size_t i = 0; i < count; i++) {
        const char *parent = v->len ? v->at[v->len - 1]->hash : NULL;
        v->at[v->len] = world_block(w, branch, v->len, parent);
        v->len++;
    }
}

void ct_fork(ct_world *w, ct_view *v, size_t keep, unsigned branch, size_t count)
{
    CT_CHECK(keep <= v->len, "test bug: fork above the tip");
    v->len = keep;
    ct_extend(w, v, branch, count);
}

void ct_view_from_tip(const ct_world *w, const char *hash, ct_view *out)
{
    const bp_block *b = ct_world_find(w, hash);
    CT_CHECK(b, "checkpoint hash %s is no block this test made", hash);
    out->len = b->number + 1;
    for (;;) {
        out->at[b->number] = b;
        if (b->number == 0)
            return;
        const bp_block *parent = ct_world_find(w, b->parent_hash);
        CT_CHECK(parent && parent->number + 1 == b->number, "test bug: block %s has no parent",
                 b->hash);
        b = parent;
    }
}

bp_checkpoint ct_view_cp(const ct_view *v)
{
    bp_checkpoint cp = {0};
    if (v->len == 0)
        return cp;
    const bp_block *top = v->at[v->len - 1];
    cp.set = true;
    cp.number = top->number;
    snprintf(cp.hash, sizeof(cp.hash), "%s", top->hash);
    return cp;
}
