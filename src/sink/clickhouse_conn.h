/* clickhouse_conn.h - the clickhouse output's target (URL and options), connecting with backoff,
 * what the server can do, and the versioned schema (for the output and `blockpipe migrate`).
 *
 * URL: clickhouse://[user:pass@]host[:port][/db][?option=value&setting=value...] (also ch://).
 * The path names the database (else the database option, --clickhouse-db, default gtp); the
 * options (clickhouse.c declares them) are taken out of the URL by the registry; every other
 * parameter is a ClickHouse setting sent with every request (e.g. max_insert_threads=4). */
#ifndef BP_SINK_CLICKHOUSE_CONN_H
#define BP_SINK_CLICKHOUSE_CONN_H

#include <stdbool.h>

#include "blockpipe/derived.h"
#include "blockpipe/sink.h"
#include "sink/clickhouse_http.h"
#include "sink/clickhouse_table.h"

#define BP_CH_DEFAULT_DATABASE "gtp"
#define BP_CH_DEFAULT_WAIT 30
/* ttl_slack's default (s): the downtime (or pause of one chain) the TTLs tolerate */
#define BP_CH_TTL_SLACK 604800
#define BP_CH_OUTPUT "clickhouse" /* checkpoints.output of this output */
/* The newest schema version this program knows (schema_migrations.version). */
#define BP_CH_SCHEMA_VERSION 6

typedef struct bp_ch_target {
    bp_ch_server srv;
    char *database;
    char *where; /* "host:port/db" for messages (never the password) */
    int wait_for_db;
    long timeout_ms;
    enum bp_ch_format format;
    bool gzip;
    bool tables[BP_TABLE_COUNT]; /* which raw tables are written */
    bool metrics;                /* the derived tables are written (the metrics option) */
    unsigned groups;             /* which of them (derived.h BP_DG_BIT: derived=; 0: off) */
    bp_retention ret;   /* their retention (partition drops; TTL where the server has it) */
    bool ttl;           /* the ttl option: TTLs where the server has them */
    uint64_t ttl_slack; /* ttl_slack: how long a row lives at least after it was written (s) */
} bp_ch_target;

/* From target (the URL without "clickhouse://" and our options) and the option values (NULL:
 * the defaults). BP_EINVAL naming a bad URL, database or table name. */
int bp_ch_target_init(bp_ch_target *t, const char *target, const bp_sink_opts *opts, bp_error *err);
void bp_ch_target_release(bp_ch_target *t);

/* Connects to the server (retrying with backoff for up to wait_for_db seconds while it is
 * unreachable or starting; a refusal such as a wrong password fails at once) and finds out what
 * it can do. *out uses the target's database (which may not exist yet: bp_ch_migrate creates
 * it). */
int bp_ch_connect(const bp_ch_target *t, bp_ch_http **out, bp_ch_caps *caps, bp_error *err);

/* Creates the database and brings its schema to BP_CH_SCHEMA_VERSION (every step is
 * idempotent: two processes may migrate at once, a crash mid-way is finished by the next
 * run); refuses a schema newer than this program. *from / *to (may be NULL) get the versions
 * before and after. */
int bp_ch_migrate(bp_ch_http *h, const bp_ch_target *t, const bp_ch_caps *caps, int *from, int *to,
                  bp_error *err);

/* Replaces the column types of tables[0..n) by the server's (system.columns): rows are encoded
 * for the tables as they are. BP_EDB naming a missing table or column or a type we cannot
 * write. */
int bp_ch_load_types(bp_ch_http *h, const char *database, bp_ch_table *tables, size_t n,
                     bp_error *err);

/* Sleeps *delay_ms, then doubles it (up to 4 s): the wait between attempts while the server is
 * unreachable. The first delay is BP_CH_BACKOFF_FIRST_MS. */
#define BP_CH_BACKOFF_FIRST_MS 250
void bp_ch_backoff(long *delay_ms);

/* A transient failure (transport, timeout, an HTTP error of a proxy, a retryable exception):
 * worth another attempt once the server is back. */
bool bp_ch_transient(bp_ch_http *h, int rc);

#endif
