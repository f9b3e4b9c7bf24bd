/* keyed_redis.c - the Redis store of keyed streams (include/blockpipe/keyed.h): a stream
 * {prefix}kv:{key} per key, entries with one field v (the JSON value), trimmed with
 * XADD MAXLEN ~ maxlen, and the set {prefix}kv:keys, written in one MULTI/EXEC. The Redis
 * output's URL parameters (prefix, maxlen, timeout, tls_*) and connection apply. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sink/keyed_internal.h"
#include "sink/redis_conn.h"
#include "sink/registry.h"

typedef struct rd_keyed {
    bp_keyed base;
    bp_redis_target t;
    bp_redis *c;
    char *prefix, *set_key;
    char maxlen[24];
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
        if (rc != 0)
            return rc;
        (*n)++;
    }
    return 0;
}

static int rd_publish(bp_keyed *k, const char *key, const char *json, bp_keyed_entry *out,
                      bp_error *err)
{
    rd_keyed *s = (rd_keyed *)k;
    int rc = conn(s, err);
    if (rc != 0)
        return rc;
    char *sk = stream_key(s, key);
    if (!sk)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    rc = bp_redis_cmd(s->c, 1, (const char *[]){"MULTI"}, NULL);
    rc |= bp_redis_cmd(
        s->c, 8, (const char *[]){"XADD", sk, "MAXLEN", "~", s->maxlen, "*", "v", json}, NULL);
    rc |= bp_redis_cmd(s->c, 3, (const char *[]){"SADD", s->set_key, key}, NULL);
    rc |= bp_redis_cmd(s->c, 1, (const char *[]){"EXEC"}, NULL);
    free(sk);
    if (rc != 0)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    if ((rc = bp_redis_exchange(s->c, err)) != 0)
        return settle_conn(s, rc); /* not again: it may have been published */
    const redisReply *r = bp_redis_reply(s->c, 3);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return refused(s, "publishing", r, err);
    if (!out)
        return 0;
    snprintf(out->id, sizeof(out->id), "%.*s",
             (int)(r->element[0]->len < 47 ? r->element[0]->len : 47), r->element[0]->str);
    out->time_ms = strtoll(out->id, NULL, 10);
    out->value = strdup(json);
    return out->value ? 0 : bp_error_set(err, BP_ENOMEM, "out of memory");
}

static int rd_history(bp_keyed *k, const char *key, size_t max, bp_keyed_entry *out, size_t *n,
                      bp_error *err)
{
    rd_keyed *s = (rd_keyed *)k;
    char count[24], *sk = stream_key(s, key);
    snprintf(count, sizeof(count), "%zu", max);
    const redisReply *r = NULL;
    int rc =
        sk ? read_call(s, 6, (const char *[]){"XREVRANGE", sk, "+", "-", "COUNT", count}, &r, err)
           : bp_error_set(err, BP_ENOMEM, "out of memory");
    free(sk);
    return rc ? rc : entries_of(s, r, max, out, n, err);
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

static void rd_close(bp_keyed *k)
{
    rd_keyed *s = (rd_keyed *)k;
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
};

int bp_keyed_redis_open(const char *url, bp_keyed **out, bp_error *err)
{
    rd_keyed *s = calloc(1, sizeof(*s));
    if (!s)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    s->base.ops = &g_redis_ops;
    *out = &s->base;
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
