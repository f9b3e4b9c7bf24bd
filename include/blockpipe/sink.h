/* sink.h - the output contract. Every backend (SQLite, ethereum-etl CSV, JSON lines, and
 * later PostgreSQL, ClickHouse, Redis, Kafka) implements bp_sink_ops; nothing else in the
 * program knows a backend's name but the registry (src/sink/registry.c).
 *
 * The pipeline calls one sink from one thread at a time (the commit thread); a backend needs
 * no locking of its own.
 *
 * The event stream a sink sees is ordered and consistent: APPLY n arrives only after the
 * block below it was applied (or after the sink's checkpoint), and REVERT n arrives, highest
 * first, for every block the sink has applied that left the canonical chain. */
#ifndef BLOCKPIPE_SINK_H
#define BLOCKPIPE_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blockpipe/error.h"
#include "blockpipe/model.h"

typedef enum bp_event_kind {
    BP_EVENT_APPLY = 1,  /* block (full) joined the canonical chain */
    BP_EVENT_REVERT = 2, /* block (header only: number, hash, parent_hash, timestamp) left it */
} bp_event_kind;

typedef struct bp_event {
    bp_event_kind kind;
    const bp_block *block; /* owned by the pipeline; valid during write() only */
} bp_event;

/* The last applied block of a chain in one output. */
typedef struct bp_checkpoint {
    bool set; /* false: the output has nothing for this chain yet */
    uint64_t number;
    char hash[67];
} bp_checkpoint;

typedef struct bp_batch {
    const char *chain; /* chain name, e.g. "mainnet" or "anvil" */
    uint64_t chain_id;
    const bp_event *events; /* in order */
    size_t count;
    bp_checkpoint checkpoint; /* the output's checkpoint once this batch is written */
    unsigned fetched;         /* enum bp_fetch_what bits: which entities were fetched */
} bp_batch;

typedef struct bp_sink bp_sink;

typedef struct bp_sink_ops {
    const char *scheme;      /* URL scheme, e.g. "sqlite" */
    const char *description; /* one line for --help */
    /* target: the URL with "scheme:" or "scheme://" removed (a path for file outputs). */
    int (*open)(bp_sink **out, const char *target, bp_error *err);
    /* The checkpoint of chain (out->set = false when none). */
    int (*checkpoint)(bp_sink *s, const char *chain, bp_checkpoint *out, bp_error *err);
    /* Optional (may be NULL): up to max most recent applied (number, hash) of chain, highest
     * first, to restore the reorg window after a restart. */
    int (*recent)(bp_sink *s, const char *chain, bp_checkpoint *out, size_t max, size_t *n,
                  bp_error *err);
    /* Write a batch. Transactional backends commit events and checkpoint atomically: after a
     * crash the output holds either the whole batch or none of it. */
    int (*write)(bp_sink *s, const bp_batch *batch, bp_error *err);
    /* Make everything written durable (fsync / flush producers). May be NULL. */
    int (*flush)(bp_sink *s, bp_error *err);
    void (*close)(bp_sink *s);
} bp_sink_ops;

/* Every backend's handle embeds this first. */
struct bp_sink {
    const bp_sink_ops *ops;
    char *url; /* as given by the user but without credentials, for messages; owned by the
                  registry code */
};

/* Opens an output from its URL (sqlite:PATH, sqlite://PATH, etl-csv:DIR, jsonl:DIR, ...).
 * BP_EINVAL with the list of known schemes when the scheme is unknown. */
int bp_sink_open_url(const char *url, bp_sink **out, bp_error *err);
void bp_sink_close(bp_sink *s);
/* The backends, NULL-terminated (for --help). */
const bp_sink_ops *const *bp_sink_backends(void);

#endif
