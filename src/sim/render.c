/* render.c - hand-rolled JSON for simnode's blocks and receipts: bounded reserve, raw writes. */
#include "sim/render.h"

#include <string.h>

#include "util/hex.h"

/* Each entity reserves a worst-case bound once, then writes without checks. */
#define TX_FIXED 2400
#define RECEIPT_FIXED 1600
#define LOG_FIXED 900
#define HEADER_FIXED 3200
#define WORD_HEX 64
#define PREFIX_MAX 256

static const char HEX[] = "0123456789abcdef";

/* "blockHash":"..","blockNumber":"..","blockTimestamp":"..", shared by every tx and log. */
typedef struct prefix {
    char s[PREFIX_MAX];
    size_t len;
} prefix;

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT(p, lit) put((p), (lit), sizeof(lit) - 1)

static char *put_word(char *p, uint64_t w, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--) {
        unsigned byte = (unsigned)(w >> (8 * (i + 8 - bytes))) & 0xff;
        *p++ = HEX[byte >> 4];
        *p++ = HEX[byte & 15];
    }
    return p;
}

/* Quoted minimal hex quantity: "0x0", "0x1a". */
static char *put_qty(char *p, uint64_t v)
{
    *p++ = '"';
    *p++ = '0';
    *p++ = 'x';
    int nib = 1;
    while (nib < 16 && (v >> (4 * nib)) != 0)
        nib++;
    for (int i = nib - 1; i >= 0; i--)
        *p++ = HEX[(v >> (4 * i)) & 15];
    *p++ = '"';
    return p;
}

static char *put_u256(char *p, const bp_u256 *v)
{
    int top = 3;
    while (top > 0 && v->w[top] == 0)
        top--;
    if (top == 0)
        return put_qty(p, v->w[0]);
    p = put_qty(p, v->w[top]) - 1; /* drop the closing quote, append full limbs */
    for (int i = top - 1; i >= 0; i--)
        p = put_word(p, v->w[i], 8);
    *p++ = '"';
    return p;
}

char *bp_sim_put_h256(char *p, const bp_sim_h256 *h)
{
    p = PUT(p, "\"0x");
    for (int i = 0; i < 4; i++)
        p = put_word(p, h->w[i], 8);
    *p++ = '"';
    return p;
}

char *bp_sim_put_addr(char *p, const bp_sim_addr *a)
{
    p = PUT(p, "\"0x");
    p = put_word(p, a->w[0], 8);
    p = put_word(p, a->w[1], 8);
    p = put_word(p, a->w[2], 4);
    *p++ = '"';
    return p;
}

bool bp_sim_parse_h256(const char *s, bp_sim_h256 *h)
{
    if (strlen(s) != 66 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
        return false;
    for (int i = 0; i < 4; i++) {
        uint64_t w = 0;
        for (int j = 0; j < 16; j++) {
            int v = bp_hex_digit((unsigned char)s[2 + i * 16 + j]);
            if (v < 0)
                return false;
            w = w << 4 | (uint64_t)v;
        }
        h->w[i] = w;
    }
    return true;
}

enum shape { SHAPE_NUMBER, SHAPE_ADDRESS, SHAPE_AMOUNT, SHAPE_NOISE, SHAPE_ANY };

/* One 32-byte ABI-looking word from a stream: a small number, an address, an amount or noise. */
static char *put_abi_word(char *p, uint64_t *rng, enum shape shape)
{
    uint64_t r = bp_sim_next(rng);
    uint64_t a = bp_sim_next(rng), b = bp_sim_next(rng);
    static const char zeros[] = "000000000000000000000000000000000000000000000000";
    switch (shape == SHAPE_ANY ? (enum shape)(r & 3) : shape) {
    case SHAPE_NUMBER:
        p = put(p, zeros, 48);
        return put_word(p, a & 0xffffffffull, 8);
    case SHAPE_ADDRESS:
        p = put(p, zeros, 24);
        p = put_word(p, a, 8);
        p = put_word(p, b, 8);
        return put_word(p, r, 4);
    case SHAPE_AMOUNT:
        p = put(p, zeros, 40);
        p = put_word(p, a, 4);
        return put_word(p, b, 8);
    default:
        p = put_word(p, a, 8);
        p = put_word(p, b, 8);
        p = put_word(p, r, 8);
        return put_word(p, a ^ b, 8);
    }
}

static char *put_input(char *p, const bp_sim_tx *tx)
{
    uint64_t rng = tx->input_seed;
    p = PUT(p, "\"0x");
    switch (tx->input_kind) {
    case BP_SIM_IN_TRANSFER:
        p = PUT(p, "a9059cbb");
        break;
    case BP_SIM_IN_CALL:
        p = put_word(p, bp_sim_next(&rng), 4);
        break;
    case BP_SIM_IN_CREATE:
        p = PUT(p, "60806040");
        break;
    default:
        break;
    }
    for (unsigned i = 0; i < tx->input_words; i++) {
        enum shape sh = tx->input_kind != BP_SIM_IN_TRANSFER ? SHAPE_ANY
                        : i == 0                             ? SHAPE_ADDRESS
                                                             : SHAPE_AMOUNT;
        p = put_abi_word(p, &rng, sh);
    }
    *p++ = '"';
    return p;
}

static char *put_access_list(char *p, const bp_sim_tx *tx)
{
    uint64_t rng = tx->access_seed;
    p = PUT(p, ",\"accessList\":[");
    for (unsigned i = 0; i < tx->access_count; i++) {
        bp_sim_addr a = {{bp_sim_next(&rng), bp_sim_next(&rng), bp_sim_next(&rng)}};
        p = PUT(p, "{\"address\":");
        p = bp_sim_put_addr(p, &a);
        p = PUT(p, ",\"storageKeys\":[");
        unsigned keys = (unsigned)(bp_sim_next(&rng) % 3);
        for (unsigned k = 0; k < keys; k++) {
            bp_sim_h256 h = {{0, 0, 0, bp_sim_next(&rng) % 16}};
            if (bp_sim_next(&rng) & 1)
                h = (bp_sim_h256){{bp_sim_next(&rng), bp_sim_next(&rng), bp_sim_next(&rng), 7}};
            p = bp_sim_put_h256(p, &h);
            if (k + 1 < keys)
                *p++ = ',';
        }
        p = PUT(p, "]}");
        if (i + 1 < tx->access_count)
            *p++ = ',';
    }
    *p++ = ']';
    return p;
}

static char *put_blob_hashes(char *p, const bp_sim_tx *tx)
{
    uint64_t rng = tx->access_seed ^ 0xb10b;
    p = PUT(p, ",\"blobVersionedHashes\":[");
    for (unsigned i = 0; i < tx->blob_count; i++) {
        bp_sim_h256 h = {
            {bp_sim_next(&rng), bp_sim_next(&rng), bp_sim_next(&rng), bp_sim_next(&rng)}};
        h.w[0] = (h.w[0] & 0x00ffffffffffffffull) | 0x0100000000000000ull; /* version 1 */
        p = bp_sim_put_h256(p, &h);
        if (i + 1 < tx->blob_count)
            *p++ = ',';
    }
    *p++ = ']';
    return p;
}

static char *put_auth_list(char *p, const bp_sim_tx *tx, uint64_t chain_id)
{
    uint64_t rng = tx->auth_seed;
    p = PUT(p, ",\"authorizationList\":[");
    for (unsigned i = 0; i < tx->auth_count; i++) {
        bp_sim_addr a = {{bp_sim_next(&rng), bp_sim_next(&rng), bp_sim_next(&rng)}};
        bp_sim_h256 r = {{bp_sim_next(&rng), bp_sim_next(&rng), bp_sim_next(&rng), 1}};
        bp_sim_h256 s = {{bp_sim_next(&rng) >> 1, bp_sim_next(&rng), bp_sim_next(&rng), 3}};
        p = PUT(p, "{\"chainId\":");
        p = put_qty(p, chain_id);
        p = PUT(p, ",\"address\":");
        p = bp_sim_put_addr(p, &a);
        p = PUT(p, ",\"nonce\":");
        p = put_qty(p, bp_sim_next(&rng) % 1000);
        p = PUT(p, ",\"yParity\":");
        p = put_qty(p, bp_sim_next(&rng) & 1);
        p = PUT(p, ",\"r\":");
        p = bp_sim_put_h256(p, &r);
        p = PUT(p, ",\"s\":");
        p = bp_sim_put_h256(p, &s);
        *p++ = '}';
        if (i + 1 < tx->auth_count)
            *p++ = ',';
    }
    *p++ = ']';
    return p;
}

static void make_prefix(const bp_sim_block *b, prefix *pre)
{
    char *p = pre->s;
    p = PUT(p, "\"blockHash\":");
    p = bp_sim_put_h256(p, &b->hash);
    p = PUT(p, ",\"blockNumber\":");
    p = put_qty(p, b->number);
    p = PUT(p, ",\"blockTimestamp\":");
    p = put_qty(p, b->timestamp);
    *p++ = ',';
    pre->len = (size_t)(p - pre->s);
}

static size_t tx_bound(const bp_sim_tx *tx)
{
    return TX_FIXED + (size_t)(tx->input_words + 1) * WORD_HEX + 400 * (size_t)tx->access_count +
           70 * (size_t)tx->blob_count + 450 * (size_t)tx->auth_count;
}

static char *put_fees(char *p, const bp_sim_tx *tx)
{
    p = PUT(p, ",\"gasPrice\":");
    p = put_qty(p, tx->gas_price);
    if (tx->type >= 2) {
        p = PUT(p, ",\"maxFeePerGas\":");
        p = put_qty(p, tx->max_fee);
        p = PUT(p, ",\"maxPriorityFeePerGas\":");
        p = put_qty(p, tx->max_priority_fee);
    }
    if (tx->type == 3) {
        p = PUT(p, ",\"maxFeePerBlobGas\":");
        p = put_qty(p, tx->max_fee_per_blob_gas);
    }
    return p;
}

static char *put_signature(char *p, const bp_sim_tx *tx, uint64_t chain_id)
{
    p = PUT(p, ",\"v\":");
    p = put_qty(p, tx->type == 0 ? chain_id * 2 + 35 + tx->y_parity : tx->y_parity);
    p = PUT(p, ",\"r\":");
    p = bp_sim_put_h256(p, &tx->r);
    p = PUT(p, ",\"s\":");
    p = bp_sim_put_h256(p, &tx->s);
    if (tx->type != 0) {
        p = PUT(p, ",\"yParity\":");
        p = put_qty(p, tx->y_parity);
    }
    return p;
}

static char *put_tx(char *p, const bp_sim_tx *tx, size_t idx, const prefix *pre, uint64_t chain_id)
{
    *p++ = '{';
    p = put(p, pre->s, pre->len);
    p = PUT(p, "\"from\":");
    p = bp_sim_put_addr(p, &tx->from);
    p = PUT(p, ",\"gas\":");
    p = put_qty(p, tx->gas);
    p = put_fees(p, tx);
    p = PUT(p, ",\"hash\":");
    p = bp_sim_put_h256(p, &tx->hash);
    p = PUT(p, ",\"input\":");
    p = put_input(p, tx);
    p = PUT(p, ",\"nonce\":");
    p = put_qty(p, tx->nonce);
    p = PUT(p, ",\"to\":");
    p = tx->has_to ? bp_sim_put_addr(p, &tx->to) : PUT(p, "null");
    p = PUT(p, ",\"transactionIndex\":");
    p = put_qty(p, idx);
    p = PUT(p, ",\"value\":");
    p = put_u256(p, &tx->value);
    p = PUT(p, ",\"type\":");
    p = put_qty(p, tx->type);
    if (tx->type >= 1)
        p = put_access_list(p, tx);
    p = PUT(p, ",\"chainId\":");
    p = put_qty(p, chain_id);
    if (tx->type == 3)
        p = put_blob_hashes(p, tx);
    if (tx->type == 4)
        p = put_auth_list(p, tx, chain_id);
    p = put_signature(p, tx, chain_id);
    *p++ = '}';
    return p;
}

static int render_txs(const bp_sim_chain *c, const bp_sim_block *b, bool full, enum bp_sim_bad bad,
                      bp_buf *out)
{
    size_t shift = bad == BP_SIM_BAD_TX_INDEX ? 1 : 0;
    prefix pre;
    make_prefix(b, &pre);
    for (size_t i = 0; i < b->tx_count; i++) {
        size_t bound = full ? tx_bound(&b->txs[i]) : 80;
        int rc = bp_buf_reserve(out, bound);
        if (rc != 0)
            return rc;
        char *p = out->data + out->len;
        if (i > 0)
            *p++ = ',';
        p = full ? put_tx(p, &b->txs[i], i + shift, &pre, c->p.chain_id)
                 : bp_sim_put_h256(p, &b->txs[i].hash);
        out->len = (size_t)(p - out->data);
    }
    return 0;
}

static char *put_bloom(char *p, const uint64_t bloom[32])
{
    p = PUT(p, "\"0x");
    for (int i = 0; i < 32; i++)
        p = put_word(p, bloom[i], 8);
    *p++ = '"';
    return p;
}

static char *put_header_a(char *p, const bp_sim_block *b)
{
    p = PUT(p, "{\"baseFeePerGas\":");
    p = put_qty(p, b->base_fee);
    p = PUT(p, ",\"blobGasUsed\":");
    p = put_qty(p, b->blob_gas_used);
    p = PUT(p, ",\"difficulty\":\"0x0\",\"excessBlobGas\":");
    p = put_qty(p, b->excess_blob_gas);
    p = PUT(p, ",\"extraData\":\"0x626c6f636b70697065\",\"gasLimit\":");
    p = put_qty(p, b->gas_limit);
    p = PUT(p, ",\"gasUsed\":");
    p = put_qty(p, b->gas_used);
    p = PUT(p, ",\"hash\":");
    p = bp_sim_put_h256(p, &b->hash);
    p = PUT(p, ",\"logsBloom\":");
    p = put_bloom(p, b->bloom);
    p = PUT(p, ",\"miner\":");
    p = bp_sim_put_addr(p, &b->miner);
    bp_sim_h256 mix = {{b->hash.w[3] ^ 0x5a, b->hash.w[2], b->hash.w[1] ^ 0xa5, b->hash.w[0]}};
    p = PUT(p, ",\"mixHash\":");
    p = bp_sim_put_h256(p, &mix);
    p = PUT(p, ",\"nonce\":\"0x0000000000000000\",\"number\":");
    p = put_qty(p, b->number);
    p = PUT(p, ",\"parentBeaconBlockRoot\":");
    p = bp_sim_put_h256(p, &b->parent_beacon_block_root);
    p = PUT(p, ",\"parentHash\":");
    p = bp_sim_put_h256(p, &b->parent_hash);
    p = PUT(p, ",\"receiptsRoot\":");
    p = bp_sim_put_h256(p, &b->receipts_root);
    p = PUT(p, ",\"requestsHash\":");
    p = bp_sim_put_h256(p, &b->requests_hash);
    p = PUT(
        p, ",\"sha3Uncles\":\"0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347\","
           "\"size\":");
    p = put_qty(p, b->size);
    p = PUT(p, ",\"stateRoot\":");
    p = bp_sim_put_h256(p, &b->state_root);
    p = PUT(p, ",\"timestamp\":");
    p = put_qty(p, b->timestamp);
    return PUT(p, ",\"transactions\":[");
}

static char *put_header_b(char *p, const bp_sim_block *b)
{
    p = PUT(p, "],\"transactionsRoot\":");
    p = bp_sim_put_h256(p, &b->transactions_root);
    p = PUT(p, ",\"uncles\":[],\"withdrawals\":[");
    for (size_t j = 0; j < b->withdrawal_count; j++) {
        const bp_sim_withdrawal *w = &b->withdrawals[j];
        p = PUT(p, "{\"index\":");
        p = put_qty(p, w->index);
        p = PUT(p, ",\"validatorIndex\":");
        p = put_qty(p, w->validator_index);
        p = PUT(p, ",\"address\":");
        p = bp_sim_put_addr(p, &w->address);
        p = PUT(p, ",\"amount\":");
        p = put_qty(p, w->amount);
        *p++ = '}';
        if (j + 1 < b->withdrawal_count)
            *p++ = ',';
    }
    p = PUT(p, "],\"withdrawalsRoot\":");
    p = bp_sim_put_h256(p, &b->withdrawals_root);
    *p++ = '}';
    return p;
}

static int render_part(bp_buf *out, const bp_sim_block *b,
                       char *(*part)(char *, const bp_sim_block *))
{
    int rc = bp_buf_reserve(out, HEADER_FIXED + 200 * b->withdrawal_count);
    if (rc != 0)
        return rc;
    out->len = (size_t)(part(out->data + out->len, b) - out->data);
    out->data[out->len] = '\0';
    return 0;
}

static const char *const BAD_NAMES[BP_SIM_BAD_COUNT] = {
    [BP_SIM_BAD_NONE] = "none",
    [BP_SIM_BAD_LOG_INDEX_PER_TX] = "log_index_per_tx",
    [BP_SIM_BAD_LOG_INDEX_SWAP] = "log_index_swap",
    [BP_SIM_BAD_RECEIPT_HASH] = "receipt_hash",
    [BP_SIM_BAD_RECEIPT_INDEX] = "receipt_index",
    [BP_SIM_BAD_RECEIPT_BLOCK_HASH] = "receipt_block_hash",
    [BP_SIM_BAD_RECEIPT_NUMBER] = "receipt_number",
    [BP_SIM_BAD_TX_INDEX] = "tx_index",
};

const char *bp_sim_bad_name(enum bp_sim_bad bad)
{
    return bad < BP_SIM_BAD_COUNT ? BAD_NAMES[bad] : "?";
}

int bp_sim_render_block(const bp_sim_chain *c, const bp_sim_block *b, bool full_txs, bp_buf *out)
{
    return bp_sim_render_block_as(c, b, full_txs, BP_SIM_BAD_NONE, out);
}

int bp_sim_render_block_as(const bp_sim_chain *c, const bp_sim_block *b, bool full_txs,
                           enum bp_sim_bad bad, bp_buf *out)
{
    int rc = render_part(out, b, put_header_a);
    if (rc == 0)
        rc = render_txs(c, b, full_txs, bad, out);
    if (rc == 0)
        rc = render_part(out, b, put_header_b);
    return rc;
}

/* The header keys of put_header_a (the block's up to timestamp), then the two roots. */
static char *put_header_only(char *p, const bp_sim_block *b)
{
    static const char TXS[] = ",\"transactions\":[";
    p = put_header_a(p, b) - (sizeof(TXS) - 1);
    p = PUT(p, ",\"transactionsRoot\":");
    p = bp_sim_put_h256(p, &b->transactions_root);
    p = PUT(p, ",\"withdrawalsRoot\":");
    p = bp_sim_put_h256(p, &b->withdrawals_root);
    *p++ = '}';
    return p;
}

int bp_sim_render_header(const bp_sim_block *b, bp_buf *out)
{
    return render_part(out, b, put_header_only);
}

/* ---- receipts and logs ---- */

static char *put_log(char *p, const bp_sim_log *l, const bp_sim_tx *tx, size_t idx,
                     size_t log_index, const bp_sim_block *b)
{
    p = PUT(p, "{\"address\":");
    p = bp_sim_put_addr(p, &l->address);
    p = PUT(p, ",\"topics\":[");
    for (unsigned t = 0; t < l->topic_count; t++) {
        p = bp_sim_put_h256(p, &l->topics[t]);
        if (t + 1 < l->topic_count)
            *p++ = ',';
    }
    p = PUT(p, "],\"data\":\"0x");
    uint64_t rng = l->data_seed;
    for (unsigned w = 0; w < l->data_words; w++)
        p = put_abi_word(p, &rng, l->topic_count == 3 && w == 0 ? SHAPE_AMOUNT : SHAPE_ANY);
    p = PUT(p, "\",\"blockNumber\":");
    p = put_qty(p, b->number);
    p = PUT(p, ",\"transactionHash\":");
    p = bp_sim_put_h256(p, &tx->hash);
    p = PUT(p, ",\"transactionIndex\":");
    p = put_qty(p, idx);
    p = PUT(p, ",\"blockHash\":");
    p = bp_sim_put_h256(p, &b->hash);
    p = PUT(p, ",\"blockTimestamp\":");
    p = put_qty(p, b->timestamp);
    p = PUT(p, ",\"logIndex\":");
    p = put_qty(p, log_index);
    return PUT(p, ",\"removed\":false}");
}

static uint64_t blob_base_fee(const bp_sim_block *b)
{
    return 1 + b->excess_blob_gas / 131072;
}

static char *put_receipt_head(char *p, const bp_sim_block *b, const bp_sim_tx *tx,
                              enum bp_sim_bad bad)
{
    *p++ = '{';
    if (tx->type == 3) {
        p = PUT(p, "\"blobGasPrice\":");
        p = put_qty(p, blob_base_fee(b));
        p = PUT(p, ",\"blobGasUsed\":");
        p = put_qty(p, tx->blob_count * 131072ull);
        *p++ = ',';
    }
    p = PUT(p, "\"blockHash\":");
    p = bp_sim_put_h256(p, bad == BP_SIM_BAD_RECEIPT_BLOCK_HASH ? &b->parent_hash : &b->hash);
    p = PUT(p, ",\"blockNumber\":");
    p = put_qty(p, b->number + (bad == BP_SIM_BAD_RECEIPT_NUMBER));
    p = PUT(p, ",\"contractAddress\":");
    p = tx->has_to ? PUT(p, "null") : bp_sim_put_addr(p, &tx->contract);
    p = PUT(p, ",\"cumulativeGasUsed\":");
    p = put_qty(p, tx->cumulative_gas_used);
    p = PUT(p, ",\"effectiveGasPrice\":");
    p = put_qty(p, tx->gas_price);
    p = PUT(p, ",\"from\":");
    p = bp_sim_put_addr(p, &tx->from);
    p = PUT(p, ",\"gasUsed\":");
    p = put_qty(p, tx->gas_used);
    return PUT(p, ",\"logs\":[");
}

static char *put_receipt_tail(char *p, const bp_sim_block *b, const bp_sim_tx *tx, size_t idx,
                              enum bp_sim_bad bad)
{
    /* receipt_hash: txs 0 and 1 name each other */
    const bp_sim_tx *named =
        bad == BP_SIM_BAD_RECEIPT_HASH && (idx ^ 1) < b->tx_count ? &b->txs[idx ^ 1] : tx;
    uint64_t bloom[32] = {0};
    for (uint32_t i = 0; i < tx->log_count; i++)
        bp_sim_log_bloom(&b->logs[tx->log_offset + i], bloom);
    p = PUT(p, "],\"logsBloom\":");
    p = put_bloom(p, bloom);
    p = PUT(p, ",\"status\":");
    p = put_qty(p, tx->status ? 1 : 0);
    p = PUT(p, ",\"to\":");
    p = tx->has_to ? bp_sim_put_addr(p, &tx->to) : PUT(p, "null");
    p = PUT(p, ",\"transactionHash\":");
    p = bp_sim_put_h256(p, &named->hash);
    p = PUT(p, ",\"transactionIndex\":");
    p = put_qty(p, idx + (bad == BP_SIM_BAD_RECEIPT_INDEX));
    p = PUT(p, ",\"type\":");
    p = put_qty(p, tx->type);
    *p++ = '}';
    return p;
}

static size_t receipt_bound(const bp_sim_block *b, const bp_sim_tx *tx)
{
    size_t n = RECEIPT_FIXED;
    for (uint32_t i = 0; i < tx->log_count; i++)
        n += LOG_FIXED + (size_t)b->logs[tx->log_offset + i].data_words * WORD_HEX;
    return n;
}

/* The logIndex log k of the block gets (its position, unless a rule is broken). */
static size_t log_index_as(const bp_sim_block *b, const bp_sim_tx *tx, size_t k,
                           enum bp_sim_bad bad)
{
    size_t n = b->log_count;
    if (bad == BP_SIM_BAD_LOG_INDEX_PER_TX)
        return k - tx->log_offset;
    if (bad == BP_SIM_BAD_LOG_INDEX_SWAP && n >= 2 && k + 2 >= n)
        return k == n - 1 ? n - 2 : n - 1;
    return k;
}

int bp_sim_render_receipt(const bp_sim_block *b, size_t idx, enum bp_sim_bad bad, bp_buf *out)
{
    const bp_sim_tx *tx = &b->txs[idx];
    int rc = bp_buf_reserve(out, receipt_bound(b, tx));
    if (rc != 0)
        return rc;
    char *p = put_receipt_head(out->data + out->len, b, tx, bad);
    for (uint32_t i = 0; i < tx->log_count; i++) {
        size_t k = tx->log_offset + i;
        if (i > 0)
            *p++ = ',';
        p = put_log(p, &b->logs[k], tx, idx, log_index_as(b, tx, k, bad), b);
    }
    p = put_receipt_tail(p, b, tx, idx, bad);
    out->len = (size_t)(p - out->data);
    out->data[out->len] = '\0';
    return 0;
}

int bp_sim_render_receipts(const bp_sim_block *b, bp_buf *out)
{
    return bp_sim_render_receipts_as(b, BP_SIM_BAD_NONE, out);
}

int bp_sim_render_receipts_as(const bp_sim_block *b, enum bp_sim_bad bad, bp_buf *out)
{
    int rc = bp_buf_putc(out, '[');
    for (size_t i = 0; rc == 0 && i < b->tx_count; i++) {
        if (i > 0)
            rc = bp_buf_putc(out, ',');
        if (rc == 0)
            rc = bp_sim_render_receipt(b, i, bad, out);
    }
    return rc != 0 ? rc : bp_buf_putc(out, ']');
}
