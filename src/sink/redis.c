/* redis.c - the Redis output (redis://[user:]password@host:port/db, rediss:// for TLS): for
 * each chain and each entity chosen (blocks by default; transactions, logs, metrics):
 *
 *   {prefix}{entity}:{chain}            a stream, XADD ... MAXLEN ~ N, one entry per row of an
 *                                       applied block and one per reverted block
 *   {prefix}{entity}_updates:{chain}    a pub/sub channel: the same message as JSON
 *   {prefix}latest:{entity}:{chain}     the newest canonical entry's message, with a TTL
 *   {prefix}checkpoint:{name}:{chain}   this output's checkpoint (hash: number, hash, recent)
 *   {prefix}lock:{name}:{chain}         the chain's writer lease (redis_lease.h): the process
 *                                       that writes the chain here, and no other, commits
 *
 * An entry's fields: type (apply | revert), chain, number, hash, parent_hash (the block's)
 * and data (the row as JSON, sink/rowjson.h, or for metrics the block's chain_metrics_block
 * row, sink/stream.h; "null" for a revert). The message is
 *   {"type":"apply","chain":"..","number":N,"hash":"0x..","parent_hash":"0x..","data":{..}}
 * A consumer that applies each apply and deletes the rows of (number, hash) on each revert
 * holds exactly the canonical chain.
 *
 * Exactly once: a batch is one MULTI ... EXEC holding its XADDs, PUBLISHes, the latest keys
 * and the checkpoint, sent as one pipeline (a huge batch in pieces of 4 MiB, all before
 * EXEC). Redis runs EXEC whole or, when the connection dies before it, drops the queued
 * commands: a crash or a lost connection leaves either the whole batch (and its checkpoint)
 * or none of it, and subscribers hear a batch only once it is committed. When the connection
 * is lost after EXEC was sent, the outcome is unknown: the next attempt reads the stored
 * checkpoint first and skips the batch when it is there. Durable as the server's persistence
 * is (AOF with appendfsync for a crash of the server itself).
 *
 * One writer per chain: the pipeline claims the chain's lease before it reads the checkpoint,
 * and each batch's MULTI/EXEC is fenced by it (WATCH): a process that lost its lease (it was
 * paused past it, or cut off from the server, and another took the chain) commits nothing.
 *
 * The latest key after a batch: the last row of the newest block still canonical at the end
 * of the batch; when the batch reverted blocks and left no such row, the stream is read
 * backwards (before MULTI) for the newest apply entry that is still canonical, and the key is
 * deleted when there is none within MAXLEN: never an orphan. */
#include "blockpipe/sink.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <yajl/yajl_tree.h>

#include "arch/arch_json.h"
#include "arch/arch_tables.h"
#include "blockpipe/columns.h"
#include "blockpipe/tableset.h"
#include "sink/options.h"
#include "sink/redis_conn.h"
#include "sink/redis_lease.h"
#include "sink/stream.h"
#include "util/crashpoint.h"
#include "util/log.h"

#define RECENT_MAX 128         /* blocks kept in the checkpoint for the reorg window */
#define PIECE_BYTES (4u << 20) /* a batch's commands are sent in pieces of this size */
#define LOOKUP_PAGE 200        /* entries per XREVRANGE when looking for the latest */
#define LOOKUP_PAGES 20

typedef struct redis_sink {
    struct bp_sink base;
    bp_redis_target t;
    bp_redis *c;
    char *prefix, *name;
    unsigned entities; /* 1 << E_* */
    long long maxlen, ttl;
    bool publish;
    int wait_s, retries;
    /* the chain's state as stored: checkpoint and recent blocks (newest first) */
    char *chain;
    bool loaded, uncertain;
    bp_checkpoint cp;
    uint64_t events; /* the Arch events written with the checkpoint (stream.h) */
    bp_stream_recent recent;
    char *keys[BP_STREAM_ENTITY_COUNT][3]; /* stream, channel, latest */
    char *cp_key;
    bp_buf data, msg, text; /* scratch */
    bp_redis_leases leases; /* the chains' writer leases (ttl 0: none) */
    bool leases_init;
} redis_sink;

enum { K_STREAM, K_CHANNEL, K_LATEST };

/* ---- keys and state --------------------------------------------------------------------- */

static void free_keys(redis_sink *s)
{
    for (int e = 0; e < BP_STREAM_ENTITY_COUNT; e++)
        for (int k = 0; k < 3; k++) {
            free(s->keys[e][k]);
            s->keys[e][k] = NULL;
        }
    free(s->cp_key);
    free(s->chain);
    s->cp_key = s->chain = NULL;
}

static char *key_of(const char *fmt, const char *a, const char *b, const char *c)
{
    int n = snprintf(NULL, 0, fmt, a, b, c);
    char *out = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (out)
        snprintf(out, (size_t)n + 1, fmt, a, b, c);
    return out;
}

/* The keys of chain (made when the chain changes). */
static int use_chain(redis_sink *s, const char *chain, bp_error *err)
{
    if (s->chain && strcmp(s->chain, chain) == 0)
        return 0;
    free_keys(s);
    s->loaded = false;
    bool ok = (s->chain = strdup(chain)) != NULL;
    for (int e = 0; e < BP_STREAM_ENTITY_COUNT && ok; e++) {
        s->keys[e][K_STREAM] = key_of("%s%s:%s", s->prefix, bp_stream_entity_names[e], chain);
        s->keys[e][K_CHANNEL] =
            key_of("%s%s_updates:%s", s->prefix, bp_stream_entity_names[e], chain);
        s->keys[e][K_LATEST] =
            key_of("%slatest:%s:%s", s->prefix, bp_stream_entity_names[e], chain);
        ok = s->keys[e][0] && s->keys[e][1] && s->keys[e][2];
    }
    s->cp_key = ok ? key_of("%scheckpoint:%s:%s", s->prefix, s->name, chain) : NULL;
    return s->cp_key ? 0 : bp_error_set(err, BP_ENOMEM, "out of memory");
}

static const redisReply *field(const redisReply *hash, const char *name)
{
    for (size_t i = 0; hash && hash->type == REDIS_REPLY_ARRAY && i + 1 < hash->elements; i += 2)
        if (hash->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(hash->element[i]->str, name) == 0)
            return hash->element[i + 1];
    return NULL;
}

/* Reads the chain's stored checkpoint and recent blocks. */
static int load_state(redis_sink *s, bp_error *err)
{
    const redisReply *r = NULL;
    int rc = bp_redis_call(s->c, 2, (const char *[]){"HGETALL", s->cp_key}, &r, err);
    if (rc != 0)
        return rc;
    char text[512];
    if (r->type != REDIS_REPLY_ARRAY)
        return bp_error_set(err, BP_EDB, "redis %s: HGETALL %s: %s", s->t.where, s->cp_key,
                            bp_redis_reply_text(r, text, sizeof(text)));
    const redisReply *num = field(r, "number"), *hash = field(r, "hash"),
                     *recent = field(r, "recent"), *events = field(r, "events"),
                     *floor = field(r, "floor");
    memset(&s->cp, 0, sizeof(s->cp));
    s->recent.n = 0;
    s->events = events && events->type == REDIS_REPLY_STRING ? strtoull(events->str, NULL, 10) : 0;
    if (num && hash && num->type == REDIS_REPLY_STRING && hash->type == REDIS_REPLY_STRING) {
        s->cp.set = true;
        s->cp.number = strtoull(num->str, NULL, 10);
        snprintf(s->cp.hash, sizeof(s->cp.hash), "%.*s", (int)(hash->len < 66 ? hash->len : 66),
                 hash->str);
        s->cp.floor_set = floor && floor->type == REDIS_REPLY_STRING;
        s->cp.floor = s->cp.floor_set ? strtoull(floor->str, NULL, 10) : 0;
        if (recent && recent->type == REDIS_REPLY_STRING)
            bp_stream_recent_parse(&s->recent, recent->str, recent->len);
    } else if (r->elements > 0 && !events) {
        return bp_error_set(err, BP_EDB, "redis %s: %s is not a blockpipe checkpoint", s->t.where,
                            s->cp_key);
    }
    s->loaded = true;
    return 0;
}

/* ---- connection and retries ------------------------------------------------------------- */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void drop_conn(redis_sink *s)
{
    bp_redis_free(s->c);
    s->c = NULL;
}

/* Connects, retrying with backoff while the error is transient, until the deadline. */
static int ensure_conn(redis_sink *s, double until, bp_error *err)
{
    if (s->c)
        return 0;
    long delay = 250;
    for (int attempt = 1;; attempt++) {
        int rc = bp_redis_connect(&s->t, &s->c, err);
        if (rc == 0) {
            if (attempt > 1)
                bp_info("redis %s: connected again after %d attempts", s->t.where, attempt);
            return 0;
        }
        if (!bp_error_is_transient(rc) || mono_s() + (double)delay / 1000 > until)
            return rc;
        bp_warn("%s; trying again in %ld ms (up to %d s: wait_for_db)", err->msg, delay, s->wait_s);
        sleep_ms(delay);
        delay = delay * 2 > 5000 ? 5000 : delay * 2;
    }
}

/* fn, tried again over lost connections and timeouts (a new connection each time): at most
 * retries more times, and not once wait_for_db has passed since the first attempt (a server
 * that stays away costs one wait, not one per attempt). */
static int with_retries(redis_sink *s, int (*fn)(redis_sink *, void *, bp_error *), void *arg,
                        bp_error *err)
{
    double until = mono_s() + s->wait_s;
    for (int attempt = 1;; attempt++) {
        int rc = ensure_conn(s, until, err);
        if (rc == 0)
            rc = fn(s, arg, err);
        if (rc == 0)
            return 0;
        if (bp_error_is_transient(rc)) {
            drop_conn(s);
            s->uncertain = true;
        }
        if (!bp_error_is_transient(rc) || attempt > s->retries || (attempt > 1 && mono_s() > until))
            return rc;
        bp_warn("%s; trying again (attempt %d of %d)", err->msg, attempt + 1, s->retries + 1);
    }
}

/* ---- reads ------------------------------------------------------------------------------ */

static int state_of(redis_sink *s, void *chain, bp_error *err)
{
    int rc = bp_redis_lease_settle(&s->leases, s->c, chain, s->t.where, err);
    if (rc == 0)
        rc = use_chain(s, chain, err);
    if (rc == 0 && (!s->loaded || s->uncertain))
        rc = load_state(s, err);
    if (rc == 0)
        s->uncertain = false;
    return rc;
}

static int redis_checkpoint(bp_sink *base, const char *chain, bp_checkpoint *out, bp_error *err)
{
    redis_sink *s = (redis_sink *)base;
    bp_redis_leases_lock(&s->leases);
    int rc = with_retries(s, state_of, (void *)chain, err);
    bp_redis_leases_unlock(&s->leases);
    *out = rc == 0 ? s->cp : (bp_checkpoint){0};
    return rc;
}

static int redis_recent(bp_sink *base, const char *chain, bp_checkpoint *out, size_t max, size_t *n,
                        bp_error *err)
{
    redis_sink *s = (redis_sink *)base;
    *n = 0;
    bp_redis_leases_lock(&s->leases);
    int rc = with_retries(s, state_of, (void *)chain, err);
    bp_redis_leases_unlock(&s->leases);
    if (rc == 0)
        *n = bp_stream_recent_list(&s->recent, out, max);
    return rc;
}

/* ---- a batch: the latest entry when the batch leaves none ------------------------------- */

typedef struct rcp {
    uint64_t number;
    char hash[67];
} rcp;

/* Transactions' rollback state (Arch): the batch's after its events, or the newest a stream
 * says. */
typedef struct txstate {
    bp_arch_hash *id;
    bool *back;
    size_t n, cap;
} txstate;

static int txstate_get(const txstate *t, const char *txid)
{
    for (size_t i = t->n; i-- > 0;)
        if (strcmp(t->id[i], txid) == 0)
            return t->back[i];
    return -1;
}

/* Sets txid's state; keep: a known state stays (a stream read newest first). */
static int txstate_set(txstate *t, const char *txid, bool back, bool keep)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->id[i], txid) == 0) {
            t->back[i] = keep ? t->back[i] : back;
            return 0;
        }
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 64;
        bp_arch_hash *id = realloc(t->id, cap * sizeof(*id));
        if (id)
            t->id = id;
        bool *bk = id ? realloc(t->back, cap * sizeof(*bk)) : NULL;
        if (!bk)
            return BP_ENOMEM;
        t->back = bk;
        t->cap = cap;
    }
    snprintf(t->id[t->n], sizeof(t->id[0]), "%s", txid);
    t->back[t->n++] = back;
    return 0;
}

static void txstate_release(txstate *t)
{
    free(t->id);
    free(t->back);
    memset(t, 0, sizeof(*t));
}

/* The rollback state the batch's events leave (the last event naming a transaction wins). */
static int txstate_of_batch(txstate *t, const bp_batch *b)
{
    for (size_t i = 0; i < b->count; i++) {
        const bp_arch_rows *r = b->events[i].block->arch;
        if (b->events[i].kind != BP_EVENT_ARCH_EVENTS || !r)
            continue;
        for (size_t k = 0; k < r->event_count; k++) {
            const bp_arch_event *e = &r->events[k];
            for (size_t j = 0; bp_arch_event_is_state(e) && j < e->hash_count; j++)
                if (txstate_set(t, e->hashes[j], e->topic == BP_ARCH_T_ROLLEDBACK, false) != 0)
                    return BP_ENOMEM;
        }
    }
    return 0;
}

static bool is_arch(int e)
{
    return ((1u << e) & BP_STREAM_ARCH_MASK) != 0;
}

/* Entities whose rows belong to a transaction that may be rolled back. */
static bool per_tx(int e)
{
    return e == BP_STREAM_ARCH_TXS || e == BP_STREAM_ARCH_ACCOUNTS;
}

typedef struct lookup {
    const bp_batch *b;
    const bp_stream_shape *sh;
    rcp *reverted; /* revert entries seen (and the batch's own REVERTs) */
    size_t nrev, caprev;
    int e;
    const txstate *batch; /* Arch: the batch's rollback state changes */
    txstate seen;         /* Arch: the newest state change of each transaction in the stream */
} lookup;

static bool add_reverted(lookup *l, uint64_t n, const char *hash)
{
    if (l->nrev == l->caprev) {
        size_t cap = l->caprev ? 2 * l->caprev : 64;
        rcp *p = realloc(l->reverted, cap * sizeof(*p));
        if (!p)
            return false;
        l->reverted = p;
        l->caprev = cap;
    }
    l->reverted[l->nrev].number = n;
    snprintf(l->reverted[l->nrev++].hash, sizeof(l->reverted[0].hash), "%s", hash);
    return true;
}

/* Is the apply entry (n, hash) canonical once the batch is written? */
static bool canonical(const lookup *l, uint64_t n, const char *hash)
{
    const bp_checkpoint *end = &l->b->checkpoint;
    if (!end->set || n > end->number)
        return false;
    for (size_t i = 0; i < l->nrev; i++)
        if (l->reverted[i].number == n && strcmp(l->reverted[i].hash, hash) == 0)
            return false;
    const bp_stream_recent *r = &l->sh->recent;
    for (size_t i = 0; i < r->n; i++)
        if (r->at[i].number == n)
            return strcmp(r->at[i].hash, hash) == 0;
    return true; /* below the recent blocks: older than any reorg we can see */
}

static const char *fstr(const redisReply *kv, const char *name, size_t *len)
{
    const redisReply *v = field(kv, name);
    if (!v || v->type != REDIS_REPLY_STRING)
        return NULL;
    *len = v->len;
    return v->str;
}

static const char *jstr(yajl_val v, const char *key)
{
    const char *path[] = {key, NULL};
    return YAJL_GET_STRING(yajl_tree_get(v, path, yajl_t_string));
}

/* An Arch transaction's or account update's entry: a state change is noted (the newest of a
 * transaction counts); *live: a row whose transaction is not rolled back at the end of the
 * batch. */
static int arch_entry_live(lookup *l, bool revert, const char *data, size_t dl, bool *live)
{
    char *text = strndup(data, dl), msg[64];
    yajl_val v = text ? yajl_tree_parse(text, msg, sizeof(msg)) : NULL;
    free(text);
    const char *path[] = {"rolled_back", NULL};
    yajl_val back = v ? yajl_tree_get(v, path, yajl_t_any) : NULL;
    const char *txid = v ? jstr(v, "txid") : NULL, *cause = v ? jstr(v, "cause") : NULL;
    int rc = 0;
    *live = false;
    if (txid && cause) {
        rc = txstate_set(&l->seen, txid, revert, true);
    } else if (txid && !revert) {
        int st = txstate_get(l->batch, txid);
        st = st >= 0 ? st : txstate_get(&l->seen, txid);
        *live = st >= 0 ? !st : !(back && YAJL_IS_TRUE(back));
    }
    yajl_tree_free(v);
    return rc;
}

/* One stream entry [id, [field, value, ...]]: the message into s->msg when it is the one. */
static int entry_found(redis_sink *s, lookup *l, const redisReply *entry, bool *found)
{
    const redisReply *kv = entry->elements == 2 ? entry->element[1] : NULL;
    size_t tl = 0, nl = 0, hl = 0, pl = 0, dl = 0;
    const char *type = fstr(kv, "type", &tl), *num = fstr(kv, "number", &nl),
               *hash = fstr(kv, "hash", &hl), *parent = fstr(kv, "parent_hash", &pl),
               *data = fstr(kv, "data", &dl);
    if (!type || !num || !hash || !parent || !data)
        return 0;
    uint64_t n = strtoull(num, NULL, 10);
    bool revert = strcmp(type, "revert") == 0, block = dl == 4 && memcmp(data, "null", 4) == 0;
    if (revert && block)
        return add_reverted(l, n, hash) ? 0 : BP_ENOMEM;
    if (per_tx(l->e)) { /* a rollback state change, or a row of a transaction */
        bool live = false;
        int rc = arch_entry_live(l, revert, data, dl, &live);
        if (rc != 0 || !live || !canonical(l, n, hash))
            return rc;
    } else if (revert || strcmp(type, "apply") != 0 || !canonical(l, n, hash)) {
        return 0;
    }
    *found = true;
    return bp_stream_message(&s->msg, "apply", s->chain, n, hash, parent, data, dl);
}

/* The newest canonical apply entry of stream e into s->msg (*found false when none in the
 * last LOOKUP_PAGES pages). */
static int find_latest(redis_sink *s, int e, const bp_batch *b, const bp_stream_shape *sh,
                       const txstate *ts, bool *found, bp_error *err)
{
    lookup l = {.b = b, .sh = sh, .e = e, .batch = ts};
    int rc = 0;
    *found = false;
    for (size_t i = 0; i < b->count && rc == 0; i++)
        if (b->events[i].kind == BP_EVENT_REVERT &&
            !add_reverted(&l, b->events[i].block->number, b->events[i].block->hash))
            rc = bp_error_set(err, BP_ENOMEM, "out of memory");
    char end[64] = "+", count[16];
    snprintf(count, sizeof(count), "%d", LOOKUP_PAGE);
    for (int page = 0; rc == 0 && page < LOOKUP_PAGES && !*found; page++) {
        const redisReply *r = NULL;
        rc = bp_redis_call(
            s->c, 6, (const char *[]){"XREVRANGE", s->keys[e][K_STREAM], end, "-", "COUNT", count},
            &r, err);
        if (rc != 0)
            break;
        if (r->type != REDIS_REPLY_ARRAY || r->elements == 0)
            break;
        for (size_t k = 0; k < r->elements && !*found && rc == 0; k++)
            if (r->element[k]->type == REDIS_REPLY_ARRAY)
                rc = entry_found(s, &l, r->element[k], found);
        const redisReply *last = r->element[r->elements - 1];
        if (last->type != REDIS_REPLY_ARRAY || last->elements < 1 ||
            last->element[0]->type != REDIS_REPLY_STRING)
            break;
        snprintf(end, sizeof(end), "(%.*s", (int)last->element[0]->len, last->element[0]->str);
        if (rc == BP_ENOMEM)
            bp_error_set(err, rc, "out of memory");
    }
    free(l.reverted);
    txstate_release(&l.seen);
    return rc;
}

/* ---- a batch: the commands -------------------------------------------------------------- */

/* XADD (and PUBLISH) of one entry whose data is data[0..dlen). */
static int add_entry(redis_sink *s, int e, const char *type, const bp_block *b, const char *data,
                     size_t dlen)
{
    bp_redis *c = s->c;
    const char *chain = s->chain, *parent = b->parent_hash ? b->parent_hash : "";
    int rc = bp_redis_cmd_begin(c, 15 + (s->maxlen > 0 ? 3 : 0));
    rc |= bp_redis_arg_str(c, "XADD");
    rc |= bp_redis_arg_str(c, s->keys[e][K_STREAM]);
    if (s->maxlen > 0) {
        rc |= bp_redis_arg_str(c, "MAXLEN");
        rc |= bp_redis_arg_str(c, "~");
        rc |= bp_redis_arg_u64(c, (unsigned long long)s->maxlen);
    }
    rc |= bp_redis_arg_str(c, "*");
    rc |= bp_redis_arg_str(c, "type");
    rc |= bp_redis_arg_str(c, type);
    rc |= bp_redis_arg_str(c, "chain");
    rc |= bp_redis_arg_str(c, chain);
    rc |= bp_redis_arg_str(c, "number");
    rc |= bp_redis_arg_u64(c, b->number);
    rc |= bp_redis_arg_str(c, "hash");
    rc |= bp_redis_arg_str(c, b->hash);
    rc |= bp_redis_arg_str(c, "parent_hash");
    rc |= bp_redis_arg_str(c, parent);
    rc |= bp_redis_arg_str(c, "data");
    rc |= bp_redis_arg(c, data, dlen);
    if (rc != 0 || !s->publish)
        return rc ? BP_ENOMEM : 0;
    rc = bp_stream_message(&s->msg, type, chain, b->number, b->hash, parent, data, dlen);
    if (rc == 0)
        rc = bp_redis_cmd(c, 3, (const char *[]){"PUBLISH", s->keys[e][K_CHANNEL], s->msg.data},
                          (const size_t[]){7, strlen(s->keys[e][K_CHANNEL]), s->msg.len});
    return rc;
}

/* Every reply so far is +OK / +QUEUED: a command refused while queued aborts the MULTI. */
static int check_queued(redis_sink *s, bp_error *err)
{
    for (size_t i = 0; i < bp_redis_reply_count(s->c); i++) {
        const redisReply *r = bp_redis_reply(s->c, i);
        if (r->type == REDIS_REPLY_ERROR) {
            char text[512];
            return bp_error_set(err, BP_EDB, "redis %s: a command was refused: %s", s->t.where,
                                bp_redis_reply_text(r, text, sizeof(text)));
        }
    }
    return 0;
}

/* Sends the queued commands when they exceed PIECE_BYTES (memory stays bounded). */
static int piece(redis_sink *s, bp_error *err)
{
    if (bp_redis_queued_bytes(s->c) < PIECE_BYTES)
        return 0;
    int rc = bp_redis_exchange(s->c, err);
    return rc ? rc : check_queued(s, err);
}

typedef struct entry_ctx {
    redis_sink *s;
    int e;
    const bp_block *b;
    bp_error *err;
    bool told; /* err is set */
} entry_ctx;

static int entry(void *p, const char *type, const char *data, size_t dlen)
{
    entry_ctx *a = p;
    int rc = add_entry(a->s, a->e, type, a->b, data, dlen);
    if (rc != 0)
        return rc; /* err not set: add_event says what failed */
    rc = piece(a->s, a->err);
    a->told = rc != 0;
    return rc;
}

/* The entries of event i for each entity (stream.h: the rows of its family's table, reverts,
 * Arch rollback states); *hint: bp_stream_entries'. */
static int add_event(redis_sink *s, const bp_batch *batch, size_t i, size_t *hint, bp_error *err)
{
    entry_ctx a = {.s = s, .b = batch->events[i].block, .err = err};
    for (a.e = 0; a.e < BP_STREAM_ENTITY_COUNT; a.e++) {
        if (!(s->entities & (1u << a.e)))
            continue;
        a.told = false;
        int rc = bp_stream_entries(a.e, batch, i, &s->data, hint, entry, &a);
        if (rc != 0 && !a.told)
            bp_error_set(err, rc, "block %" PRIu64 ": %s: %s", a.b->number,
                         bp_stream_entity_names[a.e], bp_strerror(rc));
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---- the latest entry of an Arch entity ----------------------------------------------------
 * The newest row the batch leaves canonical whose transaction (arch_transactions,
 * arch_account_updates) is not rolled back at its end; of arch_events the newest event (an
 * event stays when its block is reverted, as in the SQL outputs' arch_events). */

typedef struct apos {
    size_t ev, tx, acc;
} apos;

static bool tx_live(const txstate *ts, const bp_arch_tx *t)
{
    int st = txstate_get(ts, t->txid);
    return st >= 0 ? !st : !t->rolled_back;
}

/* Within APPLY ev (surviving): the newest live row of e. */
static bool arch_row_in(int e, const bp_block *b, const txstate *ts, apos *at)
{
    const bp_arch_rows *r = b->arch;
    if (e == BP_STREAM_ARCH_BLOCKS)
        return true;
    for (size_t i = r->tx_count; i-- > 0;) {
        const bp_arch_tx *t = &r->txs[i];
        if (!tx_live(ts, t))
            continue;
        at->tx = i;
        if (e == BP_STREAM_ARCH_TXS)
            return true;
        for (size_t k = t->account_count; k-- > 0;)
            if (bp_arch_account_first(t, k)) {
                at->acc = k;
                return true;
            }
    }
    return false;
}

static bool arch_latest_at(int e, const bp_batch *b, const bp_stream_shape *sh, const txstate *ts,
                           apos *at)
{
    for (size_t i = b->count; i-- > 0;) {
        const bp_event *ev = &b->events[i];
        const bp_arch_rows *r = ev->block->arch;
        at->ev = i;
        if (e == BP_STREAM_ARCH_EVENTS && ev->kind == BP_EVENT_ARCH_EVENTS && r) {
            for (size_t k = r->event_count; k-- > 0;)
                if (!r->events[k].resync) {
                    at->tx = k;
                    return true;
                }
        } else if (e != BP_STREAM_ARCH_EVENTS && ev->kind == BP_EVENT_APPLY && sh->survives[i] &&
                   r && arch_row_in(e, ev->block, ts, at)) {
            return true;
        }
    }
    return false;
}

static int arch_row_json(bp_buf *out, int e, const bp_batch *b, const apos *at)
{
    bp_table_row r; /* an Arch entity is its table of the Arch set (stream.c) */
    bp_table_row_at(&r, &bp_tables_arch, b->chain, &b->events[at->ev],
                    (size_t)(e - BP_STREAM_ARCH_BLOCKS), at->tx, at->acc);
    bp_buf_reset(out);
    return bp_table_row_json(out, &r);
}

/* Is the stream read for e's latest entry (before MULTI)? When the batch leaves none of its
 * own and reverted written blocks, or changed transactions' rollback state. */
static bool arch_lookup_needed(int e, const bp_batch *b, const bp_stream_shape *sh,
                               const txstate *ts)
{
    apos at;
    if (e == BP_STREAM_ARCH_EVENTS || arch_latest_at(e, b, sh, ts, &at))
        return false;
    return sh->below || (per_tx(e) && ts->n > 0);
}

static int set_latest(redis_sink *s, int e)
{
    const char *key = s->keys[e][K_LATEST];
    if (s->ttl <= 0)
        return bp_redis_cmd(s->c, 3, (const char *[]){"SET", key, s->msg.data},
                            (const size_t[]){3, strlen(key), s->msg.len});
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%lld", s->ttl);
    return bp_redis_cmd(s->c, 5, (const char *[]){"SET", key, s->msg.data, "EX", ttl},
                        (const size_t[]){3, strlen(key), s->msg.len, 2, strlen(ttl)});
}

/* The latest key of entity e after the batch: the last row of the newest surviving APPLY
 * with rows; else, when the batch reverted written blocks, the stream's newest canonical
 * entry (looked up before MULTI: found[e] / s->latest[e]); else unchanged. */
static int queue_latest(redis_sink *s, int e, const bp_batch *b, const bp_stream_shape *sh,
                        const txstate *ts, const bp_buf *looked_up, const bool *found)
{
    apos at;
    if (is_arch(e) && arch_latest_at(e, b, sh, ts, &at)) {
        const bp_block *blk = b->events[at.ev].block;
        int rc = arch_row_json(&s->data, e, b, &at);
        if (rc == 0)
            rc = bp_stream_message(&s->msg, "apply", b->chain, blk->number, blk->hash,
                                   blk->parent_hash ? blk->parent_hash : "", s->data.data,
                                   s->data.len);
        return rc ? rc : set_latest(s, e);
    }
    if (is_arch(e) && !arch_lookup_needed(e, b, sh, ts))
        return 0;
    for (size_t i = b->count, hint = 0; !is_arch(e) && i-- > 0;) {
        const bp_block *blk = b->events[i].block;
        size_t n = sh->survives[i] ? bp_stream_rows(e, blk) : 0;
        if (n == 0)
            continue;
        int rc = bp_stream_row_json(&s->data, e, b, blk, n - 1, &hint);
        if (rc == 0)
            rc = bp_stream_message(&s->msg, "apply", b->chain, blk->number, blk->hash,
                                   blk->parent_hash ? blk->parent_hash : "", s->data.data,
                                   s->data.len);
        return rc ? rc : set_latest(s, e);
    }
    if (!sh->below && !is_arch(e))
        return 0;
    if (!found[e])
        return bp_redis_cmd(s->c, 2, (const char *[]){"DEL", s->keys[e][K_LATEST]}, NULL);
    bp_buf_reset(&s->msg);
    int rc = bp_buf_append(&s->msg, looked_up[e].data, looked_up[e].len);
    return rc ? rc : set_latest(s, e);
}

/* events: the Arch events written with the checkpoint, this batch's too (0: none ever, the
 * field is left out). */
static int queue_checkpoint(redis_sink *s, const bp_batch *b, const bp_stream_shape *sh,
                            uint64_t events)
{
    if (!b->checkpoint.set && !events)
        return bp_redis_cmd(s->c, 2, (const char *[]){"DEL", s->cp_key}, NULL);
    char ev[24];
    snprintf(ev, sizeof(ev), "%" PRIu64, events);
    if (!b->checkpoint.set) /* events before the chain's first block: the count alone */
        return bp_redis_cmd(s->c, 4, (const char *[]){"HSET", s->cp_key, "events", ev}, NULL);
    int rc = bp_stream_recent_format(&sh->recent, &s->text);
    char num[24], floor[24];
    snprintf(num, sizeof(num), "%" PRIu64, b->checkpoint.number);
    snprintf(floor, sizeof(floor), "%" PRIu64, b->checkpoint.floor);
    const char *argv[12] = {"HSET", s->cp_key,          "number", num,
                            "hash", b->checkpoint.hash, "recent", s->text.data};
    int argc = 8;
    if (events) {
        argv[argc++] = "events";
        argv[argc++] = ev;
    }
    if (b->checkpoint.floor_set) { /* an Arch chain's resync floor (bp_checkpoint.floor) */
        argv[argc++] = "floor";
        argv[argc++] = floor;
    } else if (rc == 0 && s->cp.floor_set) {
        rc = bp_redis_cmd(s->c, 3, (const char *[]){"HDEL", s->cp_key, "floor"}, NULL);
    }
    return rc ? rc : bp_redis_cmd(s->c, argc, argv, NULL);
}

/* ---- a batch: writing it ---------------------------------------------------------------- */

static bool same_cp(const bp_checkpoint *a, const bp_checkpoint *b)
{
    return a->set == b->set && (!a->set || (a->number == b->number && !strcmp(a->hash, b->hash)));
}

/* After a lost connection the last EXEC may or may not have run: the stored checkpoint (and
 * the count of Arch events with it: a batch of events alone keeps the checkpoint) says.
 * *done when it is the batch's. */
static int settle(redis_sink *s, const bp_batch *b, bool *done, bp_error *err)
{
    bp_checkpoint before = s->cp;
    uint64_t ev0 = s->events, ev1 = ev0 + bp_stream_arch_event_count(b);
    bool was_loaded = s->loaded && s->chain && strcmp(s->chain, b->chain) == 0;
    *done = false;
    int rc = state_of(s, (void *)b->chain, err);
    if (rc != 0 || !was_loaded)
        return rc;
    if (same_cp(&s->cp, &b->checkpoint) && s->events == ev1 &&
        !(same_cp(&before, &b->checkpoint) && ev0 == ev1)) {
        *done = true;
        s->events = ev1;
        return 0;
    }
    if (!same_cp(&s->cp, &before) || s->events != ev0)
        return bp_error_set(err, BP_EDB,
                            "redis %s: checkpoint %s is at %" PRIu64 " %s, expected %" PRIu64
                            " %s: another process writes this chain with the same prefix and "
                            "checkpoint name?",
                            s->t.where, s->cp_key, s->cp.number, s->cp.hash, before.number,
                            before.hash);
    return 0;
}

static int exec_reply(redis_sink *s, bp_error *err)
{
    size_t n = bp_redis_reply_count(s->c);
    const redisReply *r = bp_redis_reply(s->c, n - 1);
    char text[512];
    int rc = check_queued(s, err); /* a refused command: EXEC answers EXECABORT */
    if (rc != 0)
        return rc;
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return bp_error_set(err, BP_EDB, "redis %s: EXEC: %s", s->t.where,
                            bp_redis_reply_text(r, text, sizeof(text)));
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_ERROR)
            return bp_error_set(err, BP_EDB,
                                "redis %s: command %zu of the transaction failed: %s (a key of "
                                "another type in the way?)",
                                s->t.where, i + 1,
                                bp_redis_reply_text(r->element[i], text, sizeof(text)));
    return 0;
}

/* The latest entries the batch's reverts may need, read before MULTI. */
static int lookups(redis_sink *s, const bp_batch *b, const bp_stream_shape *sh, const txstate *ts,
                   bp_buf *out, bool *found, bp_error *err)
{
    for (int e = 0; e < BP_STREAM_ENTITY_COUNT; e++) {
        found[e] = false;
        if (!(s->entities & (1u << e)))
            continue;
        if (is_arch(e) && !arch_lookup_needed(e, b, sh, ts))
            continue;
        if (!is_arch(e) && !sh->below)
            continue;
        bool have = false;
        for (size_t i = 0; i < b->count && !have; i++)
            have = sh->survives[i] && bp_stream_rows(e, b->events[i].block) > 0;
        if (have)
            continue;
        int rc = find_latest(s, e, b, sh, ts, &found[e], err);
        if (rc == 0 && found[e])
            rc = bp_buf_append(&out[e], s->msg.data, s->msg.len);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* EXEC answered nil: a WATCHed key changed, and only the lease is watched. */
static int exec_aborted(redis_sink *s, const bp_batch *b, bp_error *err)
{
    bp_redis_lease *e = bp_redis_lease_of(&s->leases, b->chain);
    int rc = e ? bp_redis_lease_renew(&s->leases, s->c, e, s->t.where, err) : 0;
    return rc ? rc
              : bp_error_set(err, BP_ETRANSPORT,
                             "redis %s: EXEC aborted (the chain's lease changed) but the lease "
                             "is still ours",
                             s->t.where);
}

static int write_once(redis_sink *s, void *arg, bp_error *err)
{
    const bp_batch *b = arg;
    bool done = false;
    int rc = bp_redis_lease_settle(&s->leases, s->c, b->chain, s->t.where, err);
    /* after settling: a server that refuses scripts turns the leases off there */
    bp_redis_lease *lease = bp_redis_lease_of(&s->leases, b->chain);
    if (rc == 0 && lease)
        rc = bp_redis_lease_fence(&s->leases, s->c, lease, s->t.where, err);
    if (rc == 0)
        rc = settle(s, b, &done, err);
    if (rc != 0 || done) {
        if (done)
            bp_info("redis %s: batch up to %" PRIu64 " was committed before the connection was "
                    "lost; not written again",
                    s->t.where, b->checkpoint.number);
        return rc;
    }
    bp_stream_shape sh = {0};
    bp_buf looked[BP_STREAM_ENTITY_COUNT];
    bool found[BP_STREAM_ENTITY_COUNT];
    size_t hint = 0;
    txstate ts = {0};
    uint64_t events = s->events + bp_stream_arch_event_count(b);
    for (int e = 0; e < BP_STREAM_ENTITY_COUNT; e++)
        bp_buf_init(&looked[e], 0);
    rc = bp_stream_shape_of(b, &s->recent, &sh, err);
    if (rc == 0 && txstate_of_batch(&ts, b) != 0)
        rc = bp_error_set(err, BP_ENOMEM, "out of memory");
    if (rc == 0)
        rc = lookups(s, b, &sh, &ts, looked, found, err);
    if (rc == 0 && bp_redis_cmd(s->c, 1, (const char *[]){"MULTI"}, NULL) != 0)
        rc = bp_error_set(err, BP_ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < b->count; i++)
        rc = add_event(s, b, i, &hint, err);
    for (int e = 0; rc == 0 && e < BP_STREAM_ENTITY_COUNT; e++)
        if ((s->entities & (1u << e)) && queue_latest(s, e, b, &sh, &ts, looked, found) != 0)
            rc = bp_error_set(err, BP_ENOMEM, "out of memory");
    if (rc == 0 && queue_checkpoint(s, b, &sh, events) != 0)
        rc = bp_error_set(err, BP_ENOMEM, "out of memory");
    if (rc == 0 && lease && bp_redis_lease_queue_renew(&s->leases, s->c, lease) != 0)
        rc = bp_error_set(err, BP_ENOMEM, "out of memory");
    if (rc == 0)
        rc = bp_redis_send(s->c, err);
    if (rc == 0)
        bp_crashpoint("redis.before_exec");
    if (rc == 0 && bp_redis_cmd(s->c, 1, (const char *[]){"EXEC"}, NULL) != 0)
        rc = bp_error_set(err, BP_ENOMEM, "out of memory");
    if (rc == 0)
        rc = bp_redis_exchange(s->c, err);
    if (rc == 0) {
        size_t n = bp_redis_reply_count(s->c);
        const redisReply *r = n ? bp_redis_reply(s->c, n - 1) : NULL;
        rc = r && r->type == REDIS_REPLY_NIL ? exec_aborted(s, b, err) : exec_reply(s, err);
    }
    if (rc == 0) {
        s->cp = b->checkpoint;
        s->events = events;
        s->recent = sh.recent;
    } else if (!bp_error_is_transient(rc)) {
        drop_conn(s); /* a MULTI may be open on it */
        s->loaded = false;
    }
    for (int e = 0; e < BP_STREAM_ENTITY_COUNT; e++)
        bp_buf_release(&looked[e]);
    bp_stream_shape_release(&sh);
    txstate_release(&ts);
    return rc;
}

static int redis_write(bp_sink *base, const bp_batch *batch, bp_error *err)
{
    redis_sink *s = (redis_sink *)base;
    if (batch->count == 0)
        return 0;
    int rc = bp_stream_check_derived(s->entities, base->derived, batch, err);
    if (rc != 0)
        return rc;
    bp_redis_leases_lock(&s->leases); /* the renewing thread waits: it would touch the WATCH */
    rc = with_retries(s, write_once, (void *)batch, err);
    bp_redis_leases_unlock(&s->leases);
    return rc;
}

/* ---- the chains' writer leases ---------------------------------------------------------- */

typedef struct claim_arg {
    const char *chain;
    char *key, *holder;
    size_t cap;
} claim_arg;

static int claim_once(redis_sink *s, void *arg, bp_error *err)
{
    claim_arg *a = arg;
    return bp_redis_lease_take(&s->leases, s->c, a->key, a->chain, a->holder, a->cap, s->t.where,
                               err);
}

static int redis_claim(bp_sink *base, const char *chain, char *holder, size_t cap, bp_error *err)
{
    redis_sink *s = (redis_sink *)base;
    if (s->leases.ttl_ms == 0)
        return 0;
    claim_arg a = {.chain = chain,
                   .holder = holder,
                   .cap = cap,
                   .key = key_of("%slock:%s:%s", s->prefix, s->name, chain)};
    if (!a.key)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    int rc = with_retries(s, claim_once, &a, err);
    free(a.key);
    if (rc != 0 && bp_error_is_transient(rc)) {
        bp_warn("%s; chain '%s': its writer lease is taken before its first read or write here",
                err->msg, chain);
        bp_error_clear(err);
        rc = 0;
    }
    if (rc == 0)
        s->loaded = false; /* the chain's last writer may have moved its checkpoint */
    return rc;
}

static void redis_unclaim(bp_sink *base, const char *chain)
{
    redis_sink *s = (redis_sink *)base;
    bp_redis_lease_drop(&s->leases, s->c, chain);
}

static int check_once(redis_sink *s, void *arg, bp_error *err)
{
    int rc = bp_redis_lease_settle(&s->leases, s->c, arg, s->t.where, err);
    bp_redis_lease *e = bp_redis_lease_of(&s->leases, arg); /* after: see write_once */
    return rc == 0 && e ? bp_redis_lease_renew(&s->leases, s->c, e, s->t.where, err) : rc;
}

static int redis_check(bp_sink *base, const char *chain, bp_error *err)
{
    redis_sink *s = (redis_sink *)base;
    bp_redis_leases_lock(&s->leases);
    int rc =
        bp_redis_lease_of(&s->leases, chain) ? with_retries(s, check_once, (void *)chain, err) : 0;
    bp_redis_leases_unlock(&s->leases);
    return rc;
}

/* ---- open / close ----------------------------------------------------------------------- */

static void redis_close(bp_sink *base)
{
    redis_sink *s = (redis_sink *)base;
    if (!s)
        return;
    if (s->leases_init)
        bp_redis_leases_release(&s->leases); /* gives the leases up: the chains are free now */
    drop_conn(s);
    free_keys(s);
    free(s->prefix);
    free(s->name);
    bp_buf_release(&s->data);
    bp_buf_release(&s->msg);
    bp_buf_release(&s->text);
    bp_redis_target_release(&s->t);
    free(s);
}

static char *dup_opt(const bp_sink_opts *o, const char *name)
{
    const char *v = bp_sink_opt(o, name);
    return v ? strdup(v) : NULL;
}

static int configure(redis_sink *s, const char *target, const bp_sink_opts *o, bp_error *err)
{
    bool tls = o->scheme && strcasecmp(o->scheme, "rediss") == 0;
    int rc = bp_redis_target_init(&s->t, target, tls, err);
    if (rc == 0)
        rc = bp_stream_entities_of(o, &s->entities, &s->base.derived, err);
    if (rc != 0)
        return rc;
    bp_stream_families(s->entities, &s->base);
    s->t.timeout_ms = (int)bp_sink_opt_int(o, "timeout") * 1000;
    s->t.keepalive_s = (int)bp_sink_opt_int(o, "keepalive");
    s->t.tls_ca = dup_opt(o, "tls_ca");
    s->t.tls_cert = dup_opt(o, "tls_cert");
    s->t.tls_key = dup_opt(o, "tls_key");
    s->prefix = dup_opt(o, "prefix");
    s->name = dup_opt(o, "checkpoint");
    s->maxlen = bp_sink_opt_int(o, "maxlen");
    s->ttl = bp_sink_opt_int(o, "ttl");
    s->publish = bp_sink_opt_int(o, "publish") != 0;
    s->wait_s = (int)bp_sink_opt_int(o, "wait_for_db");
    s->retries = (int)bp_sink_opt_int(o, "retries");
    bp_redis_leases_init(&s->leases, &s->t, bp_sink_opt_int(o, "lock_ttl") * 1000);
    s->leases_init = true;
    if (!s->prefix || !s->name)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    if (!tls && (s->t.tls_ca || s->t.tls_cert))
        return bp_error_set(err, BP_EINVAL,
                            "TLS files given for a redis:// URL: use rediss:// for TLS");
    return 0;
}

static int redis_open(bp_sink **out, const char *target, const bp_sink_opts *opts, bp_error *err)
{
    *out = NULL;
    redis_sink *s = calloc(1, sizeof(*s));
    if (!s)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    bp_buf_init(&s->data, 0);
    bp_buf_init(&s->msg, 0);
    bp_buf_init(&s->text, 0);
    /* No connection yet: a server that is down at start is the checkpoint read's business
     * (it waits wait_for_db; with --output-failure continue the output is set aside). */
    int rc = configure(s, target, opts, err);
    if (rc != 0) {
        redis_close(&s->base);
        return rc;
    }
    bp_info("redis %s: streams %s{entity}:{chain}, checkpoint %scheckpoint:%s:{chain}, MAXLEN "
            "~ %lld, latest TTL %lld s",
            s->t.where, s->prefix, s->prefix, s->name, s->maxlen, s->ttl);
    *out = &s->base;
    return 0;
}

static const bp_sink_option g_options[] = {
    BP_STREAM_ENTITIES_OPTION,
    BP_STREAM_METRICS_OPTION,
    {.name = "prefix",
     .flag = "redis-prefix",
     .env = "REDIS_PREFIX",
     .key = "redis_prefix",
     .type = BP_SINK_OPT_STRING,
     .arg = "TEXT",
     .def = "blockpipe:",
     .help = "start of every key: {prefix}{entity}:{chain} streams, "
             "{prefix}{entity}_updates:{chain} channels, {prefix}latest:{entity}:{chain}"},
    {.name = "maxlen",
     .flag = "redis-maxlen",
     .env = "REDIS_MAXLEN",
     .key = "redis_maxlen",
     .type = BP_SINK_OPT_INT,
     .arg = "N",
     .def = "1000",
     .min = 0,
     .max = 1000000000000LL,
     .help = "entries a stream keeps (XADD MAXLEN ~ N); 0: unbounded"},
    {.name = "ttl",
     .flag = "redis-latest-ttl",
     .env = "REDIS_LATEST_TTL",
     .key = "redis_latest_ttl",
     .type = BP_SINK_OPT_INT,
     .arg = "S",
     .def = "3600",
     .min = 0,
     .max = 100000000,
     .help = "seconds the latest keys live after their last update; 0: no expiry"},
    {.name = "publish",
     .flag = "redis-publish",
     .env = "REDIS_PUBLISH",
     .key = "redis_publish",
     .type = BP_SINK_OPT_BOOL,
     .arg = "on|off",
     .def = "on",
     .help = "also PUBLISH every entry on {prefix}{entity}_updates:{chain}"},
    {.name = "timeout",
     .flag = "redis-timeout",
     .env = "REDIS_TIMEOUT",
     .key = "redis_timeout",
     .type = BP_SINK_OPT_INT,
     .arg = "S",
     .def = "10",
     .min = 1,
     .max = 3600,
     .help = "seconds to connect, and without progress in a round trip, before the "
             "connection counts as lost"},
    {.name = "retries",
     .flag = "redis-retries",
     .env = "REDIS_RETRIES",
     .key = "redis_retries",
     .type = BP_SINK_OPT_INT,
     .arg = "N",
     .def = "5",
     .min = 0,
     .max = 1000,
     .help = "times a batch is written again on a new connection after a timeout or a "
             "lost connection (never twice: the stored checkpoint is read first)"},
    {.name = "keepalive",
     .flag = "redis-keepalive",
     .env = "REDIS_KEEPALIVE",
     .key = "redis_keepalive",
     .type = BP_SINK_OPT_INT,
     .arg = "S",
     .def = "60",
     .min = 0,
     .max = 7200,
     .help = "TCP keepalive idle seconds; 0: off"},
    {.name = "lock_ttl",
     .flag = "redis-lock-ttl",
     .env = "REDIS_LOCK_TTL",
     .key = "redis_lock_ttl",
     .type = BP_SINK_OPT_INT,
     .arg = "S",
     .def = "30",
     .min = 0,
     .max = 86400,
     .help = "seconds a chain's writer lease {prefix}lock:{checkpoint}:{chain} lives unless "
             "renewed (every third of it): a holder that vanished keeps the chain that long "
             "(one of this host: not at all); 0: no lease (another output's lock or --shard "
             "must keep a second process off the chain)"},
    BP_SINK_OPTION_WAIT_FOR_DB("30"),
    BP_SINK_OPTION_CHECKPOINT_NAME("redis"),
    {.name = "tls_ca",
     .flag = "redis-tls-ca",
     .env = "REDIS_TLS_CA",
     .key = "redis_tls_ca",
     .type = BP_SINK_OPT_STRING,
     .arg = "FILE",
     .help = "CA certificates (PEM) that a rediss:// server's certificate must chain to "
             "(default: the system's)"},
    {.name = "tls_cert",
     .flag = "redis-tls-cert",
     .env = "REDIS_TLS_CERT",
     .key = "redis_tls_cert",
     .type = BP_SINK_OPT_STRING,
     .arg = "FILE",
     .help = "client certificate (PEM) for a rediss:// server that asks for one"},
    {.name = "tls_key",
     .flag = "redis-tls-key",
     .env = "REDIS_TLS_KEY",
     .key = "redis_tls_key",
     .type = BP_SINK_OPT_STRING,
     .arg = "FILE",
     .help = "the client certificate's private key (PEM; default: in the certificate file)"},
};

static const char *const g_aliases[] = {"rediss", NULL};

const bp_sink_ops bp_sink_redis_ops = {
    .scheme = "redis",
    .aliases = g_aliases,
    .title = "Redis",
    .usage = "redis://[:password@]host:6379[/db]",
    .description = "Redis streams per entity and chain (XADD MAXLEN ~), pub/sub, latest keys; "
                   "a batch and its checkpoint in one MULTI/EXEC (rediss:// for TLS)",
    .options = g_options,
    .option_count = sizeof(g_options) / sizeof(g_options[0]),
    .open = redis_open,
    .checkpoint = redis_checkpoint,
    .recent = redis_recent,
    .write = redis_write,
    .flush = NULL,
    .close = redis_close,
    .claim = redis_claim,
    .unclaim = redis_unclaim,
    .check = redis_check,
};
