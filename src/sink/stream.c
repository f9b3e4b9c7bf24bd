/* stream.c - entities, messages and recent blocks of the stream outputs (stream.h). */
#include "sink/stream.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arch_json.h"
#include "arch/arch_tables.h"
#include "blockpipe/columns.h"
#include "blockpipe/tableset.h"
#include "util/jsonw.h"

const char *const bp_stream_entity_names[BP_STREAM_ENTITY_COUNT] = {"blocks",
                                                                    "transactions",
                                                                    "logs",
                                                                    "metrics",
                                                                    "arch_blocks",
                                                                    "arch_transactions",
                                                                    "arch_account_updates",
                                                                    "arch_events"};

#define KNOWN                                                                                      \
    "blocks, transactions, logs, metrics, arch_blocks, arch_transactions, arch_account_updates, "  \
    "arch_events"

int bp_stream_entities(const char *list, unsigned *out, bp_error *err)
{
    *out = 0;
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        bool known = false;
        for (int e = 0; e < BP_STREAM_ENTITY_COUNT; e++)
            if (strlen(bp_stream_entity_names[e]) == n &&
                strncmp(p, bp_stream_entity_names[e], n) == 0) {
                *out |= 1u << e;
                known = true;
            }
        if (!known)
            return bp_error_set(err, BP_EINVAL,
                                "entity '%.*s' is not known: expected a list of " KNOWN, (int)n, p);
        p += n + (p[n] == ',');
    }
    if (!*out)
        return bp_error_set(err, BP_EINVAL, "no entity chosen: expected a list of " KNOWN);
    return 0;
}

int bp_stream_entities_of(const bp_sink_opts *opts, unsigned *out, bool *derived, bp_error *err)
{
    int rc = bp_stream_entities(bp_sink_opt(opts, "entities"), out, err);
    *derived = rc == 0 && (*out & (1u << BP_STREAM_METRICS));
    if (*derived && bp_sink_opt_int(opts, "metrics") == 0)
        return bp_error_set(err, BP_EINVAL,
                            "the entity 'metrics' is chosen but metrics is off (--metrics off or "
                            "metrics=off): drop it from the entities, or set metrics=on in this "
                            "output's URL");
    return rc;
}

void bp_stream_families(unsigned entities, bp_sink *sink)
{
    if (entities & BP_STREAM_ARCH_MASK)
        sink->families = 1u << BP_FAMILY_ARCH;
    else
        sink->families_why =
            "its entities (--stream-entities) name none of arch_blocks, "
            "arch_transactions, arch_account_updates, arch_events: add the ones to "
            "carry";
}

int bp_stream_check_derived(unsigned entities, bool derived, const bp_batch *b, bp_error *err)
{
    if (!(entities & (1u << BP_STREAM_METRICS)) || (derived && b->derived))
        return 0;
    for (size_t i = 0; i < b->count; i++)
        if (b->events[i].kind == BP_EVENT_APPLY && b->events[i].block->family == BP_FAMILY_EVM)
            return bp_error_set(err, BP_EINVAL,
                                "the entity 'metrics' needs the derived rows, which this run "
                                "does not compute (they need transactions and receipts: --fetch)");
    return 0;
}

_Static_assert((int)BP_STREAM_BLOCKS == (int)BP_TABLE_BLOCKS &&
                   (int)BP_STREAM_TXS == (int)BP_TABLE_TRANSACTIONS &&
                   (int)BP_STREAM_LOGS == (int)BP_TABLE_LOGS,
               "the EVM entities are the EVM tables");

size_t bp_stream_rows(int e, const bp_block *b)
{
    if (b->family != BP_FAMILY_EVM || e > BP_STREAM_METRICS)
        return 0;
    return e == BP_STREAM_BLOCKS || e == BP_STREAM_METRICS ? 1
           : e == BP_STREAM_TXS                            ? b->tx_count
           : b->has_receipts                               ? b->log_count
                                                           : 0;
}

static void metric_value(bp_jsonw *w, bp_value v)
{
    char num[32];
    switch (v.kind) {
    case BP_VAL_U64:
        bp_jsonw_u64(w, v.u);
        return;
    case BP_VAL_U256:
        bp_jsonw_u256(w, &v.q->v);
        return;
    case BP_VAL_STR:
        bp_jsonw_str(w, v.s);
        return;
    case BP_VAL_HEX: {
        char hex[BP_HEXB_TEXT];
        bp_hexb_text(hex, v.h);
        bp_jsonw_str(w, hex);
        return;
    }
    case BP_VAL_F64:
        if (isfinite(v.f)) { /* %.17g reads back as the same double */
            snprintf(num, sizeof(num), "%.17g", v.f);
            bp_jsonw_raw(w, num, strlen(num));
            return;
        }
        break;
    default:
        break;
    }
    bp_jsonw_null(w);
}

int bp_stream_metrics_json(bp_buf *out, const bp_chain_block_row *row, const bp_derived *d)
{
    bp_chain_block_row r = *row;
    double usd;
    if (!r.fees_paid_usd.set && r.fees_paid_native.set && d->price_at &&
        d->price_at(d->price_ctx, r.block_timestamp, &usd))
        r.fees_paid_usd = (bp_opt_f64){.v = r.fees_paid_native.v * usd, .set = true};
    bp_jsonw w;
    bp_buf_reset(out);
    bp_jsonw_init(&w, out, BP_JSONW_ESC_SHORT);
    bp_jsonw_begin_object(&w);
    size_t first, n = bp_dshape_columns(BP_DS_CHAIN_BLOCK, &first);
    for (size_t i = first; i < first + n; i++) {
        bp_jsonw_key(&w, bp_dcolumns[i].name);
        metric_value(&w, bp_dvalue_of((bp_dcol_id)i, &r));
    }
    bp_jsonw_end_object(&w);
    return bp_jsonw_finish(&w);
}

int bp_stream_row_json(bp_buf *out, int e, const bp_batch *batch, const bp_block *b, size_t i,
                       size_t *hint)
{
    if (e == BP_STREAM_METRICS) {
        const bp_block_derived *bd = bp_derived_find(batch->derived, b, hint);
        return bd ? bp_stream_metrics_json(out, &bd->chain, batch->derived) : BP_EINVAL;
    }
    /* the entities blocks, transactions, logs are the EVM set's tables, in order */
    const bp_event ev = {.kind = BP_EVENT_APPLY, .block = b};
    bp_table_row r;
    bp_table_row_at(&r, &bp_tables_evm, batch->chain, &ev, (size_t)e, i, 0);
    bp_buf_reset(out);
    return bp_table_row_json(out, &r);
}

int bp_stream_message(bp_buf *out, const char *type, const char *chain, uint64_t number,
                      const char *hash, const char *parent, const char *data, size_t dlen)
{
    bp_jsonw w;
    bp_buf_reset(out);
    bp_jsonw_init(&w, out, BP_JSONW_ESC_SHORT);
    bp_jsonw_begin_object(&w);
    bp_jsonw_key(&w, "type");
    bp_jsonw_str(&w, type);
    bp_jsonw_key(&w, "chain");
    bp_jsonw_str(&w, chain);
    bp_jsonw_key(&w, "number");
    bp_jsonw_u64(&w, number);
    bp_jsonw_key(&w, "hash");
    bp_jsonw_str(&w, hash);
    bp_jsonw_key(&w, "parent_hash");
    bp_jsonw_str(&w, parent);
    bp_jsonw_key(&w, "data");
    bp_jsonw_raw(&w, data, dlen);
    bp_jsonw_end_object(&w);
    return bp_jsonw_finish(&w);
}

/* ---- entries ---------------------------------------------------------------------- */

/* One entry: data made by the caller into scratch (reset before), handed to fn. */
#define ENTRY(type, made)                                                                          \
    do {                                                                                           \
        bp_buf_reset(scratch);                                                                     \
        int rc_ = (made);                                                                          \
        if (rc_ == 0)                                                                              \
            rc_ = fn(ctx, type, scratch->data, scratch->len);                                      \
        if (rc_ != 0)                                                                              \
            return rc_;                                                                            \
    } while (0)

/* An Arch entity is a table of the Arch set (arch/arch_tables.h), in the same order. */
_Static_assert(BP_STREAM_ARCH_EVENTS - BP_STREAM_ARCH_BLOCKS == (int)BP_ARCH_EVENTS &&
                   BP_STREAM_ARCH_ACCOUNTS - BP_STREAM_ARCH_BLOCKS ==
                       (int)BP_ARCH_ACCOUNT_UPDATES &&
                   BP_STREAM_ARCH_TXS - BP_STREAM_ARCH_BLOCKS == (int)BP_ARCH_TRANSACTIONS,
               "the Arch entities are the Arch tables");

/* An event carrier's rollback state changes on arch_transactions and arch_account_updates. */
static int arch_states(int e, const char *chain, const bp_block *b, bp_buf *scratch,
                       bp_stream_entry_fn fn, void *ctx)
{
    for (size_t i = 0; b->arch && i < b->arch->event_count; i++) {
        const bp_arch_event *ev = &b->arch->events[i];
        if ((e != BP_STREAM_ARCH_TXS && e != BP_STREAM_ARCH_ACCOUNTS) ||
            !bp_arch_event_is_state(ev))
            continue;
        const char *type = ev->topic == BP_ARCH_T_ROLLEDBACK ? "revert" : "apply";
        for (size_t k = 0; k < ev->hash_count; k++)
            ENTRY(type, bp_arch_json_state(scratch, chain, ev, k));
    }
    return 0;
}

/* Entity e's table (a table of one family's set); false for metrics (derived rows). */
static bool entity_table(int e, const bp_table_set **set, size_t *table)
{
    if (e == BP_STREAM_METRICS)
        return false;
    bool arch = (1u << e) & BP_STREAM_ARCH_MASK;
    *set = arch ? &bp_tables_arch : &bp_tables_evm;
    *table = (size_t)(arch ? e - BP_STREAM_ARCH_BLOCKS : e);
    return true;
}

int bp_stream_entries(int e, const bp_batch *batch, size_t i, bp_buf *scratch, size_t *hint,
                      bp_stream_entry_fn fn, void *ctx)
{
    const bp_event *ev = &batch->events[i];
    const bp_table_set *set = &bp_tables_evm; /* metrics: the EVM chains' */
    size_t table = 0;
    bool rows = entity_table(e, &set, &table);
    if (bp_table_set_of(ev->block->family) != set)
        return 0; /* an entity carries its family's chains only */
    if (ev->kind == BP_EVENT_REVERT)
        return rows && set->tables[table].kept_on_revert ? 0 : fn(ctx, "revert", "null", 4);
    if (!rows) {
        if (ev->kind == BP_EVENT_APPLY)
            ENTRY("apply", bp_stream_row_json(scratch, e, batch, ev->block, 0, hint));
        return 0;
    }
    if (set->family == BP_FAMILY_ARCH && ev->kind == BP_EVENT_APPLY && !ev->block->arch)
        return BP_EINVAL; /* an Arch block without its rows: the pipeline's mistake */
    bp_table_row r;
    bp_table_rows(&r, set, batch->chain, ev, table);
    while (bp_table_next(&r))
        ENTRY("apply", bp_table_row_json(scratch, &r));
    return ev->kind == BP_EVENT_ARCH_EVENTS
               ? arch_states(e, batch->chain, ev->block, scratch, fn, ctx)
               : 0;
}

uint64_t bp_stream_arch_event_count(const bp_batch *batch)
{
    uint64_t n = 0;
    for (size_t i = 0; i < batch->count; i++) {
        const bp_block *b = batch->events[i].block;
        if (batch->events[i].kind == BP_EVENT_ARCH_EVENTS && b->arch)
            n += b->arch->event_count;
    }
    return n;
}

/* ---- recent blocks ---------------------------------------------------------------------- */

void bp_stream_recent_parse(bp_stream_recent *r, const char *text, size_t len)
{
    r->n = 0;
    const char *p = text, *end = text + len;
    while (p < end && r->n < BP_STREAM_RECENT_MAX) {
        char *colon = NULL;
        uint64_t n = strtoull(p, &colon, 10);
        if (!colon || colon >= end || *colon != ':')
            break;
        const char *h = colon + 1;
        size_t hl = 0;
        while (h + hl < end && h[hl] != ' ')
            hl++;
        r->at[r->n].number = n;
        snprintf(r->at[r->n].hash, sizeof(r->at[0].hash), "%.*s", (int)(hl < 66 ? hl : 66), h);
        r->n++;
        p = h + hl + 1;
    }
}

int bp_stream_recent_format(const bp_stream_recent *r, bp_buf *out)
{
    bp_buf_reset(out);
    int rc = bp_buf_puts(out, "");
    for (size_t i = 0; i < r->n && rc == 0; i++)
        rc = bp_buf_printf(out, "%s%" PRIu64 ":%s", i ? " " : "", r->at[i].number, r->at[i].hash);
    return rc;
}

size_t bp_stream_recent_list(const bp_stream_recent *r, bp_checkpoint *out, size_t max)
{
    size_t n = 0;
    for (; n < r->n && n < max; n++) {
        out[n] = (bp_checkpoint){.set = true, .number = r->at[n].number};
        memcpy(out[n].hash, r->at[n].hash, sizeof(out[n].hash));
    }
    return n;
}

int bp_stream_shape_of(const bp_batch *b, const bp_stream_recent *before, bp_stream_shape *sh,
                       bp_error *err)
{
    size_t cap = b->count ? b->count : 1, top = 0;
    sh->survives = calloc(cap, sizeof(bool));
    size_t *stack = malloc(cap * sizeof(size_t));
    if (!sh->survives || !stack) {
        free(stack);
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    sh->below = false;
    sh->recent = *before;
    bp_stream_recent *r = &sh->recent;
    for (size_t i = 0; i < b->count; i++) {
        const bp_block *blk = b->events[i].block;
        if (b->events[i].kind == BP_EVENT_ARCH_EVENTS)
            continue; /* no block: the checkpoint stays */
        if (b->events[i].kind == BP_EVENT_APPLY) {
            stack[top++] = i;
            memmove(&r->at[1], &r->at[0], (BP_STREAM_RECENT_MAX - 1) * sizeof(r->at[0]));
            r->at[0].number = blk->number;
            snprintf(r->at[0].hash, sizeof(r->at[0].hash), "%s", blk->hash);
            r->n += r->n < BP_STREAM_RECENT_MAX;
            continue;
        }
        if (top > 0 && b->events[stack[top - 1]].block->number == blk->number)
            top--;
        else
            sh->below = true;
        if (r->n > 0 && r->at[0].number == blk->number) {
            memmove(&r->at[0], &r->at[1], (BP_STREAM_RECENT_MAX - 1) * sizeof(r->at[0]));
            r->n--;
        }
    }
    for (size_t k = 0; k < top; k++)
        sh->survives[stack[k]] = true;
    free(stack);
    return 0;
}

void bp_stream_shape_release(bp_stream_shape *sh)
{
    free(sh->survives);
    sh->survives = NULL;
}
