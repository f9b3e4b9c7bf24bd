/* arch_json.c - Arch rows as JSON, keyed from the column table (arch_json.h). */
#include "arch/arch_json.h"

#include <stdio.h>
#include <string.h>

#include "arch/arch_tables.h"
#include "blockpipe/error.h"
#include "util/jsonw.h"

/* One column's value, in the table's column order. */
typedef struct aval {
    bool null;
    uint64_t u;    /* INT, BOOL */
    const char *s; /* TEXT, HASH, JSON */
    double r;      /* REAL */
} aval;

#define U(v) ((aval){.u = (v)})
#define S(v) ((aval){.s = (v), .null = (v) == NULL})

/* The row of table t whose values are v[0..n), one per column of t in the column table. */
static int object(bp_buf *out, enum bp_arch_table t, const aval *v, size_t n)
{
    bp_jsonw w;
    bp_jsonw_init(&w, out, BP_JSONW_ESC_SHORT);
    bp_jsonw_begin_object(&w);
    size_t j = 0;
    for (size_t i = 0; i < bp_arch_column_count; i++) {
        const bp_arch_column *c = &bp_arch_columns[i];
        if (c->table != t)
            continue;
        if (j == n)
            return BP_EINVAL; /* the column table has a column this file does not know */
        bp_jsonw_key(&w, c->name);
        const aval *x = &v[j++];
        char num[32];
        if (x->null) {
            bp_jsonw_null(&w);
        } else if (c->type == BP_ARCH_INT) {
            bp_jsonw_u64(&w, x->u);
        } else if (c->type == BP_ARCH_BOOL) {
            bp_jsonw_bool(&w, x->u != 0);
        } else if (c->type == BP_ARCH_JSON) {
            bp_jsonw_raw(&w, x->s, strlen(x->s)); /* JSON text already (the decoder made it) */
        } else if (c->type == BP_ARCH_REAL) {
            snprintf(num, sizeof(num), "%.6f", x->r);
            bp_jsonw_raw(&w, num, strlen(num));
        } else {
            bp_jsonw_str(&w, x->s);
        }
    }
    bp_jsonw_end_object(&w);
    return j != n ? BP_EINVAL : bp_jsonw_finish(&w);
}

int bp_arch_json_block(bp_buf *out, const char *chain, const bp_block *b)
{
    if (!b->arch)
        return BP_EINVAL;
    const bp_arch_block *r = &b->arch->block;
    const aval v[] = {S(chain),        U(b->number),
                      S(b->hash),      S(b->parent_hash),
                      U(r->timestamp), r->no_bitcoin_height ? S(NULL) : U(r->bitcoin_height),
                      U(r->tx_count),  S(r->merkle_root[0] ? r->merkle_root : NULL)};
    return object(out, BP_ARCH_BLOCKS, v, sizeof(v) / sizeof(v[0]));
}

int bp_arch_json_tx(bp_buf *out, const char *chain, const bp_block *b, size_t i)
{
    if (!b->arch || i >= b->arch->tx_count)
        return BP_EINVAL;
    const bp_arch_tx *t = &b->arch->txs[i];
    const aval v[] = {S(chain),
                      U(b->number),
                      U(i),
                      S(t->txid),
                      S(b->hash),
                      S(bp_arch_status_name(t->status)),
                      S(t->failure),
                      U(t->rolled_back),
                      S(t->rollback_reason),
                      S(t->program_ids),
                      S(t->bitcoin_txids),
                      t->has_fee ? U(t->fee) : S(NULL),
                      t->has_compute ? U(t->compute_units) : S(NULL)};
    return object(out, BP_ARCH_TRANSACTIONS, v, sizeof(v) / sizeof(v[0]));
}

bool bp_arch_account_first(const bp_arch_tx *t, size_t k)
{
    for (size_t j = 0; j < k; j++)
        if (strcmp(t->accounts[j], t->accounts[k]) == 0)
            return false;
    return true;
}

int bp_arch_json_account(bp_buf *out, const char *chain, const bp_block *b, size_t i, size_t k)
{
    if (!b->arch || i >= b->arch->tx_count || k >= b->arch->txs[i].account_count)
        return BP_EINVAL;
    const bp_arch_tx *t = &b->arch->txs[i];
    const aval v[] = {S(chain), U(b->number), U(i), S(t->accounts[k]), S(t->txid)};
    return object(out, BP_ARCH_ACCOUNT_UPDATES, v, sizeof(v) / sizeof(v[0]));
}

int bp_arch_json_event(bp_buf *out, const char *chain, const bp_arch_event *e)
{
    if (e->resync)
        return BP_EINVAL;
    const aval v[] = {S(chain),
                      S(e->key),
                      S(bp_arch_topic_name(e->topic)),
                      e->has_height ? U(e->block_height) : S(NULL),
                      S(e->data ? e->data : "{}"),
                      {.r = e->received_at}};
    return object(out, BP_ARCH_EVENTS, v, sizeof(v) / sizeof(v[0]));
}

bool bp_arch_event_is_state(const bp_arch_event *e)
{
    return e->topic == BP_ARCH_T_ROLLEDBACK || e->topic == BP_ARCH_T_REAPPLIED;
}

int bp_arch_json_state(bp_buf *out, const char *chain, const bp_arch_event *e, size_t k)
{
    if (!bp_arch_event_is_state(e) || k >= e->hash_count)
        return BP_EINVAL;
    bp_jsonw w;
    bp_jsonw_init(&w, out, BP_JSONW_ESC_SHORT);
    bp_jsonw_begin_object(&w);
    bp_jsonw_key(&w, "chain");
    bp_jsonw_str(&w, chain);
    bp_jsonw_key(&w, "txid");
    bp_jsonw_str(&w, e->hashes[k]);
    bp_jsonw_key(&w, "rolled_back");
    bp_jsonw_bool(&w, e->topic == BP_ARCH_T_ROLLEDBACK);
    bp_jsonw_key(&w, "block_height");
    if (e->has_height && !e->resync)
        bp_jsonw_u64(&w, e->block_height);
    else
        bp_jsonw_null(&w);
    bp_jsonw_key(&w, "cause");
    bp_jsonw_str(&w, e->resync ? "resync" : bp_arch_topic_name(e->topic));
    bp_jsonw_end_object(&w);
    return bp_jsonw_finish(&w);
}
