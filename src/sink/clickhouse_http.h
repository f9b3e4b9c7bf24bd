/* clickhouse_http.h - ClickHouse's HTTP interface over libcurl, for the clickhouse output and
 * anything else that reads from or writes to ClickHouse (the contract test's reader, an HTTP
 * API): where a server is (parsed from an output URL), one statement per request on a kept-alive
 * connection, INSERTs whose data is sent from pieces, error mapping, TSV answers.
 *
 * Credentials go to the server as HTTP basic auth and never into a message: messages name the
 * server as "host:port". Every failure is a bp_error:
 *   BP_ETRANSPORT / BP_ETIMEOUT  the server could not be reached or did not answer in time
 *   BP_EHTTP                     an HTTP error that is not a ClickHouse exception (a proxy's 502)
 *   BP_EDB                       the server refused the statement; bp_ch_http_exception() gives
 *                                its exception code (bp_ch_retryable says whether another
 *                                attempt may succeed)
 * Only libcurl is needed (no zlib): a caller that compresses its data says so (gzip). */
#ifndef BP_SINK_CLICKHOUSE_HTTP_H
#define BP_SINK_CLICKHOUSE_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "blockpipe/error.h"
#include "util/buf.h"

/* A server and how to log in, from an output URL's target "[user[:pass]@]host[:port][/db][?..]"
 * (the scheme already removed). Strings owned (bp_ch_server_release). */
typedef struct bp_ch_server {
    char *base;     /* "http://[user:pass@]host:port/" (https with tls): curl sends the
                       credentials as basic auth; never shown */
    char *where;    /* "host:port" for messages */
    char *database; /* the URL's path, NULL when it has none */
    char *settings; /* the URL's query parameters, "&name=value..." (ClickHouse settings sent
                       with every request), "" when none */
} bp_ch_server;

#define BP_CH_DEFAULT_PORT 8123
#define BP_CH_DEFAULT_TLS_PORT 8443

/* BP_EINVAL naming what is wrong (no host, a bad port, a path with more than one name, a
 * parameter that is not name=value). */
int bp_ch_server_parse(bp_ch_server *s, const char *target, bool tls, bp_error *err);
void bp_ch_server_release(bp_ch_server *s);

typedef struct bp_ch_http bp_ch_http;

/* A connection to srv (copied) using database (NULL: none, e.g. for CREATE DATABASE; may be
 * changed with bp_ch_http_use). timeout_ms bounds one request; max_answer caps an answer body
 * (0: 256 MiB). Nothing is sent yet. */
int bp_ch_http_new(bp_ch_http **out, const bp_ch_server *srv, const char *database, long timeout_ms,
                   size_t max_answer, bp_error *err);
void bp_ch_http_free(bp_ch_http *h);
int bp_ch_http_use(bp_ch_http *h, const char *database, bp_error *err);
/* Every request from now on carries query_id=<prefix><n> (n counts up), so the server's
 * system.processes tells this connection's queries from others'; NULL: none. */
int bp_ch_http_tag(bp_ch_http *h, const char *prefix, bp_error *err);
/* The query_id the next request will carry ("" when untagged). */
const char *bp_ch_http_next_id(bp_ch_http *h);
/* "host:port" */
const char *bp_ch_http_where(const bp_ch_http *h);
/* The exception code of the last BP_EDB failure, 0 when the last failure was not the server's
 * refusal (or there was none). */
int bp_ch_http_exception(const bp_ch_http *h);

/* Runs one statement (the server buffers the whole answer, so a failure is never half an
 * answer). out (may be NULL) receives the answer: TabSeparated unless the SQL names a FORMAT.
 * Failures are "what: message". */
int bp_ch_query(bp_ch_http *h, const char *sql, bp_buf *out, const char *what, bp_error *err);
/* bp_ch_query with settings of this statement alone ("name=value[&...]", URL-encoded; NULL:
 * none) before the URL's own: for what a statement cannot say in a SETTINGS clause (an ALTER). */
int bp_ch_query_set(bp_ch_http *h, const char *set, const char *sql, bp_buf *out, const char *what,
                    bp_error *err);

/* Runs one statement like bp_ch_query, its TabSeparated answer handed to row one row at a time
 * as it arrives (at most cells cells, at most BP_CH_ROW_CELLS, made as bp_ch_tsv_row makes them and
 * valid during the call) instead of held whole: what is held is curl's piece and the row it ends
 * in. A nonzero return of row stops the answer and is returned. A failure after some rows were
 * handed over (a connection lost mid-answer) leaves them handed over: the caller drops what it
 * made of them. */
#define BP_CH_ROW_CELLS 32
typedef int (*bp_ch_row_fn)(void *ctx, char **cells, int n);
int bp_ch_query_rows(bp_ch_http *h, const char *sql, int cells, bp_ch_row_fn row, void *ctx,
                     const char *what, bp_error *err);

/* One piece of an INSERT's data; the pieces are sent in order as one body. */
typedef struct bp_ch_piece {
    const void *data;
    size_t len;
} bp_ch_piece;

/* Runs insert (e.g. "INSERT INTO t(a, b) FORMAT RowBinary", sent in the URL) with the data
 * pieces[0..n) as its body; gzip: the pieces are a gzip stream (Content-Encoding: gzip). */
int bp_ch_insert(bp_ch_http *h, const char *insert, const bp_ch_piece *pieces, size_t n, bool gzip,
                 const char *what, bp_error *err);

/* A streamed INSERT's producer: the next pieces of the body into *pieces[0..*n) (its memory,
 * valid until the next call), *n = 0 at the end. A nonzero return (with err set) ends the
 * request as a failure: returned by bp_ch_insert_stream with the producer's message. */
typedef int (*bp_ch_produce_fn)(void *ctx, const bp_ch_piece **pieces, size_t *n, bp_error *err);

/* Runs insert with a body that produce makes while it is sent (HTTP chunked: the server parses
 * one part while the next is made, and the caller holds one part at a time). A failed producer
 * ends the body with one byte more than the parts it made (a block or row begun, never ended)
 * and cuts the connection, so that the server fails the INSERT rather than take the parts for
 * the whole body. A lost connection may still leave on the server the rows of the parts it got
 * whole: the caller takes them back as it does after any failed INSERT. */
int bp_ch_insert_stream(bp_ch_http *h, const char *insert, bp_ch_produce_fn produce, void *ctx,
                        bool gzip, const char *what, bp_error *err);

/* True for the server exceptions that another attempt may not meet: too many parts or
 * simultaneous queries, timeouts, network errors between servers, memory limits, queries
 * cancelled and tables or databases missing while the server shuts down. */
bool bp_ch_retryable(int exception_code);

/* Appends s as a ClickHouse string literal ('...', with \ and ' escaped). */
int bp_ch_quote(bp_buf *out, const char *s);
/* Appends s as a ClickHouse identifier (`...`, with ` and \ escaped). */
int bp_ch_ident(bp_buf *out, const char *s);

/* The next row of a TabSeparated answer: splits the line at *p in place into at most max
 * cells, unescaping them; \N becomes NULL. Returns the number of cells (0 at the end) and
 * advances *p. */
int bp_ch_tsv_row(char **p, char **cells, int max);

#endif
