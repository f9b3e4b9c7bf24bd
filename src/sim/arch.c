/* arch.c - simnode's Arch Network answers and events (shapes: docs/ARCH.md). */
#include "sim/arch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/node.h"
#include "util/hex.h"
#include "util/jsonw.h"

#define SEARCH_BACK 64 /* blocks looked at below the head for one with transactions */
#define DATA_MAX 8     /* instruction data bytes */
#define BTC_HEIGHT0 850000u
#define BTC_EVERY 60u /* Arch blocks per bitcoin block here */

static const char HEX[] = "0123456789abcdef";
static const char *const TOPICS[BP_SIM_ARCH_TOPICS] = {
    "block", "transaction", "account_update", "rolledback_transactions", "reapplied_transactions",
    "dkg"};

const char *bp_sim_arch_topic_name(unsigned t)
{
    return t < BP_SIM_ARCH_TOPICS ? TOPICS[t] : NULL;
}

int bp_sim_arch_init(bp_sim_arch *a, bp_sim_chain *c, double rollback_every, double now,
                     bp_error *err)
{
    memset(a, 0, sizeof(*a));
    a->chain = c;
    a->t0 = now;
    a->rollback_every = rollback_every;
    a->rollback_depth = 1;
    a->finality = BP_SIM_ARCH_FINALITY;
    atomic_init(&a->episodes, 0);
    a->ep_height = calloc(BP_SIM_ARCH_MAX_EPISODES, sizeof(*a->ep_height));
    a->ep_fork = calloc(BP_SIM_ARCH_MAX_EPISODES, sizeof(*a->ep_fork));
    a->ep_txs = calloc(BP_SIM_ARCH_MAX_EPISODES, sizeof(*a->ep_txs));
    a->ep_ntx = calloc(BP_SIM_ARCH_MAX_EPISODES, sizeof(*a->ep_ntx));
    if (!a->ep_height || !a->ep_fork || !a->ep_txs || !a->ep_ntx) {
        bp_sim_arch_release(a);
        return bp_error_set(err, BP_ENOMEM, "simnode: out of memory");
    }
    pthread_mutex_init(&a->lock, NULL);
    return 0;
}

void bp_sim_arch_release(bp_sim_arch *a)
{
    if (a->ep_height && a->ep_fork && a->ep_txs && a->ep_ntx)
        pthread_mutex_destroy(&a->lock);
    for (unsigned j = 0; a->ep_txs && j < BP_SIM_ARCH_MAX_EPISODES; j++)
        free(a->ep_txs[j]);
    free(a->ep_height);
    free(a->ep_fork);
    free(a->ep_txs);
    free(a->ep_ntx);
    a->ep_height = NULL;
    a->ep_fork = NULL;
    a->ep_txs = NULL;
    a->ep_ntx = NULL;
}

/* The newest canonical block with transactions at least rollback_depth below head (within
 * SEARCH_BACK more). */
static bool rollback_target(const bp_sim_arch *a, uint64_t head, uint64_t *n, uint32_t *fork)
{
    bp_sim_block b;
    bp_error err;
    bool found = false;
    uint64_t d = a->rollback_depth;
    bp_sim_block_init(&b);
    for (uint64_t x = head > d ? head - d : 0, i = 0; !found && i < SEARCH_BACK; x--, i++) {
        uint32_t f = bp_sim_chain_fork_at(a->chain, x);
        if (bp_sim_block_gen(a->chain, x, f, &b, &err) != 0)
            break;
        if (b.tx_count > 0) {
            *n = x;
            *fork = f;
            found = true;
        }
        if (x == 0)
            break;
    }
    bp_sim_block_release(&b);
    return found;
}

/* Episode j made at time `at` (the lock held). */
static int make_episode(bp_sim_arch *a, unsigned j, double at)
{
    if (j >= BP_SIM_ARCH_MAX_EPISODES)
        return BP_EINVAL;
    if (j % 2 == 1) { /* the re-apply of the episode before */
        a->ep_height[j] = a->ep_height[j - 1];
        a->ep_fork[j] = a->ep_fork[j - 1];
    } else if (!rollback_target(a, bp_sim_chain_head(a->chain, at), &a->ep_height[j],
                                &a->ep_fork[j])) {
        return BP_EINVAL;
    }
    atomic_store_explicit(&a->episodes, j + 1, memory_order_release);
    return 0;
}

/* The episodes due by now (the lock held). */
static unsigned tick_locked(bp_sim_arch *a, double now)
{
    unsigned made = 0;
    for (;;) {
        unsigned j = atomic_load(&a->episodes);
        double due = a->t0 + (double)(j + 1) * a->rollback_every;
        if (due > now || make_episode(a, j, due) != 0)
            break;
        made++;
    }
    return made;
}

unsigned bp_sim_arch_tick(bp_sim_arch *a, double now)
{
    if (a->rollback_every <= 0)
        return 0;
    pthread_mutex_lock(&a->lock);
    unsigned made = tick_locked(a, now);
    pthread_mutex_unlock(&a->lock);
    return made;
}

int bp_sim_arch_episode(bp_sim_arch *a, double now)
{
    pthread_mutex_lock(&a->lock);
    int rc = make_episode(a, atomic_load(&a->episodes), now);
    pthread_mutex_unlock(&a->lock);
    return rc;
}

bool bp_sim_arch_episode_has(const bp_sim_arch *a, unsigned j, uint32_t idx)
{
    unsigned e = j & ~1u; /* a re-apply is of its rollback's transactions */
    const uint32_t *list = a->ep_txs[e];
    if (!list)
        return idx % 2 == 0;
    for (size_t lo = 0, hi = a->ep_ntx[e]; lo < hi;) {
        size_t mid = lo + (hi - lo) / 2;
        if (list[mid] == idx)
            return true;
        if (list[mid] < idx)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

static int cmp_u32(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return a < b ? -1 : a > b;
}

/* The transactions txids[0..n) as indices of one canonical block at or below head: *height /
 * *fork set (a given *height must be theirs), idx sorted without duplicates. */
static int txids_block(const bp_sim_arch *a, uint64_t head, const bp_sim_h256 *txids, size_t n,
                       bool have_height, uint64_t *height, uint32_t *fork, uint32_t *idx,
                       size_t *count, bp_error *err)
{
    bp_sim_block b;
    bp_sim_block_init(&b);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        uint64_t tn;
        uint32_t tf;
        char hex[65] = {0};
        bp_sim_arch_put_hex(hex, &txids[i]);
        if (!bp_sim_tx_hash_decode(a->chain, &txids[i], &tn, &tf, &idx[i]) || tn > head ||
            bp_sim_chain_fork_at(a->chain, tn) != tf ||
            (rc = bp_sim_block_gen(a->chain, tn, tf, &b, err)) != 0 || idx[i] >= b.tx_count) {
            rc = rc ? rc
                    : bp_error_set(err, BP_EINVAL,
                                   "txids[%zu] %s: not a transaction of the canonical chain", i,
                                   hex);
        } else if ((i > 0 || have_height) && tn != *height) {
            rc = bp_error_set(err, BP_EINVAL,
                              "txids[%zu] %s: in block %llu, not %llu (one block per rollback)", i,
                              hex, (unsigned long long)tn, (unsigned long long)*height);
        }
        *height = tn;
        *fork = tf;
    }
    bp_sim_block_release(&b);
    if (rc != 0)
        return rc;
    qsort(idx, n, sizeof(*idx), cmp_u32);
    *count = 0;
    for (size_t i = 0; i < n; i++)
        if (*count == 0 || idx[*count - 1] != idx[i])
            idx[(*count)++] = idx[i];
    return 0;
}

/* Where a rollback of block `height` (or, without one, the timer's choice) is: its fork, and
 * that it has transactions. */
static int height_block(const bp_sim_arch *a, uint64_t head, bool have_height, uint64_t *height,
                        uint32_t *fork, bp_error *err)
{
    if (!have_height) {
        if (!rollback_target(a, head, height, fork))
            return bp_error_set(err, BP_EINVAL, "no block with transactions near the head %llu",
                                (unsigned long long)head);
        return 0;
    }
    if (*height > head)
        return bp_error_set(err, BP_EINVAL, "height %llu: above the head %llu",
                            (unsigned long long)*height, (unsigned long long)head);
    bp_sim_block b;
    bp_sim_block_init(&b);
    *fork = bp_sim_chain_fork_at(a->chain, *height);
    int rc = bp_sim_block_gen(a->chain, *height, *fork, &b, err);
    if (rc == 0 && b.tx_count == 0)
        rc = bp_error_set(err, BP_EINVAL, "height %llu: the block has no transactions",
                          (unsigned long long)*height);
    bp_sim_block_release(&b);
    return rc;
}

int bp_sim_arch_rollback(bp_sim_arch *a, double now, const uint64_t *height,
                         const bp_sim_h256 *txids, size_t n, unsigned *episode, bp_error *err)
{
    uint32_t *idx = n ? malloc(n * sizeof(*idx)) : NULL;
    if (n && !idx)
        return bp_error_set(err, BP_ENOMEM, "simnode: out of memory");
    pthread_mutex_lock(&a->lock);
    if (a->rollback_every > 0)
        tick_locked(a, now);
    unsigned j = atomic_load(&a->episodes);
    uint64_t head = bp_sim_chain_head(a->chain, now), h = height ? *height : 0;
    uint32_t fork = 0;
    size_t count = 0;
    int rc = 0;
    if (j % 2 == 1)
        rc = bp_error_set(err, BP_EINVAL,
                          "transactions of block %llu are rolled back: simnode_reapply first",
                          (unsigned long long)a->ep_height[j - 1]);
    else if (j >= BP_SIM_ARCH_MAX_EPISODES)
        rc = bp_error_set(err, BP_EINVAL, "no episode left: all %u are used",
                          BP_SIM_ARCH_MAX_EPISODES);
    else if (n > 0)
        rc = txids_block(a, head, txids, n, height != NULL, &h, &fork, idx, &count, err);
    else
        rc = height_block(a, head, height != NULL, &h, &fork, err);
    if (rc == 0) {
        free(a->ep_txs[j]);
        a->ep_txs[j] = n ? idx : NULL; /* NULL: the timer's choice, every other transaction */
        a->ep_ntx[j] = (uint32_t)count;
        idx = NULL;
        a->ep_height[j] = h;
        a->ep_fork[j] = fork;
        atomic_store_explicit(&a->episodes, j + 1, memory_order_release);
        *episode = j;
    }
    pthread_mutex_unlock(&a->lock);
    free(idx);
    return rc;
}

int bp_sim_arch_reapply(bp_sim_arch *a, double now, unsigned *episode, bp_error *err)
{
    pthread_mutex_lock(&a->lock);
    if (a->rollback_every > 0)
        tick_locked(a, now);
    unsigned j = atomic_load(&a->episodes);
    int rc = 0;
    if (j % 2 == 0)
        rc = bp_error_set(err, BP_EINVAL, "nothing is rolled back: simnode_rollback first");
    else if (j >= BP_SIM_ARCH_MAX_EPISODES)
        rc = bp_error_set(err, BP_EINVAL, "no episode left: all %u are used",
                          BP_SIM_ARCH_MAX_EPISODES);
    else if ((rc = make_episode(a, j, now)) == 0)
        *episode = j;
    pthread_mutex_unlock(&a->lock);
    return rc;
}

bool bp_sim_arch_rolled_back(const bp_sim_arch *a, uint64_t n, uint32_t fork, uint32_t idx)
{
    unsigned k = atomic_load_explicit(&a->episodes, memory_order_acquire);
    return k % 2 == 1 && a->ep_height[k - 1] == n && a->ep_fork[k - 1] == fork &&
           bp_sim_arch_episode_has(a, k - 1, idx);
}

char *bp_sim_arch_put_hex(char *p, const bp_sim_h256 *h)
{
    for (int i = 0; i < 4; i++)
        for (int s = 60; s >= 0; s -= 4)
            *p++ = HEX[(h->w[i] >> s) & 0xf];
    return p;
}

bool bp_sim_arch_parse_hex(const char *s, bp_sim_h256 *h)
{
    char tmp[67] = "0x";
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        s += 2;
    if (strlen(s) != 64)
        return false;
    memcpy(tmp + 2, s, 65);
    return bp_sim_parse_h256(tmp, h);
}

static int put_hex_q(bp_buf *out, const bp_sim_h256 *h)
{
    char tmp[66];
    tmp[0] = '"';
    bp_sim_arch_put_hex(tmp + 1, h);
    tmp[65] = '"';
    return bp_buf_append(out, tmp, sizeof(tmp));
}

static void h256_bytes(const bp_sim_h256 *h, uint8_t out[32])
{
    for (int i = 0; i < 32; i++)
        out[i] = (uint8_t)(h->w[i / 8] >> (56 - 8 * (i % 8)));
}

/* A Pubkey / Uint8Array as the SDK serializes it: an array of byte numbers. */
static int put_bytes(bp_buf *out, const uint8_t *p, size_t n)
{
    int rc = bp_buf_putc(out, '[');
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = bp_buf_printf(out, i ? ",%u" : "%u", (unsigned)p[i]);
    return rc != 0 ? rc : bp_buf_putc(out, ']');
}

/* A 32-byte account key standing for a 20-byte simnode address. */
static void addr_key(const bp_sim_chain *c, const bp_sim_addr *ad, bp_sim_h256 *k)
{
    for (int i = 0; i < 4; i++)
        k->w[i] = bp_sim_mix4(c->p.seed, 0xa7c4 + (uint64_t)i, ad->w[0] ^ ad->w[2], ad->w[1]);
}

/* The program a tx calls: the system program for transfers, APL token for calls, the BPF
 * loader for creations (the SDK's constants.ts ids). */
static void program_key(const bp_sim_tx *tx, bp_sim_h256 *k)
{
    const char *ascii = NULL;
    memset(k, 0, sizeof(*k));
    if (tx->input_kind == BP_SIM_IN_CALL)
        ascii = "apl-token00000000000000000000000";
    else if (tx->input_kind == BP_SIM_IN_CREATE)
        ascii = "BpfLoader11111111111111111111111";
    if (!ascii) {
        k->w[3] = 1;
        return;
    }
    for (int i = 0; i < 32; i++)
        k->w[i / 8] |= (uint64_t)(uint8_t)ascii[i] << (56 - 8 * (i % 8));
}

/* account_keys: [signer, destination, program]; header {1, 0, 1}: the first two writable. */
static void tx_keys(const bp_sim_chain *c, const bp_sim_tx *tx, bp_sim_h256 keys[3])
{
    addr_key(c, &tx->from, &keys[0]);
    addr_key(c, tx->has_to ? &tx->to : &tx->contract, &keys[1]);
    program_key(tx, &keys[2]);
}

static unsigned fail_code(const bp_sim_tx *tx)
{
    return (unsigned)(tx->hash.w[0] & 0xff) + 1;
}

/* A hash as 32 byte numbers (serde's Hash([u8; 32]): arch-sdk program/src/hash.rs). */
static int put_hash_bytes(bp_buf *out, const bp_sim_h256 *h)
{
    uint8_t b[32];
    h256_bytes(h, b);
    return put_bytes(out, b, 32);
}

/* A hash the way the shape writes a Hash field: bytes (Rust) or a hex string (TS). */
static int put_hash_field(const bp_sim_arch *a, bp_buf *out, const bp_sim_h256 *h)
{
    return a->ts_shape ? put_hex_q(out, h) : put_hash_bytes(out, h);
}

/* The block's time in milliseconds (the Rust shape's unit): its seconds and a sub-second part
 * from the hash, so a reader that takes them for seconds (or drops the part) shows. */
static unsigned long long block_ms(const bp_sim_block *b)
{
    return (unsigned long long)b->timestamp * 1000u + (unsigned long long)(b->hash.w[1] % 1000u);
}

/* Book src/rpc/http-methods/get-block.md (result: a Block). Fields: arch-sdk
 * sdk/src/types/block.rs struct Block {transactions: Vec<Hash>, previous_block_hash: Hash,
 * timestamp: u128 (ms: rpc_wire_format.rs block_response_deserialization), block_height: u64,
 * bitcoin_block_height: u64}; with ts_shape the TypeScript SDK's src/struct/block.ts (hex
 * strings, timestamp in seconds here, bitcoin_block_height a string, transactions_count,
 * merkle_root). */
int bp_sim_arch_render_block(const bp_sim_arch *a, const bp_sim_block *b, bp_buf *out)
{
    int rc = bp_buf_puts(out, "{\"transactions\":[");
    for (size_t i = 0; rc == 0 && i < b->tx_count; i++) {
        if (i > 0)
            rc = bp_buf_putc(out, ',');
        if (rc == 0)
            rc = put_hash_field(a, out, &b->txs[i].hash);
    }
    if (rc == 0)
        rc = bp_buf_puts(out, "],\"previous_block_hash\":");
    if (rc == 0)
        rc = put_hash_field(a, out, &b->parent_hash);
    unsigned long long btc = BTC_HEIGHT0 + b->number / BTC_EVERY;
    if (rc == 0 && !a->ts_shape)
        return bp_buf_printf(out,
                             ",\"timestamp\":%llu,\"block_height\":%llu,"
                             "\"bitcoin_block_height\":%llu}",
                             block_ms(b), (unsigned long long)b->number, btc);
    /* bitcoin_block_height is a string in block.ts (unlike block_height) */
    if (rc == 0)
        rc = bp_buf_printf(out,
                           ",\"timestamp\":%llu,\"block_height\":%llu,\"bitcoin_block_height\":"
                           "\"%llu\",\"transactions_count\":%zu,\"merkle_root\":",
                           (unsigned long long)b->timestamp, (unsigned long long)b->number, btc,
                           b->tx_count);
    if (rc == 0)
        rc = put_hex_q(out, &b->transactions_root);
    return rc != 0 ? rc : bp_buf_putc(out, '}');
}

/* SDK src/struct/runtime-transaction.ts, sanitized-message.ts, header.ts,
 * sanitized-instruction.ts; byte arrays as serde/uint8array.ts sends them (number arrays). */
static int render_runtime_tx(const bp_sim_block *b, const bp_sim_tx *tx, const bp_sim_h256 k[3],
                             bp_buf *out)
{
    uint8_t bytes[64];
    h256_bytes(&tx->r, bytes);
    h256_bytes(&tx->s, bytes + 32);
    int rc = bp_buf_puts(out, "{\"version\":0,\"signatures\":[");
    if (rc == 0)
        rc = put_bytes(out, bytes, 64);
    if (rc == 0)
        rc = bp_buf_puts(out, "],\"message\":{\"header\":{\"num_required_signatures\":1,"
                              "\"num_readonly_signed_accounts\":0,"
                              "\"num_readonly_unsigned_accounts\":1},\"account_keys\":[");
    for (int i = 0; rc == 0 && i < 3; i++) {
        h256_bytes(&k[i], bytes);
        rc = i ? bp_buf_putc(out, ',') : 0;
        if (rc == 0)
            rc = put_bytes(out, bytes, 32);
    }
    h256_bytes(&b->parent_hash, bytes);
    if (rc == 0)
        rc = bp_buf_puts(out, "],\"recent_blockhash\":");
    if (rc == 0)
        rc = put_bytes(out, bytes, 32);
    if (rc == 0)
        rc = bp_buf_puts(out, ",\"instructions\":[{\"program_id_index\":2,\"accounts\":[0,1],"
                              "\"data\":");
    uint64_t st = tx->input_seed;
    size_t n = tx->input_words < DATA_MAX ? tx->input_words : DATA_MAX;
    for (size_t i = 0; i < n; i++)
        bytes[i] = (uint8_t)bp_sim_next(&st);
    if (rc == 0)
        rc = put_bytes(out, bytes, n);
    return rc != 0 ? rc : bp_buf_puts(out, "}]}}");
}

/* Book src/rpc/http-methods/get-processed-transaction.md (a ProcessedTransaction). Fields:
 * arch-sdk sdk/src/types/processed_transaction.rs struct ProcessedTransaction
 * {runtime_transaction, status, bitcoin_txid: Option<Hash>, logs, rollback_status,
 * inner_instructions_list} (rpc_wire_format.rs processed_transaction_response_deserialization;
 * Status and RollbackStatus serde-tagged {"type", "message"}); the TypeScript SDK's
 * src/struct/processed-transaction.ts is the same but inner_instructions_list. The book's
 * example shows bitcoin_txids, a list of strings, instead. */
int bp_sim_arch_render_ptx(const bp_sim_arch *a, const bp_sim_block *b, size_t idx, bp_buf *out)
{
    const bp_sim_tx *tx = &b->txs[idx];
    bp_sim_h256 k[3];
    char pid[65] = {0};
    tx_keys(a->chain, tx, k);
    bp_sim_arch_put_hex(pid, &k[2]);
    int rc = bp_buf_puts(out, "{\"runtime_transaction\":");
    if (rc == 0)
        rc = render_runtime_tx(b, tx, k, out);
    if (rc == 0 && tx->status)
        rc = bp_buf_puts(out, ",\"status\":{\"type\":\"processed\"}");
    else if (rc == 0)
        rc = bp_buf_printf(out,
                           ",\"status\":{\"type\":\"failed\",\"message\":\"custom program "
                           "error: 0x%x\"}",
                           fail_code(tx));
    if (rc == 0 && idx % 4 == 0) {
        uint8_t bt[32];
        bp_sim_h256 h = {{bp_sim_mix64(tx->hash.w[0]), bp_sim_mix64(tx->hash.w[1]),
                          bp_sim_mix64(tx->hash.w[2]), bp_sim_mix64(tx->hash.w[3])}};
        h256_bytes(&h, bt);
        rc = bp_buf_puts(out, ",\"bitcoin_txid\":");
        if (rc == 0)
            rc = put_bytes(out, bt, 32);
    } else if (rc == 0) {
        rc = bp_buf_puts(out, ",\"bitcoin_txid\":null");
    }
    if (rc == 0)
        rc = bp_buf_printf(out, ",\"logs\":[\"Program %s invoke [1]\",\"Program %s %s\"]", pid, pid,
                           tx->status ? "success" : "failed");
    /* A rolled-back transaction: the book's get-processed-transaction.md has no rollback
     * field at all; the SDK's struct/processed-transaction.ts RollbackStatus is
     * {type: "rolledback", message} | {type: "notRolledback"} beside an unchanged status, so
     * that is the answer from the rolledback_transactions event to the reapplied_transactions
     * one (docs/ARCH.md item 12). */
    if (rc == 0 && bp_sim_arch_rolled_back(a, b->number, b->fork, (uint32_t)idx))
        rc = bp_buf_puts(out, ",\"rollback_status\":{\"type\":\"rolledback\",\"message\":"
                              "\"bitcoin transaction replaced (simnode)\"}");
    else if (rc == 0)
        rc = bp_buf_puts(out, ",\"rollback_status\":{\"type\":\"notRolledback\"}");
    /* InnerInstructionsList (sdk/src/types/inner_instruction.rs): a list per instruction */
    if (rc == 0 && !a->ts_shape)
        rc = bp_buf_puts(out, ",\"inner_instructions_list\":[[]]");
    return rc != 0 ? rc : bp_buf_putc(out, '}');
}

static int put_event_open(bp_buf *out, unsigned topic)
{
    bp_buf_reset(out);
    return bp_buf_printf(out, "{\"topic\":\"%s\",\"data\":", TOPICS[topic]);
}

static int send_event(bp_buf *out, unsigned topic, bp_sim_arch_emit emit, void *ud)
{
    int rc = bp_buf_putc(out, '}');
    return rc != 0 ? rc : emit(ud, topic, out->data, out->len);
}

/* arch-sdk sdk/src/types/event.rs TransactionEvent {hash: String, status: Status (serde:
 * {"type": "processed"} / {"type": "failed", "message"}), program_ids: Vec<String>,
 * block_height}; ts_shape: the TypeScript SDK's src/websocket-client/types/events.ts (status
 * "Processed" or {"Failed": message}). Strings are hex (Hash's and Pubkey's Display). */
static int tx_event(const bp_sim_arch *a, const bp_sim_block *b, size_t i, bp_buf *s,
                    bp_sim_arch_emit emit, void *ud)
{
    const bp_sim_tx *tx = &b->txs[i];
    bp_sim_h256 k[3];
    tx_keys(a->chain, tx, k);
    int rc = put_event_open(s, BP_SIM_ARCH_TRANSACTION);
    if (rc == 0)
        rc = bp_buf_puts(s, "{\"hash\":");
    if (rc == 0)
        rc = put_hex_q(s, &tx->hash);
    if (rc == 0 && tx->status)
        rc = bp_buf_puts(s, a->ts_shape ? ",\"status\":\"Processed\""
                                        : ",\"status\":{\"type\":\"processed\"}");
    else if (rc == 0)
        rc = bp_buf_printf(s,
                           a->ts_shape ? ",\"status\":{\"Failed\":\"custom program error: 0x%x\"}"
                                       : ",\"status\":{\"type\":\"failed\",\"message\":\"custom "
                                         "program error: 0x%x\"}",
                           fail_code(tx));
    if (rc == 0)
        rc = bp_buf_puts(s, ",\"program_ids\":[");
    if (rc == 0)
        rc = put_hex_q(s, &k[2]);
    if (rc == 0)
        rc = bp_buf_printf(s, "],\"block_height\":%llu}", (unsigned long long)b->number);
    return rc != 0 ? rc : send_event(s, BP_SIM_ARCH_TRANSACTION, emit, ud);
}

/* event.rs / events.ts AccountUpdateEvent {account, transaction_hash, block_height} (the same
 * in both), one per writable account of the tx. */
static int account_events(const bp_sim_arch *a, const bp_sim_block *b, size_t i, bp_buf *s,
                          bp_sim_arch_emit emit, void *ud)
{
    bp_sim_h256 k[3];
    tx_keys(a->chain, &b->txs[i], k);
    int rc = 0;
    for (int w = 0; rc == 0 && w < 2; w++) {
        rc = put_event_open(s, BP_SIM_ARCH_ACCOUNT_UPDATE);
        if (rc == 0)
            rc = bp_buf_puts(s, "{\"account\":");
        if (rc == 0)
            rc = put_hex_q(s, &k[w]);
        if (rc == 0)
            rc = bp_buf_puts(s, ",\"transaction_hash\":");
        if (rc == 0)
            rc = put_hex_q(s, &b->txs[i].hash);
        if (rc == 0)
            rc = bp_buf_printf(s, ",\"block_height\":%llu}", (unsigned long long)b->number);
        if (rc == 0)
            rc = send_event(s, BP_SIM_ARCH_ACCOUNT_UPDATE, emit, ud);
    }
    return rc;
}

int bp_sim_arch_block_events(const bp_sim_arch *a, const bp_sim_block *b, unsigned mask, bp_buf *s,
                             bp_sim_arch_emit emit, void *ud)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < b->tx_count; i++) {
        if (mask & (1u << BP_SIM_ARCH_TRANSACTION))
            rc = tx_event(a, b, i, s, emit, ud);
        if (rc == 0 && (mask & (1u << BP_SIM_ARCH_ACCOUNT_UPDATE)))
            rc = account_events(a, b, i, s, emit, ud);
    }
    /* BlockEvent {hash: String, timestamp: u128 written as a string (event.rs
     * serialize_u128_as_string; ms, Block.timestamp's unit)}; events.ts: a number */
    if (rc == 0 && (mask & (1u << BP_SIM_ARCH_BLOCK))) {
        rc = put_event_open(s, BP_SIM_ARCH_BLOCK);
        if (rc == 0)
            rc = bp_buf_puts(s, "{\"hash\":");
        if (rc == 0)
            rc = put_hex_q(s, &b->hash);
        if (rc == 0 && a->ts_shape)
            rc = bp_buf_printf(s, ",\"timestamp\":%llu}", (unsigned long long)b->timestamp);
        else if (rc == 0)
            rc = bp_buf_printf(s, ",\"timestamp\":\"%llu\"}", block_ms(b));
        if (rc == 0)
            rc = send_event(s, BP_SIM_ARCH_BLOCK, emit, ud);
    }
    if (rc == 0 && (mask & (1u << BP_SIM_ARCH_DKG)) && b->number % BP_SIM_ARCH_DKG_EVERY == 0 &&
        b->number > 0) { /* event.rs / events.ts DKGEvent, a status string (values undocumented) */
        rc = put_event_open(s, BP_SIM_ARCH_DKG);
        if (rc == 0)
            rc = bp_buf_puts(s, "{\"status\":");
        if (rc == 0)
            rc = bp_jsonw_quote(s, a->dkg_status ? a->dkg_status : "Completed", BP_JSONW_ESC_U);
        if (rc == 0)
            rc = bp_buf_putc(s, '}');
        if (rc == 0)
            rc = send_event(s, BP_SIM_ARCH_DKG, emit, ud);
    }
    return rc;
}

/* event.rs / events.ts RolledbackTransactionsEvent / ReappliedTransactionsEvent
 * {block_height, transaction_hashes: Vec<String>} (the same fields in both). */
int bp_sim_arch_episode_event(const bp_sim_arch *a, unsigned j, unsigned mask, bp_buf *s,
                              bp_sim_arch_emit emit, void *ud)
{
    unsigned topic = j % 2 == 0 ? BP_SIM_ARCH_ROLLEDBACK : BP_SIM_ARCH_REAPPLIED;
    if (!(mask & (1u << topic)) || j >= atomic_load(&a->episodes))
        return 0;
    bp_sim_block b;
    bp_error err;
    bp_sim_block_init(&b);
    int rc = bp_sim_block_gen(a->chain, a->ep_height[j], a->ep_fork[j], &b, &err);
    if (rc == 0)
        rc = put_event_open(s, topic);
    if (rc == 0)
        rc = bp_buf_puts(s, "{\"transaction_hashes\":[");
    for (size_t i = 0, k = 0; rc == 0 && i < b.tx_count; i++) {
        if (!bp_sim_arch_episode_has(a, j, (uint32_t)i))
            continue;
        if (k++ > 0)
            rc = bp_buf_putc(s, ',');
        if (rc == 0)
            rc = put_hex_q(s, &b.txs[i].hash);
    }
    if (rc == 0)
        rc = bp_buf_printf(s, "],\"block_height\":%llu}", (unsigned long long)b.number);
    bp_sim_block_release(&b);
    return rc != 0 ? rc : send_event(s, topic, emit, ud);
}

/* ---- HTTP JSON-RPC ---- */

static int fail(bp_sim_arch_fail *f, int code, const char *what)
{
    f->code = code;
    snprintf(f->msg, sizeof(f->msg), "%s", what);
    return 0;
}

/* The one parameter: params[0], or params itself when it is not an array (the book's
 * get_processed_transaction request and the SDK's postData send bare values). */
static yajl_val param0(yajl_val params)
{
    if (params && YAJL_IS_ARRAY(params))
        return params->u.array.len > 0 ? params->u.array.values[0] : NULL;
    return params;
}

/* get_block_hash takes a u64 (method availability doc), shown as "680000" in its example. */
static bool height_param(yajl_val v, uint64_t *n)
{
    const char *s = NULL;
    if (v && YAJL_IS_INTEGER(v) && v->u.number.i >= 0) {
        *n = (uint64_t)v->u.number.i;
        return true;
    }
    if (v && YAJL_IS_STRING(v))
        s = v->u.string;
    if (!s || !*s || s[0] == '-')
        return false;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    *n = x;
    return !*end && !errno;
}

static int hash_result(const bp_sim_arch *a, uint64_t n, bp_buf *out)
{
    bp_sim_h256 h;
    bp_sim_block_hash(a->chain, n, bp_sim_chain_fork_at(a->chain, n), &h);
    return put_hex_q(out, &h);
}

static int block_result(const bp_sim_arch *a, bp_sim_request *r, yajl_val p, bp_buf *out,
                        bp_sim_arch_fail *f)
{
    bp_sim_h256 h;
    uint64_t n;
    uint32_t fork;
    if (!p || !YAJL_IS_STRING(p) || !bp_sim_arch_parse_hex(p->u.string, &h))
        return fail(f, -32602, "invalid params: expected a block hash (64 hex digits)");
    /* An orphaned block still answers by hash, as the EVM simnode's. */
    if (!bp_sim_block_hash_decode(a->chain, &h, &n, &fork) ||
        !bp_sim_chain_block_exists(a->chain, n, fork, r->head))
        return fail(f, BP_SIM_ARCH_NOT_FOUND, "block not found");
    bp_sim_block b;
    bp_error err;
    bp_sim_block_init(&b);
    int rc = bp_sim_block_gen(a->chain, n, fork, &b, &err);
    if (rc == 0)
        rc = bp_sim_arch_render_block(a, &b, out);
    bp_sim_block_release(&b);
    return rc;
}

static int ptx_result(const bp_sim_arch *a, bp_sim_request *r, yajl_val p, bp_buf *out,
                      bp_sim_arch_fail *f)
{
    bp_sim_h256 h;
    uint64_t n;
    uint32_t fork, idx;
    if (!p || !YAJL_IS_STRING(p) || !bp_sim_arch_parse_hex(p->u.string, &h))
        return fail(f, -32602, "invalid params: expected a transaction id (64 hex digits)");
    /* Only canonical transactions are known, as the EVM simnode's receipts. */
    if (!bp_sim_tx_hash_decode(a->chain, &h, &n, &fork, &idx) || n > r->head ||
        bp_sim_chain_fork_at(a->chain, n) != fork)
        return fail(f, BP_SIM_ARCH_NOT_FOUND, "transaction not found");
    /* The block from the request's scratch: a batch of a block's N transactions generated it
     * N times (a 2,000-tx block's batch took over 30 s under AddressSanitizer). */
    const bp_sim_block *b;
    int rc = bp_sim_load_block(r, n, fork, &b);
    if (rc == 0 && idx >= b->tx_count)
        fail(f, BP_SIM_ARCH_NOT_FOUND, "transaction not found");
    else if (rc == 0)
        rc = bp_sim_arch_render_ptx(a, b, idx, out);
    return rc;
}

int bp_sim_arch_result(const bp_sim_arch *a, bp_sim_request *r, const char *m, yajl_val params,
                       bp_buf *out, bp_sim_arch_fail *f)
{
    uint64_t head = r->head, n;
    f->code = 0;
    /* book src/rpc/http-methods/get-block-count.md: "the current block count" (heights
     * 0..head here, so head + 1) */
    if (strcmp(m, "get_block_count") == 0)
        return bp_buf_printf(out, "%llu", (unsigned long long)(head + 1));
    if (strcmp(m, "get_block_hash") == 0) { /* get-block-hash.md */
        if (!height_param(param0(params), &n))
            return fail(f, -32602, "invalid params: expected a block height");
        if (n > head)
            return fail(f, BP_SIM_ARCH_NOT_FOUND, "block not found");
        return hash_result(a, n, out);
    }
    if (strcmp(m, "get_best_block_hash") == 0) /* get-best-block-hash.md */
        return hash_result(a, head, out);
    if (strcmp(m, "get_best_finalized_block_hash") == 0) /* get-best-finalized-block-hash.md */
        return hash_result(a, head > a->finality ? head - a->finality : 0, out);
    if (strcmp(m, "is_node_ready") == 0) /* is-node-ready.md */
        return bp_buf_puts(out, "true");
    if (strcmp(m, "get_block") == 0) /* get-block.md; a second param (a filter) is ignored */
        return block_result(a, r, param0(params), out, f);
    if (strcmp(m, "get_processed_transaction") == 0) /* get-processed-transaction.md */
        return ptx_result(a, r, param0(params), out, f);
    f->code = -32601;
    snprintf(f->msg, sizeof(f->msg), "Method not found: %.100s", m);
    return 0;
}

/* ---- WebSocket subscriptions (SDK src/websocket-client/managers/ws-adapter.ts sends
 * {"method":"subscribe","params":{"topic","filter","request_id"}}; types/messages.ts has the
 * answers) ---- */

unsigned bp_sim_arch_subs_mask(const bp_sim_arch_subs *s)
{
    unsigned m = 0;
    for (unsigned t = 0; t < BP_SIM_ARCH_TOPICS; t++)
        if (s->id[t][0])
            m |= 1u << t;
    return m;
}

static int topic_of(const char *name)
{
    for (int t = 0; t < BP_SIM_ARCH_TOPICS; t++)
        if (strcmp(name, TOPICS[t]) == 0)
            return t;
    return -1;
}

static int put_field(bp_buf *out, const char *key, const char *v)
{
    int rc = bp_buf_printf(out, ",\"%s\":", key);
    return rc != 0 ? rc : bp_jsonw_quote(out, v, BP_JSONW_ESC_U);
}

/* SubscriptionResponse {status, subscription_id, topic, request_id?} (+ message on Error). */
static int subscribe(const bp_sim_arch *a, bp_sim_arch_subs *s, yajl_val params, bp_buf *out,
                     bool *subscribed)
{
    yajl_val topic = yajl_tree_get(params, (const char *[]){"topic", NULL}, yajl_t_string);
    yajl_val req = yajl_tree_get(params, (const char *[]){"request_id", NULL}, yajl_t_string);
    int t = topic ? topic_of(topic->u.string) : -1;
    char id[40] = "";
    if (t >= 0) {
        snprintf(id, sizeof(id), "sub-%016llx",
                 (unsigned long long)bp_sim_mix4(a->chain->p.seed, 0x5b, (uint64_t)t, s->seq++));
        memcpy(s->id[t], id, sizeof(id));
        *subscribed = true;
    }
    int rc = bp_buf_printf(out, "{\"status\":\"%s\"", t >= 0 ? "Subscribed" : "Error");
    if (rc == 0)
        rc = put_field(out, "subscription_id", id);
    if (rc == 0)
        rc = put_field(out, "topic", topic ? topic->u.string : "");
    if (rc == 0 && req)
        rc = put_field(out, "request_id", req->u.string);
    if (rc == 0 && t < 0)
        rc = put_field(out, "message", topic ? "unknown topic" : "params.topic: expected a string");
    return rc != 0 ? rc : bp_buf_putc(out, '}');
}

/* UnsubscribeResponse {status, subscription_id, message}. */
static int unsubscribe(bp_sim_arch_subs *s, yajl_val params, bp_buf *out)
{
    yajl_val id = yajl_tree_get(params, (const char *[]){"subscription_id", NULL}, yajl_t_string);
    bool found = false;
    for (unsigned t = 0; id && t < BP_SIM_ARCH_TOPICS; t++)
        if (s->id[t][0] && strcmp(s->id[t], id->u.string) == 0) {
            s->id[t][0] = '\0';
            found = true;
        }
    int rc = bp_buf_printf(out, "{\"status\":\"%s\"", found ? "Unsubscribed" : "Error");
    if (rc == 0)
        rc = put_field(out, "subscription_id", id ? id->u.string : "");
    if (rc == 0)
        rc = put_field(out, "message", found ? "unsubscribed" : "no such subscription");
    return rc != 0 ? rc : bp_buf_putc(out, '}');
}

int bp_sim_arch_ws_message(const bp_sim_arch *a, bp_sim_arch_subs *s, const char *text, size_t len,
                           bp_buf *out, bool *subscribed)
{
    (void)len;
    bp_buf_reset(out);
    yajl_val root = yajl_tree_parse(text, NULL, 0);
    yajl_val m = root ? yajl_tree_get(root, (const char *[]){"method", NULL}, yajl_t_string) : NULL;
    yajl_val params =
        root ? yajl_tree_get(root, (const char *[]){"params", NULL}, yajl_t_object) : NULL;
    int rc = 1;
    if (m && strcmp(m->u.string, "subscribe") == 0)
        rc = subscribe(a, s, params, out, subscribed);
    else if (m && strcmp(m->u.string, "unsubscribe") == 0)
        rc = unsubscribe(s, params, out);
    yajl_tree_free(root);
    return rc;
}
