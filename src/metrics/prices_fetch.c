/* prices_fetch.c - the CoinGecko-shaped price fetcher (prices.h): /simple/price on an interval
 * on its own thread (every symbol's store in one request), /coins/{id}/market_chart/range for
 * history a batch needs. A 429 waits Retry-After (seconds; 10 s when absent; history of the head's
 * blocks is asked again later instead); the API key goes in CoinGecko's header (x-cg-pro-api-key
 * for a pro-api host, else x-cg-demo-api-key), never in the URL. History is asked in chunks
 * whose points are dense enough for --price-max-age (chunk_end), spaced HISTORY_GAP apart. */
#include "metrics/keymap.h"
#include "metrics/prices_internal.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chain/json.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/url.h"

#define BODY_MAX (16u << 20)
/* CoinGecko picks a range's granularity by its length: a day from now gets 5-minute points,
 * up to 90 days hourly ones, longer ranges daily ones (00:00 UTC). A request never spans more
 * than the points --price-max-age needs allow (chunk_end). */
#define DAY 86400u
#define HOURLY_MAX (90u * DAY)
#define DAILY_CHUNK (365u * DAY)
#define DEMO_REACH (365u * DAY) /* the demo/public plan serves this much history, no more */
#define HISTORY_GAP 2.0         /* seconds at least between history requests (~30 a minute) */
#define ASKS_PER_COVER 8        /* history requests one batch makes at most (more: later) */
#define RETRY_LATER 30          /* seconds at most before history not answered is asked again */
#define FINAL_AFTER 86400       /* a span that ended this long before it was asked is final */
#define WANTED_MAX 64           /* spans wanted kept apart (more: the closest two are merged) */
#define RATE_WAIT_MAX 60        /* seconds a history request waits out 429s */
#define RATE_WAIT_DEFAULT 10
#define TIME_END 18446744073709551616.0 /* 2^64 s: a time from here on fits no uint64_t */

typedef struct answer {
    long status;
    long retry_after; /* seconds, 0: none */
    bp_buf body;
} answer;

static size_t on_write(char *ptr, size_t size, size_t n, void *ud)
{
    answer *a = ud;
    return bp_buf_append(&a->body, ptr, size * n) == 0 ? size * n : 0;
}

static uint64_t now_s(void)
{
    return (uint64_t)time(NULL);
}

/* One GET. 0 with a->status set (any HTTP status), or BP_ETRANSPORT naming the URL. */
static int get(bp_prices *p, const char *url, answer *a, bp_error *err)
{
    char shown[512], hdr[300];
    bp_url_redact(url, shown, sizeof(shown));
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
    if (p->cfg.api_key) {
        snprintf(hdr, sizeof(hdr), "%s: %s",
                 strstr(p->cfg.url, "pro-api") ? "x-cg-pro-api-key" : "x-cg-demo-api-key",
                 p->cfg.api_key);
        h = curl_slist_append(h, hdr);
    }
    if (!c || !h) {
        curl_easy_cleanup(c);
        curl_slist_free_all(h);
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    bp_buf_reset(&a->body);
    long ms = (long)(p->cfg.timeout > 0 ? p->cfg.timeout * 1000 : 30000);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "blockpipe/" BP_VERSION);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
    CURLcode rc = curl_easy_perform(c);
    curl_off_t ra = 0;
    a->status = 0;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
        curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &ra);
    }
    a->retry_after = (long)ra;
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    if (rc != CURLE_OK)
        return bp_error_set(err, BP_ETRANSPORT, "prices %s: %s", shown, curl_easy_strerror(rc));
    return 0;
}

/* A non-2xx answer as an error naming the status and what CoinGecko said: its error_message
 * ({"status": {...}}, or {"error": {"status": {...}}} as its plan limits answer), else the
 * body's beginning. */
static int http_error(const char *what, const answer *a, bp_error *err)
{
    int code = a->status == 429 || a->status >= 500 ? BP_ETRANSPORT : BP_EINVAL;
    yajl_val root = a->body.data ? bp_json_parse(a->body.data, a->body.len, NULL, 0) : NULL;
    const char *p1[] = {"status", "error_message", NULL};
    const char *p2[] = {"error", "status", "error_message", NULL};
    yajl_val m = root ? yajl_tree_get(root, p1, yajl_t_string) : NULL;
    m = m || !root ? m : yajl_tree_get(root, p2, yajl_t_string);
    const char *words = m ? YAJL_GET_STRING(m) : a->body.data ? a->body.data : "";
    int rc = bp_error_set(err, code, "prices: %s: HTTP %ld: %.300s", what, a->status, words);
    bp_json_free(root);
    return rc;
}

static double number_of(yajl_val v, bool *ok)
{
    *ok = v && YAJL_IS_NUMBER(v) && (v->u.number.flags & YAJL_NUMBER_DOUBLE_VALID);
    return *ok ? v->u.number.d : 0;
}

/* The store after s among p's (p first), or NULL. */
static bp_prices *next_store(bp_prices *p, bp_prices *s)
{
    pthread_mutex_lock(&p->lock);
    bp_prices *n = s->next;
    pthread_mutex_unlock(&p->lock);
    return n;
}

/* {"<id>": {"usd": X, "last_updated_at": T}, ...}: s's point from it. */
static int parse_current(bp_prices *s, yajl_val root, const answer *a, bp_error *err)
{
    const char *usd_path[] = {s->cfg.coin_id, "usd", NULL};
    const char *ts_path[] = {s->cfg.coin_id, "last_updated_at", NULL};
    bool ok, ok_ts;
    double usd = number_of(root ? yajl_tree_get(root, usd_path, yajl_t_number) : NULL, &ok);
    double ts = number_of(root ? yajl_tree_get(root, ts_path, yajl_t_number) : NULL, &ok_ts);
    if (!ok || !(usd >= 0))
        return bp_error_set(err, BP_EPARSE, "prices: /simple/price: no %s.usd in %.200s",
                            s->cfg.coin_id, a->body.data ? a->body.data : "");
    /* a time past what a timestamp holds is none (converting it is undefined behaviour) */
    bool ts_fits = ok_ts && ts > 0 && ts < TIME_END;
    return bp_prices_add(s, ts_fits ? (uint64_t)ts : now_s(), usd, "coingecko");
}

/* {"prices": [[ms, usd], ...], ...}: *added points, *newest the newest one's time, *gap the
 * widest gap between two of them (in the order CoinGecko gives them: ascending). */
static int parse_range(bp_prices *p, const answer *a, size_t *added, uint64_t *newest,
                       uint64_t *gap, bp_error *err)
{
    yajl_val root = bp_json_parse(a->body.data, a->body.len, NULL, 0);
    const char *path[] = {"prices", NULL};
    yajl_val arr = root ? yajl_tree_get(root, path, yajl_t_array) : NULL;
    int rc = arr ? 0
                 : bp_error_set(err, BP_EPARSE, "prices: market_chart/range: no prices in %.200s",
                                a->body.data ? a->body.data : "");
    *added = 0;
    *gap = 0;
    uint64_t prev = 0;
    for (size_t i = 0; rc == 0 && i < arr->u.array.len; i++) {
        yajl_val pt = arr->u.array.values[i];
        bool ok_t = false, ok_u = false;
        double t = 0, u = 0;
        if (YAJL_IS_ARRAY(pt) && pt->u.array.len == 2) {
            t = number_of(pt->u.array.values[0], &ok_t);
            u = number_of(pt->u.array.values[1], &ok_u);
        }
        if (!ok_t || !ok_u || t < 0 || !(t / 1000 < TIME_END) || !(u >= 0)) {
            rc = bp_error_set(err, BP_EPARSE,
                              "prices: market_chart/range: point %zu is not "
                              "[milliseconds, usd]",
                              i);
            break;
        }
        uint64_t ts = (uint64_t)(t / 1000);
        rc = bp_prices_add(p, ts, u, "coingecko");
        *added += rc == 0;
        *gap = i > 0 && ts > prev && ts - prev > *gap ? ts - prev : *gap;
        prev = ts;
        *newest = ts > *newest ? ts : *newest;
    }
    bp_json_free(root);
    return rc;
}

/* ---- the current price, on its own thread ------------------------------------------------ */

/* The current price of every store's token (p first) in one request: ids=a,b,... */
static int fetch_current(bp_prices *p, answer *a, bp_error *err)
{
    bp_buf url;
    bp_buf_init(&url, 1u << 16);
    int rc = bp_buf_printf(&url, "%s/simple/price?ids=", p->cfg.url);
    for (bp_prices *s = p; rc == 0 && s; s = next_store(p, s))
        rc = bp_buf_printf(&url, "%s%s", s == p ? "" : ",", s->cfg.coin_id);
    rc = rc ? rc : bp_buf_printf(&url, "&vs_currencies=usd&include_last_updated_at=true");
    rc = rc ? bp_error_set(err, BP_ENOMEM, "out of memory") : get(p, url.data, a, err);
    bp_buf_release(&url);
    return rc ? rc : bp_prices_take_current(p, a->status, &a->body, err);
}

int bp_prices_take_current(bp_prices *p, long status, const bp_buf *body, bp_error *err)
{
    const answer ans = {.status = status, .body = *body}, *a = &ans;
    if (status < 200 || status > 299)
        return http_error("/simple/price", a, err);
    int rc = 0;
    yajl_val root = bp_json_parse(a->body.data, a->body.len, NULL, 0);
    /* a token CoinGecko did not answer leaves the others' prices stored */
    for (bp_prices *s = p; s; s = next_store(p, s)) {
        bp_error e = {0};
        int one = parse_current(s, root, a, &e);
        if (one != 0 && rc == 0) {
            rc = one;
            *err = e;
        } else if (one != 0) {
            bp_warn("%s", e.msg);
        }
    }
    bp_json_free(root);
    return rc;
}

/* Sleeps s seconds or until stopped: false when stopping. */
static bool nap(bp_prices *p, double s)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    long long ns = until.tv_nsec + (long long)(s * 1e9);
    until.tv_sec += (time_t)(ns / 1000000000LL);
    until.tv_nsec = (long)(ns % 1000000000LL);
    pthread_mutex_lock(&p->lock);
    while (!p->stopping && pthread_cond_timedwait(&p->cv, &p->lock, &until) != ETIMEDOUT) {
    }
    bool go_on = !p->stopping;
    pthread_mutex_unlock(&p->lock);
    return go_on;
}

static void *current_main(void *arg)
{
    bp_prices *p = arg;
    answer a = {0};
    bp_buf_init(&a.body, BODY_MAX);
    do {
        bp_error e = {0};
        double wait = p->cfg.interval;
        if (fetch_current(p, &a, &e) != 0) {
            bp_warn("%s", e.msg);
            if (a.status == 429)
                wait = a.retry_after > 0 ? (double)a.retry_after : RATE_WAIT_DEFAULT;
        }
        if (!nap(p, wait > 0.05 ? wait : 0.05))
            break;
    } while (1);
    bp_buf_release(&a.body);
    return NULL;
}

int bp_prices_start(bp_prices *p, bp_error *err)
{
    if (!p->cfg.url || p->running)
        return 0;
    if (pthread_create(&p->thread, NULL, current_main, p) != 0)
        return bp_error_set(err, BP_ENOMEM, "cannot start the price fetcher thread");
    p->running = true;
    return 0;
}

void bp_prices_stop(bp_prices *p)
{
    if (!p->running)
        return;
    /* the other stores' writers may be waiting out a rate limit (fetch_range's nap) */
    for (bp_prices *s = p; s; s = next_store(p, s)) {
        pthread_mutex_lock(&s->lock);
        s->stopping = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->lock);
    }
    pthread_join(p->thread, NULL);
    p->running = false;
}

/* ---- history -------------------------------------------------------------------------- */

static double mono_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* t as "2024-01-31 00:00" (UTC), for the log. */
static const char *utc(uint64_t t, char *buf, size_t n)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || strftime(buf, n, "%Y-%m-%d %H:%M", &tm) == 0)
        snprintf(buf, n, "%llu", (unsigned long long)t);
    return buf;
}

/* Is [lo, hi] inside a span answered already? Under the lock. */
static bool answered(const bp_prices *p, uint64_t lo, uint64_t hi)
{
    for (size_t i = 0; i < p->nspans; i++)
        if (p->spans[i].lo <= lo && hi <= p->spans[i].hi)
            return true;
    return false;
}

/* The end of the request asking history from lo at `now`: as far as CoinGecko still answers
 * with points at most max_age apart. A max_age of a day or more is served by daily points
 * (ranges of a year: fewer requests), of an hour or more by hourly ones (ranges up to 90
 * days). Below an hour only the last day's 5-minute points serve (a range of a day within
 * it): older history comes hourly whatever is asked, in 90-day ranges up to the last day. */
static uint64_t chunk_end(const bp_prices *p, uint64_t lo, uint64_t now)
{
    if (p->cfg.max_age >= DAY)
        return lo + DAILY_CHUNK;
    if (p->cfg.max_age >= 3600)
        return lo + HOURLY_MAX;
    if (lo + DAY >= now)
        return lo + DAY;
    return lo + HOURLY_MAX < now - DAY ? lo + HOURLY_MAX : now - DAY;
}

/* patient: 429s are waited out (up to RATE_WAIT_MAX); else one is a transient failure.
 * *gap: the widest gap between the points answered. */
static int fetch_range(bp_prices *p, uint64_t lo, uint64_t hi, bool patient, uint64_t *newest,
                       uint64_t *gap, answer *a, bp_error *err)
{
    char url[1024];
    snprintf(url, sizeof(url), "%s/coins/%s/market_chart/range?vs_currency=usd&from=%llu&to=%llu",
             p->cfg.url, p->cfg.coin_id, (unsigned long long)lo, (unsigned long long)hi);
    for (long waited = 0;;) {
        int rc = get(p, url, a, err);
        if (rc != 0)
            return rc;
        if (a->status >= 200 && a->status <= 299) {
            size_t added;
            rc = bp_prices_take_range(p, a->status, &a->body, &added, newest, gap, err);
            if (rc == 0)
                bp_info("prices: %zu %s points for %llu..%llu from the range endpoint", added,
                        p->cfg.symbol, (unsigned long long)lo, (unsigned long long)hi);
            return rc;
        }
        long wait = a->retry_after > 0 ? a->retry_after : RATE_WAIT_DEFAULT;
        if (a->status != 429 || !patient || waited + wait > RATE_WAIT_MAX || !nap(p, (double)wait))
            return http_error("market_chart/range", a, err);
        waited += wait;
        bp_info("prices: rate-limited (HTTP 429); asking again in %ld s", wait);
    }
}

int bp_prices_take_range(bp_prices *p, long status, const bp_buf *body, size_t *added,
                         uint64_t *newest, uint64_t *gap, bp_error *err)
{
    const answer a = {.status = status, .body = *body};
    *added = 0;
    if (status < 200 || status > 299)
        return http_error("market_chart/range", &a, err);
    return parse_range(p, &a, added, newest, gap, err);
}

static void add_span(bp_price_span **v, size_t *n, size_t *cap, uint64_t lo, uint64_t hi)
{
    if (bp_grow((void **)v, cap, *n + 1, sizeof(**v)) == 0)
        (*v)[(*n)++] = (bp_price_span){lo, hi};
}

/* Adds [lo, hi] to the spans answered, merged with those it overlaps or touches (consecutive
 * chunks: a batch across their seam is answered). Under the lock. */
static void add_answered(bp_prices *p, uint64_t lo, uint64_t hi)
{
    for (size_t i = 0; i < p->nspans;) {
        bp_price_span *s = &p->spans[i];
        if (s->lo > hi || lo > s->hi) {
            i++;
            continue;
        }
        lo = s->lo < lo ? s->lo : lo;
        hi = s->hi > hi ? s->hi : hi;
        *s = p->spans[--p->nspans];
    }
    add_span(&p->spans, &p->nspans, &p->capspans, lo, hi);
}

static uint64_t gap_between(bp_price_span a, bp_price_span b)
{
    return a.lo > b.hi ? a.lo - b.hi : b.lo > a.hi ? b.lo - a.hi : 0;
}

/* Adds [lo, hi] to the spans wanted, merged with those it overlaps or nearly touches (a batch's
 * span begins max_age before its first block: consecutive batches overlap). Past WANTED_MAX
 * the two closest become one: a span is asked in chunks whatever its width, so merging costs
 * the requests of the gap between them, never the points' density. Under the lock. */
static void want(bp_prices *p, uint64_t lo, uint64_t hi)
{
    for (size_t i = 0; i < p->nwanted;) {
        bp_price_span *w = &p->wanted[i];
        if (!(w->lo <= hi + p->cfg.max_age && lo <= w->hi + p->cfg.max_age)) {
            i++;
            continue;
        }
        lo = w->lo < lo ? w->lo : lo;
        hi = w->hi > hi ? w->hi : hi;
        *w = p->wanted[--p->nwanted];
    }
    add_span(&p->wanted, &p->nwanted, &p->capwanted, lo, hi);
    if (p->nwanted <= WANTED_MAX)
        return;
    size_t bi = 0, bj = 1;
    uint64_t best = UINT64_MAX;
    for (size_t i = 0; i < p->nwanted; i++)
        for (size_t j = i + 1; j < p->nwanted; j++)
            if (gap_between(p->wanted[i], p->wanted[j]) < best) {
                best = gap_between(p->wanted[i], p->wanted[j]);
                bi = i;
                bj = j;
            }
    bp_price_span *a = &p->wanted[bi], b = p->wanted[bj];
    a->lo = b.lo < a->lo ? b.lo : a->lo;
    a->hi = b.hi > a->hi ? b.hi : a->hi;
    p->wanted[bj] = p->wanted[--p->nwanted];
}

/* Seconds before history not answered is asked again: the --price-interval, at most 30. */
static uint64_t retry_wait(const bp_prices *p)
{
    double s = p->cfg.interval < RETRY_LATER ? p->cfg.interval : RETRY_LATER;
    return s < 1 ? 1 : (uint64_t)s;
}

/* Records what asking [w.lo, to] (w's first chunk) at `asked_at` answered: up to its newest
 * point (+ max_age, the blocks that point prices) unless the chunk was long over when asked
 * (then whatever came is all there is). A refusal for good counts as answered, but for a
 * chunk reaching from beyond the demo plan's reach (a year) well into it: its part within
 * the reach is asked again alone. The rest of w is wanted again: at once when the chunk was
 * answered whole (the next chunk), after a pause when not (like a span that failed). The end
 * of what counts as answered now. Under the lock. */
static uint64_t settle(bp_prices *p, bp_price_span w, uint64_t to, uint64_t asked_at, int rc,
                       uint64_t newest)
{
    uint64_t upto = w.lo;
    bool refused = rc != 0 && !bp_error_is_transient(rc);
    if (refused) {
        uint64_t reach = asked_at > DEMO_REACH ? asked_at - DEMO_REACH + DAY : 0;
        upto = w.lo + DAY / 2 < reach && reach < to ? reach : to;
    } else if (rc == 0 && to + FINAL_AFTER <= asked_at) {
        upto = to;
    } else if (rc == 0 && newest > w.lo) {
        upto = newest + p->cfg.max_age < to ? newest + p->cfg.max_age : to;
    }
    if (upto > w.lo)
        add_answered(p, w.lo, upto);
    if (upto < w.hi) {
        want(p, upto > w.lo ? upto : w.lo, w.hi);
        if (!refused && upto < to)
            p->next_ask = now_s() + retry_wait(p);
    }
    return upto;
}

/* The wanted span to ask next: the earliest one overlapping [lo, hi], or -1. Under the lock. */
static long pick(const bp_prices *p, uint64_t lo, uint64_t hi)
{
    long best = -1;
    for (size_t i = 0; i < p->nwanted; i++) {
        const bp_price_span *w = &p->wanted[i];
        if (w->lo <= hi && lo <= w->hi && (best < 0 || w->lo < p->wanted[best].lo))
            best = (long)i;
    }
    return best;
}

/* Says why USD stays NULL: a refusal of history for good (the first as a warning, naming the
 * span and CoinGecko's words; the others as info), or points too sparse for max_age (once). */
static void tell(bp_prices *p, int rc, const bp_error *e, uint64_t lo, uint64_t upto, uint64_t gap)
{
    char a[32], b[32];
    if (rc != 0 && bp_error_is_transient(rc)) {
        bp_warn("%s (asked again later; USD stays NULL until then)", e->msg);
    } else if (rc != 0 && !p->told_refused) {
        p->told_refused = true;
        bp_warn("%s: CoinGecko refused %s history %s..%s UTC for good: the blocks it would "
                "price keep NULL USD (the demo/public plan serves the last 365 days only; a "
                "paid plan's key with --price-url https://pro-api.coingecko.com/api/v3, or "
                "--prices FILE, prices them)",
                e->msg, p->cfg.symbol, utc(lo, a, sizeof(a)), utc(upto, b, sizeof(b)));
    } else if (rc != 0) {
        bp_info("prices: CoinGecko refused %s history %s..%s UTC too (USD stays NULL there)",
                p->cfg.symbol, utc(lo, a, sizeof(a)), utc(upto, b, sizeof(b)));
    } else if (gap > p->cfg.max_age && !p->told_sparse) {
        p->told_sparse = true;
        bp_warn("prices: CoinGecko answered %s history %s..%s UTC with points up to %llu s "
                "apart, more than --price-max-age %llu s: blocks further than that from a "
                "point keep NULL USD (history older than a day comes in hourly points at "
                "best; --prices FILE with denser points prices them)",
                p->cfg.symbol, utc(lo, a, sizeof(a)), utc(upto, b, sizeof(b)),
                (unsigned long long)gap, (unsigned long long)p->cfg.max_age);
    }
}

/* Asks w's first chunk (at most chunk_end wide: a backfill's next batches are in it too) and
 * settles it. Called with the lock held and p->asking set by the caller; returns with the
 * lock held and p->asking still set. false: stopping. */
static bool ask(bp_prices *p, bp_price_span w)
{
    double wait = p->last_ask + HISTORY_GAP - mono_s();
    pthread_mutex_unlock(&p->lock);
    /* spaced: a backfill asks chunk after chunk, and CoinGecko's plans allow few a minute */
    bool go_on = !(p->last_ask > 0 && wait > 0) || nap(p, wait);
    uint64_t asked_at = now_s(), to = chunk_end(p, w.lo, asked_at), newest = 0, gap = 0;
    answer a = {0};
    bp_buf_init(&a.body, BODY_MAX);
    bp_error e = {0};
    /* at the head the current price prices the blocks and a span not answered is asked again:
     * the writers do not wait out rate limits there, a backfill's history is worth the wait */
    uint64_t end = to < w.hi ? to : w.hi;
    bool head = end + p->cfg.max_age >= asked_at && end <= asked_at + p->cfg.max_age;
    int rc = go_on ? fetch_range(p, w.lo, to, !head, &newest, &gap, &a, &e)
                   : bp_error_set(&e, BP_ETRANSPORT, "prices: stopping");
    bp_buf_release(&a.body);
    pthread_mutex_lock(&p->lock);
    p->last_ask = mono_s();
    uint64_t upto = settle(p, w, to, asked_at, rc, newest);
    pthread_mutex_unlock(&p->lock);
    if (go_on)
        tell(p, rc, &e, w.lo, rc != 0 ? upto : to, gap);
    pthread_mutex_lock(&p->lock);
    return go_on;
}

void bp_prices_cover(bp_prices *p, uint64_t lo, uint64_t hi)
{
    if (!p->cfg.url)
        return;
    uint64_t from = lo > p->cfg.max_age ? lo - p->cfg.max_age : 0;
    pthread_mutex_lock(&p->lock);
    double usd;
    bool need;
    /* another chain's writer is asking: its answer may hold the points this batch lacks */
    while ((need = !(bp_prices_at_locked(p, lo, &usd) && bp_prices_at_locked(p, hi, &usd))) &&
           p->asking)
        pthread_cond_wait(&p->asked, &p->lock);
    if (need && !answered(p, from, hi))
        want(p, from, hi);
    /* this batch's history chunk after chunk (a sparse chain's batch may span years), up to
     * a bound; with none of it wanted, one span wanted before (an outage's) */
    for (int k = 0; k < ASKS_PER_COVER && !p->asking && now_s() >= p->next_ask; k++) {
        long i = pick(p, from, hi);
        if (i < 0 && k == 0)
            i = pick(p, 0, UINT64_MAX);
        if (i < 0)
            break;
        bp_price_span w = p->wanted[i];
        p->wanted[i] = p->wanted[--p->nwanted];
        if (answered(p, w.lo, w.hi)) { /* by another span's chunk meanwhile: no request */
            k--;
            continue;
        }
        p->asking = true;
        bool go_on = ask(p, w);
        p->asking = false;
        pthread_cond_broadcast(&p->asked);
        if (!go_on)
            break;
    }
    pthread_mutex_unlock(&p->lock);
}
