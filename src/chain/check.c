/* check.c - a block's invariants, and the one repair whose answer is certain. */
#include "chain/check.h"

#include <inttypes.h>
#include <stdio.h>

#include "util/log.h"

static int violation(bp_error *err, const char *endpoint, const bp_block *b, const bp_tx *tx,
                     const char *what)
{
    return bp_error_set(err, BP_EPARSE, "rpc %s: block %" PRIu64 ": tx %s (index %" PRIu64 "): %s",
                        endpoint, b->number, tx && tx->hash ? tx->hash : "?",
                        tx ? tx->transaction_index : 0, what);
}

/* Every transaction's logs numbered 0, 1, .. on their own. */
static bool restarts_per_tx(const bp_block *b)
{
    for (size_t i = 0; i < b->tx_count; i++) {
        const bp_tx *tx = &b->txs[i];
        for (size_t j = 0; j < tx->log_count; j++)
            if (b->logs[tx->log_offset + j].log_index != j)
                return false;
    }
    return true;
}

static void renumber(bp_block *b, const char *endpoint, bp_rpc_limits *once, const bp_tx *tx)
{
    for (size_t k = 0; k < b->log_count; k++)
        b->logs[k].log_index = k;
    if (!once || bp_rpc_limits_once(once, BP_ONCE_LOG_INDEX))
        bp_warn("rpc %s numbers logIndex from 0 in every transaction's receipt (block %" PRIu64
                ", tx %s): logs are renumbered by their position across the block, as eth_getLogs "
                "numbers them (said once per endpoint; --strict-node refuses such blocks)",
                endpoint, b->number, tx && tx->hash ? tx->hash : "?");
}

/* Which transaction log k belongs to. */
static const bp_tx *tx_of_log(const bp_block *b, size_t k)
{
    for (size_t i = 0; i < b->tx_count; i++)
        if (k >= b->txs[i].log_offset && k < b->txs[i].log_offset + b->txs[i].log_count)
            return &b->txs[i];
    return NULL;
}

static int check_logs(bp_block *b, const char *endpoint, bool strict, bp_rpc_limits *once,
                      bp_error *err)
{
    for (size_t k = 1; k < b->log_count; k++) {
        uint64_t prev = b->logs[k - 1].log_index, cur = b->logs[k].log_index;
        if (cur > prev)
            continue;
        const bp_tx *tx = tx_of_log(b, k);
        if (!strict && restarts_per_tx(b)) {
            renumber(b, endpoint, once, tx);
            return 0;
        }
        char what[256];
        snprintf(what, sizeof(what),
                 "log %zu of the block: field 'logIndex' is %" PRIu64 ", not above the previous "
                 "log's %" PRIu64 " (log indexes must increase across the block)%s",
                 k, cur, prev, restarts_per_tx(b) ? "; it restarts in every transaction" : "");
        return violation(err, endpoint, b, tx, what);
    }
    return 0;
}

int bp_block_check(bp_block *b, const char *endpoint, bool strict, bp_rpc_limits *once,
                   bp_error *err)
{
    for (size_t i = 0; i < b->tx_count; i++) {
        const bp_tx *tx = &b->txs[i];
        if (tx->transaction_index != i)
            return violation(err, endpoint, b, tx, "field 'transactionIndex' is not its position");
        if (b->has_receipts && !tx->has_receipt)
            return violation(err, endpoint, b, tx, "no receipt");
    }
    return b->has_receipts ? check_logs(b, endpoint, strict, once, err) : 0;
}
