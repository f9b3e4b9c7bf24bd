/* arch_json.c - Arch rollback state changes as JSON (arch_json.h). */
#include "arch/arch_json.h"

#include <stdio.h>
#include <string.h>

#include "blockpipe/error.h"
#include "util/jsonw.h"

bool bp_arch_account_first(const bp_arch_tx *t, size_t k)
{
    for (size_t j = 0; j < k; j++)
        if (strcmp(t->accounts[j], t->accounts[k]) == 0)
            return false;
    return true;
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
