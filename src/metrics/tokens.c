/* tokens.c - token transfer decoding (tokens.h). */
#include "metrics/tokens.h"

#include <string.h>

#include "blockpipe/error.h"
#include "util/arena.h"
#include "util/hex.h"

#define WORD 64 /* hex digits of a 32-byte word */

/* The 32-byte words of a log: its topics after topic0, then its data cut in 64-digit pieces
 * (the last may be shorter), as ethereum-etl's split_to_words does. */
typedef struct words {
    const char *w[8];
    size_t len[8];
    size_t count; /* may exceed 8: then only the count is meaningful */
} words;

static void split(const bp_log *log, words *out)
{
    out->count = 0;
    for (unsigned i = 1; i < log->topic_count; i++, out->count++)
        if (out->count < 8) {
            out->w[out->count] = log->topics[i] + 2;
            out->len[out->count] = strlen(log->topics[i]) - 2;
        }
    size_t dl = log->data && strlen(log->data) > 2 ? strlen(log->data) - 2 : 0;
    for (size_t off = 0; off < dl; off += WORD, out->count++)
        if (out->count < 8) {
            out->w[out->count] = log->data + 2 + off;
            out->len[out->count] = dl - off < WORD ? dl - off : WORD;
        }
}

static int word_u256(const char *w, size_t len, bp_qty *out)
{
    char tmp[WORD + 3] = "0x";
    if (len == 0 || len > WORD)
        return BP_EPARSE;
    memcpy(tmp + 2, w, len);
    out->set = bp_hex_to_u256(tmp, len + 2, &out->v) == 0;
    return out->set ? 0 : BP_EPARSE;
}

/* "0x" + the last 40 digits of a word: NULL (no row) for a word too short to hold one. */
static const char *word_address(bp_arena *a, const char *w, size_t len)
{
    char tmp[43] = "0x";
    if (len < 40)
        return NULL;
    memcpy(tmp + 2, w + len - 40, 40);
    for (int i = 2; i < 42; i++)
        if (bp_hex_digit((unsigned char)tmp[i]) < 0)
            return NULL;
    return bp_arena_strndup_lower(a, tmp, 42);
}

static void base_row(bp_token_transfer_row *r, const char *chain, const bp_block *b,
                     const bp_log *log)
{
    *r = (bp_token_transfer_row){.chain = chain,
                                 .token_address = log->address,
                                 .transaction_hash = log->transaction_hash,
                                 .log_index = log->log_index,
                                 .block_number = b->number,
                                 .block_timestamp = b->timestamp,
                                 .block_hash = b->hash};
}

/* ERC-20 / ERC-721 Transfer(from, to, value or tokenId): 4 words in all, as ethereum-etl. */
static size_t transfer(bp_arena *a, const char *chain, const bp_block *b, const bp_log *log,
                       bp_token_transfer_row *r)
{
    words w;
    split(log, &w);
    if (w.count != 3)
        return 0;
    base_row(r, chain, b, log);
    r->from_address = word_address(a, w.w[0], w.len[0]);
    r->to_address = word_address(a, w.w[1], w.len[1]);
    if (!r->from_address || !r->to_address || word_u256(w.w[2], w.len[2], &r->value) != 0)
        return 0;
    /* an indexed third argument is ERC-721's tokenId */
    r->token_standard = log->topic_count == 4 ? "erc721" : "erc20";
    if (log->topic_count == 4)
        r->token_id = r->value;
    return 1;
}

/* The data of an ERC-1155 event as 32-byte words (complete words only). */
static bool data_words(const bp_log *log, const char **data, size_t *count)
{
    size_t dl = log->data ? strlen(log->data) : 0;
    if (dl < 2 || (dl - 2) % WORD != 0)
        return false;
    *data = log->data + 2;
    *count = (dl - 2) / WORD;
    return true;
}

/* A word that is a small number (an ABI offset or length). */
static bool word_small(const char *w, size_t *out)
{
    bp_qty q;
    if (word_u256(w, WORD, &q) != 0 || !bp_u256_fits_u64(&q.v) || q.v.w[0] > (1u << 30))
        return false;
    *out = (size_t)q.v.w[0];
    return true;
}

/* An ABI uint256[] at byte offset off of the data: its first element's word index and length. */
static bool abi_array(const char *data, size_t nwords, size_t off, size_t *first, size_t *len)
{
    if (off % 32 != 0 || off / 32 >= nwords || !word_small(data + off / 32 * WORD, len))
        return false;
    *first = off / 32 + 1;
    return *len <= nwords - *first;
}

/* ERC-1155 TransferSingle / TransferBatch(operator, from, to, ids, values): *need rows. */
static bool erc1155_shape(const bp_log *log, bool batch, size_t *need, size_t *ids, size_t *vals)
{
    const char *data;
    size_t nwords, off_ids, off_vals, nids, nvals;
    if (log->topic_count != 4 || !data_words(log, &data, &nwords))
        return false;
    if (!batch) {
        *need = nwords == 2 ? 1 : 0;
        *ids = 0;
        *vals = 1;
        return nwords == 2;
    }
    if (nwords < 2 || !word_small(data, &off_ids) || !word_small(data + WORD, &off_vals) ||
        !abi_array(data, nwords, off_ids, ids, &nids) ||
        !abi_array(data, nwords, off_vals, vals, &nvals) || nids != nvals)
        return false;
    *need = nids;
    return true;
}

static size_t erc1155(bp_arena *a, const char *chain, const bp_block *b, const bp_log *log,
                      size_t ids, size_t vals, size_t count, bp_token_transfer_row *rows)
{
    const char *op = word_address(a, log->topics[1] + 2, strlen(log->topics[1]) - 2);
    const char *from = word_address(a, log->topics[2] + 2, strlen(log->topics[2]) - 2);
    const char *to = word_address(a, log->topics[3] + 2, strlen(log->topics[3]) - 2);
    if (!op || !from || !to)
        return 0;
    const char *data = log->data + 2;
    for (size_t i = 0; i < count; i++) {
        bp_token_transfer_row *r = &rows[i];
        base_row(r, chain, b, log);
        r->from_address = from;
        r->to_address = to;
        r->operator_address = op;
        r->token_standard = "erc1155";
        r->batch_index = i;
        if (word_u256(data + (ids + i) * WORD, WORD, &r->token_id) != 0 ||
            word_u256(data + (vals + i) * WORD, WORD, &r->value) != 0)
            return 0;
    }
    return count;
}

int bp_tokens_decode_log(bp_arena *a, const char *chain, const bp_block *b, const bp_log *log,
                         bp_token_transfer_row *rows, size_t cap, size_t *n)
{
    *n = 0;
    if (log->topic_count < 1 || !log->topics[0] || log->removed)
        return 0;
    const char *t0 = log->topics[0];
    if (strcmp(t0, BP_TOPIC_TRANSFER) == 0) {
        if (cap < 1) {
            *n = 1;
            return BP_ETOOBIG;
        }
        *n = transfer(a, chain, b, log, rows);
        return 0;
    }
    bool batch = strcmp(t0, BP_TOPIC_TRANSFER_BATCH) == 0;
    size_t need, ids, vals;
    if (!batch && strcmp(t0, BP_TOPIC_TRANSFER_SINGLE) != 0)
        return 0;
    if (!erc1155_shape(log, batch, &need, &ids, &vals))
        return 0;
    if (need > cap) {
        *n = need;
        return BP_ETOOBIG;
    }
    *n = erc1155(a, chain, b, log, ids, vals, need, rows);
    return 0;
}

int bp_tokens_decode(bp_arena *a, const char *chain, const bp_block *b,
                     bp_token_transfer_row **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    if (!b->has_receipts || b->log_count == 0)
        return 0;
    size_t total = 0;
    for (size_t i = 0; i < b->log_count; i++) {
        size_t need = 0;
        int rc = bp_tokens_decode_log(a, chain, b, &b->logs[i], NULL, 0, &need);
        total += rc == BP_ETOOBIG ? need : 0;
    }
    if (total == 0)
        return 0;
    bp_token_transfer_row *out = bp_arena_calloc(a, total, sizeof(*out));
    if (!out)
        return BP_ENOMEM;
    for (size_t i = 0; i < b->log_count; i++) {
        size_t got = 0;
        bp_tokens_decode_log(a, chain, b, &b->logs[i], out + *n, total - *n, &got);
        *n += got;
    }
    *rows = out;
    return 0;
}
