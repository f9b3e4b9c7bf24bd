/* keyed.c - keyed streams (include/blockpipe/keyed.h): the checks every store shares, the
 * SQLite store, and subscribe built on each store's `next`. */
#include "blockpipe/keyed.h"

#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>

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

int bp_keyed_check_key(const bp_keyed *k, const char *key, bp_error *err)
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

/* yajl's parse events straight into its generator: the value made compact without building
 * a tree (yajl_tree_parse allocated every node; a publication paid more for that than for its
 * share of a group commit). Numbers keep their digits; strings are escaped again by yajl. */
#define GEN_OK(call) return (call) == yajl_gen_status_ok

static int on_null(void *g)
{
    GEN_OK(yajl_gen_null(g));
}

static int on_bool(void *g, int b)
{
    GEN_OK(yajl_gen_bool(g, b));
}

static int on_number(void *g, const char *s, size_t n)
{
    GEN_OK(yajl_gen_number(g, s, n));
}

static int on_string(void *g, const unsigned char *s, size_t n)
{
    GEN_OK(yajl_gen_string(g, s, n));
}

static int on_map_open(void *g)
{
    GEN_OK(yajl_gen_map_open(g));
}

static int on_map_close(void *g)
{
    GEN_OK(yajl_gen_map_close(g));
}

static int on_array_open(void *g)
{
    GEN_OK(yajl_gen_array_open(g));
}

static int on_array_close(void *g)
{
    GEN_OK(yajl_gen_array_close(g));
}

static const yajl_callbacks g_compact = {
    .yajl_null = on_null,
    .yajl_boolean = on_bool,
    .yajl_number = on_number,
    .yajl_string = on_string,
    .yajl_start_map = on_map_open,
    .yajl_map_key = on_string,
    .yajl_end_map = on_map_close,
    .yajl_start_array = on_array_open,
    .yajl_end_array = on_array_close,
};

/* json checked and made compact (one line: what subscribers and the CLI print), malloc'd. */
int bp_keyed_compact_json(const bp_keyed *k, const char *json, char **out, bp_error *err)
{
    *out = NULL;
    if (!json)
        return bp_error_set(err, BP_EINVAL, "%s: the value is not JSON: (none)", k->where);
    yajl_gen g = yajl_gen_alloc(NULL);
    yajl_handle h = g ? yajl_alloc(&g_compact, NULL, g) : NULL;
    if (!h) {
        yajl_gen_free(g);
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    yajl_config(h, yajl_allow_comments, 1); /* as yajl_tree_parse did */
    size_t n = strlen(json);
    yajl_status st = yajl_parse(h, (const unsigned char *)json, n);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    const unsigned char *text = NULL;
    size_t len = 0;
    int rc = 0;
    if (st != yajl_status_ok) {
        unsigned char *msg = yajl_get_error(h, 1, (const unsigned char *)json, n);
        const char *m = msg ? (const char *)msg : "cannot be parsed";
        rc = bp_error_set(err, BP_EINVAL, "%s: the value is not JSON: %.*s", k->where,
                          (int)strcspn(m, "\n"), m);
        if (msg)
            yajl_free_error(h, msg);
    } else if (yajl_gen_get_buf(g, &text, &len) != yajl_gen_status_ok ||
               !(*out = strndup((const char *)text, len))) {
        rc = bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    yajl_free(h);
    yajl_gen_free(g);
    return rc;
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
    bp_keyed_group *group; /* the file's publishers in this process */
    int wal_pages;         /* in the WAL after this connection's last commit */
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

/* ---- publishing: group commit (keyed_group.c) ----
 * The handles of one file in this process publish through one group: a leader inserts every
 * queued entry in one transaction on its own connection, and each publisher returns after the
 * COMMIT that holds its entry (as durable as a transaction of its own); the entries of a key
 * commit in the order their publishers queued them. */

static int sq_exec(sq_keyed *s, const char *sql)
{
    sqlite3_stmt *st = sq_stmt(s, sql);
    int r = st ? sqlite3_step(st) : SQLITE_ERROR;
    if (st)
        sq_done(s, st);
    return r == SQLITE_DONE ? 0 : BP_EDB;
}

/* WAL checkpoints: mostly not in COMMIT (SQLite's automatic checkpoint ran in the leader's
 * COMMIT, so every publisher of the file waited for its fsyncs: 40 ms stalls, most of the time
 * of a run), but by the leader after its group was released, PASSIVE (the next group commits
 * meanwhile; a checkpoint under way elsewhere makes it return at once: the next one tries).
 * Such a checkpoint rarely catches up with the writers, and the WAL only starts again from
 * its beginning once every frame is copied: past WAL_BOUND_PAGES the leader checkpoints before
 * it releases the group (the 32-publisher bench's WAL grew past 360 MB without that). */
#define CHECKPOINT_PAGES 1000 /* SQLite's automatic checkpoint's */
#define WAL_BOUND_PAGES 4000  /* 16 MB of 4 KiB pages */

static int on_wal(void *ctx, sqlite3 *db, const char *name, int pages)
{
    (void)db;
    (void)name;
    ((sq_keyed *)ctx)->wal_pages = pages;
    return SQLITE_OK;
}

/* The leader's transaction: every entry of the list, in order, or none. */
static int sq_commit(bp_keyed *k, bp_keyed_pub *list, size_t n, bp_error *err)
{
    sq_keyed *s = (sq_keyed *)k;
    (void)n;
    int rc = sq_exec(s, "BEGIN IMMEDIATE") ? sq_failed(s, "publishing (BEGIN)", err) : 0;
    sqlite3_stmt *st = NULL;
    if (rc == 0 && !(st = sq_stmt(s, "INSERT INTO keyed_entries(key, time_ms, value) VALUES(?1,"
                                     " ?2, ?3)")))
        rc = sq_failed(s, "prepare", err);
    for (bp_keyed_pub *p = list; rc == 0 && p; p = p->next) {
        sqlite3_bind_text(st, 1, p->key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, p->time_ms);
        sqlite3_bind_text(st, 3, p->json, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = sq_failed(s, "publishing", err);
        snprintf(p->id, sizeof(p->id), "%lld", (long long)sqlite3_last_insert_rowid(s->db));
        sqlite3_reset(st);
    }
    if (st)
        sq_done(s, st);
    if (rc == 0 && sq_exec(s, "COMMIT") != 0)
        rc = sq_failed(s, "publishing (COMMIT)", err);
    if (rc != 0 && !sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    if (rc == 0 && s->wal_pages >= WAL_BOUND_PAGES) { /* no writer of ours meanwhile */
        s->wal_pages = 0;
        sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    }
    return rc;
}

static int sq_publish(bp_keyed *k, const char *key, const char *json, bp_keyed_entry *out,
                      bp_error *err)
{
    sq_keyed *s = (sq_keyed *)k;
    bp_keyed_pub p = {.key = key, .json = json, .time_ms = now_ms(), .err = err};
    bp_keyed_group_publish(s->group, k, sq_commit, &p);
    if (s->wal_pages >= CHECKPOINT_PAGES) { /* we led a commit that filled the WAL */
        s->wal_pages = 0;
        sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    }
    if (p.rc != 0 || !out)
        return p.rc;
    memcpy(out->id, p.id, sizeof(out->id));
    out->time_ms = p.time_ms;
    out->value = strdup(json);
    return out->value ? 0 : bp_error_set(err, BP_ENOMEM, "out of memory");
}

/* An asynchronous round's publications (bp_keyed_poll): one transaction, as a group's. */
static int sq_commit_async(bp_keyed *k, bp_keyed_pub *list, size_t n, bp_error *err)
{
    sq_keyed *s = (sq_keyed *)k;
    int rc = sq_commit(k, list, n, err);
    if (s->wal_pages >= CHECKPOINT_PAGES) {
        s->wal_pages = 0;
        sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    }
    return rc;
}

static int sq_history(bp_keyed *k, const char *key, size_t max, bp_keyed_entry *out, size_t *n,
                      bp_error *err)
{
    return sq_rows((sq_keyed *)k,
                   "SELECT seq, time_ms, value FROM keyed_entries WHERE key = ?1 AND seq > ?2"
                   " ORDER BY seq DESC LIMIT ?3",
                   key, 0, max, out, n, err);
}

/* An asynchronous round's reads: each its own SELECT (no round trip to share). */
static int sq_read_async(bp_keyed *k, bp_keyed_pub *list, size_t n, bp_error *err)
{
    (void)n;
    (void)err;
    for (bp_keyed_pub *p = list; p; p = p->next)
        p->rc = sq_history(k, p->key, p->max, p->out, &p->n, p->err);
    return 0;
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
    bp_keyed_group_put(s->group);
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
    .commit = sq_commit_async,
    .read = sq_read_async,
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
    sqlite3_wal_hook(s->db, on_wal, s); /* in place of the automatic checkpoint */
    /* the file's real path: two spellings of one file share the group */
    char *real = realpath(path, NULL), name[PATH_MAX + 16];
    snprintf(name, sizeof(name), "sqlite:%s", real ? real : path);
    free(real);
    if (!(s->group = bp_keyed_group_get(name)))
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
    bp_keyed_async_cancel(k);
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

void bp_keyed_notify(const char *key)
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
    int rc = bp_keyed_check_key(k, key, err);
    if (rc == 0)
        rc = bp_keyed_compact_json(k, json, &compact, err);
    if (rc == 0)
        rc = k->ops->publish(k, key, compact, out, err);
    free(compact);
    if (rc == 0)
        bp_keyed_notify(key);
    return rc;
}

int bp_keyed_latest(bp_keyed *k, const char *key, bp_keyed_entry *out, bool *found, bp_error *err)
{
    size_t n = 0;
    memset(out, 0, sizeof(*out));
    int rc = bp_keyed_check_key(k, key, err);
    if (rc == 0)
        rc = k->ops->history(k, key, 1, out, &n, err);
    *found = rc == 0 && n == 1;
    return rc;
}

int bp_keyed_history(bp_keyed *k, const char *key, size_t max, bp_keyed_entry *out, size_t *n,
                     bp_error *err)
{
    *n = 0;
    int rc = bp_keyed_check_key(k, key, err);
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
    int rc = bp_keyed_check_key(k, key, err);
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
