/* prices_internal.h - the price store's state, shared by prices.c (store, file) and
 * prices_fetch.c (the CoinGecko fetcher) only. */
#ifndef BP_METRICS_PRICES_INTERNAL_H
#define BP_METRICS_PRICES_INTERNAL_H

#include <pthread.h>

#include "metrics/prices.h"
#include "util/buf.h"

typedef struct bp_price_point {
    uint64_t ts;
    double usd;
    const char *source; /* "file" or "coingecko" (static strings) */
} bp_price_point;

/* A span of time: of history answered (or refused for good), or wanted and not answered yet. */
typedef struct bp_price_span {
    uint64_t lo, hi;
} bp_price_span;

/* One chain's metrics module's view of the store: the points learnt since it last took them.
 * Each has its own, so that every chain stores and reprices with every point. */
typedef struct bp_price_reader {
    bp_price_point *fresh;
    size_t n, cap;
    bool all;  /* hand every point at the next take (joined, set aside, or fell far behind) */
    bool used; /* a slot of a reader that left is reused */
} bp_price_reader;

struct bp_prices {
    pthread_mutex_t lock;
    pthread_cond_t cv;    /* the fetcher thread's sleep; signalled to stop it */
    bp_prices_config cfg; /* strings owned */
    bp_price_point *pts;  /* sorted by ts, one per ts */
    size_t n, cap;
    bp_price_reader *readers;
    size_t nreaders, capreaders;
    bp_price_span *spans; /* history answered: a point in them is known if it exists */
    size_t nspans, capspans;
    bp_price_span *wanted; /* history not answered yet (failed, or asked before it existed) */
    size_t nwanted, capwanted;
    uint64_t next_ask;    /* unix seconds: no history request before (after a failure) */
    double last_ask;      /* CLOCK_MONOTONIC seconds of the last history request (spacing) */
    bool told_refused;    /* a refusal of history was logged as a warning (the others: info) */
    bool told_sparse;     /* an answer too sparse for max_age was logged */
    bool asking;          /* a writer is asking the range endpoint */
    pthread_cond_t asked; /* signalled when it is done: the others wait for its points */
    pthread_t thread;
    bool running, stopping;
    /* The stores of the other symbols in use (chains with another native token), owned by
     * the first store: its fetcher thread asks /simple/price for every one in one request.
     * Appended under the first store's lock, never removed before bp_prices_free. */
    bp_prices *next;
};

/* Adds or changes a point (a changed or new one is also queued for every reader). BP_ENOMEM. */
int bp_prices_add_locked(bp_prices *p, uint64_t ts, double usd, const char *source);
int bp_prices_add(bp_prices *p, uint64_t ts, double usd, const char *source);
/* bp_prices_at under the lock. */
bool bp_prices_at_locked(const bp_prices *p, uint64_t ts, double *usd);
/* Ends the fetcher thread if it runs. */
void bp_prices_stop(bp_prices *p);

/* What the fetcher makes of CoinGecko's answers (status, body as curl left it: NUL-terminated
 * or data NULL when empty), apart from the requests so that tests and fuzz targets can feed
 * them. A /simple/price answer: every store's current point (p first); the first store not
 * answered is the error, the others' are logged. A market_chart/range answer: its points
 * into p (*added of them, *newest the newest one's time, *gap the widest gap between two).
 * A status that is not 2xx: an error naming it and CoinGecko's words. */
int bp_prices_take_current(bp_prices *p, long status, const bp_buf *body, bp_error *err);
int bp_prices_take_range(bp_prices *p, long status, const bp_buf *body, size_t *added,
                         uint64_t *newest, uint64_t *gap, bp_error *err);

#endif
