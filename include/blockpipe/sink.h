/* sink.h - the output contract. Every backend (SQLite, PostgreSQL, ethereum-etl CSV, JSON
 * lines, and the ones to come) implements bp_sink_ops in one file under src/sink/ and is
 * listed by one line in src/sink/registry.c; nothing else in the program knows a backend's
 * name, schemes or options. A backend declares its own options (bp_sink_option): the command
 * line, the environment, the config file, `--help` and docs/CLI.md are all made from them.
 *
 * Threading: the pipeline calls one sink from one thread at a time (the writer thread while
 * it runs, the coordinator at start and at the final flush); a backend needs no locking of
 * its own.
 *
 * The event stream a sink sees is ordered and consistent: APPLY n arrives only after the
 * block below it was applied (or after the sink's checkpoint), and REVERT n arrives, highest
 * first, for every block the sink has applied that left the canonical chain. */
#ifndef BLOCKPIPE_SINK_H
#define BLOCKPIPE_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blockpipe/columns.h"
#include "blockpipe/error.h"
#include "blockpipe/model.h"

typedef enum bp_event_kind {
    BP_EVENT_APPLY = 1,  /* block (full) joined the canonical chain */
    BP_EVENT_REVERT = 2, /* block (header only: number, hash, parent_hash, timestamp) left it */
    /* An Arch chain's WebSocket events (--chain-type arch with --ws): block is a carrier
     * (family BP_FAMILY_ARCH, number and hash of the newest block committed before it, or 0 and
     * "") whose arch rows hold the events in arrival order and no block row. It follows the
     * APPLYs of the blocks its events name, and changes no checkpoint. Only outputs that store
     * Arch (bp_sink.families) see it; what they do with it: src/arch/arch_rows.h. */
    BP_EVENT_ARCH_EVENTS = 3,
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
    /* An Arch chain followed over --ws: the lowest block whose rollback state the next start
     * reads again (core/pipeline.c resync_floor), stored with the checkpoint by every output
     * and read back by checkpoint(). floor_set false: none (EVM, no socket yet, an output made
     * before). In a batch: the pipeline's, or none, and the output's own then stays
     * (core/outputs.c). */
    bool floor_set;
    uint64_t floor;
} bp_checkpoint;

struct bp_derived;
struct bp_derived_job;
struct bp_budget;

typedef struct bp_batch {
    const char *chain; /* chain name, e.g. "mainnet" or "anvil" */
    uint64_t chain_id;
    const bp_event *events; /* in order */
    size_t count;
    bp_checkpoint checkpoint; /* the output's checkpoint once this batch is written */
    unsigned fetched;         /* enum bp_fetch_what bits: which entities were fetched */
    /* The analytics rows of the batch's APPLY blocks (blockpipe/derived.h), NULL when no
     * output asked for them: outputs with derived tables write them in the same transaction
     * as the raw rows, the others ignore them. */
    const struct bp_derived *derived;
    /* The batch writes again blocks at or below the output's checkpoint, which stays as it is
     * (`blockpipe verify --repair`: REVERT + APPLY of each block): an unchanged checkpoint does
     * not mean the batch was written already. */
    bool rewrite;
    /* Set, with derived NULL, for an output that set bp_sink.derived_late while the metrics
     * module is still computing the derived rows on another thread: the output writes its raw
     * rows meanwhile and takes the derived ones with bp_batch_derived (metrics/derive_job.h),
     * still in the batch's transaction. */
    struct bp_derived_job *derived_job;
    /* The memory budget (--max-memory, core/budget.h) of the pipeline writing the batch, NULL:
     * nothing counted. An output whose buffers may grow past its fixed part of the budget
     * (charged at start: docs/ARCHITECTURE.md "Memory bounds") charges what they hold beyond it
     * while it writes, and has refunded it all when write() returns (what it keeps between
     * writes stays within the fixed part). */
    struct bp_budget *budget;
    /* The pipeline is behind the chain's head (a backfill, a catch-up: the batch was full and
     * blocks up to the head are left) and hands over the chain's next batch as soon as it is
     * built. An output may then keep the batch's transaction open for later batches and commit
     * them together (Kafka: sink/kafka.c; SQLite, PostgreSQL: docs/ARCHITECTURE.md "Groups"),
     * if it keeps to this: what write() accepted is committed by a later write, flush() or
     * close(), written again by the output itself when that transaction fails (the pipeline
     * counts it written: its stats and the other outputs have it), or else never - its
     * checkpoint op then reads the older checkpoint, and dropping what was not committed is
     * where a set-aside output or a restart resumes. An output that cannot write it again (the
     * SQL outputs: the blocks are freed) fails that write with an error that is not transient,
     * sets bp_sink.rewind and refuses every later write until its checkpoint op is called: the
     * pipeline sets it aside and takes it back at that checkpoint. A crash between writes loses the
     * open transaction whole, the checkpoint with it. false at the head, with the API's push on,
     * and at the pipeline's bounds of a group (core/outputs.h): one transaction per batch, or the
     * group's end, committed before write() returns. */
    bool more;
    /* The batch takes the pipeline to its target (the chain's head less the confirmations, or
     * a backfill's last block): nothing is left to fetch when it is handed over. What an output
     * leaves undone through a backfill (PostgreSQL: token_transfers' lookup index) it may do
     * after such a batch. */
    bool head;
} bp_batch;

typedef struct bp_sink bp_sink;

/* How long an output may hold batches open (bp_sink.holds_open) with nothing new to write. */
#define BP_OPEN_BATCHES_MS 500

enum bp_sink_option_type {
    BP_SINK_OPT_STRING = 1, /* any non-empty text */
    BP_SINK_OPT_INT,        /* a whole number from min to max */
    BP_SINK_OPT_ENUM,       /* one of choices ("auto|staging") */
    BP_SINK_OPT_BOOL,       /* on/off, true/false, 1/0, yes/no; read as "1" or "0" */
};

/* One option of a backend. Its value for an output comes from, strongest first: the output
 * URL's query parameter `name=value`, the flag, the environment variable, the config file key
 * (those three apply to every output of the backend), the default. Backends that share a
 * meaning share a flag (e.g. --wait-for-db). */
typedef struct bp_sink_option {
    const char *name; /* URL query parameter, e.g. "schema" */
    const char *flag; /* command-line flag without "--", e.g. "pg-schema"; NULL: URL only */
    const char *env;  /* environment variable, e.g. "PG_SCHEMA"; NULL: none */
    const char *key;  /* config file key, e.g. "pg_schema"; NULL: URL only. Flag, env and key
                         name one setting: all three are NULL or none is */
    enum bp_sink_option_type type;
    const char *arg;     /* placeholder for --help: NAME, S, N */
    const char *def;     /* default as text, NULL: unset */
    long long min, max;  /* BP_SINK_OPT_INT */
    const char *choices; /* BP_SINK_OPT_ENUM: "a|b|c" */
    const char *help;    /* one sentence, no trailing period */
} bp_sink_option;

#define BP_SINK_MAX_OPTIONS 16

/* The option values of one output, validated, one per entry of ops->options (NULL: unset and
 * no default). Built by the registry; valid during open() / migrate() only (copy what you
 * keep). */
typedef struct bp_sink_opts {
    const bp_sink_option *defs;
    size_t count;
    const char *scheme; /* the scheme the URL used: ops->scheme or one of its aliases */
    const char *values[BP_SINK_MAX_OPTIONS];
    /* The chains this process writes to the output, comma-separated in any order (NULL:
     * one, the chain its first checkpoint call names): what an output may derive a writer
     * identity from (Kafka's default transactional.id). */
    const char *chains;
} bp_sink_opts;

/* The value of option `name` (NULL when unset). name must be one of the backend's options. */
const char *bp_sink_opt(const bp_sink_opts *o, const char *name);
/* The value of an INT or BOOL option as a number (0 when unset). */
long long bp_sink_opt_int(const bp_sink_opts *o, const char *name);

/* Settings given for every output by flag, environment or config file: (key, value) pairs,
 * key being bp_sink_option.key. Owned by the caller. */
typedef struct bp_sink_setting {
    const char *key;
    const char *value;
} bp_sink_setting;

typedef struct bp_sink_settings {
    const bp_sink_setting *items;
    size_t count;
    const char *chains; /* bp_sink_opts.chains (NULL: one chain) */
} bp_sink_settings;

/* ---- reading an output back (the API) ----
 *
 * A backend that can be read (SQLite, PostgreSQL, ClickHouse) has open_reader / read /
 * close_reader: a read-only connection of its own, never the writer's, used by one thread at a time
 * (the API keeps one per worker thread). A query names a table and filters; the rows come back as
 * the table's columns in the column table's order (columns.h), each as text. */
typedef struct bp_sink_reader bp_sink_reader;

typedef struct bp_read_query {
    bp_table table;        /* BP_TABLE_BLOCKS, _TRANSACTIONS or _LOGS */
    const char *chain;     /* NULL: every chain */
    bool has_min, has_max; /* block number range, inclusive */
    uint64_t min, max;
    const char *hash;       /* blocks.hash or transactions.hash (0x-hex, lower case) */
    const char *block_hash; /* transactions / logs of that block */
    const char *tx_hash;    /* logs of that transaction */
    const char *address;    /* transactions: from_address or to_address; logs: address */
    const char *topic0;     /* logs */
    /* Keyset pagination: only rows strictly after (number, index) in the order asked for
     * (index: transaction_index, log_index; unused for blocks). */
    bool has_after;
    uint64_t after_number, after_index;
    bool ascending; /* default: newest first */
    bool any_order; /* no order at all: whichever rows come first (cheapest) */
    size_t limit;   /* 0: no limit */
    /* A derived table (blockpipe/derived.h) in place of table: dtable is its bp_dtable + 1
     * (0: table is read). The rows are the shape's columns in order; chain filters origin_key,
     * the range filters window_start on the window tables and block_number on the others, tx_hash
     * ml_predictions.transaction_hash; ordered by window_start (block_number, index) as asked,
     * or with by_txcount by txcount (most first). hash, block_hash, address, topic0 and the
     * cursor are refused. */
    int dtable;
    bool by_txcount;
    /* An Arch Network table (--chain-type arch; src/arch/arch_tables.h) in place of table: arch
     * is its enum bp_arch_table + 1 (0: table is read). The rows are its columns in order,
     * hashes and keys as 64 lower-case hex digits without 0x (as the Arch node spells them).
     * The range filters height (arch_blocks) or block_height; hash is arch_blocks.hash or
     * arch_transactions.txid; block_hash arch_transactions.block_hash; tx_hash
     * arch_account_updates.txid; address arch_account_updates.account; topic
     * arch_events.topic; rolled_back 1: only rolled-back transactions, 2: only the others.
     * Rows are ordered by (height, tx_index, account), events by (received_at, key); the
     * cursor is after_number / after_index / after_key in that order (events: after_key is
     * the key, after_real the received_at text). */
    int arch;
    const char *topic;
    int rolled_back;
    const char *after_key, *after_real;
} bp_read_query;

/* One cell: the text of the value (NULL for SQL null) - integers and 256-bit amounts in
 * decimal, hashes / addresses / bytes as lower-case 0x-hex, JSON columns as JSON text. */
typedef struct bp_read_cell {
    const char *s;
    size_t len;
} bp_read_cell;

/* Called for each row with the table's n columns; a non-zero return stops the read and is
 * returned by read(). */
typedef int (*bp_read_row_fn)(void *ctx, const bp_read_cell *cells, size_t n);

typedef struct bp_sink_ops {
    const char *scheme;            /* URL scheme, e.g. "sqlite" */
    const char *const *aliases;    /* other schemes of the same backend, NULL-terminated, or
                                      NULL (e.g. "postgresql") */
    const char *title;             /* for --help and messages: "PostgreSQL" */
    const char *usage;             /* URL form, e.g. "postgres://user:pass@host:port/db" */
    const char *description;       /* one line for --help */
    const bp_sink_option *options; /* the backend's own options, or NULL */
    size_t option_count;           /* at most BP_SINK_MAX_OPTIONS */
    /* Non-NULL: the backend was left out of this build; says what was missing ("libpq (Debian
     * package libpq-dev)"). Every other member but the names may then be NULL. */
    const char *missing;
    /* target: the URL with "scheme:" or "scheme://" and the backend's own query parameters
     * removed (a path for file outputs). opts: the values of the backend's options (NULL for a
     * backend without options). */
    int (*open)(bp_sink **out, const char *target, const bp_sink_opts *opts, bp_error *err);
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
    /* Optional (both or neither): chain's writer lock in the output, held by this handle
     * until unclaim or close, so that two processes never write one chain there
     * (docs/ARCHITECTURE.md "Chains over several hosts"). claim never waits: 0 when held
     * (taken now or already), BP_EBUSY when another holds it, with who it is as far as the
     * output can tell in holder (cap bytes), another code on failure. The pipeline claims
     * before it reads the chain's checkpoint; a backend whose connection drops takes its
     * locks again and fails the writes of a chain whose lock another took meanwhile
     * with BP_ELOCKLOST (before writing anything of the batch): the pipeline then waits for
     * the lock again. */
    int (*claim)(bp_sink *s, const char *chain, char *holder, size_t cap, bp_error *err);
    void (*unclaim)(bp_sink *s, const char *chain);
    /* Optional: create or upgrade the backend's schema without writing anything (`blockpipe
     * migrate`); a one-line report of what it did goes into report. */
    int (*migrate)(const char *target, const bp_sink_opts *opts, char *report, size_t cap,
                   bp_error *err);
    /* Optional (all three or none): reading back, see bp_read_query. open_reader gets the
     * target and options open() gets; it must not create or change anything. */
    int (*open_reader)(bp_sink_reader **out, const char *target, const bp_sink_opts *opts,
                       bp_error *err);
    int (*read)(bp_sink_reader *r, const bp_read_query *q, bp_read_row_fn fn, void *ctx,
                bp_error *err);
    void (*close_reader)(bp_sink_reader *r);
    /* Optional, with claim (last, so that the members before it keep their offsets), for a
     * lock that can be lost (a server's session or lease): asks the output whether this handle
     * still holds chain's lock (a round trip): 0 when it does or the chain was never claimed,
     * BP_ELOCKLOST when another took it or may have, another code when it cannot tell now (a
     * transient one is asked again). The pipeline asks every such output at the start of each batch
     * but the first written (whose own write checks, inside its commit), so that a lost lock stops
     * the batch before any output of it is written, whatever the outputs' order. */
    int (*check)(bp_sink *s, const char *chain, bp_error *err);
} bp_sink_ops;

/* Every backend's reader embeds this first. */
struct bp_sink_reader {
    const bp_sink_ops *ops;
};

/* Every backend's handle embeds this first. */
struct bp_sink {
    const bp_sink_ops *ops;
    char *url;    /* as given by the user but without credentials, for messages; owned by the
                     registry code */
    bool derived; /* set by open(): this output writes the derived tables (bp_batch.derived) */
    /* set by open() with derived: the groups of derived tables it writes (blockpipe/derived.h
     * BP_DG_BIT; its derived= option); 0: all of them (the stream outputs' metrics entity).
     * The metrics module computes what some output wants (the union). */
    unsigned derived_groups;
    /* set by open(): it can take them late (bp_batch.derived_job), after its raw rows */
    bool derived_late;
    /* set by open(): bit (1 << f) for each enum bp_family other than EVM whose blocks it
     * stores (BP_FAMILY_ARCH: the arch_* tables); a pipeline of such a family refuses an
     * output without its bit */
    unsigned families;
    /* set by open() (may stay NULL): why it does not take the other families, for the
     * pipeline's refusal, e.g. "etl-csv is ethereum-etl's EVM format" */
    const char *families_why;
    /* The most the output charged to bp_batch.budget during one write so far (0: it never
     * needed more than its fixed part); kept by the backend, reported when the run ends. */
    size_t memory_peak;
    /* Kept by the backend: write() left batches in an open transaction (bp_batch.more) that
     * a later write or flush() commits. The writer thread flushes such an output when no
     * batch came for BP_OPEN_BATCHES_MS: a transaction must not stay open while the pipeline
     * waits on a slow node (the broker would abort it). */
    bool holds_open;
    /* Set by write() or flush() that failed with batches this output held open rolled back
     * (it cannot write them again): the pipeline sets the output aside at once, whatever
     * --output-failure says, and takes it back at the checkpoint its checkpoint op reads then,
     * as a restart would (core/outputs.c); that op clears it. */
    bool rewind;
    /* Set by open(): write() and check() try a transient failure again themselves, for as long
     * as the output's own bound allows (PostgreSQL: a lost connection is reconnected within
     * --wait-for-db of the loss, one deadline for the outage), so the pipeline does not try
     * them again on top (that would multiply the bound: core/outputs.c). */
    bool retries_own;
    /* Set by the pipeline (may stay NULL): the backend calls it each time it waits to try
     * again what failed (a lost connection, a try to reconnect that failed), with why, from
     * the thread that called it; the status endpoints show the output as retrying with that
     * error until the call ends. */
    void (*on_retry)(void *ctx, const bp_sink *s, const bp_error *why);
    void *on_retry_ctx;
};

/* Opens an output from its URL (sqlite:PATH, sqlite://PATH, etl-csv:DIR, postgres://...),
 * with the backend options of settings (may be NULL) for what the URL does not set.
 * BP_EINVAL with the list of known schemes when the scheme is unknown, naming the missing
 * library when the backend was left out of this build, or naming the bad option value. */
int bp_sink_open(const char *url, const bp_sink_settings *settings, bp_sink **out, bp_error *err);
/* bp_sink_open without settings. */
int bp_sink_open_url(const char *url, bp_sink **out, bp_error *err);
/* Creates or upgrades the schema of the output at url (its backend's migrate op). BP_EINVAL
 * when the backend has nothing to migrate. */
int bp_sink_migrate(const char *url, const bp_sink_settings *settings, char *report, size_t cap,
                    bp_error *err);
void bp_sink_close(bp_sink *s);
/* Opens a reader of the output at url (see bp_read_query). BP_EINVAL naming the backend when
 * it cannot be read back. */
int bp_sink_reader_open(const char *url, const bp_sink_settings *settings, bp_sink_reader **out,
                        bp_error *err);
int bp_sink_read(bp_sink_reader *r, const bp_read_query *q, bp_read_row_fn fn, void *ctx,
                 bp_error *err);
void bp_sink_reader_close(bp_sink_reader *r);
/* The backends, NULL-terminated (for --help), the ones left out of this build included. */
const bp_sink_ops *const *bp_sink_backends(void);
/* The backend of url's scheme (or alias), NULL when none. */
const bp_sink_ops *bp_sink_find(const char *url);
/* Checks value against the option's type and range: BP_EINVAL "WHO: 'VALUE' is not valid:
 * expected ..." otherwise. For a BOOL, *canon (may be NULL) gets "1" or "0". */
int bp_sink_option_check(const bp_sink_option *o, const char *value, const char *who,
                         const char **canon, bp_error *err);

#endif
