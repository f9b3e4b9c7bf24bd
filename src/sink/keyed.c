/* keyed.c - keyed streams (include/blockpipe/keyed.h): the checks every store shares, the
 * SQLite store, and subscribe built on each store's `next`. */
#include "blockpipe/keyed.h"

#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
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

#define SQ_STMTS 10

typedef struct sq_keyed {
    bp_keyed base;
    sqlite3 *db;
    /* Statements prepared once per text (a prepare cost as much as the read it served) */
    const char *sql[SQ_STMTS];
    sqlite3_stmt *st[SQ_STMTS];
    /* Following (bp_keyed_follow_*): one position for every key, the table's sequence. */
    bool following, fall;
    int64_t fseq;
    char fpos[24];
    char **fkeys; /* sorted */
    size_t nfkeys;
    struct sq_group *group; /* the file's publishers in this process */
} sq_keyed;

/* The statement of sql (a string literal: cached by its address), reset; NULL on failure. */
static sqlite3_stmt *sq_stmt(sq_keyed *s, const char *sql)
{
    size_t i = 0;
    while (i < SQ_STMTS && s->sql[i] && s->sql[i] != sql)
        i++;
    if (i < SQ_STMTS && s->sql[i]) {
        sqlite3_reset(s->st[i]);
        sqlite3_clear_bindings(s->st[i]);
        return s->st[i];
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
        return NULL;
    if (i < SQ_STMTS) {
        s->sql[i] = sql;
        s->st[i] = st;
    }
    return st;
}

/* Done with a statement of sq_stmt: kept for the next call (its reads released). */
static void sq_done(sq_keyed *s, sqlite3_stmt *st)
{
    for (size_t i = 0; i < SQ_STMTS; i++)
        if (s->st[i] == st) {
            sqlite3_reset(st);
            return;
        }
    sqlite3_finalize(st);
}

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
    sqlite3_stmt *st = sq_stmt(s, sql);
    *n = 0;
    if (!st)
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
    sq_done(s, st);
    return rc;
}

/* ---- publishing: group commit ----
 * The handles of one file in this process publish through one queue: the first publisher to
 * find no commit under way leads, inserting every queued entry in one transaction on its own
 * connection, and the others wait for that COMMIT. Each publish still returns once its entry is
 * committed (as durable as a transaction of its own) and the entries of a key commit in the
 * order their publishers queued them; N concurrent publishers pay one commit instead of N. */

#define GROUP_MAX 1024 /* entries in one transaction */

typedef struct sq_pub {
    const char *key, *json;
    int64_t t, seq;
    int rc;
    bool done;
    bp_error *err;
    pthread_cond_t cv; /* its publisher waits here: woken when done or first in the queue */
    struct sq_pub *next;
} sq_pub;

struct sq_group {
    char *path;
    int refs;
    pthread_mutex_t lock;
    sq_pub *head, **tail;
    bool leading;
    struct sq_group *next;
};

static pthread_mutex_t g_groups_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sq_group *g_groups;

/* The group of the file path (its real path: two spellings of one file share it). */
static struct sq_group *group_get(const char *path)
{
    char *real = realpath(path, NULL);
    const char *name = real ? real : path;
    pthread_mutex_lock(&g_groups_lock);
    struct sq_group *g = g_groups;
    while (g && strcmp(g->path, name) != 0)
        g = g->next;
    if (!g && (g = calloc(1, sizeof(*g))) && !(g->path = strdup(name))) {
        free(g);
        g = NULL;
    } else if (g && !g->refs++) {
        pthread_mutex_init(&g->lock, NULL);
        g->tail = &g->head;
        g->next = g_groups;
        g_groups = g;
    }
    pthread_mutex_unlock(&g_groups_lock);
    free(real);
    return g;
}

static void group_put(struct sq_group *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g_groups_lock);
    if (--g->refs == 0) {
        struct sq_group **p = &g_groups;
        while (*p != g)
            p = &(*p)->next;
        *p = g->next;
        pthread_mutex_destroy(&g->lock);
        free(g->path);
        free(g);
    }
    pthread_mutex_unlock(&g_groups_lock);
}

static int sq_exec(sq_keyed *s, const char *sql)
{
    sqlite3_stmt *st = sq_stmt(s, sql);
    int r = st ? sqlite3_step(st) : SQLITE_ERROR;
    if (st)
        sq_done(s, st);
    return r == SQLITE_DONE ? 0 : BP_EDB;
}

/* The leader's transaction: every entry of the list, in order, or none. */
static int group_commit(sq_keyed *s, sq_pub *list, bp_error *err)
{
    int rc = sq_exec(s, "BEGIN IMMEDIATE") ? sq_failed(s, "publishing (BEGIN)", err) : 0;
    sqlite3_stmt *st = NULL;
    if (rc == 0 && !(st = sq_stmt(s, "INSERT INTO keyed_entries(key, time_ms, value) VALUES(?1,"
                                     " ?2, ?3)")))
        rc = sq_failed(s, "prepare", err);
    for (sq_pub *p = list; rc == 0 && p; p = p->next) {
        sqlite3_bind_text(st, 1, p->key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, p->t);
        sqlite3_bind_text(st, 3, p->json, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = sq_failed(s, "publishing", err);
        p->seq = sqlite3_last_insert_rowid(s->db);
        sqlite3_reset(st);
    }
    if (st)
        sq_done(s, st);
    if (rc == 0 && sq_exec(s, "COMMIT") != 0)
        rc = sq_failed(s, "publishing (COMMIT)", err);
    if (rc != 0 && !sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* Queued, then led or waited for; p->rc and p->seq say how it went. Only the publishers of a
 * finished transaction and the next leader are woken (not every waiter: on two cores the herd
 * made the groups small). */
static void group_publish(sq_keyed *s, sq_pub *p)
{
    struct sq_group *g = s->group;
    pthread_cond_init(&p->cv, NULL);
    pthread_mutex_lock(&g->lock);
    *g->tail = p;
    g->tail = &p->next;
    while (!p->done) {
        if (g->leading) {
            pthread_cond_wait(&p->cv, &g->lock);
            continue;
        }
        g->leading = true; /* take up to GROUP_MAX queued entries (ours is among them) */
        sq_pub *list = g->head, *last = list;
        for (int n = 1; n < GROUP_MAX && last->next; n++)
            last = last->next;
        g->head = last->next;
        if (!g->head)
            g->tail = &g->head;
        last->next = NULL;
        pthread_mutex_unlock(&g->lock);
        bp_error err = {0};
        int rc = group_commit(s, list, &err);
        pthread_mutex_lock(&g->lock);
        for (sq_pub *q = list, *next; q; q = next) {
            next = q->next;
            q->rc = rc;
            if (rc != 0)
                *q->err = err;
            q->done = true;
            if (q != p)
                pthread_cond_signal(&q->cv);
        }
        g->leading = false;
        if (g->head) /* the next leader */
            pthread_cond_signal(&g->head->cv);
    }
    pthread_mutex_unlock(&g->lock);
    pthread_cond_destroy(&p->cv);
}

static int sq_publish(bp_keyed *k, const char *key, const char *json, bp_keyed_entry *out,
                      bp_error *err)
{
    sq_keyed *s = (sq_keyed *)k;
    sq_pub p = {.key = key, .json = json, .t = now_ms(), .err = err};
    group_publish(s, &p);
    if (p.rc != 0 || !out)
        return p.rc;
    snprintf(out->id, sizeof(out->id), "%lld", (long long)p.seq);
    out->time_ms = p.t;
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

/* ---- following many keys: the sequence is one position for all (writes are serialised, so
 * an entry never commits below one already read) ---- */

#define FOLLOW_BATCH 512

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool sq_followed(const sq_keyed *s, const char *key)
{
    return s->fall || (s->nfkeys && bsearch(&key, s->fkeys, s->nfkeys, sizeof(*s->fkeys), by_name));
}

static int sq_follow_set(bp_keyed *k, char *const *keys, size_t n, bool all, bp_error *err)
{
    sq_keyed *s = (sq_keyed *)k;
    char **copy = n ? calloc(n, sizeof(*copy)) : NULL;
    int rc = n && !copy ? bp_error_set(err, BP_ENOMEM, "out of memory") : 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (!(copy[i] = strdup(keys[i])))
            rc = bp_error_set(err, BP_ENOMEM, "out of memory");
    if (rc == 0 && (n || all) && !s->following) { /* from the newest entry now */
        sqlite3_stmt *st = sq_stmt(s, "SELECT coalesce(max(seq), 0) FROM keyed_entries");
        int r = st ? sqlite3_step(st) : SQLITE_ERROR;
        if (r == SQLITE_ROW)
            s->fseq = sqlite3_column_int64(st, 0);
        if (st)
            sq_done(s, st);
        if (r != SQLITE_ROW)
            rc = sq_failed(s, "reading the newest entry", err);
    }
    if (rc != 0) {
        bp_keyed_keys_free(copy, n);
        return rc;
    }
    if (n)
        qsort(copy, n, sizeof(*copy), by_name);
    bp_keyed_keys_free(s->fkeys, s->nfkeys);
    s->fkeys = copy;
    s->nfkeys = n;
    s->fall = all;
    s->following = n || all;
    return 0;
}

static const char *sq_follow_after(bp_keyed *k, const char *key)
{
    sq_keyed *s = (sq_keyed *)k;
    if (!s->following || (key ? !sq_followed(s, key) : !s->fall))
        return NULL;
    snprintf(s->fpos, sizeof(s->fpos), "%lld", (long long)s->fseq);
    return s->fpos;
}

static int sq_follow_poll(bp_keyed *k, int wait_ms, bp_keyed_change_fn fn, void *ctx, bool *more,
                          bp_error *err)
{
    sq_keyed *s = (sq_keyed *)k;
    (void)wait_ms; /* no notifications in SQLite: the caller waits */
    *more = false;
    if (!s->following)
        return 0;
    sqlite3_stmt *st = sq_stmt(s, "SELECT seq, time_ms, value, key FROM keyed_entries WHERE seq >"
                                  " ?1 ORDER BY seq LIMIT ?2");
    if (!st)
        return sq_failed(s, "prepare", err);
    sqlite3_bind_int64(st, 1, s->fseq);
    sqlite3_bind_int(st, 2, FOLLOW_BATCH);
    int r, rows = 0, rc = 0;
    while (rc == 0 && (r = sqlite3_step(st)) == SQLITE_ROW) {
        rows++;
        int64_t seq = sqlite3_column_int64(st, 0);
        const char *key = (const char *)sqlite3_column_text(st, 3);
        s->fseq = seq;
        if (!key || !sq_followed(s, key))
            continue;
        bp_keyed_entry e = {.time_ms = sqlite3_column_int64(st, 1)};
        snprintf(e.id, sizeof(e.id), "%lld", (long long)seq);
        e.value = (char *)sqlite3_column_text(st, 2);
        e.value = e.value ? e.value : "null";
        rc = fn(ctx, key, &e);
    }
    if (rc == 0 && r != SQLITE_DONE)
        rc = sq_failed(s, "following entries", err);
    sq_done(s, st);
    *more = rc == 0 && rows == FOLLOW_BATCH;
    return rc;
}

static void sq_close(bp_keyed *k)
{
    sq_keyed *s = (sq_keyed *)k;
    group_put(s->group);
    bp_keyed_keys_free(s->fkeys, s->nfkeys);
    for (size_t i = 0; i < SQ_STMTS && s->sql[i]; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close(s->db);
}

static const bp_keyed_ops g_sqlite_ops = {
    .publish = sq_publish,
    .history = sq_history,
    .keys = sq_keys,
    .next = sq_next,
    .origin = "0",
    .close = sq_close,
    .follow_set = sq_follow_set,
    .follow_after = sq_follow_after,
    .follow_poll = sq_follow_poll,
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
                     /* as the SQLite output: a commit survives the process (kill -9), the
                      * WAL is synced at checkpoints; FULL synced every publication (200/s) */
                     "PRAGMA synchronous = NORMAL;"
                     "CREATE TABLE IF NOT EXISTS keyed_entries(seq INTEGER PRIMARY KEY "
                     "AUTOINCREMENT, key TEXT NOT NULL, time_ms INTEGER NOT NULL, value TEXT "
                     "NOT NULL);"
                     "CREATE INDEX IF NOT EXISTS keyed_entries_key ON keyed_entries(key, seq)",
                     NULL, NULL, NULL) != SQLITE_OK)
        return bp_error_set(err, BP_EDB, "sqlite:%s: creating keyed_entries: %s", path,
                            sqlite3_errmsg(s->db));
    if (!(s->group = group_get(path)))
        return bp_error_set(err, BP_ENOMEM, "out of memory");
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

/* ---- in-process notification (bp_keyed_watch_*) ---- */

#define WATCH_MAX 8

typedef struct watcher {
    void (*fn)(void *ctx, const char *key);
    void *ctx;
} watcher;

static pthread_mutex_t g_watch_lock = PTHREAD_MUTEX_INITIALIZER;
static watcher g_watch[WATCH_MAX];
static atomic_size_t g_nwatch; /* read without the lock: a publish with no watcher takes none */

int bp_keyed_watch_add(void (*fn)(void *ctx, const char *key), void *ctx)
{
    pthread_mutex_lock(&g_watch_lock);
    size_t n = atomic_load(&g_nwatch);
    if (n < WATCH_MAX) {
        g_watch[n] = (watcher){fn, ctx};
        atomic_store(&g_nwatch, n + 1);
    }
    pthread_mutex_unlock(&g_watch_lock);
    return n < WATCH_MAX ? 0 : BP_ENOMEM;
}

void bp_keyed_watch_remove(void (*fn)(void *ctx, const char *key), void *ctx)
{
    pthread_mutex_lock(&g_watch_lock);
    size_t n = atomic_load(&g_nwatch);
    for (size_t i = 0; i < n; i++)
        if (g_watch[i].fn == fn && g_watch[i].ctx == ctx) {
            g_watch[i] = g_watch[--n];
            atomic_store(&g_nwatch, n);
            break;
        }
    pthread_mutex_unlock(&g_watch_lock);
}

static void notify(const char *key)
{
    if (!atomic_load(&g_nwatch))
        return;
    pthread_mutex_lock(&g_watch_lock); /* held while called: remove waits for a call to end */
    for (size_t i = 0; i < atomic_load(&g_nwatch); i++)
        g_watch[i].fn(g_watch[i].ctx, key);
    pthread_mutex_unlock(&g_watch_lock);
}

int bp_keyed_follow_set(bp_keyed *k, char *const *keys, size_t n, bool all, bp_error *err)
{
    if (!k->ops->follow_set)
        return bp_error_set(err, BP_EINVAL, "%s: cannot follow keys", k->where);
    return k->ops->follow_set(k, keys, n, all, err);
}

bool bp_keyed_follow_waits(const bp_keyed *k)
{
    return k->ops->follow_waits;
}

const char *bp_keyed_follow_after(bp_keyed *k, const char *key)
{
    return k->ops->follow_after ? k->ops->follow_after(k, key) : NULL;
}

int bp_keyed_follow_poll(bp_keyed *k, int wait_ms, bp_keyed_change_fn fn, void *ctx, bool *more,
                         bp_error *err)
{
    *more = false;
    if (!k->ops->follow_poll)
        return bp_error_set(err, BP_EINVAL, "%s: cannot follow keys", k->where);
    return k->ops->follow_poll(k, wait_ms, fn, ctx, more, err);
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
    if (rc == 0)
        notify(key);
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
                /* memcpy, not snprintf: gcc -O2 cannot see that an id fits (a false
                 * -Wformat-truncation that broke the release build) */
                _Static_assert(sizeof(cursor) == sizeof(batch[i].id), "cursor holds an id");
                memcpy(cursor, batch[i].id, sizeof(cursor));
            }
            bp_keyed_entry_release(&batch[i]);
        }
    }
    return 0;
}
