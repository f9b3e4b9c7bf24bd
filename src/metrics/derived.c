/* derived.c - the derived tables' column table (include/blockpipe/derived.h) made from
 * BP_DTABLES and BP_DCOLUMNS. */
#include "blockpipe/derived.h"

#include <stdio.h>
#include <string.h>

const bp_dtable_info bp_dtables[BP_DT_COUNT] = {
#define BP_X_DT(id, name, shape, grain, timecol)                                                   \
    [BP_DT_##id] = {name, BP_DS_##shape, grain, timecol},
    BP_DTABLES(BP_X_DT)
#undef BP_X_DT
};

const uint64_t bp_grain_seconds[BP_GRAIN_COUNT] = {60, 3600, 86400};
const char *const bp_grain_names[BP_GRAIN_COUNT] = {"1m", "1h", "1d"};

const bp_dcolumn bp_dcolumns[BP_D_COUNT] = {
#define BP_X_DCOL(id, shape, name, type, rep, field, agg, flags)                                   \
    [BP_D_##id] = {name, BP_DS_##shape, BP_COL_##type, BP_AGG_##agg, flags},
    BP_DCOLUMNS(BP_X_DCOL)
#undef BP_X_DCOL
};

size_t bp_dshape_columns(bp_dshape s, size_t *first)
{
    size_t i = 0, n = 0;
    while (i < BP_D_COUNT && bp_dcolumns[i].shape != s)
        i++;
    *first = i;
    while (i + n < BP_D_COUNT && bp_dcolumns[i + n].shape == s)
        n++;
    return n;
}

bp_dtable bp_dtable_find(const char *name)
{
    for (int t = 0; t < BP_DT_COUNT; t++)
        if (strcmp(bp_dtables[t].name, name) == 0)
            return (bp_dtable)t;
    return BP_DT_COUNT;
}

const bp_block_derived *bp_derived_find(const bp_derived *d, const bp_block *b, size_t *hint)
{
    if (!d)
        return NULL;
    for (size_t k = 0; k < d->count; k++) {
        size_t i = (*hint + k) % d->count;
        if (d->blocks[i].block == b) {
            *hint = i + 1;
            return &d->blocks[i];
        }
    }
    return NULL;
}

const bp_minute_summary *bp_derived_minute(const bp_derived *d, uint64_t w)
{
    for (size_t i = 0; d && i < d->minute_count; i++)
        if (d->minutes[i].window_start == w)
            return &d->minutes[i];
    return NULL;
}

/* ---- the selection ---------------------------------------------------------------------- */

const char *const bp_dgroup_names[BP_DG_COUNT] = {
#define BP_X_DG_NAME(id, name) [BP_DG_##id] = name,
    BP_DGROUPS(BP_X_DG_NAME)
#undef BP_X_DG_NAME
};

bp_dgroup bp_dtable_group(bp_dtable t)
{
    switch (bp_dtables[t].shape) {
    case BP_DS_CHAIN_BLOCK:
    case BP_DS_CHAIN_WINDOW:
        return BP_DG_CHAIN_METRICS;
    case BP_DS_CONTRACT_WINDOW:
    case BP_DS_CONTRACT_SENDER_SET:
        return BP_DG_CONTRACT_METRICS;
    case BP_DS_ADDRESS_SET:
        return BP_DG_ACTIVE_ADDRESSES;
    case BP_DS_TOKEN_TRANSFER:
        return BP_DG_TOKEN_TRANSFERS;
    case BP_DS_PRICE:
        return BP_DG_PRICES;
    case BP_DS_PREDICTION:
    default:
        return BP_DG_ML_PREDICTIONS;
    }
}

/* What each group needs selected with it, and why (derived.h has the reasons in full). */
static const struct {
    unsigned needs;
    const char *why;
} g_needs[BP_DG_COUNT] = {
    [BP_DG_CHAIN_METRICS] = {BP_DG_BIT(BP_DG_ACTIVE_ADDRESSES) | BP_DG_BIT(BP_DG_PRICES),
                             "the hours' and days' active_addresses are counted from the "
                             "active_addresses sets, fees_paid_usd from the prices table"},
    [BP_DG_ACTIVE_ADDRESSES] = {BP_DG_BIT(BP_DG_CHAIN_METRICS),
                                "a set row leaves with its block, found by its "
                                "chain_metrics_block row"},
    [BP_DG_CONTRACT_METRICS] = {BP_DG_BIT(BP_DG_CHAIN_METRICS),
                                "a minute counts the blocks that have a chain_metrics_block row, "
                                "and a REVERT finds its block's rows by it"},
    [BP_DG_TOKEN_TRANSFERS] = {BP_DG_BIT(BP_DG_CHAIN_METRICS),
                               "a REVERT finds its block's rows by its chain_metrics_block row"},
    [BP_DG_ML_PREDICTIONS] = {BP_DG_BIT(BP_DG_CHAIN_METRICS),
                              "a REVERT finds its block's rows by its chain_metrics_block row"},
};

void bp_dgroups_format(unsigned groups, char *out, size_t cap)
{
    size_t at = 0;
    if (cap)
        out[0] = '\0';
    for (int g = 0; g < BP_DG_COUNT; g++)
        if (groups & BP_DG_BIT(g)) {
            int n = snprintf(out + at, cap > at ? cap - at : 0, "%s%s", at ? "," : "",
                             bp_dgroup_names[g]);
            at += n > 0 ? (size_t)n : 0;
        }
    if (groups == 0 && cap)
        snprintf(out, cap, "none");
}

#define GROUP_LIST                                                                                 \
    "chain_metrics, contract_metrics, active_addresses, token_transfers, prices, ml_predictions"

int bp_dgroups_parse(const char *list, const char *who, unsigned *groups, bp_error *err)
{
    unsigned got = 0;
    for (const char *p = list; *p;) {
        p += strspn(p, " ,");
        size_t n = strcspn(p, ", ");
        if (n == 0)
            break;
        int found = -1;
        for (int g = 0; g < BP_DG_COUNT && found < 0; g++)
            if (strlen(bp_dgroup_names[g]) == n && strncmp(p, bp_dgroup_names[g], n) == 0)
                found = g;
        if (found >= 0)
            got |= BP_DG_BIT(found);
        else if (n == 3 && strncmp(p, "all", 3) == 0)
            got |= BP_DG_ALL;
        else if (!(n == 4 && strncmp(p, "none", 4) == 0))
            return bp_error_set(err, BP_EINVAL,
                                "%s: '%.*s' is not a group of derived tables: expected a list of "
                                "" GROUP_LIST ", or all, or none",
                                who, (int)n, p);
        p += n;
    }
    for (int g = 0; g < BP_DG_COUNT; g++) {
        unsigned missing = (got & BP_DG_BIT(g)) ? g_needs[g].needs & ~got : 0;
        if (!missing)
            continue;
        char names[128];
        bp_dgroups_format(missing, names, sizeof(names));
        return bp_error_set(err, BP_EINVAL,
                            "%s: %s needs %s selected with it (%s): add %s to the list, or take %s "
                            "out",
                            who, bp_dgroup_names[g], names, g_needs[g].why, names,
                            bp_dgroup_names[g]);
    }
    *groups = got;
    return 0;
}

int bp_dgroups_check_ml(unsigned groups, bool ml, bp_error *err)
{
    if (ml || !(groups & BP_DG_BIT(BP_DG_ML_PREDICTIONS)) || groups == BP_DG_ALL)
        return 0;
    return bp_error_set(err, BP_EINVAL,
                        "derived (--derived, DERIVED) selects ml_predictions, but --ml "
                        "(ML_PREDICTIONS) is off: nothing would score its transactions, and the "
                        "database would record ml_predictions as written (a later --ml on would "
                        "leave the blocks until then without rows). Add --ml on, or take "
                        "ml_predictions out of the list");
}

/* The tables of group g, "a, b, c". */
static void group_tables(int g, char *out, size_t cap)
{
    size_t at = 0;
    out[0] = '\0';
    for (int t = 0; t < BP_DT_COUNT; t++)
        if ((int)bp_dtable_group((bp_dtable)t) == g) {
            int n = snprintf(out + at, cap > at ? cap - at : 0, "%s%s", at ? ", " : "",
                             bp_dtables[t].name);
            at += n > 0 ? (size_t)n : 0;
        }
}

int bp_dgroups_open(unsigned now, const unsigned *stored, bool written, unsigned *has, bool *record,
                    bp_error *err)
{
    /* without a record, rows were written by a blockpipe that had every group */
    unsigned before = stored ? *stored : written ? BP_DG_ALL : 0;
    *record = false;
    if (!written) { /* nothing of a block yet: any selection starts the tables */
        *has = now;
        *record = !stored || *stored != now;
        return 0;
    }
    if (!(now & BP_DG_BIT(BP_DG_CHAIN_METRICS))) { /* as metrics=off: the record stays */
        *has = (before & BP_DG_BLOCK_KEYED) | (now & BP_DG_BIT(BP_DG_PRICES));
        return 0;
    }
    unsigned diff = (before ^ now) & BP_DG_BLOCK_KEYED;
    if (diff) {
        int g = 0;
        while (!(diff & BP_DG_BIT(g)))
            g++;
        char was[160], tables[200];
        bp_dgroups_format(before, was, sizeof(was));
        group_tables(g, tables, sizeof(tables));
        bool added = now & BP_DG_BIT(g);
        return bp_error_set(
            err, BP_EINVAL,
            "derived (--derived, DERIVED): %s is %s, but this database's derived tables hold "
            "rows written %s it (derived=%s): %s would %s. Keep derived=%s here, or write the "
            "new selection into a new database (blockpipe backfill --from 0 with it fills that "
            "one whole), or set metrics=off",
            bp_dgroup_names[g], added ? "selected" : "left out", added ? "without" : "with", was,
            tables,
            added ? "count only the blocks written from now on in windows that hold earlier ones"
                  : "stop in the middle of their windows while chain_metrics goes on",
            was);
    }
    *has = now;
    *record = !stored || *stored != now;
    return 0;
}

int bp_dgroups_open_text(unsigned now, const char *stored_text, bool written, unsigned *has,
                         char *record_out, size_t cap, bp_error *err)
{
    unsigned stored = 0;
    bp_error perr = {0}; /* a record this blockpipe cannot read counts as none */
    bool known =
        stored_text && bp_dgroups_parse(stored_text, "derived_groups", &stored, &perr) == 0;
    bool record = false;
    if (cap)
        record_out[0] = '\0';
    if (bp_dgroups_open(now, known ? &stored : NULL, written, has, &record, err) != 0)
        return err->code;
    if (record)
        bp_dgroups_format(*has, record_out, cap);
    return 0;
}

const bp_block_derived *bp_derived_trim(const bp_block_derived *b, unsigned has,
                                        bp_block_derived *copy)
{
    bool tt = b->transfer_count && !(has & BP_DG_BIT(BP_DG_TOKEN_TRANSFERS));
    bool ml = b->prediction_count && !(has & BP_DG_BIT(BP_DG_ML_PREDICTIONS));
    bool kw = (b->contract_count || b->pair_count) && !(has & BP_DG_BIT(BP_DG_CONTRACT_METRICS));
    if (!tt && !ml && !kw)
        return b;
    *copy = *b;
    copy->transfer_count = tt ? 0 : b->transfer_count;
    copy->prediction_count = ml ? 0 : b->prediction_count;
    copy->contract_count = kw ? 0 : b->contract_count;
    copy->pair_count = kw ? 0 : b->pair_count;
    return copy;
}
