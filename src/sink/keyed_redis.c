/* keyed_redis.c - the Redis store of keyed streams (include/blockpipe/keyed.h): a stream
 * {prefix}kv:{key} per key, entries with one field v (the JSON value), trimmed with
 * XADD MAXLEN ~ maxlen, and the set {prefix}kv:keys of the keys that have entries, written in
 * one MULTI/EXEC per group of publications (keyed_group.c) or per asynchronous round
 * (keyed_async.c; a server that refuses scripts: the keys listed one round trip later);
 * concurrent reads share a pipeline. The Redis output's URL parameters (prefix, maxlen, timeout,
 * tls_*) and connection apply. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sink/keyed_internal.h"
#include "sink/redis_conn.h"
#include "sink/registry.h"
#include "util/buf.h"

typedef struct rd_keyed {
    bp_keyed base;
    bp_redis_target t;
    bp_redis *c;
    char *prefix, *set_key;
    char maxlen[24];
    /* Following (bp_keyed_follow_*): a position per followed key, its stream's last id. */
    char **fkeys;
    char (*fcur)[48];
    size_t nf;
    bool fall;
    int64_t frefreshed_ms; /* when every key was last listed (following all) */
    bp_keyed_group *group; /* the publishers of this URL in this process */
    bp_keyed_group *reads; /* and its readers */
    bp_buf sk;             /* a stream key (publishing, reading) */
    bool no_eval;          /* the server refuses scripts: commit_unscripted */
} rd_keyed;

static char *stream_key(rd_keyed *s, const char *key)
{
    size_t n = strlen(s->prefix) + 3 + strlen(key) + 1;
    char *out = malloc(n);
    if (out)
        snprintf(out, n, "%skv:%s", s->prefix, key);
    return out;
}

/* A connection (a new one after a lost one). */
static int conn(rd_keyed *s, bp_error *err)
{
    return s->c ? 0 : bp_redis_connect(&s->t, &s->c, err);
}

/* After a transport error or timeout the connection is dropped: the next call makes another. */
static int settle_conn(rd_keyed *s, int rc)
{
    if (bp_error_is_transient(rc)) {
        bp_redis_free(s->c);
        s->c = NULL;
    }
    return rc;
}

/* A read: one command, its reply; tried again once on a new connection. */
static int read_call(rd_keyed *s, int argc, const char *const *argv, const redisReply **r,
                     bp_error *err)
{
    int rc = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        rc = conn(s, err);
        if (rc == 0)
            rc = bp_redis_call(s->c, argc, argv, r, err);
        if (settle_conn(s, rc) == 0 || !bp_error_is_transient(rc))
            return rc;
    }
    return rc;
}

/* A reply that is not what was expected: BP_EDB naming it. */
static int refused(rd_keyed *s, const char *what, const redisReply *r, bp_error *err)
{
    char text[512];
    return bp_error_set(err, BP_EDB, "%s: %s: %s", s->base.where, what,
                        bp_redis_reply_text(r, text, sizeof(text)));
}

/* One stream entry [id, [v, value]] into e. */
static int entry_of(rd_keyed *s, const redisReply *ent, bp_keyed_entry *e, bp_error *err)
{
    if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2 ||
        ent->element[0]->type != REDIS_REPLY_STRING || ent->element[1]->type != REDIS_REPLY_ARRAY ||
        ent->element[1]->elements < 2)
        return refused(s, "a stream entry", ent, err);
    const redisReply *id = ent->element[0], *v = ent->element[1]->element[1];
    snprintf(e->id, sizeof(e->id), "%.*s", (int)(id->len < 47 ? id->len : 47), id->str);
    e->time_ms = strtoll(e->id, NULL, 10); /* the id's ms part: the server's clock */
    e->value = strndup(v->str ? v->str : "null", v->str ? v->len : 4);
    return e->value ? 0 : bp_error_set(err, BP_ENOMEM, "out of memory");
}

static int entries_of(rd_keyed *s, const redisReply *arr, size_t max, bp_keyed_entry *out,
                      size_t *n, bp_error *err)
{
    *n = 0;
    if (arr->type == REDIS_REPLY_NIL)
        return 0;
    if (arr->type != REDIS_REPLY_ARRAY)
        return refused(s, "reading entries", arr, err);
    for (size_t i = 0; i < arr->elements && *n < max; i++) {
        int rc = entry_of(s, arr->element[i], &out[*n], err);
        if (rc != 0) { /* none handed back: the caller frees only what it is told it has */
            while (*n > 0)
                bp_keyed_entry_release(&out[--(*n)]);
            return rc;
        }
        (*n)++;
    }
    return 0;
}

/* The SADD of a group's keys, after their XADDs in the same MULTI/EXEC: only the keys whose
 * stream exists - a publication refused (its key held by another type) must not list its key,
 * which has no entry. MULTI alone cannot make a command depend on another's outcome; a script
 * for the whole group (each XADD through Lua) cost the server 1.5x as much a publication.
 * KEYS[1] the key set, KEYS[2..] the group's streams; ARGV[1] where the key starts in a
 * stream's name. */
static const char g_list_lua[] = "local cut, members = tonumber(ARGV[1]), {}\n"
                                 "for i = 2, #KEYS do\n"
                                 "  if redis.call('TYPE', KEYS[i]).ok == 'stream' then\n"
                                 "    members[#members + 1] = string.sub(KEYS[i], cut)\n"
                                 "  end\n"
                                 "end\n"
                                 "if #members == 0 then return 0 end\n"
                                 "return redis.call('SADD', KEYS[1], unpack(members))\n";

/* The stream of key into s->sk. */
static int stream_key_buf(rd_keyed *s, const char *key)
{
    bp_buf_reset(&s->sk);
    int rc = bp_buf_append(&s->sk, s->prefix, strlen(s->prefix));
    rc |= bp_buf_append(&s->sk, "kv:", 3);
    return rc | bp_buf_append(&s->sk, key, strlen(key));
}

/* An XADD for each entry of list, in order. */
static int queue_xadds(rd_keyed *s, const bp_keyed_pub *list)
{
    int rc = 0;
    for (const bp_keyed_pub *p = list; p && rc == 0; p = p->next) {
        rc |= stream_key_buf(s, p->key);
        rc |= bp_redis_cmd_begin(s->c, 8);
        rc |= bp_redis_arg_str(s->c, "XADD");
        rc |= bp_redis_arg(s->c, s->sk.data, s->sk.len);
        rc |= bp_redis_arg_str(s->c, "MAXLEN");
        rc |= bp_redis_arg_str(s->c, "~");
        rc |= bp_redis_arg_str(s->c, s->maxlen);
        rc |= bp_redis_arg_str(s->c, "*");
        rc |= bp_redis_arg_str(s->c, "v");
        rc |= bp_redis_arg_str(s->c, p->json);
    }
    return rc;
}

/* Whether p names another key than the entry before it (the keys of a list, each run once). */
static bool new_key(const bp_keyed_pub *prev, const bp_keyed_pub *p)
{
    return !prev || strcmp(p->key, prev->key) != 0;
}

/* A queued pipeline that could not be built (out of memory): dropped with its connection. */
static int unqueued(rd_keyed *s, bp_error *err)
{
    settle_conn(s, BP_ETRANSPORT);
    return bp_error_set(err, BP_ENOMEM, "out of memory");
}

/* Each entry's outcome from the XADD replies xadds[0..): its id, or its own error. */
static void xadd_outcomes(rd_keyed *s, bp_keyed_pub *list, redisReply *const *xadds)
{
    size_t i = 0;
    for (bp_keyed_pub *p = list; p; p = p->next, i++) {
        const redisReply *id = xadds[i];
        if (id->type != REDIS_REPLY_STRING) {
            p->rc = refused(s, "publishing", id, p->err);
            continue;
        }
        snprintf(p->id, sizeof(p->id), "%.*s", (int)(id->len < 47 ? id->len : 47), id->str);
        p->time_ms = strtoll(p->id, NULL, 10); /* the id's ms part: the server's clock */
    }
}

#define AGAIN 1 /* a commit that changed nothing and is to be made again (without scripts) */

/* SADD of the keys of list whose XADD was stored (after a script that was to list them did not
 * run): a stream holds their entry now. Its failure is every stored entry's. */
static void list_stored(rd_keyed *s, bp_keyed_pub *list)
{
    size_t nkeys = 0;
    for (bp_keyed_pub *p = list; p; p = p->next)
        nkeys += p->rc == 0;
    if (!nkeys)
        return;
    int rc = bp_redis_cmd_begin(s->c, 2 + (int)nkeys);
    rc |= bp_redis_arg_str(s->c, "SADD");
    rc |= bp_redis_arg_str(s->c, s->set_key);
    for (bp_keyed_pub *p = list; p && rc == 0; p = p->next)
        if (p->rc == 0)
            rc |= bp_redis_arg(s->c, p->key, strlen(p->key));
    bp_error err = {0};
    rc = rc ? unqueued(s, &err) : settle_conn(s, bp_redis_exchange(s->c, &err));
    const redisReply *r = rc == 0 ? bp_redis_reply(s->c, 0) : NULL;
    if (rc == 0 && r->type != REDIS_REPLY_INTEGER)
        rc = refused(s, "listing the keys published", r, &err);
    for (bp_keyed_pub *p = list; p && rc != 0; p = p->next)
        if (p->rc == 0) {
            p->rc = rc;
            *p->err = err;
            bp_error_prefix(p->err, "stored, but its key is not listed: ");
        }
}

/* The group's entries in one MULTI/EXEC, one pipeline: an XADD each, in order, then the SADD
 * of the keys that have a stream (g_list_lua; a key repeated from the entry before named
 * once). The XADD's reply is each entry's outcome; a lost connection is every entry's (not
 * sent again: it may have been published). A server that refuses the script (EVAL is queued,
 * so the whole transaction is discarded) is published to without it from then on. */
static int commit_scripted(rd_keyed *s, bp_keyed_pub *list, size_t n, bp_error *err)
{
    size_t nkeys = 0;
    for (bp_keyed_pub *p = list, *prev = NULL; p; prev = p, p = p->next)
        nkeys += new_key(prev, p);
    int rc = bp_redis_cmd(s->c, 1, (const char *[]){"MULTI"}, NULL);
    rc |= queue_xadds(s, list);
    rc |= bp_redis_cmd_begin(s->c, 5 + (int)nkeys);
    rc |= bp_redis_arg_str(s->c, "EVAL");
    rc |= bp_redis_arg_str(s->c, g_list_lua);
    rc |= bp_redis_arg_u64(s->c, nkeys + 1);
    rc |= bp_redis_arg_str(s->c, s->set_key);
    for (bp_keyed_pub *p = list, *prev = NULL; p && rc == 0; prev = p, p = p->next)
        if (new_key(prev, p)) {
            rc |= stream_key_buf(s, p->key);
            rc |= bp_redis_arg(s->c, s->sk.data, s->sk.len);
        }
    rc |= bp_redis_arg_u64(s->c, strlen(s->prefix) + 4);
    rc |= bp_redis_cmd(s->c, 1, (const char *[]){"EXEC"}, NULL);
    if (rc != 0)
        return unqueued(s, err);
    if ((rc = bp_redis_exchange(s->c, err)) != 0)
        return settle_conn(s, rc);                     /* not again: it may have been published */
    const redisReply *r = bp_redis_reply(s->c, n + 2); /* MULTI, n XADD, EVAL, EXEC */
    if (r && r->type == REDIS_REPLY_ERROR && bp_redis_script_refused(bp_redis_reply(s->c, n + 1))) {
        s->no_eval = true; /* EXECABORT: nothing was done */
        return AGAIN;
    }
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != n + 1)
        return refused(s, "publishing", r ? r : bp_redis_reply(s->c, 1), err);
    xadd_outcomes(s, list, r->element);
    if (r->element[n]->type == REDIS_REPLY_ERROR) { /* the script was refused as it ran */
        s->no_eval = bp_redis_script_refused(r->element[n]);
        list_stored(s, list);
    }
    return 0;
}

/* Without scripts: the MULTI/EXEC of the XADDs, then (a second round trip) the SADD of the
 * keys whose XADD was stored (list_stored), so a key whose XADD is refused is never listed.
 * Until that SADD a stored entry's key is not listed yet (a process killed in between leaves
 * it unlisted until its key's next publication). Checking the types under WATCH first and
 * listing in the same EXEC was exact, but publishers of one key on other connections (other
 * processes, asynchronous handles) changed the watched streams before nearly every EXEC. */
static int commit_unscripted(rd_keyed *s, bp_keyed_pub *list, size_t n, bp_error *err)
{
    int rc = bp_redis_cmd(s->c, 1, (const char *[]){"MULTI"}, NULL);
    rc |= queue_xadds(s, list);
    rc |= bp_redis_cmd(s->c, 1, (const char *[]){"EXEC"}, NULL);
    if (rc != 0)
        return unqueued(s, err);
    if ((rc = bp_redis_exchange(s->c, err)) != 0)
        return settle_conn(s, rc);                     /* not again: it may have been published */
    const redisReply *r = bp_redis_reply(s->c, n + 1); /* MULTI, n XADD, EXEC */
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != n)
        return refused(s, "publishing", r ? r : bp_redis_reply(s->c, 1), err);
    xadd_outcomes(s, list, r->element);
    list_stored(s, list);
    return 0;
}

static int rd_commit(bp_keyed *k, bp_keyed_pub *list, size_t n, bp_error *err)
{
    rd_keyed *s = (rd_keyed *)k;
    int rc = conn(s, err);
    if (rc == 0 && !s->no_eval && (rc = commit_scripted(s, list, n, err)) != AGAIN)
        return rc;
    return rc == 0 || rc == AGAIN ? commit_unscripted(s, list, n, err) : rc;
}

/* The group's reads in one pipeline: an XREVRANGE each, sent in one write, every reply read in
 * one exchange; each reply is its reader's outcome. Reads are tried again once on a new
 * connection after a lost one (they change nothing). */
static int rd_read_batch(bp_keyed *k, bp_keyed_pub *list, size_t n, bp_error *err)
{
    rd_keyed *s = (rd_keyed *)k;
    (void)n;
    int rc = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        rc = conn(s, err);
        for (bp_keyed_pub *p = list; p && rc == 0; p = p->next) {
            rc = stream_key_buf(s, p->key);
            rc |= bp_redis_cmd_begin(s->c, 6);
            rc |= bp_redis_arg_str(s->c, "XREVRANGE");
            rc |= bp_redis_arg(s->c, s->sk.data, s->sk.len);
            rc |= bp_redis_arg_str(s->c, "+");
            rc |= bp_redis_arg_str(s->c, "-");
            rc |= bp_redis_arg_str(s->c, "COUNT");
            rc |= bp_redis_arg_u64(s->c, p->max);
            if (rc != 0) {
                settle_conn(s, BP_ETRANSPORT); /* a half-queued pipeline */
                return bp_error_set(err, BP_ENOMEM, "out of memory");
            }
        }
        if (rc == 0)
            rc = bp_redis_exchange(s->c, err);
        if (settle_conn(s, rc) == 0 || !bp_error_is_transient(rc))
            break;
    }
    if (rc != 0)
        return rc;
    size_t i = 0;
    for (bp_keyed_pub *p = list; p; p = p->next, i++)
        p->rc = entries_of(s, bp_redis_reply(s->c, i), p->max, p->out, &p->n, p->err);
    return 0;
}

static int rd_publish(bp_keyed *k, const char *key, const char *json, bp_keyed_entry *out,
                      bp_error *err)
{
    rd_keyed *s = (rd_keyed *)k;
    bp_keyed_pub p = {.key = key, .json = json, .err = err};
    bp_keyed_group_publish(s->group, k, rd_commit, &p);
    if (p.rc != 0 || !out)
        return p.rc;
    memcpy(out->id, p.id, sizeof(out->id));
    out->time_ms = p.time_ms;
    out->value = strdup(json);
    return out->value ? 0 : bp_error_set(err, BP_ENOMEM, "out of memory");
}

static int rd_history(bp_keyed *k, const char *key, size_t max, bp_keyed_entry *out, size_t *n,
                      bp_error *err)
{
    rd_keyed *s = (rd_keyed *)k;
    bp_keyed_pub p = {.key = key, .max = max, .out = out, .err = err};
    bp_keyed_group_publish(s->reads, k, rd_read_batch, &p);
    *n = p.n;
    return p.rc;
}

static int rd_keys(bp_keyed *k, char ***keys, size_t *n, bp_error *err)
{
    rd_keyed *s = (rd_keyed *)k;
    const redisReply *r = NULL;
    *keys = NULL;
    *n = 0;
    int rc = read_call(s, 2, (const char *[]){"SMEMBERS", s->set_key}, &r, err);
    if (rc != 0)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY)
        return refused(s, "SMEMBERS", r, err);
    *keys = calloc(r->elements ? r->elements : 1, sizeof(**keys));
    if (!*keys)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    for (size_t i = 0; i < r->elements; i++) {
        if (!((*keys)[*n] = strndup(r->element[i]->str, r->element[i]->len)))
            return bp_error_set(err, BP_ENOMEM, "out of memory");
        (*n)++;
    }
    return 0;
}

static int rd_next(bp_keyed *k, const char *key, const char *after, size_t max, int wait_ms,
                   bp_keyed_entry *out, size_t *n, bp_error *err)
{
    rd_keyed *s = (rd_keyed *)k;
    char count[24], block[24], *sk = stream_key(s, key);
    snprintf(count, sizeof(count), "%zu", max);
    snprintf(block, sizeof(block), "%d", wait_ms);
    const redisReply *r = NULL;
    *n = 0;
    int rc = sk ? read_call(s, 8,
                            (const char *[]){"XREAD", "COUNT", count, "BLOCK", block, "STREAMS", sk,
                                             after},
                            &r, err)
                : bp_error_set(err, BP_ENOMEM, "out of memory");
    free(sk);
    if (rc != 0 || r->type == REDIS_REPLY_NIL)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 1 || r->element[0]->elements != 2)
        return refused(s, "XREAD", r, err);
    return entries_of(s, r->element[0]->element[1], max, out, n, err);
}

/* ---- following many keys: XREAD BLOCK over their streams, a position per key ---- */

#define FOLLOW_COUNT "256"
#define REFRESH_MS 1000

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static ssize_t find_key(char *const *keys, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(keys[i], key) == 0)
            return (ssize_t)i;
    return -1;
}

/* The id of key's newest entry now ("0-0": none) into id. */
static int newest_id(rd_keyed *s, const char *key, char *id, bp_error *err)
{
    bp_keyed_entry e = {0};
    size_t n = 0;
    int rc = rd_history(&s->base, key, 1, &e, &n, err);
    snprintf(id, 48, "%s", rc == 0 && n ? e.id : "0-0");
    bp_keyed_entry_release(&e);
    return rc;
}

/* names[0..*n) += the keys of the set (following all), without those named already. */
static int add_members(rd_keyed *s, char ***names, size_t *n, size_t *cap, bp_error *err)
{
    char **members = NULL;
    size_t m = 0;
    int rc = rd_keys(&s->base, &members, &m, err);
    for (size_t i = 0; rc == 0 && i < m; i++) {
        if (find_key(*names, *n, members[i]) >= 0)
            continue;
        if (*n == *cap) {
            char **p = realloc(*names, (*cap = *cap * 2 + 16) * sizeof(*p));
            if (!p) {
                rc = bp_error_set(err, BP_ENOMEM, "out of memory");
                break;
            }
            *names = p;
        }
        (*names)[(*n)++] = members[i];
        members[i] = NULL;
    }
    bp_keyed_keys_free(members, m);
    return rc;
}

static int rd_follow_set(bp_keyed *k, char *const *keys, size_t n, bool all, bp_error *err)
{
    rd_keyed *s = (rd_keyed *)k;
    size_t cap = n + s->nf + 16, nn = 0;
    char **names = calloc(cap, sizeof(*names));
    int rc = names ? 0 : bp_error_set(err, BP_ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (find_key(names, nn, keys[i]) < 0 && !(names[nn++] = strdup(keys[i])))
            rc = bp_error_set(err, BP_ENOMEM, "out of memory");
    size_t named = nn;
    bool listing = all && (!s->fall || mono_ms() - s->frefreshed_ms >= REFRESH_MS);
    if (rc == 0 && listing)
        rc = add_members(s, &names, &nn, &cap, err);
    else if (rc == 0 && all) /* listed less than a second ago: the keys followed then */
        for (size_t i = 0; rc == 0 && i < s->nf; i++)
            if (find_key(names, nn, s->fkeys[i]) < 0 && !(names[nn++] = strdup(s->fkeys[i])))
                rc = bp_error_set(err, BP_ENOMEM, "out of memory");
    char(*cur)[48] = rc == 0 ? calloc(nn ? nn : 1, sizeof(*cur)) : NULL;
    if (rc == 0 && !cur)
        rc = bp_error_set(err, BP_ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < nn; i++) {
        ssize_t old = find_key(s->fkeys, s->nf, names[i]);
        if (old >= 0)
            memcpy(cur[i], s->fcur[old], sizeof(cur[i]));
        else if (s->fall && listing && i >= named) /* not in the set a second ago: all is new */
            snprintf(cur[i], sizeof(cur[i]), "0-0");
        else
            rc = newest_id(s, names[i], cur[i], err);
    }
    if (rc != 0) {
        bp_keyed_keys_free(names, nn);
        free(cur);
        return rc;
    }
    if (listing)
        s->frefreshed_ms = mono_ms();
    bp_keyed_keys_free(s->fkeys, s->nf);
    free(s->fcur);
    s->fkeys = names;
    s->fcur = cur;
    s->nf = nn;
    s->fall = all;
    return 0;
}

static const char *rd_follow_after(bp_keyed *k, const char *key)
{
    rd_keyed *s = (rd_keyed *)k;
    if (!key)
        return s->fall ? "" : NULL;
    ssize_t i = find_key(s->fkeys, s->nf, key);
    return i >= 0 ? s->fcur[i] : NULL;
}

/* One stream of an XREAD reply: [name, [entries]]. */
static int follow_stream(rd_keyed *s, const redisReply *st, bp_keyed_change_fn fn, void *ctx,
                         bool *more, bp_error *err)
{
    if (st->type != REDIS_REPLY_ARRAY || st->elements != 2 ||
        st->element[0]->type != REDIS_REPLY_STRING || st->element[1]->type != REDIS_REPLY_ARRAY)
        return refused(s, "XREAD", st, err);
    size_t plen = strlen(s->prefix) + 3;
    const redisReply *name = st->element[0], *list = st->element[1];
    ssize_t i = -1;
    for (size_t j = 0; name->len >= plen && j < s->nf && i < 0; j++)
        if (strlen(s->fkeys[j]) == name->len - plen &&
            memcmp(s->fkeys[j], name->str + plen, name->len - plen) == 0)
            i = (ssize_t)j;
    if (i < 0)
        return refused(s, "XREAD: a stream not asked for", name, err);
    *more |= list->elements >= (size_t)atoi(FOLLOW_COUNT);
    int rc = 0;
    for (size_t j = 0; rc == 0 && j < list->elements; j++) {
        bp_keyed_entry e = {0};
        rc = entry_of(s, list->element[j], &e, err);
        if (rc == 0) {
            memcpy(s->fcur[i], e.id, sizeof(s->fcur[i]));
            rc = fn(ctx, s->fkeys[i], &e);
        }
        bp_keyed_entry_release(&e);
    }
    return rc;
}

static int rd_follow_poll(bp_keyed *k, int wait_ms, bp_keyed_change_fn fn, void *ctx, bool *more,
                          bp_error *err)
{
    rd_keyed *s = (rd_keyed *)k;
    *more = false;
    if (!s->nf)
        return 0;
    int argc = 6 + 2 * (int)s->nf, rc = 0;
    const char **argv = calloc((size_t)argc, sizeof(*argv));
    char block[24];
    snprintf(block, sizeof(block), "%d", wait_ms > 0 ? wait_ms : 1);
    if (!argv)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    argv[0] = "XREAD", argv[1] = "COUNT", argv[2] = FOLLOW_COUNT, argv[3] = "BLOCK";
    argv[4] = block, argv[5] = "STREAMS";
    for (size_t i = 0; rc == 0 && i < s->nf; i++) {
        argv[6 + s->nf + i] = s->fcur[i];
        if (!(argv[6 + i] = stream_key(s, s->fkeys[i])))
            rc = bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    const redisReply *r = NULL;
    if (rc == 0)
        rc = read_call(s, argc, argv, &r, err);
    if (rc == 0 && r->type != REDIS_REPLY_NIL && r->type != REDIS_REPLY_ARRAY)
        rc = refused(s, "XREAD", r, err);
    for (size_t i = 0; rc == 0 && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        rc = follow_stream(s, r->element[i], fn, ctx, more, err);
    for (size_t i = 0; i < s->nf; i++)
        free((char *)argv[6 + i]);
    free(argv);
    return rc;
}

static void rd_close(bp_keyed *k)
{
    rd_keyed *s = (rd_keyed *)k;
    bp_keyed_keys_free(s->fkeys, s->nf);
    free(s->fcur);
    bp_keyed_group_put(s->group);
    bp_keyed_group_put(s->reads);
    bp_buf_release(&s->sk);
    bp_redis_free(s->c);
    bp_redis_target_release(&s->t);
    free(s->prefix);
    free(s->set_key);
}

static const bp_keyed_ops g_redis_ops = {
    .publish = rd_publish,
    .history = rd_history,
    .keys = rd_keys,
    .next = rd_next,
    .origin = "0-0",
    .close = rd_close,
    .follow_set = rd_follow_set,
    .follow_after = rd_follow_after,
    .follow_poll = rd_follow_poll,
    .follow_waits = true,
    .commit = rd_commit,
    .read = rd_read_batch,
};

int bp_keyed_redis_open(const char *url, bp_keyed **out, bp_error *err)
{
    rd_keyed *s = calloc(1, sizeof(*s));
    if (!s)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    s->base.ops = &g_redis_ops;
    *out = &s->base;
    bp_buf_init(&s->sk, 0);
    /* the whole URL: the same store, same rules (reads: a name no URL has) */
    size_t ulen = strlen(url);
    char *rname = malloc(ulen + 7);
    if (rname)
        snprintf(rname, ulen + 7, "reads %s", url);
    s->group = bp_keyed_group_get(url);
    s->reads = rname ? bp_keyed_group_get(rname) : NULL;
    free(rname);
    if (!s->group || !s->reads)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    bp_sink_resolved r;
    int rc = bp_sink_resolve(url, NULL, &r, err);
    if (rc != 0)
        return rc;
    const bp_sink_opts *o = &r.opts;
    rc = bp_redis_target_init(&s->t, r.target.data, strcasecmp(o->scheme, "rediss") == 0, err);
    const char *prefix = bp_sink_opt(o, "prefix");
    s->prefix = strdup(prefix ? prefix : "blockpipe:");
    s->set_key = s->prefix ? malloc(strlen(s->prefix) + 8) : NULL;
    if (rc == 0 && !s->set_key)
        rc = bp_error_set(err, BP_ENOMEM, "out of memory");
    if (rc == 0) {
        snprintf(s->set_key, strlen(s->prefix) + 8, "%skv:keys", s->prefix);
        long long maxlen = bp_sink_opt_int(o, "maxlen");
        snprintf(s->maxlen, sizeof(s->maxlen), "%lld", maxlen > 0 ? maxlen : 1000000000000LL);
        s->t.timeout_ms = (int)bp_sink_opt_int(o, "timeout") * 1000 + 2000; /* > XREAD's block */
        s->t.keepalive_s = (int)bp_sink_opt_int(o, "keepalive");
        const char *ca = bp_sink_opt(o, "tls_ca"), *cert = bp_sink_opt(o, "tls_cert"),
                   *key = bp_sink_opt(o, "tls_key");
        s->t.tls_ca = ca ? strdup(ca) : NULL;
        s->t.tls_cert = cert ? strdup(cert) : NULL;
        s->t.tls_key = key ? strdup(key) : NULL;
        rc = bp_redis_connect(&s->t, &s->c, err);
    }
    bp_sink_resolved_release(&r);
    return rc;
}
