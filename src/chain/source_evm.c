/* source_evm.c - the EVM family behind the source interface (core/source.h): eth_chainId,
 * eth_getBlockByNumber headers and the batched block + receipts fetch of fetch.c, exactly the
 * calls the pipeline made directly before the interface. */
#include "core/source.h"

#include <string.h>

const bp_source_ops bp_source_evm = {
    .name = "evm",
    .family = BP_FAMILY_EVM,
    .tables = &bp_tables_evm,
    .identity_call = "eth_chainId",
    .identity_name = "chain id",
    .identity = bp_rpc_chain_id,
    .header = bp_rpc_header,
    .fetch_range = bp_fetch_range,
    .newheads_ws = true,
};

const bp_source_ops *bp_source_find(const char *name)
{
    static const bp_source_ops *const all[] = {&bp_source_evm, &bp_source_arch};
    for (size_t i = 0; name && i < sizeof(all) / sizeof(all[0]); i++)
        if (strcmp(all[i]->name, name) == 0)
            return all[i];
    return NULL;
}

const char *bp_source_names(void)
{
    return "evm|arch";
}
