/* push.c - the push hub: a ring of committed block events, messages read back from the
 * output, per-client queues, filters and cursors (see push.h). */
#include "api/clock.h"
#include "api/push.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/rows.h"
#include "api/status.h"
#include "arch/arch_rows.h"
#include "arch/arch_tables.h"
#include "blockpipe/derived.h"
#include "util/buf.h"
#include "util/hex.h"
#include "util/log.h"

#define CACHE_MAX 256       /* built events kept (messages shared by every client) */
#define STALL_SHARE_MS 1000 /* a full share drops a client whose queue stood still this long */
#define STARVED_MS 20       /* how often a full share is looked at again */
#define BUILD_PER_ROUND 16  /* events built before clients are filled again */
#define EVENTS_MAX 128      /* /api/realtime/events entries */
#define LOG_ORD (1ull << 32)
#define ORD_END UINT64_MAX /* built.end of a piece that reaches the end of its event */
#define REOPEN_MS 1000

/* EV_TX_REVERT / EV_TX_APPLY: an Arch transaction rolled back / re-applied (hash: its txid). */
enum ev_kind { EV_APPLY = 1, EV_REVERT, EV_REORG, EV_TX_REVERT, EV_TX_APPLY };

#define ROLLED_MAX 4096 /* Arch txids kept as announced rolled back (the oldest forgotten) */

/* One committed block event, as the writer thread copied it (fields in this order: no
 * padding between them). */
typedef struct ring_ev {
    uint64_t seq;
    enum ev_kind kind;
    uint32_t depth; /* EV_REORG: blocks reverted */
    uint64_t number, timestamp;
    uint64_t batch;  /* the batch it came in */
    int64_t unix_ms; /* committed */
    bool arch;       /* an Arch chain's: its rows are in the arch_* tables */
    bool resync;     /* EV_TX_*: found by the re-read after a resubscription, not an event */
    char hash[67], parent[67];
} ring_ev;
/* --api-push-ring's help and docs/PERFORMANCE.md give the ring's size in bytes from this */
_Static_assert(sizeof(ring_ev) <= 184, "a ring event outgrew its documented 184 bytes");

struct bp_push_msg {
    atomic_uint refs;
    atomic_size_t *held; /* the hub's count of the message bytes alive */
    unsigned topic;
    uint64_t seq, ord;
    bool revert;
    char cursor[BP_PUSH_CURSOR_MAX];
    char from[43], to[43], address[43], topic0[67]; /* filter keys ("" when none) */
    bool has_value;
    bp_u256 value;
    size_t len;
    char json[];
};

/* The messages of one event, in ordinal order: all of them, or a piece (see piece_bytes). */
typedef struct built {
    uint64_t seq;
    unsigned parts;   /* topics built */
    uint64_t lo, end; /* the ordinals [lo, end) it has of the event; end ORD_END: to its end */
    bp_push_msg **msgs;
    size_t n, cap;
    size_t bytes; /* what its messages and their array take (msg_bytes) */
} built;

struct bp_push_client {
    bp_push_hub *hub;
    void *conn;
    bool sse;
    bp_push_filter f;
    uint64_t pos_seq; /* the next event to look at */
    uint64_t pos_ord; /* and the first ordinal of it still to deliver */
    bp_push_msg **q;
    size_t q_head, q_len, q_cap, q_bytes;
    int64_t stalled_since; /* queue non-empty and nothing taken since (monotonic ms), 0: no */
    const char *drop;
    char drop_buf[160];
    bool flagged;
    bool stream_started; /* streams: told where its key's entries start, and getting them */
    bp_push_client *next, *prev, *ready_next;
};

typedef struct log_entry {
    const char *type;
    int64_t unix_ms;
    uint64_t number;
    char text[200];
    /* a reorg: the blocks reverted (number is the lowest) and those applied after them in
     * the same batch (the new branch, lowest first) */
    uint64_t reverted_hi, applied_lo, applied_hi;
    uint32_t reverted, applied;
} log_entry;

struct bp_push_hub {
    bp_push_config cfg;
    uint32_t epoch;
    char *read_url, *chain;

    /* The ring and what the writer thread counts: under ring_lock only (the writer never
     * takes `lock`). */
    pthread_mutex_t ring_lock;
    ring_ev *ring;
    uint64_t first_seq, next_seq; /* the ring holds [first_seq, next_seq) */
    uint64_t batches, events, reorgs, reverted, depth_sum;
    uint64_t depth_le[BP_PUSH_DEPTH_LE];
    log_entry log[EVENTS_MAX];
    size_t log_n, log_next;
    uint64_t log_counts[8];
    int64_t log_updated;
    char seen_chain[64];           /* the batches' chain name */
    bool minutes;                  /* batches with derived rows touched [minute_lo, minute_hi] */
    uint64_t minute_lo, minute_hi; /* since the last minute messages */
    /* Arch: the transactions announced (or applied) rolled back and not re-applied since, so
     * that a resync (which restates every transaction of the blocks it re-read) is announced
     * only where it changes something. */
    bp_arch_hash *rolled;
    size_t rolled_n;

    /* Clients, the built messages, the service thread's side: under lock. */
    pthread_mutex_t lock;
    pthread_cond_t cv;
    bp_push_client *clients, *ready;
    size_t nclients, nws, nsse;
    built cache[CACHE_MAX];
    size_t cache_bytes; /* the built events' messages (their shared bytes, counted once) */
    /* Every message alive (the cache's, the queues', those being sent; each counted once) and
     * the queues' index arrays: what the push side holds beyond the ring, kept within
     * cfg.memory_bytes (see build_needs). Atomic: messages are freed by the server's thread. */
    atomic_size_t held, index_bytes;
    uint64_t messages, bytes, dropped, refused;
    bool work, stop;
    bool starved; /* events wait to be built while the push share is full */
    void (*wake)(void *ctx);
    void *wake_ctx;
    void (*stream_wake)(void *ctx); /* the streams follower's (api/streams.c) */
    void *stream_wake_ctx;
    pthread_t thread;
    bool started;

    /* The hub thread's own. */
    bp_sink_reader *reader;
    int64_t reader_retry;
    bp_buf json;
    char build_chain[64]; /* the chain of the event being built ("" unknown) */
    int64_t next_status;
    bp_stats *snap, *prev_snap;
};

/* ---- messages ----------------------------------------------------------------------------- */

/* What a message takes: its struct (filter keys, cursor) and its JSON. */
static size_t msg_bytes(size_t json_len)
{
    return sizeof(bp_push_msg) + json_len + 1;
}

static bp_push_msg *msg_new(bp_push_hub *h, const bp_buf *json, unsigned topic, uint64_t seq,
                            uint64_t ord)
{
    bp_push_msg *m = calloc(1, msg_bytes(json->len));
    if (!m)
        return NULL;
    atomic_init(&m->refs, 1);
    m->held = &h->held;
    atomic_fetch_add(m->held, msg_bytes(json->len));
    m->topic = topic;
    m->seq = seq;
    m->ord = ord;
    m->len = json->len;
    memcpy(m->json, json->data, json->len);
    return m;
}

void bp_push_msg_release(bp_push_msg *m)
{
    if (m && atomic_fetch_sub(&m->refs, 1) == 1) {
        atomic_fetch_sub(m->held, msg_bytes(m->len));
        free(m);
    }
}

const char *bp_push_msg_json(const bp_push_msg *m, size_t *len)
{
    *len = m->len;
    return m->json;
}

const char *bp_push_msg_topic(const bp_push_msg *m)
{
    return bp_push_topic_name(m->topic);
}

const char *bp_push_msg_cursor(const bp_push_msg *m)
{
    return m->cursor;
}

static void built_clear(built *b)
{
    for (size_t i = 0; i < b->n; i++)
        bp_push_msg_release(b->msgs[i]);
    free(b->msgs);
    memset(b, 0, sizeof(*b));
}

static int built_add(built *b, bp_push_msg *m)
{
    if (!m)
        return BP_ENOMEM;
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 16;
        bp_push_msg **p = realloc(b->msgs, cap * sizeof(*p));
        if (!p) {
            bp_push_msg_release(m);
            return BP_ENOMEM;
        }
        b->bytes += (cap - b->cap) * sizeof(*p);
        b->msgs = p;
        b->cap = cap;
    }
    b->msgs[b->n++] = m;
    b->bytes += msg_bytes(m->len);
    return 0;
}

static int cmp_ord(const void *a, const void *b)
{
    uint64_t x = (*(bp_push_msg *const *)a)->ord, y = (*(bp_push_msg *const *)b)->ord;
    return x < y ? -1 : x > y;
}

/* ---- the writer's hook ----------------------------------------------------------------------- */

static ring_ev *slot(bp_push_hub *h, uint64_t seq)
{
    return &h->ring[seq % h->cfg.ring];
}

static void log_add(bp_push_hub *h, int type, const char *name, uint64_t number, const char *fmt,
                    ...) __attribute__((format(printf, 5, 6)));
static void log_add(bp_push_hub *h, int type, const char *name, uint64_t number, const char *fmt,
                    ...)
{
    log_entry *e = &h->log[h->log_next];
    h->log_next = (h->log_next + 1) % EVENTS_MAX;
    h->log_n += h->log_n < EVENTS_MAX;
    e->type = name;
    e->unix_ms = h->log_updated = bp_api_unix_ms();
    e->number = number;
    e->reverted = e->applied = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->text, sizeof(e->text), fmt, ap);
    va_end(ap);
    h->log_counts[type]++;
}

enum { L_BLOCK, L_REORG, L_GAP, L_EP_DOWN, L_EP_UP, L_SOCK_DOWN, L_SOCK_UP, L_COUNT };
static const char *const g_log_names[L_COUNT] = {
    "new_block", "reorg", "gap_filled", "endpoint_down", "endpoint_up", "socket_down", "socket_up"};

static void push_ev(bp_push_hub *h, const ring_ev *e)
{
    ring_ev *s = slot(h, h->next_seq);
    *s = *e;
    s->seq = h->next_seq++;
    if (h->next_seq - h->first_seq > h->cfg.ring)
        h->first_seq = h->next_seq - h->cfg.ring;
    h->events++;
}

static void header(ring_ev *e, const bp_block *b)
{
    e->number = b->number;
    e->timestamp = b->timestamp;
    snprintf(e->hash, sizeof(e->hash), "%s", b->hash ? b->hash : "");
    snprintf(e->parent, sizeof(e->parent), "%s", b->parent_hash ? b->parent_hash : "");
}

static void count_reorg(bp_push_hub *h, uint32_t depth)
{
    h->reorgs++;
    h->depth_sum += depth;
    for (int i = 0; i < BP_PUSH_DEPTH_LE; i++)
        if (depth <= (1u << i))
            h->depth_le[i]++;
}

/* ---- Arch transactions rolled back / re-applied (under ring_lock) ---- */

static size_t rolled_find(const bp_push_hub *h, const char *txid)
{
    for (size_t i = h->rolled_n; i-- > 0;)
        if (memcmp(h->rolled[i], txid, sizeof(bp_arch_hash)) == 0)
            return i;
    return SIZE_MAX;
}

/* Marks txid rolled back (true) or not; whether that changed what was known. */
static bool rolled_set(bp_push_hub *h, const char *txid, bool back)
{
    size_t i = rolled_find(h, txid);
    if (!back || i != SIZE_MAX) {
        if (!back && i != SIZE_MAX)
            memmove(h->rolled[i], h->rolled[i + 1], (h->rolled_n-- - i - 1) * sizeof(*h->rolled));
        return back != (i != SIZE_MAX);
    }
    if (!h->rolled && !(h->rolled = malloc(ROLLED_MAX * sizeof(*h->rolled))))
        return true; /* announced anyway: a repeated revert is harmless, a missed one not */
    if (h->rolled_n == ROLLED_MAX)
        memmove(h->rolled[0], h->rolled[1], --h->rolled_n * sizeof(*h->rolled));
    memcpy(h->rolled[h->rolled_n++], txid, sizeof(bp_arch_hash));
    return true;
}

/* The rolledback_transactions / reapplied_transactions of an Arch events entry: one ring event
 * per transaction. A received event announces each transaction it lists; a resync (the node's
 * rollback_status read again after a resubscription, restating every transaction of the blocks
 * it read) only those whose state it changes. */
static void arch_events(bp_push_hub *h, const bp_arch_rows *rows, uint64_t batch, int64_t now)
{
    for (size_t i = 0; rows && i < rows->event_count; i++) {
        const bp_arch_event *ev = &rows->events[i];
        bool back = ev->topic == BP_ARCH_T_ROLLEDBACK;
        if (!back && ev->topic != BP_ARCH_T_REAPPLIED)
            continue;
        for (size_t k = 0; k < ev->hash_count; k++) {
            if (!rolled_set(h, ev->hashes[k], back) && ev->resync)
                continue;
            ring_ev e = {.batch = batch,
                         .unix_ms = now,
                         .kind = back ? EV_TX_REVERT : EV_TX_APPLY,
                         .number = ev->has_height ? ev->block_height : 0,
                         .arch = true,
                         .resync = ev->resync};
            memcpy(e.hash, ev->hashes[k], sizeof(bp_arch_hash));
            push_ev(h, &e);
        }
    }
}

/* An applied Arch block's transactions that were rolled back when fetched. */
static void arch_block(bp_push_hub *h, const bp_block *b)
{
    for (size_t i = 0; b->arch && i < b->arch->tx_count; i++)
        if (b->arch->txs[i].rolled_back)
            rolled_set(h, b->arch->txs[i].txid, true);
}

void bp_push_batch(void *hub, const bp_batch *b)
{
    bp_push_hub *h = hub;
    int64_t now = bp_api_unix_ms();
    pthread_mutex_lock(&h->ring_lock);
    uint64_t batch = ++h->batches;
    if (b->chain)
        snprintf(h->seen_chain, sizeof(h->seen_chain), "%s", b->chain);
    /* The minutes it rewrote (b->derived is the outputs' own, not set here: an output
     * without derived tables has no rows to read back, which is no error). */
    for (size_t i = 0; i < b->count; i++) {
        if (b->events[i].kind == BP_EVENT_ARCH_EVENTS ||
            b->events[i].block->family == BP_FAMILY_ARCH) /* no derived tables */
            continue;
        uint64_t m = b->events[i].block->timestamp / 60 * 60;
        h->minute_lo = h->minutes && h->minute_lo < m ? h->minute_lo : m;
        h->minute_hi = h->minutes && h->minute_hi > m ? h->minute_hi : m;
        h->minutes = true;
    }
    log_entry *reorg = NULL; /* the last reorg's entry: the applies after it extend it */
    size_t since = 0;        /* entries logged after it (the log is a ring) */
    for (size_t i = 0; i < b->count;) {
        const bp_event *ev = &b->events[i];
        ring_ev e = {.batch = batch, .unix_ms = now};
        if (ev->kind == BP_EVENT_ARCH_EVENTS) { /* no block: its rollbacks and re-applies */
            arch_events(h, ev->block->arch, batch, now);
            i++;
            continue;
        }
        if (ev->kind == BP_EVENT_APPLY) {
            e.kind = EV_APPLY;
            e.arch = ev->block->family == BP_FAMILY_ARCH;
            if (e.arch)
                arch_block(h, ev->block);
            header(&e, ev->block);
            push_ev(h, &e);
            if (reorg && since++ < EVENTS_MAX - 1) {
                reorg->applied_lo = reorg->applied ? reorg->applied_lo : e.number;
                reorg->applied_hi = e.number;
                reorg->applied++;
            }
            log_add(h, L_BLOCK, g_log_names[L_BLOCK], e.number, "block %" PRIu64 " %s", e.number,
                    e.hash);
            i++;
            continue;
        }
        /* A run of REVERTs (highest first): one reorg event, then each revert. */
        size_t end = i;
        while (end < b->count && b->events[end].kind == BP_EVENT_REVERT)
            end++;
        e.kind = EV_REORG;
        e.depth = (uint32_t)(end - i);
        header(&e, b->events[end - 1].block); /* the lowest reverted block */
        push_ev(h, &e);
        count_reorg(h, e.depth);
        h->reverted += e.depth;
        log_add(h, L_REORG, g_log_names[L_REORG], e.number,
                "reorg: %u block(s) reverted from %" PRIu64 " down to %" PRIu64, e.depth,
                b->events[i].block->number, e.number);
        reorg = &h->log[(h->log_next + EVENTS_MAX - 1) % EVENTS_MAX];
        reorg->reverted = e.depth;
        reorg->reverted_hi = b->events[i].block->number;
        since = 0;
        for (; i < end; i++) {
            ring_ev r = {.batch = batch, .unix_ms = now, .kind = EV_REVERT};
            header(&r, b->events[i].block);
            push_ev(h, &r);
        }
    }
    pthread_mutex_unlock(&h->ring_lock);
    pthread_mutex_lock(&h->lock);
    h->work = true;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->lock);
}

uint64_t bp_push_commits(bp_push_hub *h)
{
    pthread_mutex_lock(&h->ring_lock);
    uint64_t n = h->batches;
    pthread_mutex_unlock(&h->ring_lock);
    return n;
}

/* ---- building an event's messages (the hub thread, no lock held)
 * ----------------------------------- */

typedef struct build_ctx {
    bp_push_hub *h;
    const ring_ev *e;
    built *b;
    bp_table table; /* an EVM table's rows */
    int atable;     /* an Arch table's rows (enum bp_arch_table) */
    int rc;
    size_t rows;
    size_t cap;    /* the piece is full once its messages take this much (0: no limit) */
    bool full;     /* it is: the read was stopped after the message of ordinal last */
    uint64_t last; /* the ordinal of the last message built */
} build_ctx;

/* An event's messages are built a piece at a time, each piece at most a quarter of the push
 * share (and one message): a client gets a piece, and the next is built when a client needs
 * it, as the share allows. Built whole, a 50,000-tx block's messages were about 120 MiB on
 * top of the share, whatever --api-push-memory said (docs/API.md "Huge blocks"). A block's
 * messages of the default share's 768 KiB are one piece: 200-tx blocks take about 0.7 MB. */
static size_t piece_bytes(const bp_push_hub *h)
{
    return h->cfg.memory_bytes / 4;
}

/* {"topic":..,"type":..,"cursor":..,"block_number":..,"block_hash":..  (left open) */
static void envelope(bp_push_hub *h, bp_jsonw *w, unsigned topic, const char *type,
                     const ring_ev *e, uint64_t ord, char *cursor)
{
    snprintf(cursor, BP_PUSH_CURSOR_MAX, "%08x-%" PRIu64 "-%" PRIu64, h->epoch, e->seq, ord);
    bp_jsonw_init(w, &h->json, BP_JSONW_ESC_U);
    bp_buf_reset(&h->json);
    bp_jsonw_begin_object(w);
    bp_jsonw_key(w, "topic");
    bp_jsonw_str(w, bp_push_topic_name(topic));
    bp_jsonw_key(w, "type");
    bp_jsonw_str(w, type);
    bp_jsonw_key(w, "cursor");
    bp_jsonw_str(w, cursor);
    bp_jsonw_key(w, "block_number");
    bp_jsonw_u64(w, e->number);
    bp_jsonw_key(w, "block_hash");
    bp_jsonw_str(w, e->hash);
    bp_jsonw_key(w, "committed_ms"); /* unix ms when every output had it: clients can tell */
    bp_jsonw_i64(w, e->unix_ms);     /* how long it took to reach them */
}

static bp_push_msg *finish(bp_push_hub *h, bp_jsonw *w, unsigned topic, const ring_ev *e,
                           uint64_t ord, const char *cursor)
{
    bp_jsonw_end_object(w);
    if (bp_jsonw_finish(w) != 0)
        return NULL;
    bp_push_msg *m = msg_new(h, &h->json, topic, e->seq, ord);
    if (m)
        snprintf(m->cursor, sizeof(m->cursor), "%s", cursor);
    return m;
}

static void key_copy(char *dst, size_t cap, const bp_read_cell *c)
{
    size_t n = c->s && c->len < cap ? c->len : 0;
    memcpy(dst, c->s ? c->s : "", n);
    dst[n] = '\0';
}

static uint64_t cell_u64(const bp_read_cell *c)
{
    return c->s ? strtoull(c->s, NULL, 10) : 0;
}

/* Adds a row's message to the piece; stops the read once the piece is full. */
static int add_row(build_ctx *c, bp_push_msg *m, uint64_t ord)
{
    c->rows++;
    c->rc = built_add(c->b, m);
    c->last = ord;
    if (c->rc == 0 && c->cap && c->b->bytes >= c->cap) {
        c->full = true;
        return BP_ESTOPPED;
    }
    return c->rc;
}

static int build_row(void *ctx, const bp_read_cell *cells, size_t n)
{
    build_ctx *c = ctx;
    bp_push_hub *h = c->h;
    bp_table t = c->table;
    unsigned topic = t == BP_TABLE_BLOCKS         ? BP_TOPIC_BLOCKS
                     : t == BP_TABLE_TRANSACTIONS ? BP_TOPIC_TRANSACTIONS
                                                  : BP_TOPIC_LOGS;
    uint64_t ord = 0;
    if (t == BP_TABLE_TRANSACTIONS)
        ord = 1 + cell_u64(bp_api_cell(t, cells, n, "transaction_index"));
    else if (t == BP_TABLE_LOGS)
        ord = LOG_ORD + cell_u64(bp_api_cell(t, cells, n, "log_index"));
    bp_jsonw w;
    char cursor[BP_PUSH_CURSOR_MAX];
    envelope(h, &w, topic, "apply", c->e, ord, cursor);
    bp_jsonw_key(&w, "data");
    bp_api_row_json(&w, t, cells, n);
    bp_push_msg *m = finish(h, &w, topic, c->e, ord, cursor);
    if (m && t == BP_TABLE_TRANSACTIONS) {
        key_copy(m->from, sizeof(m->from), bp_api_cell(t, cells, n, "from_address"));
        key_copy(m->to, sizeof(m->to), bp_api_cell(t, cells, n, "to_address"));
        const bp_read_cell *v = bp_api_cell(t, cells, n, "value");
        m->has_value = v->s && bp_u256_from_dec(v->s, v->len, &m->value) == 0;
    } else if (m && t == BP_TABLE_LOGS) {
        key_copy(m->address, sizeof(m->address), bp_api_cell(t, cells, n, "address"));
        key_copy(m->topic0, sizeof(m->topic0), bp_api_cell(t, cells, n, "topic0"));
    }
    return add_row(c, m, ord);
}

static bp_sink_reader *hub_reader(bp_push_hub *h)
{
    if (h->reader || !h->read_url || bp_api_mono_ms() < h->reader_retry)
        return h->reader;
    bp_error err = {0};
    if (bp_sink_reader_open(h->read_url, h->cfg.settings, &h->reader, &err) != 0) {
        bp_warn("api push: %s (retrying)", err.msg);
        h->reader_retry = bp_api_mono_ms() + REOPEN_MS;
    }
    return h->reader;
}

/* A block the output no longer has (reverted since: its revert follows in the ring), or no
 * output to read: the header the writer saw. */
static int header_only(bp_push_hub *h, const ring_ev *e, built *b)
{
    bp_jsonw w;
    char cursor[BP_PUSH_CURSOR_MAX];
    envelope(h, &w, BP_TOPIC_BLOCKS, "apply", e, 0, cursor);
    bp_jsonw_key(&w, "data");
    bp_jsonw_begin_object(&w);
    bp_jsonw_key(&w, "chain");
    bp_jsonw_str(&w, h->build_chain[0] ? h->build_chain : NULL);
    bp_jsonw_key(&w, "number");
    bp_jsonw_u64(&w, e->number);
    bp_jsonw_key(&w, "hash");
    bp_jsonw_str(&w, e->hash);
    bp_jsonw_key(&w, "parent_hash");
    bp_jsonw_str(&w, e->parent);
    bp_jsonw_key(&w, "timestamp");
    bp_jsonw_u64(&w, e->timestamp);
    bp_jsonw_end_object(&w);
    bp_jsonw_key(&w, "partial");
    bp_jsonw_bool(&w, true);
    return built_add(b, finish(h, &w, BP_TOPIC_BLOCKS, e, 0, cursor));
}

/* An applied Arch block's arch_blocks row (topic blocks) or one of its arch_transactions rows
 * (topic transactions, ordinal 1 + tx_index), as /api/arch/... answers them. */
static int arch_row(void *ctx, const bp_read_cell *cells, size_t n)
{
    build_ctx *c = ctx;
    bool tx = c->atable == BP_ARCH_TRANSACTIONS;
    unsigned topic = tx ? BP_TOPIC_TRANSACTIONS : BP_TOPIC_BLOCKS;
    uint64_t ord = tx ? 1 + cell_u64(bp_api_acell(c->atable, cells, n, "tx_index")) : 0;
    bp_jsonw w;
    char cursor[BP_PUSH_CURSOR_MAX];
    envelope(c->h, &w, topic, "apply", c->e, ord, cursor);
    bp_jsonw_key(&w, "chain_type");
    bp_jsonw_str(&w, "arch");
    bp_jsonw_key(&w, "data");
    bp_jsonw_begin_object(&w);
    bp_api_arow_members(&w, c->atable, cells, n);
    bp_jsonw_end_object(&w);
    return add_row(c, finish(c->h, &w, topic, c->e, ord, cursor), ord);
}

/* The tables an applied block's messages are read from, in ordinal order. */
typedef struct part {
    unsigned topic;
    bp_table t;         /* an EVM block's */
    int arch;           /* an Arch block's: its enum bp_arch_table + 1 (bp_read_query.arch) */
    uint64_t base, top; /* its messages' ordinals: [base, top) */
} part;

static const part g_evm_parts[] = {{BP_TOPIC_BLOCKS, BP_TABLE_BLOCKS, 0, 0, 1},
                                   {BP_TOPIC_TRANSACTIONS, BP_TABLE_TRANSACTIONS, 0, 1, LOG_ORD},
                                   {BP_TOPIC_LOGS, BP_TABLE_LOGS, 0, LOG_ORD, ORD_END}};
static const part g_arch_parts[] = {
    {BP_TOPIC_BLOCKS, BP_TABLE_BLOCKS, BP_ARCH_BLOCKS + 1, 0, 1},
    {BP_TOPIC_TRANSACTIONS, BP_TABLE_BLOCKS, BP_ARCH_TRANSACTIONS + 1, 1, ORD_END}};

/* The piece of applied block e's messages from ordinal `from` on (the block's row, its
 * transactions in index order, then an EVM block's logs: ordinal order), ending once it holds
 * piece_bytes (b->end says where the next starts). EVM and Arch blocks alike: a piece starts
 * with the row after the last one of the piece before (keyset: block number, index). */
static int build_apply(bp_push_hub *h, const ring_ev *e, unsigned parts, uint64_t from, built *b)
{
    const part *tables = e->arch ? g_arch_parts : g_evm_parts;
    size_t count = e->arch ? sizeof(g_arch_parts) / sizeof(*g_arch_parts)
                           : sizeof(g_evm_parts) / sizeof(*g_evm_parts);
    b->lo = from;
    b->end = ORD_END;
    bp_sink_reader *r = hub_reader(h);
    if (!r)
        return parts & BP_TOPIC_BLOCKS && from == 0 ? header_only(h, e, b) : 0;
    for (size_t i = 0; i < count; i++) {
        const part *p = &tables[i];
        if (!(parts & p->topic) || from >= p->top)
            continue;
        bool blocks = p->topic == BP_TOPIC_BLOCKS;
        bp_read_query q = {.table = p->t,
                           .arch = p->arch,
                           .chain = h->build_chain[0] ? h->build_chain : NULL,
                           .has_min = true,
                           .has_max = true,
                           .min = e->number,
                           .max = e->number,
                           .ascending = true};
        if (blocks)
            q.hash = e->hash;
        else
            q.block_hash = e->hash;
        if (from > p->base) { /* the rows from index from - base on */
            q.has_after = true;
            q.after_number = e->number;
            q.after_index = from - p->base - 1;
        }
        build_ctx c = {
            .h = h, .e = e, .b = b, .table = p->t, .atable = p->arch - 1, .cap = piece_bytes(h)};
        bp_error err = {0};
        int rc = bp_sink_read(r, &q, p->arch ? arch_row : build_row, &c, &err);
        if (c.full) {
            b->end = c.last + 1;
            return 0;
        }
        if (rc != 0 && c.rc == 0) {
            bp_warn("api push: reading %sblock %" PRIu64 ": %s", p->arch ? "Arch " : "", e->number,
                    err.msg);
            bp_sink_reader_close(h->reader); /* opened again for the next event */
            h->reader = NULL;
            return rc;
        }
        if (rc != 0)
            return rc;
        if (blocks && c.rows == 0 && header_only(h, e, b) != 0)
            return BP_ENOMEM;
    }
    return 0;
}

static int build_revert(bp_push_hub *h, const ring_ev *e, unsigned parts, built *b)
{
    for (unsigned i = 0; i < 3; i++) {
        unsigned topic = 1u << i;
        if (!(parts & topic))
            continue;
        bp_jsonw w;
        char cursor[BP_PUSH_CURSOR_MAX];
        envelope(h, &w, topic, "revert", e, i, cursor);
        bp_jsonw_key(&w, "parent_hash");
        bp_jsonw_str(&w, e->parent);
        bp_push_msg *m = finish(h, &w, topic, e, i, cursor);
        if (m)
            m->revert = true;
        if (built_add(b, m) != 0)
            return BP_ENOMEM;
    }
    return 0;
}

/* A reorg message lists the blocks it reverted and those applied after them in the same
 * batch (the ring events after it). */
static int build_reorg(bp_push_hub *h, const ring_ev *e, built *b)
{
    bp_jsonw w;
    char cursor[BP_PUSH_CURSOR_MAX];
    envelope(h, &w, BP_TOPIC_REORGS, "reorg", e, 0, cursor);
    bp_jsonw_key(&w, "depth");
    bp_jsonw_u64(&w, e->depth);
    bp_jsonw_key(&w, "common_ancestor");
    bp_jsonw_u64(&w, e->number ? e->number - 1 : 0);
    const char *lists[2] = {"reverted", "applied"};
    pthread_mutex_lock(&h->ring_lock);
    for (int k = 0; k < 2; k++) {
        bp_jsonw_key(&w, lists[k]);
        bp_jsonw_begin_array(&w);
        for (uint64_t s = e->seq + 1; s < h->next_seq && s >= h->first_seq; s++) {
            const ring_ev *x = slot(h, s);
            if (x->batch != e->batch || x->kind == EV_REORG)
                break;
            if ((x->kind != EV_REVERT && x->kind != EV_APPLY) || (x->kind == EV_REVERT) != (k == 0))
                continue;
            bp_jsonw_begin_object(&w);
            bp_jsonw_key(&w, "number");
            bp_jsonw_u64(&w, x->number);
            bp_jsonw_key(&w, "hash");
            bp_jsonw_str(&w, x->hash);
            bp_jsonw_end_object(&w);
        }
        bp_jsonw_end_array(&w);
    }
    pthread_mutex_unlock(&h->ring_lock);
    return built_add(b, finish(h, &w, BP_TOPIC_REORGS, e, 0, cursor));
}

/* ---- Arch transactions rolled back / re-applied ---- */

/* A transaction's row for its rollback / re-apply message. */
typedef struct tx_ctx {
    bp_jsonw *w;
    bool found;
    uint64_t height, index;
    char block_hash[BP_ARCH_HEX];
} tx_ctx;

static int tx_row(void *ctx, const bp_read_cell *cells, size_t n)
{
    tx_ctx *t = ctx;
    const int a = BP_ARCH_TRANSACTIONS;
    t->found = true;
    t->height = cell_u64(bp_api_acell(a, cells, n, "block_height"));
    t->index = cell_u64(bp_api_acell(a, cells, n, "tx_index"));
    key_copy(t->block_hash, sizeof(t->block_hash), bp_api_acell(a, cells, n, "block_hash"));
    bp_jsonw_begin_object(t->w);
    bp_api_arow_members(t->w, a, cells, n);
    bp_jsonw_end_object(t->w);
    return 1; /* the newest one (a txid is in one block of the canonical chain) */
}

/* {"topic":"transactions","type":"revert"|"apply","cursor":..,"block_number":..,
 *  "block_hash":..,"txid":..,"tx_index":..,"reason":"rollback"|"reapply","resync":bool,
 *  "data":{the row now}}: an Arch transaction rolled back (revert: drop it, or mark it as
 * its row says) or re-applied (apply). The envelope's block is the row's (read back); a
 * transaction the output no longer has (its block reverted since) has no data. */
static int build_arch_tx(bp_push_hub *h, const ring_ev *e, built *b)
{
    bool revert = e->kind == EV_TX_REVERT;
    bp_buf row;
    bp_jsonw rw;
    tx_ctx t = {.w = &rw};
    bp_buf_init(&row, 0);
    bp_jsonw_init(&rw, &row, BP_JSONW_ESC_U);
    bp_sink_reader *r = hub_reader(h);
    if (r) {
        bp_read_query q = {.arch = BP_ARCH_TRANSACTIONS + 1,
                           .chain = h->build_chain[0] ? h->build_chain : NULL,
                           .hash = e->hash,
                           .limit = 1};
        bp_error err = {0};
        int rc = bp_sink_read(r, &q, tx_row, &t, &err);
        if (rc != 0 && rc != 1) {
            bp_warn("api push: reading Arch transaction %s: %s", e->hash, err.msg);
            bp_sink_reader_close(h->reader);
            h->reader = NULL;
            bp_buf_release(&row);
            return rc;
        }
    }
    ring_ev at = *e; /* the envelope names the transaction's block */
    at.number = t.found ? t.height : e->number;
    snprintf(at.hash, sizeof(at.hash), "%s", t.found ? t.block_hash : "");
    bp_jsonw w;
    char cursor[BP_PUSH_CURSOR_MAX];
    envelope(h, &w, BP_TOPIC_TRANSACTIONS, revert ? "revert" : "apply", &at, 0, cursor);
    bp_jsonw_key(&w, "chain_type");
    bp_jsonw_str(&w, "arch");
    bp_jsonw_key(&w, "txid");
    bp_jsonw_str(&w, e->hash);
    bp_jsonw_key(&w, "tx_index");
    if (t.found)
        bp_jsonw_u64(&w, t.index);
    else
        bp_jsonw_null(&w);
    bp_jsonw_key(&w, "reason");
    bp_jsonw_str(&w, revert ? "rollback" : "reapply");
    bp_jsonw_key(&w, "resync");
    bp_jsonw_bool(&w, e->resync);
    if (t.found && bp_jsonw_finish(&rw) == 0) {
        bp_jsonw_key(&w, "data");
        bp_jsonw_raw(&w, row.data, row.len);
    }
    bp_buf_release(&row);
    bp_push_msg *m = finish(h, &w, BP_TOPIC_TRANSACTIONS, &at, 0, cursor);
    if (m)
        m->revert = revert;
    return built_add(b, m);
}

/* Builds the messages of event e for the topics in parts into b (b->parts says what is in):
 * an applied block's (EVM or Arch) from ordinal `from` on, a piece of them; any other event's
 * whole. */
static int build(bp_push_hub *h, const ring_ev *e, unsigned parts, uint64_t from, built *b)
{
    int rc = 0;
    b->lo = 0;
    b->end = ORD_END;
    if (e->kind == EV_TX_REVERT || e->kind == EV_TX_APPLY)
        rc = parts & BP_TOPIC_TRANSACTIONS ? build_arch_tx(h, e, b) : 0;
    else if (e->kind == EV_APPLY)
        rc = build_apply(h, e, parts & (BP_TOPIC_BLOCKS | BP_TOPIC_TRANSACTIONS | BP_TOPIC_LOGS),
                         from, b);
    else if (e->kind == EV_REVERT)
        rc = build_revert(h, e, parts, b);
    else if (parts & BP_TOPIC_REORGS)
        rc = build_reorg(h, e, b);
    if (rc == 0) {
        if (b->n > 1) /* none (an empty block on transactions alone): msgs is NULL */
            qsort(b->msgs, b->n, sizeof(*b->msgs), cmp_ord);
        b->seq = e->seq;
        b->parts = parts;
    }
    return rc;
}

/* ---- clients (under lock) ------------------------------------------------------------------- */

#define EVENT_TOPICS (BP_TOPIC_BLOCKS | BP_TOPIC_TRANSACTIONS | BP_TOPIC_LOGS | BP_TOPIC_REORGS)

static void cache_drop(bp_push_hub *h, built *b)
{
    h->cache_bytes -= b->bytes;
    built_clear(b);
}

/* The built messages of event seq that have ordinal ord, for the topics needed; NULL: none. */
static built *cached(bp_push_hub *h, uint64_t seq, uint64_t ord, unsigned needed)
{
    built *b = &h->cache[seq % CACHE_MAX];
    return b->parts && b->seq == seq && (b->parts & needed) == needed && b->lo <= ord &&
                   ord < b->end
               ? b
               : NULL;
}

static void flag(bp_push_hub *h, bp_push_client *c)
{
    if (c->flagged)
        return;
    c->flagged = true;
    c->ready_next = h->ready;
    h->ready = c;
}

static void drop(bp_push_hub *h, bp_push_client *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void drop(bp_push_hub *h, bp_push_client *c, const char *fmt, ...)
{
    if (c->drop)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->drop_buf, sizeof(c->drop_buf), fmt, ap);
    va_end(ap);
    c->drop = c->drop_buf;
    h->dropped++;
    flag(h, c);
}

static bool same(const char *a, const char *b)
{
    return a[0] && strcmp(a, b) == 0;
}

static bool matches(const bp_push_client *c, const bp_push_msg *m)
{
    const bp_push_filter *f = &c->f;
    if (!(f->topics & m->topic))
        return false;
    if (m->revert)
        return true; /* a client drops what it has of the block, whatever its filters */
    if (m->topic == BP_TOPIC_TRANSACTIONS) {
        if (f->has_address && !same(m->from, f->address) && !same(m->to, f->address))
            return false;
        if (f->has_min_value && (!m->has_value || bp_u256_cmp(&m->value, &f->min_value) < 0))
            return false;
    } else if (m->topic == BP_TOPIC_LOGS) {
        if (f->has_address && !same(m->address, f->address))
            return false;
        if (f->has_topic0 && !same(m->topic0, f->topic0))
            return false;
    }
    return true;
}

static int enqueue(bp_push_hub *h, bp_push_client *c, bp_push_msg *m)
{
    if (c->q_len == c->q_cap) {
        size_t cap = c->q_cap ? 2 * c->q_cap : 64;
        bp_push_msg **q = malloc(cap * sizeof(*q));
        if (!q)
            return BP_ENOMEM;
        atomic_fetch_add(&h->index_bytes, (cap - c->q_cap) * sizeof(*q));
        for (size_t i = 0; i < c->q_len; i++)
            q[i] = c->q[(c->q_head + i) % c->q_cap];
        free(c->q);
        c->q = q;
        c->q_head = 0;
        c->q_cap = cap;
    }
    atomic_fetch_add(&m->refs, 1);
    c->q[(c->q_head + c->q_len++) % c->q_cap] = m;
    c->q_bytes += m->len;
    if (!c->stalled_since)
        c->stalled_since = bp_api_mono_ms();
    h->messages++;
    h->bytes += m->len;
    flag(h, c);
    return 0;
}

/* Queues the client's messages from its position on, while its queue has room (at least
 * one message always fits an empty queue). */
static void fill(bp_push_hub *h, bp_push_client *c, uint64_t next)
{
    unsigned needed = c->f.topics & EVENT_TOPICS;
    if (!needed) {
        c->pos_seq = next;
        return;
    }
    while (!c->drop && c->q_bytes < h->cfg.queue_bytes && c->pos_seq < next) {
        built *b = cached(h, c->pos_seq, c->pos_ord, needed);
        if (!b)
            return; /* built in the next round */
        for (size_t i = 0; i < b->n; i++) {
            bp_push_msg *m = b->msgs[i];
            if (m->ord < c->pos_ord || !matches(c, m))
                continue;
            if (c->q_len && c->q_bytes + m->len > h->cfg.queue_bytes) {
                c->pos_ord = m->ord;
                return;
            }
            if (enqueue(h, c, m) != 0) {
                drop(h, c, "out of memory");
                return;
            }
        }
        if (b->end != ORD_END) { /* a piece: the next one is built in the next round */
            c->pos_ord = b->end;
            continue;
        }
        c->pos_seq++;
        c->pos_ord = 0;
    }
}

/* Parses "EPOCH-SEQ-ORD" against the ring [first, next): the position after it. */
static int parse_since(bp_push_hub *h, const char *since, uint64_t first, uint64_t next,
                       uint64_t *seq, uint64_t *ord, bp_error *err)
{
    unsigned epoch;
    unsigned long long s, o;
    char tail;
    if (sscanf(since, "%8x-%llu-%llu%c", &epoch, &s, &o, &tail) != 3) {
        char shown[300];
        bp_api_printable(since, shown, sizeof(shown));
        return bp_error_set(err, BP_EINVAL,
                            "since: '%s' is not valid: expected the cursor of a message", shown);
    }
    if (epoch != h->epoch)
        return bp_error_set(err, BP_EINVAL,
                            "since: cursor %s is from another run of the server (this one is "
                            "%08x): subscribe without it and read the gap from /api/blocks",
                            since, h->epoch);
    if (s < first || s >= next)
        return bp_error_set(err, BP_EINVAL,
                            "since: cursor %s is too old: the server keeps its last %zu events "
                            "(%" PRIu64 "..%" PRIu64 "); subscribe without it and read the gap "
                            "from /api/blocks",
                            since, h->cfg.ring, first, next ? next - 1 : 0);
    *seq = (uint64_t)s;
    *ord = (uint64_t)o + 1;
    return 0;
}

static void ring_bounds(bp_push_hub *h, uint64_t *first, uint64_t *next)
{
    pthread_mutex_lock(&h->ring_lock);
    *first = h->first_seq;
    *next = h->next_seq;
    pthread_mutex_unlock(&h->ring_lock);
}

static int position(bp_push_hub *h, bp_push_client *c, const char *since, bp_error *err)
{
    uint64_t first, next, seq = 0, ord = 0;
    ring_bounds(h, &first, &next);
    if (since && since[0]) {
        int rc = parse_since(h, since, first, next, &seq, &ord, err);
        if (rc != 0)
            return rc;
        c->pos_seq = seq;
        c->pos_ord = ord;
    } else {
        c->pos_seq = next;
        c->pos_ord = 0;
    }
    return 0;
}

static void count_client(bp_push_hub *h, bp_push_client *c, int d)
{
    h->nclients += (size_t)d;
    if (c->sse)
        h->nsse += (size_t)d;
    else
        h->nws += (size_t)d;
}

/* A streams subscription that is new or follows another key starts again: the follower is
 * woken to find its key's position (the same one again goes on: nothing is missed). Under
 * lock; was: the filter before (NULL: a new client). */
static void stream_changed(bp_push_hub *h, bp_push_client *c, const bp_push_filter *was)
{
    bool same = was && (was->topics & BP_TOPIC_STREAMS) && strcmp(was->key, c->f.key) == 0;
    if (!(c->f.topics & BP_TOPIC_STREAMS) || !same)
        c->stream_started = false;
    if ((c->f.topics & BP_TOPIC_STREAMS) && !c->stream_started && h->stream_wake)
        h->stream_wake(h->stream_wake_ctx);
}

bp_push_client *bp_push_attach(bp_push_hub *h, const bp_push_filter *f, const char *since, bool sse,
                               void *conn, bp_error *err)
{
    bp_push_client *c = calloc(1, sizeof(*c));
    if (!c) {
        bp_error_set(err, BP_ENOMEM, "out of memory");
        return NULL;
    }
    c->hub = h;
    c->conn = conn;
    c->sse = sse;
    c->f = *f;
    pthread_mutex_lock(&h->lock);
    int rc = 0;
    if (h->nclients >= h->cfg.max_clients) {
        h->refused++;
        rc = bp_error_set(err, BP_ERATELIMIT, "too many push clients (at most %zu)",
                          h->cfg.max_clients);
    }
    if (rc == 0)
        rc = position(h, c, since, err);
    if (rc == 0) {
        c->next = h->clients;
        if (h->clients)
            h->clients->prev = c;
        h->clients = c;
        count_client(h, c, 1);
        h->work = true;
        pthread_cond_signal(&h->cv);
        stream_changed(h, c, NULL);
    }
    pthread_mutex_unlock(&h->lock);
    if (rc != 0) {
        free(c);
        return NULL;
    }
    return c;
}

static void clear_queue(bp_push_client *c)
{
    for (size_t i = 0; i < c->q_len; i++)
        bp_push_msg_release(c->q[(c->q_head + i) % c->q_cap]);
    c->q_len = c->q_bytes = 0;
    c->q_head = 0;
    c->stalled_since = 0;
}

int bp_push_update(bp_push_client *c, const bp_push_filter *f, const char *since, bp_error *err)
{
    bp_push_hub *h = c->hub;
    pthread_mutex_lock(&h->lock);
    int rc = 0;
    if (since && since[0]) {
        bp_push_client tmp = *c;
        rc = position(h, &tmp, since, err);
        if (rc == 0) {
            clear_queue(c); /* what was queued is replayed from the cursor */
            c->pos_seq = tmp.pos_seq;
            c->pos_ord = tmp.pos_ord;
        }
    }
    if (rc == 0) {
        bp_push_filter was = c->f;
        c->f = *f;
        h->work = true;
        pthread_cond_signal(&h->cv);
        stream_changed(h, c, since && since[0] ? NULL : &was); /* a replay emptied the queue */
    }
    pthread_mutex_unlock(&h->lock);
    return rc;
}

bp_push_msg *bp_push_next(bp_push_client *c, bool *more)
{
    bp_push_hub *h = c->hub;
    pthread_mutex_lock(&h->lock);
    bp_push_msg *m = NULL;
    if (c->q_len) {
        m = c->q[c->q_head];
        c->q_head = (c->q_head + 1) % c->q_cap;
        c->q_len--;
        c->q_bytes -= m->len;
        c->stalled_since = c->q_len ? bp_api_mono_ms() : 0;
        /* Room again: the hub refills it (a client replaying or behind). */
        if (c->q_bytes <= h->cfg.queue_bytes / 2 && !h->work) {
            h->work = true;
            pthread_cond_signal(&h->cv);
        }
    }
    if (more)
        *more = c->q_len > 0;
    pthread_mutex_unlock(&h->lock);
    return m;
}

const char *bp_push_dropped(bp_push_client *c)
{
    pthread_mutex_lock(&c->hub->lock);
    const char *d = c->drop;
    pthread_mutex_unlock(&c->hub->lock);
    return d;
}

void bp_push_detach(bp_push_client *c)
{
    if (!c)
        return;
    bp_push_hub *h = c->hub;
    pthread_mutex_lock(&h->lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        h->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    for (bp_push_client **p = &h->ready; *p; p = &(*p)->ready_next)
        if (*p == c) {
            *p = c->ready_next;
            break;
        }
    count_client(h, c, -1);
    clear_queue(c);
    atomic_fetch_sub(&h->index_bytes, c->q_cap * sizeof(*c->q));
    h->work = true; /* what only it still needed is freed (trim) */
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->lock);
    free(c->q);
    free(c);
}

void bp_push_set_wake(bp_push_hub *h, void (*wake)(void *ctx), void *ctx)
{
    pthread_mutex_lock(&h->lock);
    h->wake = wake;
    h->wake_ctx = ctx;
    pthread_mutex_unlock(&h->lock);
}

void bp_push_ready(bp_push_hub *h, void (*fn)(void *conn, void *ctx), void *ctx)
{
    pthread_mutex_lock(&h->lock);
    bp_push_client *c = h->ready;
    h->ready = NULL;
    while (c) {
        bp_push_client *next = c->ready_next;
        c->flagged = false;
        c->ready_next = NULL;
        fn(c->conn, ctx);
        c = next;
    }
    pthread_mutex_unlock(&h->lock);
}

/* ---- the hub thread ------------------------------------------------------------------------ */

typedef struct need {
    uint64_t seq;
    unsigned parts;
    uint64_t ord; /* built from this ordinal on: the lowest a client waits for */
} need;

/* The events some client waits for that are not built (for its topics), at most max. */
static size_t find_needs(bp_push_hub *h, uint64_t first, uint64_t next, need *out, size_t max)
{
    size_t n = 0;
    for (bp_push_client *c = h->clients; c; c = c->next) {
        unsigned parts = c->f.topics & EVENT_TOPICS;
        if (c->drop || !parts)
            continue;
        if (c->pos_seq < first) {
            drop(h, c, "too slow: fell more than %zu events behind", h->cfg.ring);
            continue;
        }
        if (c->q_bytes >= h->cfg.queue_bytes)
            continue;
        for (uint64_t s = c->pos_seq; s < next && s < c->pos_seq + BUILD_PER_ROUND; s++) {
            uint64_t ord = s == c->pos_seq ? c->pos_ord : 0;
            if (cached(h, s, ord, parts))
                continue;
            /* A piece of an event ahead of this client is another client's, which is in it:
             * this one has the event built when it gets there. */
            const built *at = &h->cache[s % CACHE_MAX];
            if (s != c->pos_seq && at->parts && at->seq == s && at->lo > 0)
                continue;
            size_t k = 0;
            while (k < n && out[k].seq != s)
                k++;
            if (k < n) {
                out[k].parts |= parts;
                out[k].ord = ord < out[k].ord ? ord : out[k].ord;
            } else if (n < max) {
                out[n++] = (need){s, parts, ord};
            }
        }
    }
    return n;
}

/* The messages alone: the queues' index arrays (8 bytes a message queued, kept at the most a
 * queue held) are shown with them but cannot be freed by waiting. */
static bool share_full(bp_push_hub *h)
{
    return atomic_load(&h->held) >= h->cfg.memory_bytes;
}

/* Builds the needed events without the lock (database reads), then installs them. Nothing is
 * built while the messages alive fill the push share (cfg.memory_bytes): what the push side
 * holds stays within it, and one event's messages more (those being built). Returns false when
 * the share stopped it. */
static bool build_needs(bp_push_hub *h, const need *needs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (share_full(h))
            return false;
        ring_ev e;
        bool have = false;
        pthread_mutex_lock(&h->ring_lock);
        if (needs[i].seq >= h->first_seq && needs[i].seq < h->next_seq) {
            e = *slot(h, needs[i].seq);
            have = true;
        }
        snprintf(h->build_chain, sizeof(h->build_chain), "%s", h->chain ? h->chain : h->seen_chain);
        pthread_mutex_unlock(&h->ring_lock);
        if (!have)
            continue;
        built b = {0};
        /* What the slot already had is built again with it (one read per part). */
        pthread_mutex_lock(&h->lock);
        built *old = &h->cache[e.seq % CACHE_MAX];
        unsigned parts = needs[i].parts | (old->parts && old->seq == e.seq ? old->parts : 0);
        pthread_mutex_unlock(&h->lock);
        if (build(h, &e, parts, needs[i].ord, &b) != 0) {
            built_clear(&b);
            continue; /* tried again in the next round */
        }
        pthread_mutex_lock(&h->lock);
        cache_drop(h, old);
        *old = b;
        h->cache_bytes += b.bytes;
        pthread_mutex_unlock(&h->lock);
    }
    return true;
}

/* After the clients were filled (under lock): the events every client has passed are freed
 * (all of them when no client follows the event topics), then the oldest while the cache holds
 * more than half the push share. A client that needs an event freed here has it built again
 * from the output, as a client that reconnects with a cursor does. */
static void trim(bp_push_hub *h)
{
    uint64_t low = UINT64_MAX;
    for (bp_push_client *c = h->clients; c; c = c->next)
        if (!c->drop && (c->f.topics & EVENT_TOPICS) && c->pos_seq < low)
            low = c->pos_seq;
    built *oldest;
    do {
        oldest = NULL;
        size_t kept = 0;
        for (size_t i = 0; i < CACHE_MAX; i++) {
            built *b = &h->cache[i];
            if (!b->parts)
                continue;
            if (b->seq < low) {
                cache_drop(h, b);
                continue;
            }
            kept++;
            if (!oldest || b->seq < oldest->seq)
                oldest = b;
        }
        /* The newest stays even when it alone is more: the clients at the head read it, and
         * one block bigger than the cache's half would otherwise be built again for every
         * queue's worth of it. */
        if (kept > 1 && h->cache_bytes > h->cfg.memory_bytes / 2)
            cache_drop(h, oldest);
        else
            oldest = NULL;
    } while (oldest);
}

/* The share is full and events wait to be built: the queue that stood still the longest (at
 * least STALL_SHARE_MS) is what keeps it full, and its client is dropped, so that one client
 * that stops reading does not hold up the others until --api-push-stall. */
static void drop_stalled(bp_push_hub *h, int64_t now)
{
    bp_push_client *worst = NULL;
    for (bp_push_client *c = h->clients; c; c = c->next)
        if (!c->drop && c->q_len && c->stalled_since && now - c->stalled_since >= STALL_SHARE_MS &&
            (!worst || c->stalled_since < worst->stalled_since))
            worst = c;
    if (worst)
        drop(h, worst,
             "too slow: the push memory (--api-push-memory %.1f MiB) is full and its %zu queued "
             "messages (%zu bytes) were not read for %.1f s",
             (double)h->cfg.memory_bytes / 1048576.0, worst->q_len, worst->q_bytes,
             (double)(now - worst->stalled_since) / 1000.0);
}

static void status_messages(bp_push_hub *h)
{
    unsigned want = 0;
    for (bp_push_client *c = h->clients; c; c = c->next)
        want |= c->f.topics & (BP_TOPIC_STATUS | BP_TOPIC_METRICS);
    if (!want || !h->cfg.stats)
        return;
    bp_push_stats ps;
    pthread_mutex_unlock(&h->lock);
    bp_push_stats_read(h, &ps);
    bp_push_msg *msgs[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++) {
        unsigned topic = k ? BP_TOPIC_METRICS : BP_TOPIC_STATUS;
        if (!(want & topic))
            continue;
        bp_jsonw w;
        bp_buf_reset(&h->json);
        bp_jsonw_init(&w, &h->json, BP_JSONW_ESC_U);
        bp_jsonw_begin_object(&w);
        bp_jsonw_key(&w, "topic");
        bp_jsonw_str(&w, bp_push_topic_name(topic));
        bp_jsonw_key(&w, "type");
        bp_jsonw_str(&w, bp_push_topic_name(topic));
        bp_jsonw_key(&w, "data");
        bp_jsonw_begin_object(&w);
        if (k)
            bp_api_live_members(&w, h->snap, &ps);
        else
            bp_api_sync_members(&w, h->snap, h->cfg.ready_lag);
        bp_jsonw_end_object(&w);
        bp_jsonw_end_object(&w);
        if (bp_jsonw_finish(&w) == 0)
            msgs[k] = msg_new(h, &h->json, topic, 0, 0);
    }
    pthread_mutex_lock(&h->lock);
    for (bp_push_client *c = h->clients; c; c = c->next)
        for (int k = 0; k < 2; k++)
            if (msgs[k] && !c->drop && (c->f.topics & msgs[k]->topic) &&
                (!c->q_len || c->q_bytes + msgs[k]->len <= h->cfg.queue_bytes))
                enqueue(h, c, msgs[k]); /* a full queue skips one: the next comes soon */
    bp_push_msg_release(msgs[0]);
    bp_push_msg_release(msgs[1]);
}

/* ---- minute metrics: the chain_metrics_1m rows the batches rewrote ---- */

#define MINUTES_MAX 60 /* rows per tick: a backfill rewrites many; clients want the newest */

typedef struct minute_ctx {
    bp_push_hub *h;
    bp_push_msg *msgs[MINUTES_MAX];
    size_t n;
} minute_ctx;

static int minute_row(void *ctx, const bp_read_cell *cells, size_t n)
{
    minute_ctx *m = ctx;
    bp_jsonw w;
    bp_buf_reset(&m->h->json);
    bp_jsonw_init(&w, &m->h->json, BP_JSONW_ESC_U);
    bp_jsonw_begin_object(&w);
    bp_jsonw_key(&w, "topic");
    bp_jsonw_str(&w, bp_push_topic_name(BP_TOPIC_METRICS));
    bp_jsonw_key(&w, "type");
    bp_jsonw_str(&w, "minute");
    bp_jsonw_key(&w, "data");
    bp_jsonw_begin_object(&w);
    bp_api_drow_members(&w, BP_DT_CHAIN_1M + 1, cells, n);
    bp_jsonw_end_object(&w);
    bp_jsonw_end_object(&w);
    if (bp_jsonw_finish(&w) != 0 || m->n == MINUTES_MAX)
        return BP_ENOMEM;
    m->msgs[m->n] = msg_new(m->h, &m->h->json, BP_TOPIC_METRICS, 0, 0);
    return m->msgs[m->n++] ? 0 : BP_ENOMEM;
}

/* Called with lock held, which it leaves while it reads. A minute whose blocks were all
 * reverted has no row any more: no message says so (the next block of it brings one). */
static void minute_messages(bp_push_hub *h)
{
    bool want = false;
    for (bp_push_client *c = h->clients; c; c = c->next)
        want |= (c->f.topics & BP_TOPIC_METRICS) != 0;
    pthread_mutex_lock(&h->ring_lock);
    bool any = h->minutes;
    uint64_t lo = h->minute_lo, hi = h->minute_hi;
    h->minutes = false;
    char chain[64];
    snprintf(chain, sizeof(chain), "%s", h->chain ? h->chain : h->seen_chain);
    pthread_mutex_unlock(&h->ring_lock);
    if (!want || !any)
        return;
    pthread_mutex_unlock(&h->lock);
    minute_ctx m = {.h = h};
    bp_error err = {0};
    bp_read_query q = {.dtable = BP_DT_CHAIN_1M + 1,
                       .chain = chain[0] ? chain : NULL,
                       .has_min = true,
                       .has_max = true,
                       .min = hi - lo >= MINUTES_MAX * 60 ? hi - (MINUTES_MAX - 1) * 60 : lo,
                       .max = hi,
                       .ascending = true,
                       .limit = MINUTES_MAX};
    bp_sink_reader *r = hub_reader(h);
    if (r && bp_sink_read(r, &q, minute_row, &m, &err) != 0 && err.code)
        bp_debug("api push: minute metrics: %s", err.msg); /* e.g. metrics off: no table */
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < m.n; i++) {
        for (bp_push_client *c = h->clients; c; c = c->next)
            if (!c->drop && (c->f.topics & BP_TOPIC_METRICS) &&
                (!c->q_len || c->q_bytes + m.msgs[i]->len <= h->cfg.queue_bytes))
                enqueue(h, c, m.msgs[i]);
        bp_push_msg_release(m.msgs[i]);
    }
}

/* ---- keyed streams ---- */

void bp_push_set_stream_wake(bp_push_hub *h, void (*fn)(void *ctx), void *ctx)
{
    pthread_mutex_lock(&h->lock);
    h->stream_wake = fn;
    h->stream_wake_ctx = ctx;
    pthread_mutex_unlock(&h->lock);
}

static bool wants_streams(const bp_push_client *c)
{
    return !c->drop && (c->f.topics & BP_TOPIC_STREAMS);
}

int bp_push_stream_keys(bp_push_hub *h, char ***keys, size_t *n, bool *all)
{
    int rc = 0;
    *keys = NULL;
    *n = 0;
    *all = false;
    pthread_mutex_lock(&h->lock);
    size_t cap = h->nclients ? h->nclients : 1;
    if (!(*keys = calloc(cap, sizeof(**keys))))
        rc = BP_ENOMEM;
    for (bp_push_client *c = h->clients; rc == 0 && c; c = c->next) {
        if (!wants_streams(c))
            continue;
        if (!c->f.key[0]) {
            *all = true;
            continue;
        }
        size_t i = 0;
        while (i < *n && strcmp((*keys)[i], c->f.key) != 0)
            i++;
        if (i == *n && !((*keys)[(*n)++] = strdup(c->f.key)))
            rc = BP_ENOMEM;
    }
    pthread_mutex_unlock(&h->lock);
    return rc;
}

/* {"topic":"streams","type":"subscribed","key":K,"after":ID} (null: every key, no one id). */
static bp_push_msg *started_msg(bp_push_hub *h, const char *key, const char *after)
{
    bp_buf b;
    bp_jsonw w;
    bp_buf_init(&b, 0);
    bp_jsonw_init(&w, &b, BP_JSONW_ESC_U);
    bp_jsonw_begin_object(&w);
    bp_jsonw_key(&w, "topic");
    bp_jsonw_str(&w, bp_push_topic_name(BP_TOPIC_STREAMS));
    bp_jsonw_key(&w, "type");
    bp_jsonw_str(&w, "subscribed");
    bp_jsonw_key(&w, "key");
    bp_jsonw_str(&w, key[0] ? key : NULL);
    bp_jsonw_key(&w, "after");
    bp_jsonw_str(&w, after[0] ? after : NULL);
    bp_jsonw_end_object(&w);
    bp_push_msg *m = bp_jsonw_finish(&w) == 0 ? msg_new(h, &b, BP_TOPIC_STREAMS, 0, 0) : NULL;
    bp_buf_release(&b);
    return m;
}

void bp_push_stream_start(bp_push_hub *h, const char *(*after)(void *ctx, const char *key),
                          void *ctx)
{
    pthread_mutex_lock(&h->lock);
    for (bp_push_client *c = h->clients; c; c = c->next) {
        if (!wants_streams(c) || c->stream_started)
            continue;
        const char *pos = after(ctx, c->f.key[0] ? c->f.key : NULL);
        if (!pos)
            continue; /* not followed yet: the next round */
        bp_push_msg *m = started_msg(h, c->f.key, pos);
        if (!m || enqueue(h, c, m) != 0)
            drop(h, c, "out of memory");
        bp_push_msg_release(m);
        c->stream_started = true;
    }
    if (h->ready && h->wake) /* under the lock, as the hub's thread does */
        h->wake(h->wake_ctx);
    pthread_mutex_unlock(&h->lock);
}

void bp_push_stream_entry(bp_push_hub *h, const char *key, const bp_buf *json)
{
    bp_push_msg *m = msg_new(h, json, BP_TOPIC_STREAMS, 0, 0);
    pthread_mutex_lock(&h->lock);
    for (bp_push_client *c = h->clients; c; c = c->next) {
        if (!wants_streams(c) || !c->stream_started || (c->f.key[0] && strcmp(c->f.key, key)))
            continue;
        if (!m)
            drop(h, c, "out of memory");
        else if (c->q_len && c->q_bytes + m->len > h->cfg.queue_bytes)
            drop(h, c, "not reading: %zu messages (%zu bytes) of stream entries waiting", c->q_len,
                 c->q_bytes);
        else if (enqueue(h, c, m) != 0)
            drop(h, c, "out of memory");
    }
    if (h->ready && h->wake)
        h->wake(h->wake_ctx);
    pthread_mutex_unlock(&h->lock);
    bp_push_msg_release(m);
}

static bool endpoint_up(const bp_stats_endpoint *e)
{
    return strcmp(e->state, "healthy") == 0 || strcmp(e->state, "rate-limited") == 0;
}

/* Events only the snapshots show: endpoints going down and up, the node's socket, gaps. */
static void snapshot_events(bp_push_hub *h)
{
    bp_stats *s = h->snap, *p = h->prev_snap;
    if (!s->version || !p->version)
        return;
    pthread_mutex_lock(&h->ring_lock);
    for (size_t i = 0; i < s->endpoint_count && i < p->endpoint_count; i++) {
        bool up = endpoint_up(&s->endpoints[i]), was = endpoint_up(&p->endpoints[i]);
        if (up != was)
            log_add(h, up ? L_EP_UP : L_EP_DOWN, g_log_names[up ? L_EP_UP : L_EP_DOWN], 0,
                    "endpoint %s: %s", s->endpoints[i].url, s->endpoints[i].state);
    }
    const bp_stats_realtime *r = &s->realtime, *q = &p->realtime;
    if (r->ws_configured && r->connected != q->connected)
        log_add(h, r->connected ? L_SOCK_UP : L_SOCK_DOWN,
                g_log_names[r->connected ? L_SOCK_UP : L_SOCK_DOWN], 0, "socket %s: %s",
                r->ws_endpoint, r->connected ? "connected" : r->ws_state);
    if (r->gaps_filled > q->gaps_filled)
        log_add(h, L_GAP, g_log_names[L_GAP], s->indexed,
                "%" PRIu64 " block(s) filled between heads", r->gaps_filled - q->gaps_filled);
    pthread_mutex_unlock(&h->ring_lock);
}

/* Every status_interval: the snapshot's events, status / metrics messages, stalled clients. */
static void tick(bp_push_hub *h, int64_t now)
{
    if (now < h->next_status)
        return;
    h->next_status = now + (int64_t)(h->cfg.status_interval * 1000);
    if (h->cfg.stats) {
        bp_stats *t = h->prev_snap;
        h->prev_snap = h->snap;
        h->snap = t;
        bp_stats_hub_read(h->cfg.stats, h->snap);
        pthread_mutex_unlock(&h->lock);
        snapshot_events(h);
        pthread_mutex_lock(&h->lock);
    }
    status_messages(h);
    minute_messages(h);
    int64_t stall = (int64_t)(h->cfg.stall_timeout * 1000);
    for (bp_push_client *c = h->clients; c; c = c->next)
        if (c->q_len && c->stalled_since && now - c->stalled_since > stall)
            drop(h, c, "not reading: %zu messages (%zu bytes) waited more than %.0f s", c->q_len,
                 c->q_bytes, h->cfg.stall_timeout);
}

static void round_of_work(bp_push_hub *h)
{
    uint64_t first, next;
    need needs[BUILD_PER_ROUND];
    ring_bounds(h, &first, &next);
    size_t n = find_needs(h, first, next, needs, BUILD_PER_ROUND);
    bool built_all = true;
    if (n) {
        pthread_mutex_unlock(&h->lock);
        built_all = build_needs(h, needs, n);
        pthread_mutex_lock(&h->lock);
        h->work = built_all; /* more may be needed once these are handed out */
    }
    for (bp_push_client *c = h->clients; c; c = c->next)
        fill(h, c, next);
    trim(h);
    int64_t now = bp_api_mono_ms();
    /* Starved: messages the clients send free the share without telling the hub (they are
     * released on the server's thread), so it looks again soon (hub_main). */
    h->starved = !built_all;
    if (h->starved) {
        drop_stalled(h, now);
        if (!share_full(h))
            h->work = true;
    }
    tick(h, now);
}

static void *hub_main(void *arg)
{
    bp_push_hub *h = arg;
    pthread_mutex_lock(&h->lock);
    while (!h->stop) {
        if (!h->work) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            long ms = h->starved ? STARVED_MS : (long)(h->cfg.status_interval * 1000);
            until.tv_sec += ms / 1000;
            until.tv_nsec += (ms % 1000) * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&h->cv, &h->lock, &until);
        }
        h->work = false;
        round_of_work(h);
        if (h->ready && h->wake) /* under the lock: bp_push_set_wake(NULL) then means no more */
            h->wake(h->wake_ctx);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

/* ---- life -------------------------------------------------------------------------------------
 */

bp_push_hub *bp_push_hub_new(const bp_push_config *cfg, bp_error *err)
{
    bp_push_hub *h = calloc(1, sizeof(*h));
    if (!h) {
        bp_error_set(err, BP_ENOMEM, "out of memory");
        return NULL;
    }
    h->cfg = *cfg;
    if (!h->cfg.ring)
        h->cfg.ring = 4096;
    if (!h->cfg.queue_bytes)
        h->cfg.queue_bytes = 1u << 20;
    if (h->cfg.stall_timeout <= 0)
        h->cfg.stall_timeout = 30;
    if (!h->cfg.max_clients)
        h->cfg.max_clients = 4096;
    if (!h->cfg.memory_bytes)
        h->cfg.memory_bytes = BP_PUSH_MEMORY_DEFAULT;
    if (h->cfg.status_interval <= 0)
        h->cfg.status_interval = 1;
    /* a cursor of another run of the process names another epoch */
    h->epoch = (uint32_t)((uint64_t)bp_api_clock_us(CLOCK_REALTIME) * 2654435761u ^
                          (uint64_t)getpid() << 16);
    bp_buf_init(&h->json, 0);
    pthread_mutex_init(&h->ring_lock, NULL);
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->cv, NULL);
    h->ring = calloc(h->cfg.ring, sizeof(*h->ring));
    /* Resident from the start at its full size (4,096 events of 184 bytes: 736 KiB), not
     * page by page as blocks come (over hours at the head): what the process holds at the
     * head is measured with it full (docs/PERFORMANCE.md "memory"). */
    for (size_t i = 0; h->ring && i < h->cfg.ring * sizeof(*h->ring); i += 4096)
        ((volatile char *)h->ring)[i] = 0;
    h->snap = calloc(1, sizeof(*h->snap));
    h->prev_snap = calloc(1, sizeof(*h->prev_snap));
    h->read_url = cfg->read_url ? strdup(cfg->read_url) : NULL;
    h->chain = cfg->chain ? strdup(cfg->chain) : NULL;
    h->cfg.read_url = h->cfg.chain = NULL;
    if (!h->ring || !h->snap || !h->prev_snap || (cfg->read_url && !h->read_url) ||
        (cfg->chain && !h->chain)) {
        bp_push_hub_free(h);
        bp_error_set(err, BP_ENOMEM, "out of memory");
        return NULL;
    }
    if (pthread_create(&h->thread, NULL, hub_main, h) != 0) {
        bp_push_hub_free(h);
        bp_error_set(err, BP_ENOMEM, "cannot start the push thread");
        return NULL;
    }
    h->started = true;
    return h;
}

size_t bp_push_ring_bytes(size_t events)
{
    return events * sizeof(ring_ev);
}

size_t bp_push_hub_ring_bytes(const bp_push_hub *h)
{
    return h ? bp_push_ring_bytes(h->cfg.ring) : 0;
}

size_t bp_push_hub_memory_bytes(const bp_push_hub *h)
{
    return h ? h->cfg.memory_bytes : 0;
}

size_t bp_push_hub_held(void *hub)
{
    bp_push_hub *h = hub;
    return h ? atomic_load(&h->held) + atomic_load(&h->index_bytes) : 0;
}

void bp_push_hub_free(bp_push_hub *h)
{
    if (!h)
        return;
    if (h->started) {
        pthread_mutex_lock(&h->lock);
        h->stop = true;
        pthread_cond_signal(&h->cv);
        pthread_mutex_unlock(&h->lock);
        pthread_join(h->thread, NULL);
    }
    while (h->clients)
        bp_push_detach(h->clients);
    for (size_t i = 0; i < CACHE_MAX; i++)
        cache_drop(h, &h->cache[i]);
    bp_sink_reader_close(h->reader);
    bp_buf_release(&h->json);
    pthread_mutex_destroy(&h->ring_lock);
    pthread_mutex_destroy(&h->lock);
    pthread_cond_destroy(&h->cv);
    free(h->ring);
    free(h->rolled);
    free(h->snap);
    free(h->prev_snap);
    free(h->read_url);
    free(h->chain);
    free(h);
}

/* ---- what it knows -----------------------------------------------------------------------------
 */

void bp_push_stats_read(bp_push_hub *h, bp_push_stats *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&h->lock);
    out->clients = h->nclients;
    out->ws_clients = h->nws;
    out->sse_clients = h->nsse;
    for (bp_push_client *c = h->clients; c; c = c->next)
        for (unsigned i = 0; i < BP_PUSH_TOPICS; i++)
            out->topic_clients[i] += (c->f.topics >> i) & 1;
    out->messages = h->messages;
    out->bytes = h->bytes;
    out->dropped = h->dropped;
    out->refused = h->refused;
    pthread_mutex_unlock(&h->lock);
    int64_t now = bp_api_unix_ms();
    pthread_mutex_lock(&h->ring_lock);
    out->events = h->events;
    out->reorgs = h->reorgs;
    out->reverted = h->reverted;
    out->depth_sum = h->depth_sum;
    memcpy(out->depth_le, h->depth_le, sizeof(out->depth_le));
    out->first_seq = h->first_seq;
    out->last_seq = h->next_seq ? h->next_seq - 1 : 0;
    uint64_t recent = 0;
    for (uint64_t s = h->next_seq; s-- > h->first_seq;) {
        const ring_ev *e = slot(h, s);
        if (e->unix_ms < now - 10000)
            break;
        recent++;
        if (e->kind == EV_APPLY && !out->have_block) {
            out->have_block = true;
            out->last_block = e->number;
            memcpy(out->last_hash, e->hash, sizeof(out->last_hash));
            out->last_block_unix_ms = e->unix_ms;
            out->last_block_timestamp = e->timestamp;
        }
    }
    for (uint64_t s = h->next_seq; !out->have_block && s-- > h->first_seq;) {
        const ring_ev *e = slot(h, s);
        if (e->kind == EV_APPLY) {
            out->have_block = true;
            out->last_block = e->number;
            memcpy(out->last_hash, e->hash, sizeof(out->last_hash));
            out->last_block_unix_ms = e->unix_ms;
            out->last_block_timestamp = e->timestamp;
        }
    }
    out->events_per_s = (double)recent / 10.0;
    pthread_mutex_unlock(&h->ring_lock);
}

/* {"from": lo, "to": hi, "count": n}: a reorg's reverted or applied blocks ({"count": 0}:
 * none yet, the new branch comes with a later batch). */
static void range_json(bp_jsonw *w, const char *key, uint64_t lo, uint64_t hi, uint32_t n)
{
    bp_jsonw_key(w, key);
    bp_jsonw_begin_object(w);
    if (n) {
        bp_jsonw_key(w, "from");
        bp_jsonw_u64(w, lo);
        bp_jsonw_key(w, "to");
        bp_jsonw_u64(w, hi);
    }
    bp_jsonw_key(w, "count");
    bp_jsonw_u64(w, n);
    bp_jsonw_end_object(w);
}

void bp_push_events_json(bp_push_hub *h, bp_jsonw *w, size_t max)
{
    pthread_mutex_lock(&h->ring_lock);
    bp_jsonw_key(w, "events");
    bp_jsonw_begin_array(w);
    size_t n = h->log_n < max ? h->log_n : max;
    for (size_t i = 0; i < n; i++) { /* newest first */
        const log_entry *e = &h->log[(h->log_next + EVENTS_MAX - 1 - i) % EVENTS_MAX];
        bp_jsonw_begin_object(w);
        bp_jsonw_key(w, "type");
        bp_jsonw_str(w, e->type);
        bp_jsonw_key(w, "unix_ms");
        bp_jsonw_i64(w, e->unix_ms);
        if (e->number) {
            bp_jsonw_key(w, "block");
            bp_jsonw_u64(w, e->number);
        }
        bp_jsonw_key(w, "text");
        bp_jsonw_str(w, e->text);
        if (e->reverted)
            range_json(w, "reverted", e->number, e->reverted_hi, e->reverted);
        if (e->reverted)
            range_json(w, "applied", e->applied_lo, e->applied_hi, e->applied);
        bp_jsonw_end_object(w);
    }
    bp_jsonw_end_array(w);
    bp_jsonw_key(w, "counts");
    bp_jsonw_begin_object(w);
    for (int i = 0; i < L_COUNT; i++) {
        bp_jsonw_key(w, g_log_names[i]);
        bp_jsonw_u64(w, h->log_counts[i]);
    }
    bp_jsonw_end_object(w);
    bp_jsonw_key(w, "last_update_unix_ms");
    if (h->log_updated)
        bp_jsonw_i64(w, h->log_updated);
    else
        bp_jsonw_null(w);
    pthread_mutex_unlock(&h->ring_lock);
}
