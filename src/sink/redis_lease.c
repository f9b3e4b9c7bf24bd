/* redis_lease.c - the Redis output's per-chain writer leases (redis_lease.h). */
#include "sink/redis_lease.h"

#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/holder.h"
#include "util/log.h"

/* PEXPIRE / DEL / SET only when the value is the one expected: one round trip, atomic. */
#define RENEW                                                                                      \
    "if redis.call('get', KEYS[1]) == ARGV[1] then "                                               \
    "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
#define RELEASE                                                                                    \
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) "             \
    "else return 0 end"
#define TAKEOVER                                                                                   \
    "if redis.call('get', KEYS[1]) == ARGV[1] then "                                               \
    "redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 else return 0 end"

static atomic_uint g_serial; /* tells this process's leases apart */

void bp_redis_leases_init(bp_redis_leases *l, const bp_redis_target *t, long long ttl_ms)
{
    memset(l, 0, sizeof(*l));
    l->t = t;
    l->ttl_ms = ttl_ms;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
}

void bp_redis_leases_lock(bp_redis_leases *l)
{
    pthread_mutex_lock(&l->mu);
}

void bp_redis_leases_unlock(bp_redis_leases *l)
{
    pthread_mutex_unlock(&l->mu);
}

bp_redis_lease *bp_redis_lease_of(bp_redis_leases *l, const char *chain)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].chain, chain) == 0)
            return &l->v[i];
    return NULL;
}

static bool is_int(const redisReply *r, long long v)
{
    return r && r->type == REDIS_REPLY_INTEGER && r->integer == v;
}

static int queue_script(bp_redis *c, const char *script, const char *key, const char *a,
                        const char *b, const char *d)
{
    int argc = 4 + (a != NULL) + (b != NULL) + (d != NULL);
    return bp_redis_cmd(c, argc, (const char *[]){"EVAL", script, "1", key, a, b, d}, NULL);
}

/* Who holds key now, for messages: its value and how long it has left. */
static void describe(bp_redis *c, const char *key, char *out, size_t cap)
{
    snprintf(out, cap, "another process (the lease %s expired or was given up since)", key);
    if (bp_redis_cmd(c, 2, (const char *[]){"GET", key}, NULL) != 0 ||
        bp_redis_cmd(c, 2, (const char *[]){"PTTL", key}, NULL) != 0)
        return;
    bp_error e = {0};
    if (bp_redis_exchange(c, &e) != 0 || bp_redis_reply_count(c) != 2)
        return;
    const redisReply *v = bp_redis_reply(c, 0), *ttl = bp_redis_reply(c, 1);
    if (v->type != REDIS_REPLY_STRING)
        return;
    double left = ttl->type == REDIS_REPLY_INTEGER ? (double)ttl->integer / 1000.0 : -1;
    snprintf(out, cap, "'%.*s' (Redis lease %s, %.1f s left unless its holder renews it)",
             (int)(v->len < 255 ? v->len : 255), v->str, key, left);
}

/* ---- the renewing thread ---------------------------------------------------------------- */

static void mark_lost(bp_redis_leases *l, bp_redis *c, bp_redis_lease *e, const char *where)
{
    (void)l;
    if (e->lost)
        return;
    e->lost = true;
    describe(c, e->key, e->holder, sizeof(e->holder));
    bp_err("redis %s: chain '%s': its writer lease %s is no longer this process's (it expired "
           "while not renewed in time; %s has it): this process no longer writes the chain",
           where, e->chain, e->key, e->holder);
}

static void renew_all(bp_redis_leases *l)
{
    bp_error err = {0};
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%lld", l->ttl_ms);
    int rc = l->c ? 0 : bp_redis_connect(l->t, &l->c, &err);
    size_t queued = 0;
    for (size_t i = 0; rc == 0 && i < l->n; i++)
        if (!l->v[i].lost && !l->v[i].pending &&
            queue_script(l->c, RENEW, l->v[i].key, l->v[i].owner, ttl, NULL) == 0)
            queued++;
    if (rc == 0 && queued > 0)
        rc = bp_redis_exchange(l->c, &err);
    if (rc != 0) {
        if (!l->warned)
            bp_warn("%s; the writer leases are not renewed meanwhile (each batch renews and "
                    "checks its chain's lease before it commits)",
                    err.msg);
        l->warned = true;
        bp_redis_free(l->c);
        l->c = NULL;
        return;
    }
    l->warned = false;
    for (size_t i = 0, k = 0; i < l->n && k < queued; i++) {
        if (l->v[i].lost || l->v[i].pending)
            continue;
        if (!is_int(bp_redis_reply(l->c, k++), 1))
            l->v[i].lost = true; /* said below, once the replies are no longer needed */
    }
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].lost && !l->v[i].holder[0]) {
            l->v[i].lost = false;
            mark_lost(l, l->c, &l->v[i], l->t->where);
        }
}

static void *renewer(void *arg)
{
    bp_redis_leases *l = arg;
    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        long long ms = l->ttl_ms / 3;
        until.tv_sec += ms / 1000;
        until.tv_nsec += (ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        int w = 0;
        while (!l->stop && w == 0)
            w = pthread_cond_timedwait(&l->cv, &l->mu, &until);
        if (!l->stop)
            renew_all(l);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

void bp_redis_leases_release(bp_redis_leases *l)
{
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    if (l->running)
        pthread_join(l->tid, NULL);
    while (l->n > 0)
        bp_redis_lease_drop(l, NULL, l->v[l->n - 1].chain);
    free(l->v);
    bp_redis_free(l->c);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
}

/* ---- taking and giving up --------------------------------------------------------------- */

static int add(bp_redis_leases *l, const char *key, const char *chain, bp_redis_lease **out)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 4;
        bp_redis_lease *v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return BP_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    bp_redis_lease *e = &l->v[l->n];
    memset(e, 0, sizeof(*e));
    e->chain = strdup(chain);
    e->key = strdup(key);
    if (!e->chain || !e->key) {
        free(e->chain);
        free(e->key);
        return BP_ENOMEM;
    }
    char self[BP_HOLDER_MAX];
    bp_holder_self(self, sizeof(self));
    snprintf(e->owner, sizeof(e->owner), "%s lease %u", self, atomic_fetch_add(&g_serial, 1) + 1);
    l->n++;
    *out = e;
    return 0;
}

static void forget(bp_redis_leases *l, bp_redis_lease *e)
{
    free(e->chain);
    free(e->key);
    *e = l->v[--l->n];
}

/* SET NX, or over a dead holder of this host: 1 when taken, 0 when held by a live one (its
 * value in cur), < 0 on failure. */
static int try_take(bp_redis_leases *l, bp_redis *c, const bp_redis_lease *e, char *cur, size_t cap,
                    bp_error *err)
{
    char ttl[24], text[256];
    snprintf(ttl, sizeof(ttl), "%lld", l->ttl_ms);
    const redisReply *r = NULL;
    int rc =
        bp_redis_call(c, 6, (const char *[]){"SET", e->key, e->owner, "NX", "PX", ttl}, &r, err);
    if (rc != 0)
        return rc;
    if (r->type == REDIS_REPLY_STATUS)
        return 1;
    if (r->type != REDIS_REPLY_NIL)
        return bp_error_set(err, BP_EDB, "SET %s NX: %s", e->key,
                            bp_redis_reply_text(r, text, sizeof(text)));
    rc = bp_redis_call(c, 2, (const char *[]){"GET", e->key}, &r, err);
    if (rc != 0)
        return rc;
    if (r->type != REDIS_REPLY_STRING)
        return 0; /* expired just now: the next try takes it */
    snprintf(cur, cap, "%.*s", (int)r->len, r->str);
    if (!bp_holder_gone(cur))
        return 0;
    if (queue_script(c, TAKEOVER, e->key, cur, e->owner, ttl) != 0)
        return BP_ENOMEM;
    if ((rc = bp_redis_exchange(c, err)) != 0)
        return rc;
    if (!is_int(bp_redis_reply(c, 0), 1))
        return 0;
    bp_info("chain '%s': the writer lease %s was held by '%s', a process of this host that is "
            "gone: taken over without waiting for it to expire",
            e->chain, e->key, cur);
    return 1;
}

/* Renewing needs EVAL (a compare-and-expire in one round trip); a server whose ACL or
 * configuration refuses scripts would fail every batch's fence, so a lease just taken is
 * renewed once at once: refused, it is given back and the leases are off (as with
 * --redis-lock-ttl 0), said once. True when they are. */
static bool scripts_refused(bp_redis_leases *l, bp_redis *c, bp_redis_lease *e, const char *where)
{
    char ttl[24];
    bp_error err = {0};
    snprintf(ttl, sizeof(ttl), "%lld", l->ttl_ms);
    if (queue_script(c, RENEW, e->key, e->owner, ttl, NULL) != 0 || bp_redis_exchange(c, &err) != 0)
        return false; /* not known: the batch's fence says what is wrong */
    const redisReply *r = bp_redis_reply(c, 0);
    if (!bp_redis_script_refused(r))
        return false;
    char text[160];
    bp_redis_reply_text(r, text, sizeof(text));
    if (bp_redis_cmd(c, 2, (const char *[]){"DEL", e->key}, NULL) == 0)
        (void)bp_redis_exchange(c, &err);
    bp_warn("redis %s: the server refuses scripts (EVAL: %s): the chains' writer leases are off, "
            "as with --redis-lock-ttl 0 - nothing keeps another process from writing the same "
            "chains here (allow EVAL for this user to have them)",
            where, text);
    forget(l, e);
    l->ttl_ms = 0;
    return true;
}

static void taken(bp_redis_leases *l, bp_redis_lease *e, const char *where)
{
    e->pending = false;
    bp_info("redis %s: chain '%s': writer lease %s taken (%lld ms, renewed every %lld ms)", where,
            e->chain, e->key, l->ttl_ms, l->ttl_ms / 3);
    if (!l->running && pthread_create(&l->tid, NULL, renewer, l) == 0)
        l->running = true;
}

int bp_redis_lease_take(bp_redis_leases *l, bp_redis *c, const char *key, const char *chain,
                        char *holder, size_t cap, const char *where, bp_error *err)
{
    pthread_mutex_lock(&l->mu);
    bp_redis_lease *e = bp_redis_lease_of(l, chain);
    int rc = 0;
    if (e && !e->lost && !e->pending)
        goto out;
    if (e && e->lost) {
        forget(l, e);
        e = NULL;
    }
    if (!e && add(l, key, chain, &e) != 0) {
        rc = bp_error_set(err, BP_ENOMEM, "out of memory");
        goto out;
    }
    char cur[BP_HOLDER_MAX + 64] = "";
    rc = try_take(l, c, e, cur, sizeof(cur), err);
    if (rc == 1) {
        rc = 0;
        if (!scripts_refused(l, c, e, where))
            taken(l, e, where);
        goto out;
    }
    if (rc < 0 && bp_error_is_transient(rc)) {
        e->pending = true; /* the server is away: taken when the chain first uses it */
        goto out;
    }
    forget(l, e);
    if (rc == 0) {
        describe(c, key, holder, cap);
        rc = bp_error_set(err, BP_EBUSY, "redis %s: chain '%s' is written by %s", where, chain,
                          holder);
    } else
        bp_error_prefix(err, "redis %s: taking chain '%s''s writer lease: ", where, chain);
out:
    pthread_mutex_unlock(&l->mu);
    return rc;
}

int bp_redis_lease_settle(bp_redis_leases *l, bp_redis *c, const char *chain, const char *where,
                          bp_error *err)
{
    bp_redis_lease *e = bp_redis_lease_of(l, chain);
    if (!e || !e->pending)
        return 0;
    char cur[BP_HOLDER_MAX + 64] = "";
    int rc = try_take(l, c, e, cur, sizeof(cur), err);
    if (rc == 1) {
        if (!scripts_refused(l, c, e, where))
            taken(l, e, where);
        return 0;
    }
    if (rc < 0)
        return rc;
    describe(c, e->key, e->holder, sizeof(e->holder));
    return bp_error_set(err, BP_ELOCKLOST,
                        "redis %s: chain '%s': its writer lease %s, not taken while the server "
                        "was away, is held by %s: not writing it (its holder does)",
                        where, chain, e->key, e->holder);
}

void bp_redis_lease_drop(bp_redis_leases *l, bp_redis *c, const char *chain)
{
    pthread_mutex_lock(&l->mu);
    bp_redis_lease *e = bp_redis_lease_of(l, chain);
    if (e && !e->lost && !e->pending) {
        bp_error err = {0};
        bp_redis **conn = c ? &c : &l->c;
        if ((*conn || bp_redis_connect(l->t, conn, &err) == 0) &&
            queue_script(*conn, RELEASE, e->key, e->owner, NULL, NULL) == 0 &&
            bp_redis_exchange(*conn, &err) == 0)
            bp_debug("chain '%s': writer lease %s given up", chain, e->key);
        else
            bp_warn("chain '%s': giving up the writer lease %s: %s (it expires by itself)", chain,
                    e->key, err.msg);
    }
    if (e)
        forget(l, e);
    pthread_mutex_unlock(&l->mu);
}

/* ---- batches ---------------------------------------------------------------------------- */

int bp_redis_lease_lost_error(const bp_redis_lease *e, const char *where, bp_error *err)
{
    return bp_error_set(err, BP_ELOCKLOST,
                        "redis %s: chain '%s': its writer lease %s was lost; %s holds it "
                        "now: not writing it (its holder does)",
                        where, e->chain, e->key, e->holder);
}

int bp_redis_lease_renew(bp_redis_leases *l, bp_redis *c, bp_redis_lease *e, const char *where,
                         bp_error *err)
{
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%lld", l->ttl_ms);
    if (e->lost)
        return bp_redis_lease_lost_error(e, where, err);
    if (queue_script(c, RENEW, e->key, e->owner, ttl, NULL) != 0)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    int rc = bp_redis_exchange(c, err);
    if (rc != 0)
        return rc;
    if (is_int(bp_redis_reply(c, 0), 1))
        return 0;
    mark_lost(l, c, e, where);
    return bp_redis_lease_lost_error(e, where, err);
}

int bp_redis_lease_fence(bp_redis_leases *l, bp_redis *c, bp_redis_lease *e, const char *where,
                         bp_error *err)
{
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%lld", l->ttl_ms);
    if (e->lost)
        return bp_redis_lease_lost_error(e, where, err);
    /* UNWATCH first: a WATCH left by an attempt that did not reach EXEC would see the renewal */
    int q = bp_redis_cmd(c, 1, (const char *[]){"UNWATCH"}, NULL);
    q |= queue_script(c, RENEW, e->key, e->owner, ttl, NULL);
    q |= bp_redis_cmd(c, 2, (const char *[]){"WATCH", e->key}, NULL);
    q |= bp_redis_cmd(c, 2, (const char *[]){"GET", e->key}, NULL);
    if (q != 0)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    int rc = bp_redis_exchange(c, err);
    if (rc != 0)
        return rc;
    const redisReply *v = bp_redis_reply(c, 3);
    if (is_int(bp_redis_reply(c, 1), 1) && v && v->type == REDIS_REPLY_STRING &&
        v->len == strlen(e->owner) && memcmp(v->str, e->owner, v->len) == 0)
        return 0;
    mark_lost(l, c, e, where);
    return bp_redis_lease_lost_error(e, where, err);
}

int bp_redis_lease_queue_renew(bp_redis_leases *l, bp_redis *c, const bp_redis_lease *e)
{
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%lld", l->ttl_ms);
    return bp_redis_cmd(c, 3, (const char *[]){"PEXPIRE", e->key, ttl}, NULL);
}
