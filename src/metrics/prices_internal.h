/* prices_internal.h - the price store's state, shared by prices.c (store, file) and
 * prices_fetch.c (the CoinGecko fetcher) only. */
#ifndef BP_METRICS_PRICES_INTERNAL_H
#define BP_METRICS_PRICES_INTERNAL_H

#include <pthread.h>

#include "metrics/prices.h"

typedef struct bp_price_point {
    uint64_t ts;
    double usd;
    const char *source; /* "file" or "coingecko" (static strings) */
} bp_price_point;

/* A span of history asked for: done (answered, or refused for good) or retry_at (unix
 * seconds) after a transient failure. */
typedef struct bp_price_span {
    uint64_t lo, hi;
    bool done;
    uint64_t retry_at;
} bp_price_span;

struct bp_prices {
    pthread_mutex_t lock;
    pthread_cond_t cv;    /* the fetcher thread's sleep; signalled to stop it */
    bp_prices_config cfg; /* strings owned */
    bp_price_point *pts;  /* sorted by ts, one per ts */
    size_t n, cap;
    bp_price_point *fresh; /* learnt, not handed to the outputs yet */
    size_t nfresh, capfresh;
    bp_price_span *spans;
    size_t nspans, capspans;
    pthread_t thread;
    bool running, stopping;
};

/* Adds or changes a point (a changed or new one is also queued as fresh). BP_ENOMEM. */
int bp_prices_add_locked(bp_prices *p, uint64_t ts, double usd, const char *source);
int bp_prices_add(bp_prices *p, uint64_t ts, double usd, const char *source);
/* Ends the fetcher thread if it runs. */
void bp_prices_stop(bp_prices *p);

#endif
