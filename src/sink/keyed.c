/* keyed.c - keyed streams (include/blockpipe/keyed.h): the checks every store shares, the
 * SQLite store, and subscribe built on each store's `next`. */
#include "blockpipe/keyed.h"

#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "sink/keyed_internal.h"
#include "sink/registry.h"
#include "util/url.h"

#define KEY_MAX 512
#define BATCH 100

/* ---- entries ---------------------------------------------------------------------------- */

void bp_keyed_entry_release(bp_keyed_entry *e)
{
    if (!e)
        return;
    free(e->value);
    memset(e, 0, sizeof(*e));
}

void bp_keyed_keys_free(char **keys, size_t n)
{
    for (size_t i = 0; keys && i < n; i++)
        free(keys[i]);
    free(keys);
}

static int check_key(const bp_keyed *k, const char *key, bp_error *err)
{
    size_t n = key ? strlen(key) : 0;
    bool ok = n > 0 && n <= KEY_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = (unsigned char)key[i] >= 0x20 && key[i] != 0x7f;
    return ok ? 0
              : bp_error_set(err, BP_EINVAL,
                             "%s: key '%.*s' is not valid: expected 1 to %d bytes without "
                             "control characters",
                             k->where, (int)(n < 80 ? n : 80), key ? key : "", KEY_MAX);
}

/* v as compact JSON (numbers keep their digits). */
static void gen(yajl_gen g, yajl_val v)
{
    if (YAJL_IS_OBJECT(v)) {
        yajl_gen_map_open(g);
        for (size_t i = 0; i < v->u.object.len; i++) {
            yajl_gen_string(g, (const unsigned char *)v->u.object.keys[i],
                            strlen(v->u.object.keys[i]));
            gen(g, v->u.object.values[i]);
        }
        yajl_gen_map_close(g);
    } else if (YAJL_IS_ARRAY(v)) {
        yajl_gen_array_open(g);
        for (size_t i = 0; i < v->u.array.len; i++)
            gen(g, v->u.array.values[i]);
        yajl_gen_array_close(g);
    } else if (YAJL_IS_STRING(v)) {
        yajl_gen_string(g, (const unsigned char *)v->u.string, strlen(v->u.string));
    } else if (YAJL_IS_NUMBER(v)) {
        yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
    } else if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) {
        yajl_gen_bool(g, YAJL_IS_TRUE(v));
    } else {
        yajl_gen_null(g);
    }
}

/* json checked and made compact (one line: what subscribers and the CLI print), malloc'd. */
static int compact_json(const bp_keyed *k, const char *json, char **out, bp_error *err)
{
    char msg[160];
    *out = NULL;
    yajl_val v = json ? yajl_tree_parse(json, msg, sizeof(msg)) : NULL;
    if (!v)
        return bp_error_set(err, BP_EINVAL, "%s: the value is not JSON: %.*s", k->where,
                            (int)strcspn(json ? msg : "(none)", "\n"), json ? msg : "(none)");
    yajl_gen g = yajl_gen_alloc(NULL);
    const unsigned char *text = NULL;
    size_t len = 0;
    if (g) {
        gen(g, v);
        if (yajl_gen_get_buf(g, &text, &len) == yajl_gen_status_ok)
            *out = strndup((const char *)text, len);
        yajl_gen_free(g);
    }
    yajl_tree_free(v);
    return *out ? 0 : bp_error_set(err, BP_ENOMEM, "out of memory");
}

/* ---- the SQLite store ------------------------------------------------------------------- */

typedef struct sq_keyed {
    bp_keyed base;
    sqlite3 *db;
} sq_keyed;

static int sq_failed(sq_keyed *s, const char *what, bp_error *err)
{
    return bp_error_set(err, BP_EDB, "%s: %s: %s", s->base.where, what, sqlite3_errmsg(s->db));
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A row (seq, time_ms, value) into an entry. */
static int sq_entry(sq_keyed *s, sqlite3_stmt *st, bp_keyed_entry *e, bp_error *err)
{
    snprintf(e->id, sizeof(e->id), "%lld", (long long)sqlite3_column_int64(st, 0));
    e->time_ms = sqlite3_column_int64(st, 1);
    const char *v = (const char *)sqlite3_column_text(st, 2);
    e->value = strdup(v ? v : "null");
    return e->value ? 0 : bp_error_set(err, BP_ENOMEM, "%s: out of memory", s->base.where);
}

/* Runs sql with key (and a number) bound, rows into out[0..*n) up to max. */
static int sq_rows(sq_keyed *s, const char *sql, const char *key, int64_t num, size_t max,
                   bp_keyed_entry *out, size_t *n, bp_error *err)
{
    sqlite3_stmt *st = NULL;
    *n = 0;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return sq_failed(s, "prepare", err);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, num);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)max);
    int rc = 0, r;
    while (rc == 0 && *n < max && (r = sqlite3_step(st)) == SQLITE_ROW)
        if ((rc = sq_entry(s, st, &out[*n], err)) == 0)
            (*n)++;
    if (rc == 0 && *n < max && r != SQLITE_DONE)
        rc = sq_failed(s, "reading entries", err);
    sqlite3_finalize(st);
    return rc;
}

static int sq_publish(bp_keyed *k, const char *key, const char *json, bp_keyed_entry *out,
                      bp_error *err)
{
    sq_keyed *s = (sq_keyed *)k;
    sqlite3_stmt *st = NULL;
    int64_t t = now_ms();
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO keyed_entries(key, time_ms, value) VALUES(?1, ?2, ?3)", -1,
                           &st, NULL) != SQLITE_OK)
        return sq_failed(s, "prepare", err);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, t);
    sqlite3_bind_text(st, 3, json, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    sqlite3_finalize(st);
    if (r != SQLITE_DONE)
        return sq_failed(s, "publishing", err);
    if (!out)
        return 0;
    snprintf(out->id, sizeof(out->id), "%lld", (long long)sqlite3_last_insert_rowid(s->db));
    out->time_ms = t;
    out->value = strdup(json);
    return out->value ? 0 : bp_error_set(err, BP_ENOMEM, "out of memory");
}

static int sq_history(bp_keyed *k, const char *key, size_t max, bp_keyed_entry *out, size_t *n,
                      bp_error *err)
{
    return sq_rows((sq_keyed *)k,
                   "SELECT seq, time_ms, value FROM keyed_entries WHERE key = ?1 AND seq > ?2"
                   " ORDER BY seq DESC LIMIT ?3",
                   key, 0, max, out, n, err);
}

static int sq_keys(bp_keyed *k, char ***keys, size_t *n, bp_error *err)
{
    sq_keyed *s = (sq_keyed *)k;
    sqlite3_stmt *st = NULL;
    size_t cap = 0;
    *keys = NULL;
    *n = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT DISTINCT key FROM keyed_entries", -1, &st, NULL) !=
        SQLITE_OK)
        return sq_failed(s, "prepare", err);
    int r, rc = 0;
    while (rc == 0 && (r = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            char **p = realloc(*keys, cap * sizeof(*p));
            if (!p)
                rc = bp_error_set(err, BP_ENOMEM, "out of memory");
            else
                *keys = p;
        }
        if (rc == 0 && !((*keys)[*n] = strdup((const char *)sqlite3_column_text(st, 0))))
            rc = bp_error_set(err, BP_ENOMEM, "out of memory");
        *n += rc == 0;
    }
    if (rc == 0 && r != SQLITE_DONE)
        rc = sq_failed(s, "reading keys", err);
    sqlite3_finalize(st);
    return rc;
}

static int sq_next(bp_keyed *k, const char *key, const char *after, size_t max, int wait_ms,
                   bp_keyed_entry *out, size_t *n, bp_error *err)
{
    sq_keyed *s = (sq_keyed *)k;
    int64_t from = strtoll(after, NULL, 10);
    for (int waited = 0;; waited += 50) {
        int rc = sq_rows(s,
                         "SELECT seq, time_ms, value FROM keyed_entries WHERE key = ?1 AND"
                         " seq > ?2 ORDER BY seq LIMIT ?3",
                         key, from, max, out, n, err);
        if (rc != 0 || *n > 0 || waited >= wait_ms)
            return rc;
        nanosleep(&(struct timespec){0, 50 * 1000000L}, NULL); /* no notifications in SQLite */
    }
}

static void sq_close(bp_keyed *k)
{
    sq_keyed *s = (sq_keyed *)k;
    sqlite3_close(s->db);
}

static const bp_keyed_ops g_sqlite_ops = {
    .publish = sq_publish,
    .history = sq_history,
    .keys = sq_keys,
    .next = sq_next,
    .origin = "0",
    .close = sq_close,
};

static int sq_open(const char *path, bp_keyed **out, bp_error *err)
{
    sq_keyed *s = calloc(1, sizeof(*s));
    if (!s)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    s->base.ops = &g_sqlite_ops;
    *out = &s->base;
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK)
        return bp_error_set(err, BP_EDB, "sqlite:%s: cannot open: %s", path,
                            s->db ? sqlite3_errmsg(s->db) : "out of memory");
    sqlite3_busy_timeout(s->db, 10000);
    if (sqlite3_exec(s->db,
                     "PRAGMA journal_mode = WAL;"
                     "CREATE TABLE IF NOT EXISTS keyed_entries(seq INTEGER PRIMARY KEY "
                     "AUTOINCREMENT, key TEXT NOT NULL, time_ms INTEGER NOT NULL, value TEXT "
                     "NOT NULL);"
                     "CREATE INDEX IF NOT EXISTS keyed_entries_key ON keyed_entries(key, seq)",
                     NULL, NULL, NULL) != SQLITE_OK)
        return bp_error_set(err, BP_EDB, "sqlite:%s: creating keyed_entries: %s", path,
                            sqlite3_errmsg(s->db));
    return 0;
}

/* ---- the API ---------------------------------------------------------------------------- */

int bp_keyed_open(const char *url, bp_keyed **out, bp_error *err)
{
    *out = NULL;
    char shown[512];
    bp_url_redact(url ? url : "", shown, sizeof(shown));
    const bp_sink_ops *ops = url ? bp_sink_find(url) : NULL;
    const char *scheme = ops ? ops->scheme : "";
    int rc;
    if (strcmp(scheme, "sqlite") == 0) {
        bp_sink_resolved r;
        rc = bp_sink_resolve(url, NULL, &r, err);
        if (rc == 0) {
            rc = sq_open(r.target.data, out, err);
            bp_sink_resolved_release(&r);
        }
    } else if (strcmp(scheme, "redis") == 0) {
#ifdef BP_HAVE_REDIS
        rc = bp_keyed_redis_open(url, out, err);
#else
        return bp_error_set(err, BP_EINVAL,
                            "stream store '%s': this blockpipe was built without Redis "
                            "(missing at build time: %s)",
                            shown, ops->missing ? ops->missing : "hiredis");
#endif
    } else {
        return bp_error_set(err, BP_EINVAL,
                            "stream store '%s': expected sqlite:PATH or "
                            "redis://[:password@]host:port[/db] (rediss:// for TLS)",
                            shown);
    }
    if (*out && !((*out)->where = strdup(shown)) && rc == 0)
        rc = bp_error_set(err, BP_ENOMEM, "out of memory");
    if (rc != 0) {
        bp_error_prefix(err, "stream store '%s': ", shown);
        bp_keyed_close(*out);
        *out = NULL;
    }
    return rc;
}

void bp_keyed_close(bp_keyed *k)
{
    if (!k)
        return;
    char *where = k->where;
    k->ops->close(k);
    free(where);
    free(k);
}

int bp_keyed_publish(bp_keyed *k, const char *key, const char *json, bp_keyed_entry *out,
                     bp_error *err)
{
    if (out)
        memset(out, 0, sizeof(*out));
    char *compact = NULL;
    int rc = check_key(k, key, err);
    if (rc == 0)
        rc = compact_json(k, json, &compact, err);
    if (rc == 0)
        rc = k->ops->publish(k, key, compact, out, err);
    free(compact);
    return rc;
}

int bp_keyed_latest(bp_keyed *k, const char *key, bp_keyed_entry *out, bool *found, bp_error *err)
{
    size_t n = 0;
    memset(out, 0, sizeof(*out));
    int rc = check_key(k, key, err);
    if (rc == 0)
        rc = k->ops->history(k, key, 1, out, &n, err);
    *found = rc == 0 && n == 1;
    return rc;
}

int bp_keyed_history(bp_keyed *k, const char *key, size_t max, bp_keyed_entry *out, size_t *n,
                     bp_error *err)
{
    *n = 0;
    int rc = check_key(k, key, err);
    return rc || max == 0 ? rc : k->ops->history(k, key, max, out, n, err);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int bp_keyed_keys(bp_keyed *k, const char *prefix, char ***keys, size_t *n, bp_error *err)
{
    int rc = k->ops->keys(k, keys, n, err);
    if (rc != 0)
        return rc;
    size_t plen = prefix ? strlen(prefix) : 0, m = 0;
    for (size_t i = 0; i < *n; i++) {
        if (strncmp((*keys)[i], prefix ? prefix : "", plen) == 0)
            (*keys)[m++] = (*keys)[i];
        else
            free((*keys)[i]);
    }
    *n = m;
    if (m)
        qsort(*keys, m, sizeof(**keys), by_name);
    return 0;
}

int bp_keyed_subscribe(bp_keyed *k, const char *key, const char *after_id,
                       int (*fn)(void *ctx, const bp_keyed_entry *e), void *ctx,
                       volatile sig_atomic_t *stop, bp_error *err)
{
    char cursor[48];
    bp_keyed_entry batch[BATCH];
    size_t n = 0;
    int rc = check_key(k, key, err);
    if (rc != 0)
        return rc;
    if (after_id && *after_id)
        snprintf(cursor, sizeof(cursor), "%s",
                 strcmp(after_id, "0") == 0 ? k->ops->origin : after_id);
    else if ((rc = k->ops->history(k, key, 1, batch, &n, err)) != 0)
        return rc;
    else {
        snprintf(cursor, sizeof(cursor), "%s", n ? batch[0].id : k->ops->origin);
        if (n)
            bp_keyed_entry_release(&batch[0]);
    }
    bool done = false;
    while (!done && !(stop && *stop)) {
        rc = k->ops->next(k, key, cursor, BATCH, 1000, batch, &n, err);
        if (rc != 0)
            return rc;
        for (size_t i = 0; i < n; i++) {
            if (!done && !(stop && *stop)) {
                done = fn(ctx, &batch[i]) != 0;
                snprintf(cursor, sizeof(cursor), "%.*s", (int)sizeof(cursor) - 1, batch[i].id);
            }
            bp_keyed_entry_release(&batch[i]);
        }
    }
    return 0;
}
