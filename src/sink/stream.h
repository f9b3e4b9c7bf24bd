/* stream.h - what the stream outputs (Redis, Kafka) share: the entities a stream carries, one
 * entry's message, and the checkpoint's list of recent blocks with what a batch does to it.
 *
 * An entry is one row of an applied block (type "apply", its data the row as JSON, see
 * rowjson.h) or one reverted block (type "revert", data null), with the block's chain, number,
 * hash and parent hash. Its message:
 *   {"type":"apply","chain":"..","number":N,"hash":"0x..","parent_hash":"0x..","data":{..}} */
#ifndef BP_SINK_STREAM_H
#define BP_SINK_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blockpipe/sink.h"
#include "util/buf.h"

enum { BP_STREAM_BLOCKS, BP_STREAM_TXS, BP_STREAM_LOGS, BP_STREAM_ENTITY_COUNT };

/* "blocks", "transactions", "logs". */
extern const char *const bp_stream_entity_names[BP_STREAM_ENTITY_COUNT];

/* The option every stream output has (shared key: one flag sets them all). */
#define BP_STREAM_ENTITIES_OPTION                                                                  \
    {                                                                                              \
        .name = "entities", .flag = "stream-entities", .env = "STREAM_ENTITIES",                   \
        .key = "stream_entities", .type = BP_SINK_OPT_STRING, .arg = "LIST", .def = "blocks",      \
        .help =                                                                                    \
            "what the stream outputs (Redis, Kafka) carry: a list of blocks, transactions, logs"   \
    }

/* "blocks,transactions,logs" into bits (1 << BP_STREAM_*). BP_EINVAL naming an unknown entity
 * ('metrics' is not available yet). */
int bp_stream_entities(const char *list, unsigned *out, bp_error *err);

/* Rows of entity e in block b (a block's logs only when it was fetched with receipts). */
size_t bp_stream_rows(int e, const bp_block *b);
/* Row i of entity e of block b as JSON into out (reset first). */
int bp_stream_row_json(bp_buf *out, int e, const char *chain, const bp_block *b, size_t i);
/* The message of an entry into out (reset first): data is JSON text ("null" for a revert). */
int bp_stream_message(bp_buf *out, const char *type, const char *chain, uint64_t number,
                      const char *hash, const char *parent, const char *data, size_t dlen);

/* ---- the recent blocks kept with the checkpoint (for the reorg window after a restart) ---- */

#define BP_STREAM_RECENT_MAX 128

typedef struct bp_stream_recent {
    struct {
        uint64_t number;
        char hash[67];
    } at[BP_STREAM_RECENT_MAX]; /* newest first */
    size_t n;
} bp_stream_recent;

/* "n:hash n:hash ..." (newest first), as stored. */
void bp_stream_recent_parse(bp_stream_recent *r, const char *text, size_t len);
int bp_stream_recent_format(const bp_stream_recent *r, bp_buf *out);
/* Up to max entries as checkpoints (the recent op). */
size_t bp_stream_recent_list(const bp_stream_recent *r, bp_checkpoint *out, size_t max);

/* What a batch leaves: which of its APPLYs survive it (their blocks are canonical at its end),
 * whether it reverted blocks written before it, and the recent list after it. */
typedef struct bp_stream_shape {
    bool *survives; /* per event; owned */
    bool below;
    bp_stream_recent recent;
} bp_stream_shape;

int bp_stream_shape_of(const bp_batch *b, const bp_stream_recent *before, bp_stream_shape *sh,
                       bp_error *err);
void bp_stream_shape_release(bp_stream_shape *sh);

#endif
