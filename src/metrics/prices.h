/* prices.h - USD prices of a chain's native token (one store per symbol in use): a store of
 * (timestamp, usd) points fed by a file (--prices: CSV or JSON lines of timestamp, symbol, usd) and
 * by a fetcher that speaks CoinGecko's HTTP API (current price every interval on its own thread;
 * history over the range endpoint when a batch holds blocks no point covers). Each chain's metrics
 * module (a reader of the store) hands the points learnt since its previous batch to the outputs,
 * which store them in their `prices` table and price their blocks from that table: a block's USD
 * price is the latest point at or before its timestamp and at most max_age older, else none (NULL;
 * no invented fallback).
 *
 * Threading: every function may be called from any thread (one lock). */
#ifndef BP_METRICS_PRICES_H
#define BP_METRICS_PRICES_H

#include <stdbool.h>
#include <stdint.h>

#include "blockpipe/derived.h"
#include "blockpipe/error.h"

struct bp_arena;

typedef struct bp_prices_config {
    const char *symbol;  /* "ETH": the rows of the file that count, the prices table's symbol */
    const char *file;    /* NULL: none */
    const char *url;     /* CoinGecko-shaped API base (".../api/v3"); NULL: no fetcher */
    const char *coin_id; /* CoinGecko's id of the token; NULL: from the symbol (ETH: ethereum) */
    const char *api_key; /* COINGECKO_API_KEY; NULL: none */
    double interval;     /* seconds between current-price requests */
    uint64_t max_age;    /* seconds */
    double timeout;      /* seconds per HTTP request */
} bp_prices_config;

typedef struct bp_prices bp_prices;

/* Loads the file (BP_EINVAL naming the file, line and value when it does not parse). The
 * fetcher is not started yet. */
bp_prices *bp_prices_new(const bp_prices_config *cfg, bp_error *err);
/* The store of another symbol's prices, made on first use with p's file, URL and key (its
 * own rows of the file; coin_id NULL: from the symbol), owned and freed by p; p itself when
 * symbol is p's. Its current price comes with p's in one /simple/price request (ids=a,b),
 * its history from the range endpoint of its own id. NULL and err (BP_EINVAL: no CoinGecko
 * id known for the symbol, or its file rows do not parse; BP_ENOMEM). */
bp_prices *bp_prices_for(bp_prices *p, const char *symbol, const char *coin_id, bp_error *err);
/* Starts the current-price thread (when a URL is set). */
int bp_prices_start(bp_prices *p, bp_error *err);
/* Stops the thread and frees everything. NULL is fine. */
void bp_prices_free(bp_prices *p);

/* With a fetcher: makes sure [lo, hi] is covered, asking the range endpoint for what is not
 * (once per uncovered span; rate limits waited for up to a bound). A span not answered (the
 * source failed, or the span was newer than the answer) is kept and asked again by a later
 * call once the source answers, so USD left NULL by an outage is filled in. Blocks the caller
 * (one caller asks at a time; another chain's writer waits for its answer, which may hold the
 * points it needs). */
void bp_prices_cover(bp_prices *p, uint64_t lo, uint64_t hi);
/* A reader of the store (one per chain's metrics module): its id (>= 0), or -1 out of
 * memory. Its first take_new hands every point. */
int bp_prices_join(bp_prices *p);
void bp_prices_leave(bp_prices *p, int reader);
/* The points this reader was not handed yet, as rows in arena, one per timestamp (its value
 * now: points changed twice in between come once). 0 or BP_ENOMEM. */
int bp_prices_take_new(bp_prices *p, int reader, struct bp_arena *a, bp_price_row **rows,
                       size_t *n);
/* Every point is handed again to this reader by its next take_new: an output that was set
 * aside missed the ones handed meanwhile, and prices its blocks from its own table. */
void bp_prices_resend(bp_prices *p, int reader);
/* The price at ts under the max-age rule: true and *usd, or false. */
bool bp_prices_at(bp_prices *p, uint64_t ts, double *usd);
/* Points added so far (stats, tests). */
size_t bp_prices_count(bp_prices *p);

/* Parses one timestamp: unix seconds, unix milliseconds (13 digits and more), or ISO 8601 UTC
 * "YYYY-MM-DD[T ]HH:MM[:SS][Z]". */
int bp_prices_parse_time(const char *s, uint64_t *out);

#endif
