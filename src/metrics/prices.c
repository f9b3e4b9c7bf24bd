/* prices.c - the price store and the --prices file (prices.h); the CoinGecko fetcher is in
 * prices_fetch.c. */
#include "metrics/keymap.h"
#include "metrics/prices_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "chain/json.h"
#include "util/arena.h"

/* ---- the store ------------------------------------------------------------------------ */

/* Index of the last point with ts <= t, or -1. Under the lock. */
static long last_at_or_before(const bp_prices *p, uint64_t t)
{
    long lo = 0, hi = (long)p->n - 1, found = -1;
    while (lo <= hi) {
        long mid = lo + (hi - lo) / 2;
        if (p->pts[mid].ts <= t) {
            found = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return found;
}

static int push(bp_price_point **v, size_t *n, size_t *cap, bp_price_point pt)
{
    if (bp_grow((void **)v, cap, *n + 1, sizeof(**v)) != 0)
        return BP_ENOMEM;
    (*v)[(*n)++] = pt;
    return 0;
}

/* Queues a new or changed point for every reader. A reader that fell behind by as many points
 * as the store holds is handed all of them instead (its list stays bounded). Under the lock. */
static int queue_fresh(bp_prices *p, bp_price_point pt)
{
    for (size_t r = 0; r < p->nreaders; r++) {
        bp_price_reader *rd = &p->readers[r];
        if (!rd->used || rd->all)
            continue;
        if (rd->n >= p->n) {
            rd->all = true;
            rd->n = 0;
        } else if (push(&rd->fresh, &rd->n, &rd->cap, pt) != 0) {
            return BP_ENOMEM;
        }
    }
    return 0;
}

int bp_prices_add_locked(bp_prices *p, uint64_t ts, double usd, const char *source)
{
    long i = last_at_or_before(p, ts);
    if (i >= 0 && p->pts[i].ts == ts) {
        if (p->pts[i].usd == usd)
            return 0;
        p->pts[i].usd = usd;
        p->pts[i].source = source;
    } else {
        if (push(&p->pts, &p->n, &p->cap, (bp_price_point){0}) != 0)
            return BP_ENOMEM;
        memmove(&p->pts[i + 2], &p->pts[i + 1], (p->n - 1 - (size_t)(i + 1)) * sizeof(*p->pts));
        p->pts[i + 1] = (bp_price_point){ts, usd, source};
    }
    return queue_fresh(p, (bp_price_point){ts, usd, source});
}

int bp_prices_add(bp_prices *p, uint64_t ts, double usd, const char *source)
{
    pthread_mutex_lock(&p->lock);
    int rc = bp_prices_add_locked(p, ts, usd, source);
    pthread_mutex_unlock(&p->lock);
    return rc;
}

int bp_prices_join(bp_prices *p)
{
    pthread_mutex_lock(&p->lock);
    size_t r = 0;
    while (r < p->nreaders && p->readers[r].used)
        r++;
    int id = -1;
    if (r < p->nreaders ||
        bp_grow((void **)&p->readers, &p->capreaders, p->nreaders + 1, sizeof(*p->readers)) == 0) {
        if (r == p->nreaders)
            p->readers[p->nreaders++] = (bp_price_reader){0};
        p->readers[r].used = true;
        p->readers[r].all = true;
        id = (int)r;
    }
    pthread_mutex_unlock(&p->lock);
    return id;
}

void bp_prices_leave(bp_prices *p, int reader)
{
    pthread_mutex_lock(&p->lock);
    if (reader >= 0 && (size_t)reader < p->nreaders) {
        free(p->readers[reader].fresh);
        p->readers[reader] = (bp_price_reader){0};
    }
    pthread_mutex_unlock(&p->lock);
}

void bp_prices_resend(bp_prices *p, int reader)
{
    pthread_mutex_lock(&p->lock);
    if (reader >= 0 && (size_t)reader < p->nreaders) {
        p->readers[reader].all = true;
        p->readers[reader].n = 0;
    }
    pthread_mutex_unlock(&p->lock);
}

bool bp_prices_at_locked(const bp_prices *p, uint64_t ts, double *usd)
{
    long i = last_at_or_before(p, ts);
    bool ok = i >= 0 && ts - p->pts[i].ts <= p->cfg.max_age;
    if (ok)
        *usd = p->pts[i].usd;
    return ok;
}

bool bp_prices_at(bp_prices *p, uint64_t ts, double *usd)
{
    pthread_mutex_lock(&p->lock);
    bool ok = bp_prices_at_locked(p, ts, usd);
    pthread_mutex_unlock(&p->lock);
    return ok;
}

size_t bp_prices_count(bp_prices *p)
{
    pthread_mutex_lock(&p->lock);
    size_t n = p->n;
    pthread_mutex_unlock(&p->lock);
    return n;
}

static int cmp_point_ts(const void *a, const void *b)
{
    uint64_t x = ((const bp_price_point *)a)->ts, y = ((const bp_price_point *)b)->ts;
    return x < y ? -1 : x > y;
}

/* The reader's points as rows, one per timestamp with the store's value now (a point changed
 * twice in between is one row: PostgreSQL refuses an upsert that changes a row twice). Under
 * the lock. */
static size_t fresh_rows(bp_prices *p, bp_price_reader *rd, bp_price_row *r)
{
    const bp_price_point *src = rd->all ? p->pts : rd->fresh;
    size_t n = rd->all ? p->n : rd->n, k = 0;
    if (!rd->all)
        qsort(rd->fresh, n, sizeof(*rd->fresh), cmp_point_ts);
    for (size_t i = 0; i < n; i++) {
        if (k && r[k - 1].timestamp == src[i].ts)
            continue;
        const bp_price_point *now = &p->pts[last_at_or_before(p, src[i].ts)];
        r[k++] = (bp_price_row){p->cfg.symbol, now->ts, {now->usd, true}, now->source};
    }
    return k;
}

int bp_prices_take_new(bp_prices *p, int reader, bp_arena *a, bp_price_row **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    pthread_mutex_lock(&p->lock);
    int rc = 0;
    bp_price_reader *rd = reader >= 0 && (size_t)reader < p->nreaders ? &p->readers[reader] : NULL;
    size_t want = !rd ? 0 : rd->all ? p->n : rd->n;
    if (want) {
        bp_price_row *r = bp_arena_calloc(a, want, sizeof(*r));
        if (!r) {
            rc = BP_ENOMEM;
        } else {
            *n = fresh_rows(p, rd, r);
            *rows = r;
        }
    }
    if (rc == 0 && rd) {
        rd->all = false;
        rd->n = 0;
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

/* ---- the file --------------------------------------------------------------------------- */

int bp_prices_parse_time(const char *s, uint64_t *out)
{
    while (isspace((unsigned char)*s) || *s == '"')
        s++;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end != s && (*end == '\0' || *end == '"' || isspace((unsigned char)*end)) && errno == 0 &&
        *s != '-') {
        *out = end - s >= 13 ? v / 1000 : v; /* milliseconds */
        return 0;
    }
    struct tm tm = {0};
    int y, mo, d, h, mi, sec = 0, k = 0;
    if (sscanf(s, "%4d-%2d-%2d%*1[T ]%2d:%2d%n:%2d%n", &y, &mo, &d, &h, &mi, &k, &sec, &k) < 5)
        return BP_EPARSE;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (t < 0)
        return BP_EPARSE;
    *out = (uint64_t)t;
    return 0;
}

static int parse_usd(const char *s, double *out)
{
    while (isspace((unsigned char)*s) || *s == '"')
        s++;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno != 0 || !(v >= 0) || v > 1e15)
        return BP_EPARSE;
    *out = v;
    return 0;
}

/* The columns of a CSV header: index of timestamp, symbol (-1: none) and usd. */
typedef struct csv_cols {
    int ts, symbol, usd;
} csv_cols;

static int split_csv(char *line, char **cells, int max)
{
    int n = 0;
    for (char *p = line; n < max;) {
        cells[n++] = p;
        char *c = strchr(p, ',');
        if (!c)
            break;
        *c = '\0';
        p = c + 1;
    }
    for (int i = 0; i < n; i++) { /* trim blanks and quotes */
        char *c = cells[i];
        while (*c == ' ' || *c == '"')
            c++;
        char *e = c + strlen(c);
        while (e > c && (e[-1] == ' ' || e[-1] == '"' || e[-1] == '\r' || e[-1] == '\n'))
            *--e = '\0';
        cells[i] = c;
    }
    return n;
}

static int csv_header(char *line, csv_cols *cols)
{
    char *cells[16];
    int n = split_csv(line, cells, 16);
    *cols = (csv_cols){-1, -1, -1};
    for (int i = 0; i < n; i++) {
        if (strcasecmp(cells[i], "timestamp") == 0 || strcasecmp(cells[i], "time") == 0)
            cols->ts = i;
        else if (strcasecmp(cells[i], "symbol") == 0)
            cols->symbol = i;
        else if (strcasecmp(cells[i], "usd") == 0 || strcasecmp(cells[i], "price_usd") == 0)
            cols->usd = i;
    }
    return cols->ts >= 0 && cols->usd >= 0 ? 0 : BP_EPARSE;
}

/* One data line: *use false when it is another symbol's. */
static int csv_line(char *line, const csv_cols *c, const char *symbol, bool *use, uint64_t *ts,
                    double *usd)
{
    char *cells[16];
    int n = split_csv(line, cells, 16);
    int need = c->ts > c->usd ? c->ts : c->usd;
    need = c->symbol > need ? c->symbol : need;
    if (n <= need)
        return BP_EPARSE;
    *use = c->symbol < 0 || strcasecmp(cells[c->symbol], symbol) == 0;
    if (bp_prices_parse_time(cells[c->ts], ts) != 0)
        return BP_EPARSE;
    return parse_usd(cells[c->usd], usd);
}

static int json_line(const char *line, const char *symbol, bool *use, uint64_t *ts, double *usd)
{
    yajl_val v = bp_json_parse(line, strlen(line), NULL, 0);
    const char *ts_path[] = {"timestamp", NULL}, *sym_path[] = {"symbol", NULL};
    const char *usd_path[] = {"usd", NULL};
    yajl_val t = v ? yajl_tree_get(v, ts_path, yajl_t_any) : NULL;
    yajl_val s = v ? yajl_tree_get(v, sym_path, yajl_t_string) : NULL;
    yajl_val u = v ? yajl_tree_get(v, usd_path, yajl_t_any) : NULL;
    int rc = BP_EPARSE;
    const char *tt = t && YAJL_IS_NUMBER(t) ? t->u.number.r : YAJL_GET_STRING(t);
    const char *ut = u && YAJL_IS_NUMBER(u) ? u->u.number.r : YAJL_GET_STRING(u);
    if (tt && ut) {
        const char *sym = YAJL_GET_STRING(s);
        *use = !sym || strcasecmp(sym, symbol) == 0;
        rc = bp_prices_parse_time(tt, ts) != 0 ? BP_EPARSE : parse_usd(ut, usd);
    }
    bp_json_free(v);
    return rc;
}

static bool blank(const char *s)
{
    for (; *s; s++)
        if (!isspace((unsigned char)*s))
            return false;
    return true;
}

static int load_file(bp_prices *p, const char *path, bp_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return bp_error_set(err, BP_EINVAL, "--prices %s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    int rc = 0;
    csv_cols cols = {-1, -1, -1};
    bool json = false, header = false;
    while (rc == 0 && getline(&line, &cap, f) >= 0) {
        lineno++;
        if (blank(line) || line[0] == '#')
            continue;
        uint64_t ts = 0;
        double usd = 0;
        bool use = true;
        if (!header && !json && line[strspn(line, " \t")] == '{')
            json = true;
        if (json) {
            rc = json_line(line, p->cfg.symbol, &use, &ts, &usd);
        } else if (!header) {
            header = true;
            if (csv_header(line, &cols) != 0)
                rc = bp_error_set(err, BP_EINVAL,
                                  "--prices %s: line 1: expected a CSV header with timestamp and "
                                  "usd columns (and symbol), or JSON lines",
                                  path);
            continue;
        } else {
            rc = csv_line(line, &cols, p->cfg.symbol, &use, &ts, &usd);
        }
        if (rc == BP_EPARSE)
            rc = bp_error_set(err, BP_EINVAL,
                              "--prices %s: line %ld: expected a timestamp (unix seconds or "
                              "ISO 8601) and a USD price: %.80s",
                              path, lineno, line);
        else if (rc == 0 && use)
            rc = bp_prices_add_locked(p, ts, usd, "file");
    }
    free(line);
    fclose(f);
    return rc;
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

/* CoinGecko's id of a few native tokens (the others need --price-coin-id). */
static const char *coin_id_of(const char *symbol)
{
    static const char *const map[][2] = {
        {"ETH", "ethereum"},        {"BTC", "bitcoin"},
        {"BNB", "binancecoin"},     {"POL", "polygon-ecosystem-token"},
        {"MATIC", "matic-network"}, {"AVAX", "avalanche-2"},
        {"MNT", "mantle"},          {"CELO", "celo"},
        {"XDAI", "xdai"},           {"FTM", "fantom"},
        {"S", "sonic-3"},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcasecmp(map[i][0], symbol) == 0)
            return map[i][1];
    return NULL;
}

static char *dup_opt(const char *s)
{
    return s ? strdup(s) : NULL;
}

bp_prices *bp_prices_new(const bp_prices_config *cfg, bp_error *err)
{
    bp_prices *p = calloc(1, sizeof(*p));
    if (!p) {
        bp_error_set(err, BP_ENOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cv, NULL);
    pthread_cond_init(&p->asked, NULL);
    p->cfg = *cfg;
    const char *id = cfg->coin_id ? cfg->coin_id : coin_id_of(cfg->symbol ? cfg->symbol : "ETH");
    p->cfg.symbol = strdup(cfg->symbol ? cfg->symbol : "ETH");
    p->cfg.file = dup_opt(cfg->file);
    p->cfg.url = dup_opt(cfg->url);
    p->cfg.coin_id = dup_opt(id);
    p->cfg.api_key = dup_opt(cfg->api_key);
    if (!p->cfg.symbol || (cfg->file && !p->cfg.file) || (cfg->url && !p->cfg.url) ||
        (id && !p->cfg.coin_id) || (cfg->api_key && !p->cfg.api_key)) {
        bp_error_set(err, BP_ENOMEM, "out of memory");
        goto fail;
    }
    if (cfg->url && !id) {
        bp_error_set(err, BP_EINVAL,
                     "--price-url: CoinGecko's id of '%s' is not known; give it with "
                     "--price-coin-id (in a chains: item, price_coin_id)",
                     p->cfg.symbol);
        goto fail;
    }
    if (cfg->file && load_file(p, cfg->file, err) != 0)
        goto fail;
    return p;
fail:
    bp_prices_free(p);
    return NULL;
}

bp_prices *bp_prices_for(bp_prices *p, const char *symbol, const char *coin_id, bp_error *err)
{
    pthread_mutex_lock(&p->lock);
    bp_prices *s = p, *last = p;
    while (s && strcasecmp(s->cfg.symbol, symbol) != 0) {
        last = s;
        s = s->next;
    }
    pthread_mutex_unlock(&p->lock);
    if (s)
        return s;
    bp_prices_config cfg = p->cfg;
    cfg.symbol = symbol;
    cfg.coin_id = coin_id;
    if (!(s = bp_prices_new(&cfg, err)))
        return NULL;
    pthread_mutex_lock(&p->lock);
    last->next = s;
    pthread_mutex_unlock(&p->lock);
    return s;
}

void bp_prices_free(bp_prices *p)
{
    if (!p)
        return;
    bp_prices_stop(p);
    bp_prices_free(p->next);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cv);
    pthread_cond_destroy(&p->asked);
    free(p->pts);
    for (size_t r = 0; r < p->nreaders; r++)
        free(p->readers[r].fresh);
    free(p->readers);
    free(p->spans);
    free(p->wanted);
    free((char *)p->cfg.symbol);
    free((char *)p->cfg.file);
    free((char *)p->cfg.url);
    free((char *)p->cfg.coin_id);
    free((char *)p->cfg.api_key);
    free(p);
}
