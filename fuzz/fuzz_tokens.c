/* fuzz_tokens.c - token transfers decoded from logs (tokens.c) on attacker-chosen logs: any
 * contract may emit a Transfer, TransferSingle or TransferBatch with any topics and data
 * (TransferBatch's ABI offsets and lengths included). The logs are shaped as the decoder
 * leaves them (topics "0x" + 64 lower-case hex digits, data "0x" + hex digits).
 *
 * Input: byte 0 picks topic0 (Transfer, TransferSingle, TransferBatch, or the next 32 bytes)
 * and how many topics (0..4) the log has; bit 7 drops the data's last hex digit (an odd
 * length); the next 32 bytes per further topic; the rest is the data. Every log must decode
 * to rows or none, never a crash or UB; every row is complete, and the block's rows are the
 * log's. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockpipe/model.h"
#include "metrics/tokens.h"
#include "util/arena.h"
#include "util/hex.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *hex_of(bp_arena *a, const uint8_t *p, size_t n, bool odd)
{
    static const char digits[] = "0123456789abcdef";
    char *s = bp_arena_alloc(a, 2 * n + 3);
    if (!s)
        abort();
    s[0] = '0';
    s[1] = 'x';
    for (size_t i = 0; i < n; i++) {
        s[2 + 2 * i] = digits[p[i] >> 4];
        s[3 + 2 * i] = digits[p[i] & 15];
    }
    s[2 + 2 * n - (odd && n)] = '\0';
    return s;
}

/* A 32-byte topic from the input (zeros past its end). */
static const char *topic(bp_arena *a, const uint8_t **p, const uint8_t *end)
{
    uint8_t word[32] = {0};
    size_t n = (size_t)(end - *p) < 32 ? (size_t)(end - *p) : 32;
    memcpy(word, *p, n);
    *p += n;
    return hex_of(a, word, 32, false);
}

static void row_right(const bp_token_transfer_row *r, const bp_log *log)
{
    if (!r->from_address || strlen(r->from_address) != 42 || !r->to_address ||
        strlen(r->to_address) != 42 || !r->token_standard || !r->value.set ||
        r->token_address != log->address || r->log_index != log->log_index)
        abort();
    if (strcmp(r->token_standard, "erc1155") == 0 &&
        (!r->operator_address || !r->token_id.set || log->topic_count != 4))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bp_block *b = bp_block_new();
    if (!b)
        abort();
    const uint8_t *p = data + 1, *end = data + size;
    bp_log log = {.log_index = 7,
                  .transaction_hash = "0x" /* not looked at */,
                  .address = "0x00000000000000000000000000000000000000aa"};
    static const char *const known[] = {BP_TOPIC_TRANSFER, BP_TOPIC_TRANSFER_SINGLE,
                                        BP_TOPIC_TRANSFER_BATCH};
    log.topic_count = (uint8_t)((data[0] >> 2) % 5);
    for (unsigned t = 0; t < log.topic_count; t++)
        log.topics[t] = t == 0 && (data[0] & 3) < 3 ? known[data[0] & 3] : topic(b->arena, &p, end);
    log.data = hex_of(b->arena, p, (size_t)(end - p), data[0] & 0x80);
    bp_token_transfer_row one[1], *rows;
    size_t need = 0, n = 0, words = (strlen(log.data) - 2 + 63) / 64;
    int rc = bp_tokens_decode_log(b->arena, "c", b, &log, one, 1, &need);
    if (rc == BP_ETOOBIG) {
        if (need <= 1 || need > words)
            abort(); /* a batch's rows are bounded by the data's words */
        rows = bp_arena_calloc(b->arena, need, sizeof(*rows));
        if (!rows || bp_tokens_decode_log(b->arena, "c", b, &log, rows, need, &n) != 0)
            abort();
    } else if (rc == 0) {
        rows = one;
        n = need;
    } else {
        abort();
    }
    for (size_t i = 0; i < n; i++)
        row_right(&rows[i], &log);
    /* the block's decoding (count, then fill) gives the same rows */
    b->has_receipts = true;
    b->logs = &log;
    b->log_count = 1;
    bp_token_transfer_row *all;
    size_t nall = 0;
    if (bp_tokens_decode(b->arena, "c", b, &all, &nall) != 0 || nall != n)
        abort();
    for (size_t i = 0; i < n; i++)
        if (bp_u256_cmp(&all[i].value.v, &rows[i].value.v) != 0 ||
            all[i].batch_index != rows[i].batch_index)
            abort();
    b->logs = NULL;
    b->log_count = 0;
    bp_block_free(b);
    return 0;
}
