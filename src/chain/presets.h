/* presets.h - the chains blockpipe knows by name (--chain-preset NAME, config `preset:`): one
 * data table (presets.c) of chain id, native token, typical block time, the default
 * confirmations and reorg window, and the chain family with the fields its nodes add. */
#ifndef BP_CHAIN_PRESETS_H
#define BP_CHAIN_PRESETS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* What a chain's node answers beyond Ethereum's fields (docs/SCHEMA.md). */
typedef enum bp_chain_family {
    BP_FAMILY_ETHEREUM,    /* Ethereum and chains that answer as geth does */
    BP_FAMILY_OP_STACK,    /* deposits 0x7e, receipts' l1Fee ... */
    BP_FAMILY_ARBITRUM,    /* 0x64-0x6a, gasUsedForL1, l1BlockNumber */
    BP_FAMILY_ZKSYNC,      /* 0x71, 0xff, l1BatchNumber ... (extra) */
    BP_FAMILY_POLYGON_POS, /* the state-sync receipt */
    BP_FAMILY_OTHER_L2,    /* a rollup with fields of its own (extra) */
    BP_FAMILY_COUNT
} bp_chain_family;

typedef struct bp_chain_preset {
    const char *name;    /* as --chain-preset takes it, e.g. "base" */
    const char *aliases; /* other names, comma-separated ("" when none) */
    const char *title;   /* "Base" */
    uint64_t chain_id;
    const char *native_token; /* symbol, e.g. "ETH", "POL" */
    unsigned block_time_ms;   /* typical */
    uint64_t confirmations;   /* default --confirmations */
    uint64_t reorg_window;    /* default --reorg-window */
    bp_chain_family family;
} bp_chain_preset;

extern const bp_chain_preset bp_chain_presets[];
extern const size_t bp_chain_preset_count;

/* The preset named name or one of its aliases (case-insensitive), NULL when none. */
const bp_chain_preset *bp_chain_preset_find(const char *name);
/* The preset of a chain id, NULL when none (the first if several). */
const bp_chain_preset *bp_chain_preset_by_id(uint64_t chain_id);
const char *bp_chain_family_name(bp_chain_family f);
/* What a family's nodes add, one sentence (docs and --help). */
const char *bp_chain_family_fields(bp_chain_family f);
/* The table in Markdown (docs/CLI.md). */
void bp_chain_presets_markdown(FILE *out);
/* "ethereum, sepolia, ..." for --help, in a static buffer. */
const char *bp_chain_preset_names(void);

#endif
