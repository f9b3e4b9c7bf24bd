/* decode_internal.h - what the tree decoder (decode.c) shares with the streamed decoder
 * (decode_stream.c): the decoding context, the field tables' shape, the block's field table
 * and the per-object decoders, so a streamed element is decoded by the very code a whole
 * tree is. Only for those two files. */
#ifndef BP_CHAIN_DECODE_INTERNAL_H
#define BP_CHAIN_DECODE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "blockpipe/error.h"
#include "blockpipe/model.h"
#include "chain/decode.h"
#include "util/arena.h"

/* How a JSON value lands in a struct field. Tables below map JSON keys to these, so one
 * loop over an object's keys decodes it (no per-field lookups: objects are walked once). */
enum fkind {
    K_U64,     /* required-width quantity into uint64_t */
    K_OPT_U64, /* quantity into bp_opt_u64 */
    K_QTY,     /* quantity into bp_qty (256 bits) */
    K_HASH,    /* 32-byte hex, lower-cased */
    K_TOPIC,   /* a log topic: K_HASH, one copy per value in a block (dctx.intern) */
    K_ADDR,    /* 20-byte hex, lower-cased; one copy per value in a block (dctx.intern) */
    K_DATA,    /* any-length hex, lower-cased */
    K_HEXB,    /* any-length hex kept as its bytes (const bp_hexb *: model.h) */
    K_JSON,    /* compact JSON text of an array */
    K_BOOL,
    K_OPT_BOOL, /* true / false (or the strings "true" / "false") into bp_opt_u64 as 1 / 0 */
    K_TEXT,     /* a string or a number, kept as text (OP's l1FeeScalar "0.684") */
    K_SKIP,     /* known and not stored (a copy of another field): not an extra key */
    K_KEEP,     /* handed back to the caller (nested arrays) */
};

/* 0: optional; 1: required when the object's shape is known; 2: always required. */
enum freq { OPT = 0, REQ = 1, MUST = 2 };

typedef struct bp_field {
    const char *key;
    unsigned char kind;
    unsigned char req;
    unsigned short off;
    /* 0: off is into the object; else into a chain family's part of bp_tx, made on first
     * use: FAM_OP (bp_tx.op), FAM_ARB (bp_tx.arb) or FAM_RARE (bp_tx.rare) */
    unsigned char fam;
} bp_field;

enum { FAM_NONE, FAM_OP, FAM_ARB, FAM_RARE };

#define FLD(key, kind, req, type, member)                                                          \
    {                                                                                              \
        key, kind, req, (unsigned short)offsetof(type, member), FAM_NONE                           \
    }
#define FLD_OP(key, kind, member)                                                                  \
    {                                                                                              \
        key, kind, OPT, (unsigned short)offsetof(bp_tx_op, member), FAM_OP                         \
    }
#define FLD_ARB(key, kind, member)                                                                 \
    {                                                                                              \
        key, kind, OPT, (unsigned short)offsetof(bp_tx_arb, member), FAM_ARB                       \
    }
#define FLD_RARE(key, kind, member)                                                                \
    {                                                                                              \
        key, kind, OPT, (unsigned short)offsetof(bp_tx_rare, member), FAM_RARE                     \
    }
#define KEEP(key, req)                                                                             \
    {                                                                                              \
        key, K_KEEP, req, 0, FAM_NONE                                                              \
    }
#define NFIELDS(t) (sizeof(t) / sizeof((t)[0]))

/* The addresses and topics already copied into one block's arena, so that a value that comes
 * again (a busy contract, its event's topic0, a sender with many txs) is one copy: in
 * simnode's 50,000-tx block 240,000 of them are 21,852 distinct values, 11.4 MB of text.
 * Open addressing, at most half full; malloc'd while the block is decoded, freed with its
 * stream (bp_intern_free), and once full (BP_INTERN_MAX values) a new value is copied as
 * before. */
typedef struct bp_intern {
    const char **slots;
    size_t cap, n;
} bp_intern;
#define BP_INTERN_MAX 16384 /* values: a table of at most 256 KiB */
void bp_intern_free(bp_intern *t);

typedef struct dctx {
    bp_block *b;
    bp_arena *a;
    yajl_gen g; /* created on first use: most blocks have no list fields */
    bp_error *err;
    uintptr_t body; /* zero-copy: strings in [body, body + body_len) are kept in place */
    size_t body_len;
    bool lens;         /* every string node has its bp_json_strlen (a streamed element) */
    bp_intern *intern; /* the block's addresses and topics (NULL: every value copied) */
} dctx;

/* The block's fields: the first ones are handed back (K_KEEP) at these positions. */
enum { BK_TRANSACTIONS, BK_UNCLES, BK_WITHDRAWALS, BK_NUMBER };
#define BP_DEC_BLOCK_FIELDS 27 /* its entries (decode.c checks) */
extern const bp_field bp_dec_block_fields[];

void bp_dec_ctx_init(dctx *c, bp_block *b, const bp_body *body, bp_error *err);
int bp_dec_wrong_type(dctx *c, const char *key, const char *want, yajl_val v);
/* One table entry's value into base + f->off (K_KEEP: into *keep). */
int bp_dec_put_field(dctx *c, const bp_field *f, yajl_val v, char *base, yajl_val *keep);
/* Every field of obj by table t (n entries), required ones checked; keep[n] gets K_KEEPs.
 * extra (NULL: dropped) gets the keys t does not know as one compact JSON object, or NULL. */
int bp_dec_object(dctx *c, yajl_val obj, const bp_field *t, size_t n, void *base, yajl_val *keep,
                  const char **extra);
/* Strings equal ignoring ASCII case. */
bool bp_dec_hex_equal(const char *a, const char *b);
/* Transaction i of c->b from its object; errors start "transaction i: ". */
int bp_dec_tx(dctx *c, yajl_val v, size_t i, bp_tx *tx);
/* The block's withdrawals array (NULL: none). */
int bp_dec_withdrawals(dctx *c, yajl_val arr);
/* "block N: " (or the hash) before err's message. */
void bp_dec_prefix_block(bp_error *err, yajl_val obj, const bp_block *b);
/* The value of key in obj (first match), else NULL. */
yajl_val bp_dec_object_get(yajl_val obj, const char *key);
/* Receipt i merged into c->b->txs[i], its logs at c->b->logs[*log_pos..]; errors start
 * "receipt i: ". */
int bp_dec_receipt(dctx *c, yajl_val r, size_t i, size_t *log_pos);
/* Polygon PoS: the receipt one past the block's transactions (i == transaction_count), which
 * bor adds for the block's state-sync events, decoded into *tx as a transaction of its own
 * (type 0x7f, from and to the zero address, its hash the receipt's). Refused unless it looks
 * like one (gasUsed 0). */
int bp_dec_state_sync(dctx *c, yajl_val r, size_t i, bp_tx *tx, size_t *log_pos);
/* The block's transactions with *sync appended (an arena copy; tx_count grows by one). */
int bp_dec_append_tx(dctx *c, const bp_tx *sync);

#endif
