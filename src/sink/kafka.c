/* kafka.c - the Kafka output (kafka://broker1:9092,broker2:9092): one topic per entity,
 * {prefix}blocks, {prefix}transactions, {prefix}logs (ethereum-etl's names with the default
 * empty prefix) and {prefix}metrics (ethereum-etl has none: ours, named like the entity),
 * each message keyed by the chain (a chain's messages stay in order in one
 * partition), its value the entry's message as the Redis output has it (stream.h):
 *   {"type":"apply","chain":"..","number":N,"hash":"0x..","parent_hash":"0x..","data":{..}}
 * and a header bp-txn naming the transaction it was written in.
 *
 * Exactly once for consumers that read committed (isolation.level=read_committed): a batch is
 * one Kafka transaction of a transactional (so idempotent) producer holding its messages and
 * then the output's checkpoint, a record keyed "{name}:{chain}" in partition 0 of a compacted
 * topic of our own ({prefix}blockpipe_checkpoints by default): value
 *   {"chain":"..","number":N,"hash":"0x..","txn":"<bp-txn>","recent":"n:hash n:hash ..."}
 * The delivery reports of the batch's messages are awaited (a failed one aborts the
 * transaction) before the checkpoint record is produced, then the transaction is committed.
 * Behind the head (bp_batch.more: a backfill, a catch-up) several batches share one
 * transaction (a group, bounded by GROUP_BATCHES, GROUP_BYTES and GROUP_MS; one per batch at
 * the head, as before): a batch written with more set is produced and left in the open
 * transaction, and the group's last batch - the first without more, the bounds', or a flush -
 * awaits the deliveries and commits the group with the checkpoint of its last batch. What a
 * transaction costs is mostly waiting for its deliveries (about 30 ms a batch on the mock
 * cluster): inside a group the next batch is produced while the one before is in flight. The
 * group's messages are kept until it commits, so that a transaction that fails is written
 * again whole (a new one) by the retry of the batch that ended it: the pipeline counts the
 * earlier batches written. If that retry never comes (the output set aside, the process
 * stopped) the checkpoint read back is the group's start, which is where the pipeline resumes.
 * At start init_transactions (same transactional.id) fences an earlier instance and aborts
 * what it left open, and the checkpoint is read back with read_committed: a crash anywhere
 * leaves the batch and its checkpoint committed together or neither. A commit whose outcome
 * is unknown (the producer failed fatally, a timeout) is settled by reading the checkpoint
 * back before the batch is written again.
 *
 * Consumers that cannot read committed (and librdkafka's mock cluster, which stores aborted
 * records as if committed and has no transaction markers) can get the same answer from the
 * bp-txn header: a message counts when the checkpoint topic holds a record of its
 * transaction; that is how the tests read the mock cluster (tests/tools/kafka_consume.c).
 *
 * librdkafka settings pass through: URL parameters that are not ours, and --kafka-set
 * 'key=value;key=value' (both after ours, so they win). */
#include "blockpipe/sink.h"

#include <fcntl.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "core/budget.h"
#include "sink/options.h"
#include "sink/stream.h"
#include "util/buf.h"
#include "util/crashpoint.h"
#include "util/hex.h"
#include "util/jsonw.h"
#include "util/log.h"
#include "util/url.h"

#define TAIL_RECORDS 1000 /* the checkpoint is looked for in the topic's tail first */
/* A group of batches in one transaction (bp_batch.more) ends at the first of: this many
 * batches, this many bytes of messages kept (they are held between writes: within the output's
 * fixed 4 MiB of the memory budget), this long since its transaction began (how late a
 * read_committed consumer sees its first batch). bench/stream_bench.c's batches (1,000
 * messages, 1.9 MB) go two to a transaction: 1.9x the rate of one each (docs/PERFORMANCE.md,
 * streams). */
#define GROUP_BATCHES 8
#define GROUP_BYTES ((size_t)2 << 20)
#define GROUP_MS 500
/* librdkafka's queue (messages produced, not yet delivered: a whole batch's at least, a
 * group's in flight between writes) against the memory budget (core/budget.h). Its own cap,
 * queue.buffering.max.kbytes, is 1 GiB by default: unless the user sets it, QUEUE_MAX_KB. What it
 * holds is counted (each message's key and value and QUEUE_MSG_COST of librdkafka's own); up to
 * QUEUE_KEEP is within the output's fixed 4 MiB (beside the group's kept copies), the rest is
 * charged to the writing batch's budget while it is held, and a message that does not fit the
 * budget waits for the deliveries of those before it. */
#define QUEUE_MAX_KB 65536
#define QUEUE_KEEP ((size_t)1 << 20)
#define QUEUE_MSG_COST 256

typedef struct kafka_sink {
    struct bp_sink base;
    rd_kafka_conf_t *conf; /* the producer's settings (a copy is used for each producer) */
    rd_kafka_t *p;         /* transactional producer */
    rd_kafka_topic_t *rkt[BP_STREAM_ENTITY_COUNT + 1]; /* p's topics, the checkpoint's last */
    rd_kafka_t *c;                                     /* the checkpoint topic's reader */
    bool inited;                                       /* init_transactions done on p */
    char *brokers, *prefix, *name, *cp_topic, *topics[BP_STREAM_ENTITY_COUNT];
    unsigned entities;
    int timeout_ms;
    bool create_topics, created;
    /* delivery reports of the transaction being written (served on our thread) */
    size_t dr_failed;
    char dr_error[256];
    /* the chain's state as committed */
    char *chain;
    bool loaded, uncertain;
    bp_checkpoint cp;
    uint64_t events; /* the Arch events written with the checkpoint (stream.h) */
    bp_stream_recent recent;
    uint64_t txn_base, txn_count;
    char txn[24];
    bool txn_open; /* a transaction of ours is open (a group's, between writes) */
    /* The batches accepted into the open transaction and not committed yet (a group). */
    struct {
        size_t batches;
        int64_t started_ms;      /* when its transaction began */
        bp_checkpoint cp;        /* its last batch's */
        bp_stream_recent recent; /* the recent blocks after it */
        uint64_t events;         /* the Arch events written with the checkpoint after it */
        /* its messages (entity: 1 byte, value length: 4, value) to write again whole when
         * the transaction fails; keeping stops at GROUP_BYTES (the group then ends) */
        bp_buf kept;
        bool keeping;
    } grp;
    /* Another producer started with our transactional.id: it writes the output now. Sticky:
     * a new producer of ours would fence it back, and the two would take turns. */
    bool fenced;
    char txid[256];
    bp_buf data, msg, text;
    /* librdkafka's queue: bytes produced and not delivered, what of them is charged beyond
     * QUEUE_KEEP to `budget` (the last written batch's), and the queue's cap */
    size_t queued, charged;
    bp_budget *budget;
    size_t queue_cap;
} kafka_sink;

/* ---- errors ----------------------------------------------------------------------------- */

static int kerr(kafka_sink *s, rd_kafka_resp_err_t e, const char *what, bp_error *err)
{
    int code = e == RD_KAFKA_RESP_ERR__TIMED_OUT || e == RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT
                   ? BP_ETIMEOUT
                   : BP_ETRANSPORT;
    return bp_error_set(err, code, "kafka %s: %s: %s", s->brokers, what, rd_kafka_err2str(e));
}

static bool fenced_code(rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR__FENCED || e == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
           e == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH;
}

static void mark_fenced(kafka_sink *s, const char *why)
{
    if (s->fenced)
        return;
    s->fenced = true;
    bp_err("kafka %s: this process's producer (transactional.id '%s') was fenced: another "
           "process started with the same transactional.id and writes the output now; this one "
           "stops writing it (%s)",
           s->brokers, s->txid, why);
}

/* Notes that the producer was fenced when its fatal error says so. */
static void check_fenced(kafka_sink *s)
{
    char why[256];
    if (s->p && !s->fenced && fenced_code(rd_kafka_fatal_error(s->p, why, sizeof(why))))
        mark_fenced(s, why);
}

static int fenced_error(kafka_sink *s, bp_error *err)
{
    return bp_error_set(err, BP_EBUSY,
                        "kafka %s: fenced: another process writes with transactional.id '%s'; "
                        "not writing (each process needs an id of its own: the default is one "
                        "per checkpoint name and set of chains; an explicit "
                        "--kafka-transactional-id must differ between processes too)",
                        s->brokers, s->txid);
}

/* A transaction API error: fatal ones need a new producer (and leave the outcome unknown),
 * the others are worth another attempt of the batch. Takes e. */
static int txn_failed(kafka_sink *s, rd_kafka_error_t *e, const char *what, bp_error *err)
{
    bool fatal = rd_kafka_error_is_fatal(e);
    if (fenced_code(rd_kafka_error_code(e)))
        mark_fenced(s, rd_kafka_error_string(e));
    else if (fatal)
        check_fenced(s);
    if (s->fenced) {
        rd_kafka_error_destroy(e);
        s->uncertain = true;
        s->inited = false;
        return fenced_error(s, err);
    }
    int rc =
        bp_error_set(err, BP_ETRANSPORT, "kafka %s: %s: %s%s", s->brokers, what,
                     rd_kafka_error_string(e), fatal ? " (fatal: a new producer is made)" : "");
    if (fatal) {
        s->uncertain = true;
        s->inited = false;
    }
    rd_kafka_error_destroy(e);
    return rc;
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    if (level <= 3)
        bp_warn("librdkafka %s: %s", fac, buf);
    else
        bp_debug("librdkafka %s: %s", fac, buf);
}

/* The budget follows what librdkafka's queue holds beyond QUEUE_KEEP (memory in use: charged
 * even past the limit; the fetches then wait for it). */
static void queue_follow(kafka_sink *s)
{
    size_t now = s->queued > QUEUE_KEEP ? s->queued - QUEUE_KEEP : 0;
    if (!s->budget) /* between writes: nothing is charged */
        return;
    bp_budget_follow(s->budget, &s->charged, now);
    if (now > s->base.memory_peak)
        s->base.memory_peak = now;
}

static size_t msg_cost(size_t key_len, size_t len)
{
    return key_len + len + QUEUE_MSG_COST;
}

/* Served on our thread (rd_kafka_poll, rd_kafka_flush): the message left the queue. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    kafka_sink *s = opaque;
    size_t cost = msg_cost(m->key_len, m->len);
    s->queued -= cost < s->queued ? cost : s->queued;
    queue_follow(s);
    if (!m->err)
        return;
    if (s->dr_failed++ == 0)
        snprintf(s->dr_error, sizeof(s->dr_error), "%s [%" PRId32 "]: %s",
                 rd_kafka_topic_name(m->rkt), m->partition, rd_kafka_err2str(m->err));
}

/* ---- handles ---------------------------------------------------------------------------- */

/* A secret setting's value (sasl.password, ssl.key.password, ...) is registered, so that
 * librdkafka's own messages quoting it are scrubbed, and never put in an error. */
static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v, bp_error *err)
{
    char e[512];
    bool secret = bp_secret_name(k, strlen(k));
    if (secret)
        bp_secret_add(v);
    if (rd_kafka_conf_set(conf, k, v, e, sizeof(e)) != RD_KAFKA_CONF_OK) {
        bp_secret_scrub(e);
        return bp_error_set(err, BP_EINVAL, "librdkafka setting %s=%s: %s", k, secret ? "***" : v,
                            e);
    }
    return 0;
}

/* "k=v" pieces of text separated by sep (percent-decoded when decode) into conf. */
static int conf_list(rd_kafka_conf_t *conf, const char *text, char sep, bool decode, bp_error *err)
{
    for (const char *p = text; p && *p;) {
        size_t n = strcspn(p, (char[]){sep, '\0'});
        char *kv = strndup(p, n);
        if (!kv)
            return bp_error_set(err, BP_ENOMEM, "out of memory");
        char *w = kv;
        for (const char *r = kv; decode && *r; r++) { /* in place: never longer */
            if (r[0] == '%' && bp_hex_digit((unsigned char)r[1]) >= 0 &&
                bp_hex_digit((unsigned char)r[2]) >= 0) {
                *w++ = (char)(bp_hex_digit((unsigned char)r[1]) * 16 +
                              bp_hex_digit((unsigned char)r[2]));
                r += 2;
            } else {
                *w++ = *r;
            }
        }
        if (decode)
            *w = '\0';
        char *eq = strchr(kv, '=');
        int rc = 0;
        if (n && !eq)
            rc = bp_error_set(err, BP_EINVAL,
                              "librdkafka setting of %zu characters: expected "
                              "key=value",
                              strlen(kv)); /* it may be a secret */
        else if (n)
            *eq = '\0', rc = conf_set(conf, kv, eq + 1, err);
        free(kv);
        if (rc != 0)
            return rc;
        p += n + (p[n] == sep);
    }
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The default transactional.id, from what this process writes: the checkpoint name and the
 * set of chains (comma-separated, any order), blockpipe-{name}-{chain+chain...} sorted (a
 * hash of them when that is long). Two processes writing different chains (two shards) never
 * share it, so never fence each other; a process restarted with the same chains, on any
 * host, has it again, so its init_transactions fences a predecessor still alive and aborts
 * what a dead one left open. */
static int default_txid(kafka_sink *s, const char *chains, bp_error *err)
{
    size_t n = 1, len = strlen(chains);
    for (const char *p = chains; *p; p++)
        n += *p == ',';
    char *copy = strdup(chains), **names = calloc(n, sizeof(*names));
    if (!copy || !names) {
        free(copy);
        free(names);
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    n = 0;
    for (char *p = copy, *next; p; p = next) {
        next = strchr(p, ',');
        if (next)
            *next++ = '\0';
        if (*p)
            names[n++] = p;
    }
    qsort(names, n, sizeof(*names), by_name);
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a over the name and the chains */
    int w = snprintf(s->txid, sizeof(s->txid), "blockpipe-%s-", s->name);
    for (const char *p = s->name; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
    for (size_t i = 0; i < n; i++) {
        if (i && strcmp(names[i], names[i - 1]) == 0)
            continue;
        const char *p = names[i];
        do /* the '\0' too: {a, b} is not {ab} */
            h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
        while (*p++);
        if (w >= 0 && (size_t)w < sizeof(s->txid))
            w += snprintf(s->txid + w, sizeof(s->txid) - (size_t)w, "%s%s", i ? "+" : "", names[i]);
    }
    if (w < 0 || (size_t)w > 200 || len == 0)
        snprintf(s->txid, sizeof(s->txid), "blockpipe-%.64s-%zu-chains-%016" PRIx64, s->name, n, h);
    free(names);
    free(copy);
    return 0;
}

/* A process without a chains: list learns its chain's name at its first checkpoint read
 * (from eth_chainId): the default transactional.id is chosen then, before any producer. */
static int late_txid(kafka_sink *s, const char *chain, bp_error *err)
{
    int rc = default_txid(s, chain, err);
    if (rc == 0)
        rc = conf_set(s->conf, "transactional.id", s->txid, err);
    if (rc == 0)
        bp_info("kafka %s: transactional.id %s", s->brokers, s->txid);
    return rc;
}

static int new_producer(kafka_sink *s, bp_error *err)
{
    char e[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_dup(s->conf);
    s->p = conf ? rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof(e)) : NULL;
    if (!s->p) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        return bp_error_set(err, BP_EINVAL, "kafka %s: producer: %s", s->brokers,
                            conf ? e : "out of memory");
    }
    s->inited = false;
    return 0;
}

static void drop_producer(kafka_sink *s)
{
    if (!s->p)
        return;
    for (int e = 0; e <= BP_STREAM_ENTITY_COUNT; e++) {
        if (s->rkt[e])
            rd_kafka_topic_destroy(s->rkt[e]);
        s->rkt[e] = NULL;
    }
    rd_kafka_purge(s->p, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(s->p, 0); /* the purged messages' reports: out of the count */
    rd_kafka_destroy(s->p);
    s->p = NULL;
    s->queued = 0; /* whatever was not reported is gone with the producer */
    queue_follow(s);
    s->inited = false;
    s->txn_open = false; /* the group's batches go in the next producer's first transaction */
}

static int new_reader(kafka_sink *s, const char *brokers, bp_error *err)
{
    char e[512], group[96];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    snprintf(group, sizeof(group), "blockpipe-checkpoint-reader-%s", s->name);
    int rc = conf_set(conf, "bootstrap.servers", brokers, err);
    if (rc == 0)
        rc = conf_set(conf, "group.id", group, err);
    if (rc == 0)
        rc = conf_set(conf, "enable.auto.commit", "false", err);
    if (rc == 0)
        rc = conf_set(conf, "isolation.level", "read_committed", err);
    if (rc == 0)
        rc = conf_set(conf, "enable.partition.eof", "true", err);
    if (rc != 0) {
        rd_kafka_conf_destroy(conf);
        return rc;
    }
    rd_kafka_conf_set_log_cb(conf, on_log);
    s->c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof(e));
    if (!s->c) {
        rd_kafka_conf_destroy(conf);
        return bp_error_set(err, BP_EINVAL, "kafka %s: consumer: %s", brokers, e);
    }
    rd_kafka_poll_set_consumer(s->c);
    return 0;
}

/* Our topics, made when missing (the checkpoint topic compacted, one partition). A broker
 * that cannot (the mock cluster; no rights) is told so once; its topics are auto-created. */
static void create_topics(kafka_sink *s)
{
    if (!s->create_topics || s->created)
        return;
    s->created = true;
    char e[512];
    rd_kafka_NewTopic_t *t[BP_STREAM_ENTITY_COUNT + 1];
    size_t n = 0;
    t[n] = rd_kafka_NewTopic_new(s->cp_topic, 1, -1, e, sizeof(e));
    if (t[n] && rd_kafka_NewTopic_set_config(t[n], "cleanup.policy", "compact") == 0)
        n++;
    for (int k = 0; k < BP_STREAM_ENTITY_COUNT; k++)
        if ((s->entities & (1u << k)) &&
            (t[n] = rd_kafka_NewTopic_new(s->topics[k], -1, -1, e, sizeof(e))) != NULL)
            n++;
    rd_kafka_queue_t *q = rd_kafka_queue_new(s->p);
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(s->p, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_request_timeout(o, s->timeout_ms, e, sizeof(e));
    rd_kafka_CreateTopics(s->p, t, n, o, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, s->timeout_ms + 1000);
    const rd_kafka_CreateTopics_result_t *res = ev ? rd_kafka_event_CreateTopics_result(ev) : NULL;
    size_t nr = 0;
    const rd_kafka_topic_result_t **tr = res ? rd_kafka_CreateTopics_result_topics(res, &nr) : NULL;
    if (!res)
        bp_warn("kafka %s: could not create the topics (%s); relying on the broker creating "
                "them (auto.create.topics.enable)",
                s->brokers, ev ? rd_kafka_event_error_string(ev) : "no answer");
    for (size_t i = 0; i < nr; i++) {
        rd_kafka_resp_err_t te = rd_kafka_topic_result_error(tr[i]);
        if (te && te != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            bp_warn("kafka %s: creating topic %s: %s", s->brokers,
                    rd_kafka_topic_result_name(tr[i]), rd_kafka_topic_result_error_string(tr[i]));
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_queue_destroy(q);
    for (size_t i = 0; i < n; i++)
        rd_kafka_NewTopic_destroy(t[i]);
}

/* Our topics' handles, their metadata asked for at once: librdkafka otherwise learns a new
 * topic's partitions on its 1 s scan (measured: the first batch took 2 s). */
static int topics(kafka_sink *s, bp_error *err)
{
    for (int e = 0; e <= BP_STREAM_ENTITY_COUNT; e++) {
        bool cp = e == BP_STREAM_ENTITY_COUNT;
        if (s->rkt[e] || (!cp && !(s->entities & (1u << e))))
            continue;
        s->rkt[e] = rd_kafka_topic_new(s->p, cp ? s->cp_topic : s->topics[e], NULL);
        if (!s->rkt[e])
            return kerr(s, rd_kafka_last_error(), "topic", err);
        const struct rd_kafka_metadata *md = NULL;
        if (rd_kafka_metadata(s->p, 0, s->rkt[e], &md, s->timeout_ms) == 0)
            rd_kafka_metadata_destroy(md);
    }
    return 0;
}

/* A producer whose transactions are initialised: earlier instances fenced, what they left
 * open aborted. */
static int ready(kafka_sink *s, bp_error *err)
{
    if (s->p && s->inited)
        return 0;
    int rc = s->p ? 0 : new_producer(s, err);
    if (rc != 0)
        return rc;
    rd_kafka_error_t *e = rd_kafka_init_transactions(s->p, s->timeout_ms);
    if (e) {
        bool fatal = rd_kafka_error_is_fatal(e);
        rc = txn_failed(s, e, "init_transactions", err);
        if (fatal)
            drop_producer(s);
        return rc;
    }
    s->inited = true;
    create_topics(s);
    return topics(s, err);
}

/* ---- the checkpoint --------------------------------------------------------------------- */

static void group_drop(kafka_sink *s);

static const char *jstr(yajl_val v, const char *key)
{
    const char *path[] = {key, NULL};
    return YAJL_GET_STRING(yajl_tree_get(v, path, yajl_t_string));
}

/* A checkpoint record's value into the state; false when it is not one. */
static bool parse_checkpoint(kafka_sink *s, const char *value, size_t len)
{
    char *text = strndup(value, len), msg[128];
    yajl_val v = text ? yajl_tree_parse(text, msg, sizeof(msg)) : NULL;
    free(text);
    const char *path[] = {"number", NULL}, *epath[] = {"events", NULL},
               *fpath[] = {"resync_floor", NULL};
    yajl_val num = v ? yajl_tree_get(v, path, yajl_t_any) : NULL;
    yajl_val events = v ? yajl_tree_get(v, epath, yajl_t_number) : NULL;
    yajl_val floor = v ? yajl_tree_get(v, fpath, yajl_t_number) : NULL;
    const char *hash = v ? jstr(v, "hash") : NULL, *recent = v ? jstr(v, "recent") : NULL;
    bool ok = num && (YAJL_IS_NULL(num) || (YAJL_IS_INTEGER(num) && hash));
    if (ok) {
        memset(&s->cp, 0, sizeof(s->cp));
        s->recent.n = 0;
        s->events = events && YAJL_IS_INTEGER(events) ? (uint64_t)YAJL_GET_INTEGER(events) : 0;
        if (YAJL_IS_INTEGER(num)) {
            s->cp.set = true;
            s->cp.number = (uint64_t)YAJL_GET_INTEGER(num);
            snprintf(s->cp.hash, sizeof(s->cp.hash), "%s", hash);
            s->cp.floor_set = floor && YAJL_IS_INTEGER(floor) && YAJL_GET_INTEGER(floor) >= 0;
            s->cp.floor = s->cp.floor_set ? (uint64_t)YAJL_GET_INTEGER(floor) : 0;
            if (recent)
                bp_stream_recent_parse(&s->recent, recent, strlen(recent));
        }
    }
    yajl_tree_free(v);
    return ok;
}

/* Reads partition 0 of the checkpoint topic from offset `from` to its end (read committed):
 * the last record keyed key wins. The end is the high watermark `hi` read before (the mock
 * cluster answers a fetch there only after 500 ms) or, with a transaction still open on a
 * real broker, the EOF of the last stable offset. */
static int scan(kafka_sink *s, const char *key, int64_t from, int64_t hi, bool *found,
                bp_error *err)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, s->cp_topic, 0)->offset = from;
    rd_kafka_resp_err_t e = rd_kafka_assign(s->c, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e)
        return kerr(s, e, "reading the checkpoint topic", err);
    int rc = 0;
    size_t klen = strlen(key);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(s->c, 100);
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (!m) {
            if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >
                s->timeout_ms) {
                rc = kerr(s, RD_KAFKA_RESP_ERR__TIMED_OUT, "reading the checkpoint topic", err);
                break;
            }
            continue;
        }
        t0 = t;
        bool eof = m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF || (!m->err && m->offset + 1 >= hi);
        if (m->err && !eof)
            rc = kerr(s, m->err, "reading the checkpoint topic", err);
        else if (!m->err && m->key_len == klen && memcmp(m->key, key, klen) == 0)
            *found |= parse_checkpoint(s, m->payload, m->len);
        rd_kafka_message_destroy(m);
        if (rc != 0 || eof)
            break;
    }
    rd_kafka_assign(s->c, NULL);
    return rc;
}

static int load_state(kafka_sink *s, const char *chain, bp_error *err)
{
    char key[512];
    snprintf(key, sizeof(key), "%s:%s", s->name, chain);
    int64_t lo = 0, hi = 0;
    rd_kafka_resp_err_t e =
        rd_kafka_query_watermark_offsets(s->c, s->cp_topic, 0, &lo, &hi, s->timeout_ms);
    bool found = false;
    memset(&s->cp, 0, sizeof(s->cp));
    s->events = 0;
    s->recent.n = 0;
    int rc = 0;
    if (e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || e == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION)
        hi = lo = 0; /* no checkpoint topic yet */
    else if (e)
        return kerr(s, e, "reading the checkpoint topic's offsets", err);
    int64_t tail = hi - TAIL_RECORDS > lo ? hi - TAIL_RECORDS : lo;
    if (hi > lo)
        rc = scan(s, key, tail, hi, &found, err);
    if (rc == 0 && !found && tail > lo)
        rc = scan(s, key, lo, hi, &found, err);
    if (rc == 0)
        s->loaded = true;
    return rc;
}

static int use_chain(kafka_sink *s, const char *chain, bp_error *err)
{
    if (s->chain && strcmp(s->chain, chain) == 0)
        return 0;
    free(s->chain);
    s->loaded = false;
    s->chain = strdup(chain);
    return s->chain ? 0 : bp_error_set(err, BP_ENOMEM, "out of memory");
}

static int state_of(kafka_sink *s, const char *chain, bp_error *err)
{
    int rc = use_chain(s, chain, err);
    if (rc == 0 && !s->txid[0])
        rc = late_txid(s, chain, err);
    if (rc == 0)
        rc = ready(s, err); /* first: what an earlier instance left open is aborted */
    if (rc == 0 && (!s->loaded || s->uncertain))
        rc = load_state(s, chain, err);
    if (rc == 0)
        s->uncertain = false;
    return rc;
}

static int kafka_checkpoint(bp_sink *base, const char *chain, bp_checkpoint *out, bp_error *err)
{
    kafka_sink *s = (kafka_sink *)base;
    group_drop(s);
    int rc = state_of(s, chain, err);
    *out = rc == 0 ? s->cp : (bp_checkpoint){0};
    return rc;
}

static int kafka_recent(bp_sink *base, const char *chain, bp_checkpoint *out, size_t max, size_t *n,
                        bp_error *err)
{
    kafka_sink *s = (kafka_sink *)base;
    *n = 0;
    group_drop(s);
    int rc = state_of(s, chain, err);
    if (rc == 0)
        *n = bp_stream_recent_list(&s->recent, out, max);
    return rc;
}

/* ---- a batch ---------------------------------------------------------------------------- */

/* One message, waiting for room in librdkafka's queue when it is full. */
static int produce(kafka_sink *s, int t, int32_t partition, const char *key, const char *value,
                   size_t len, bp_error *err)
{
    size_t cost = msg_cost(strlen(key), len);
    /* No room in the budget for it beyond the fixed part: the deliveries of the messages
     * charged before it make some (with nothing of ours charged it goes anyway: it is one
     * message, and what holds the budget is not ours to wait for). */
    for (int waited = 0; s->budget && s->charged > 0 && s->queued + cost > QUEUE_KEEP &&
                         bp_budget_free(s->budget) < cost;
         waited += 100) {
        if (waited > s->timeout_ms)
            return bp_error_set(err, BP_ETIMEOUT,
                                "kafka %s: %s: %zu bytes waiting for delivery for %d s hold the "
                                "memory budget (--max-memory)",
                                s->brokers, rd_kafka_topic_name(s->rkt[t]), s->queued,
                                s->timeout_ms / 1000);
        rd_kafka_poll(s->p, 100);
    }
    for (int waited = 0;; waited += 100) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            s->p, RD_KAFKA_V_RKT(s->rkt[t]), RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE((void *)value, len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADER("bp-txn", s->txn, (ssize_t)strlen(s->txn)), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            s->queued += cost;
            queue_follow(s);
            return 0;
        }
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || waited > s->timeout_ms)
            return kerr(s, e, rd_kafka_topic_name(s->rkt[t]), err);
        rd_kafka_poll(s->p, 100);
    }
}

/* A copy of an entry's message in the group's, while they fit in GROUP_BYTES. */
static int keep(kafka_sink *s, int e, const bp_buf *msg, bp_error *err)
{
    bp_buf *k = &s->grp.kept;
    if (!s->grp.keeping)
        return 0;
    if (k->len + 5 + msg->len > GROUP_BYTES) {
        s->grp.keeping = false; /* the group ends with this batch */
        return 0;
    }
    uint8_t head[5] = {(uint8_t)e, (uint8_t)(msg->len >> 24), (uint8_t)(msg->len >> 16),
                       (uint8_t)(msg->len >> 8), (uint8_t)msg->len};
    if (bp_buf_append(k, head, sizeof(head)) != 0 || bp_buf_append(k, msg->data, msg->len) != 0)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    return 0;
}

/* The group's earlier batches, produced again in a new transaction (the last one failed). */
static int replay(kafka_sink *s, bp_error *err)
{
    const bp_buf *k = &s->grp.kept;
    for (size_t at = 0; at + 5 <= k->len;) {
        const uint8_t *h = (const uint8_t *)k->data + at;
        size_t len = (size_t)h[1] << 24 | (size_t)h[2] << 16 | (size_t)h[3] << 8 | h[4];
        int rc = produce(s, h[0], RD_KAFKA_PARTITION_UA, s->chain, k->data + at + 5, len, err);
        if (rc != 0)
            return rc;
        at += 5 + len;
    }
    bp_info("kafka %s: %zu batch(es) up to block %" PRIu64 " written again in transaction %s "
            "(the one they were in failed)",
            s->brokers, s->grp.batches, s->grp.cp.number, s->txn);
    return 0;
}

static int produce_entry(kafka_sink *s, int e, const char *type, const bp_block *b,
                         const char *data, size_t dlen, bp_error *err)
{
    int rc = bp_stream_message(&s->msg, type, s->chain, b->number, b->hash,
                               b->parent_hash ? b->parent_hash : "", data, dlen);
    if (rc != 0)
        return bp_error_set(err, rc, "block %" PRIu64 ": %s", b->number, bp_strerror(rc));
    rc = keep(s, e, &s->msg, err);
    if (rc == 0)
        rc = produce(s, e, RD_KAFKA_PARTITION_UA, s->chain, s->msg.data, s->msg.len, err);
    return rc;
}

typedef struct entry_ctx {
    kafka_sink *s;
    int e;
    const bp_block *b;
    bp_error *err;
} entry_ctx;

static int entry(void *p, const char *type, const char *data, size_t dlen)
{
    entry_ctx *a = p;
    return produce_entry(a->s, a->e, type, a->b, data, dlen, a->err);
}

/* The entries of every event of the batch for each entity (stream.h: the rows of its family's
 * table, reverts, Arch rollback states); err is set on failure. */
static int produce_events(kafka_sink *s, const bp_batch *b, bp_error *err)
{
    size_t hint = 0;
    for (size_t i = 0; i < b->count; i++) {
        entry_ctx a = {.s = s, .b = b->events[i].block, .err = err};
        for (a.e = 0; a.e < BP_STREAM_ENTITY_COUNT; a.e++) {
            if (!(s->entities & (1u << a.e)))
                continue;
            bp_error_clear(err);
            int rc = bp_stream_entries(a.e, b, i, &s->data, &hint, entry, &a);
            if (rc != 0 && !err->msg[0])
                bp_error_set(err, rc, "block %" PRIu64 ": %s: %s", a.b->number,
                             bp_stream_entity_names[a.e], bp_strerror(rc));
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

/* Every message of the transaction delivered (or the first failure). */
static int delivered(kafka_sink *s, const char *what, bp_error *err)
{
    rd_kafka_resp_err_t e = rd_kafka_flush(s->p, s->timeout_ms);
    if (e)
        return kerr(s, e, what, err);
    if (s->dr_failed)
        return bp_error_set(err, BP_ETRANSPORT, "kafka %s: %s: %zu message(s) not delivered: %s",
                            s->brokers, what, s->dr_failed, s->dr_error);
    return 0;
}

/* events: the Arch events written with the checkpoint, this transaction's too (0: the key is
 * left out). */
static int produce_checkpoint(kafka_sink *s, const bp_checkpoint *cp,
                              const bp_stream_recent *recent, uint64_t events, bp_error *err)
{
    char key[512];
    snprintf(key, sizeof(key), "%s:%s", s->name, s->chain);
    int rc = bp_stream_recent_format(recent, &s->text);
    bp_jsonw w;
    bp_buf_reset(&s->msg);
    bp_jsonw_init(&w, &s->msg, BP_JSONW_ESC_SHORT);
    bp_jsonw_begin_object(&w);
    bp_jsonw_key(&w, "chain");
    bp_jsonw_str(&w, s->chain);
    bp_jsonw_key(&w, "number");
    if (cp->set)
        bp_jsonw_u64(&w, cp->number);
    else
        bp_jsonw_null(&w);
    bp_jsonw_key(&w, "hash");
    bp_jsonw_str(&w, cp->set ? cp->hash : NULL);
    bp_jsonw_key(&w, "txn");
    bp_jsonw_str(&w, s->txn);
    bp_jsonw_key(&w, "recent");
    bp_jsonw_str(&w, s->text.data);
    if (events) {
        bp_jsonw_key(&w, "events");
        bp_jsonw_u64(&w, events);
    }
    if (cp->set && cp->floor_set) { /* an Arch chain's resync floor (bp_checkpoint.floor) */
        bp_jsonw_key(&w, "resync_floor");
        bp_jsonw_u64(&w, cp->floor);
    }
    bp_jsonw_end_object(&w);
    if (rc == 0)
        rc = bp_jsonw_finish(&w);
    if (rc != 0)
        return bp_error_set(err, rc, "checkpoint record: %s", bp_strerror(rc));
    return produce(s, BP_STREAM_ENTITY_COUNT, 0, key, s->msg.data, s->msg.len, err);
}

static bool same_cp(const bp_checkpoint *a, const bp_checkpoint *b)
{
    return a->set == b->set && (!a->set || (a->number == b->number && !strcmp(a->hash, b->hash)));
}

/* After a fatal error or a commit with no answer the write of the batch (or group) up to cp
 * may be committed already: the checkpoint read back says, with the count of Arch events it
 * leaves (ev1: a batch of events alone keeps the checkpoint). */
static int settle(kafka_sink *s, const char *chain, const bp_checkpoint *cp, uint64_t ev1,
                  bool *done, bp_error *err)
{
    bp_checkpoint before = s->cp;
    uint64_t ev0 = s->events;
    bool was = s->loaded && s->chain && strcmp(s->chain, chain) == 0 && s->uncertain;
    *done = false;
    int rc = state_of(s, chain, err);
    if (rc != 0 || !was)
        return rc;
    if (same_cp(&s->cp, cp) && s->events == ev1 && !(same_cp(&before, cp) && ev0 == ev1)) {
        *done = true;
        bp_info("kafka %s: batch up to %" PRIu64 " was committed before the error; not written "
                "again",
                s->brokers, cp->number);
        return 0;
    }
    if (!same_cp(&s->cp, &before) || s->events != ev0)
        return bp_error_set(err, BP_EDB,
                            "kafka %s: the checkpoint of %s is at %" PRIu64 " %s, expected %" PRIu64
                            " %s: another process writes with the same checkpoint name?",
                            s->brokers, chain, s->cp.number, s->cp.hash, before.number,
                            before.hash);
    return 0;
}

/* The Arch events written once batch b is: after the open group's, or the checkpoint's. */
static uint64_t events_after(const kafka_sink *s, const bp_batch *b)
{
    return (s->grp.batches ? s->grp.events : s->events) + bp_stream_arch_event_count(b);
}

static int commit(kafka_sink *s, bp_error *err)
{
    for (int attempt = 1;; attempt++) {
        rd_kafka_error_t *e = rd_kafka_commit_transaction(s->p, s->timeout_ms);
        if (!e)
            return 0;
        if (rd_kafka_error_is_retriable(e) && attempt < 3) {
            bp_warn("kafka %s: commit: %s; trying again", s->brokers, rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
            continue;
        }
        s->uncertain = true; /* it may have been committed */
        s->inited = false;   /* a new producer: its init_transactions ends this one */
        return txn_failed(s, e, "commit_transaction", err);
    }
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void group_clear(kafka_sink *s)
{
    s->grp.batches = 0;
    s->base.holds_open = false;
    bp_buf_reset(&s->grp.kept);
}

/* Ends the open transaction unwritten (a failure): what it held of the group is written
 * again from the kept copies by the next one. */
static void abort_open(kafka_sink *s)
{
    if (s->txn_open && s->inited) {
        /* An abort that fails leaves the producer in no state to begin again: a new one
         * (its init_transactions aborts what this one left open). */
        rd_kafka_error_t *a = rd_kafka_abort_transaction(s->p, s->timeout_ms);
        if (a) {
            bp_warn("kafka %s: abort_transaction: %s", s->brokers, rd_kafka_error_string(a));
            rd_kafka_error_destroy(a);
            s->inited = false;
        }
    }
    s->txn_open = false;
}

/* A transaction begun, holding the group's earlier batches again if the one they were in
 * failed. */
static int begin(kafka_sink *s, bp_error *err)
{
    if (s->txn_open)
        return 0;
    snprintf(s->txn, sizeof(s->txn), "%016" PRIx64, s->txn_base + s->txn_count++);
    rd_kafka_poll(s->p, 0); /* an aborted transaction's reports (purged) are not this one's */
    s->dr_failed = 0;
    rd_kafka_error_t *e = rd_kafka_begin_transaction(s->p);
    if (e)
        return txn_failed(s, e, "begin_transaction", err);
    s->txn_open = true;
    s->grp.started_ms = mono_ms();
    return s->grp.batches ? replay(s, err) : 0;
}

/* The open transaction's deliveries awaited, then the checkpoint record, then the commit. */
static int finish(kafka_sink *s, const bp_checkpoint *cp, const bp_stream_recent *recent,
                  uint64_t events, bp_error *err)
{
    int rc = delivered(s, "delivering the batch", err);
    if (rc == 0)
        bp_crashpoint("kafka.before_checkpoint");
    if (rc == 0)
        rc = produce_checkpoint(s, cp, recent, events, err);
    if (rc == 0)
        rc = delivered(s, "delivering the checkpoint", err);
    if (rc == 0)
        rc = commit(s, err);
    if (rc == 0) {
        s->txn_open = false;
        s->cp = *cp;
        s->events = events;
        s->recent = *recent;
        group_clear(s);
    }
    return rc;
}

/* The write's end: what a group leaves in flight between writes is brought within the fixed
 * part (its deliveries awaited; without a budget nothing is counted: no wait), and nothing
 * stays charged (the next write may be another
 * chain's budget, and the budget may be gone when the output is closed). */
static void queue_settle(kafka_sink *s)
{
    for (int waited = 0; s->budget && s->p && s->queued > QUEUE_KEEP && waited < s->timeout_ms;
         waited += 10)
        rd_kafka_poll(s->p, 10);
    if (s->budget && s->charged)
        bp_budget_refund(s->budget, s->charged);
    s->charged = 0;
    s->budget = NULL;
}

/* Whether batch b (its messages produced) stays in the open transaction for a later one to
 * commit: the pipeline has more to write at once and the group is within its bounds. */
static bool stays_open(const kafka_sink *s, const bp_batch *b)
{
    return b->more && s->grp.keeping && s->grp.batches + 1 < GROUP_BATCHES &&
           mono_ms() - s->grp.started_ms < GROUP_MS;
}

static int write_txn(kafka_sink *s, const bp_batch *b, bp_error *err)
{
    bp_stream_shape sh = {0};
    int rc = bp_stream_shape_of(b, s->grp.batches ? &s->grp.recent : &s->recent, &sh, err);
    if (rc != 0)
        return rc;
    size_t mark = s->grp.kept.len;
    uint64_t events = events_after(s, b);
    s->grp.keeping = b->more;
    rc = begin(s, err);
    if (rc == 0)
        rc = produce_events(s, b, err);
    if (rc == 0 && stays_open(s, b)) {
        s->grp.batches++;
        s->base.holds_open = true;
        s->grp.cp = b->checkpoint;
        s->grp.recent = sh.recent;
        s->grp.events = events;
        rd_kafka_poll(s->p, 0); /* the delivery reports so far: their messages are freed */
        if (s->grp.batches >= 2)
            bp_crashpoint("kafka.mid_group");
    } else if (rc == 0) {
        if (s->grp.batches)
            bp_debug("kafka %s: transaction %s: %zu batches up to block %" PRIu64 " (%zu bytes "
                     "kept)",
                     s->brokers, s->txn, s->grp.batches + 1, b->checkpoint.number, s->grp.kept.len);
        rc = finish(s, &b->checkpoint, &sh.recent, events, err);
    }
    if (rc != 0) {
        s->grp.kept.len = mark; /* the batch is the pipeline's to write again, not ours */
        abort_open(s);
    }
    bp_stream_shape_release(&sh);
    return rc;
}

/* Commits the group left open by the last write (flush, close, another chain's batch). */
static int end_group(kafka_sink *s, bp_error *err)
{
    if (!s->grp.batches || s->fenced)
        return 0;
    bp_stream_recent recent = s->grp.recent;
    bp_checkpoint cp = s->grp.cp;
    bool done = false;
    uint64_t events = s->grp.events;
    int rc = settle(s, s->chain, &cp, events, &done, err);
    if (rc == 0 && done)
        group_clear(s);
    if (rc == 0 && !done)
        rc = begin(s, err);
    if (rc == 0 && !done)
        rc = finish(s, &cp, &recent, events, err);
    if (rc != 0) {
        abort_open(s);
        if (!s->inited)
            drop_producer(s);
    }
    return rc;
}

/* A caller reading the checkpoint starts over from what is committed: a group not committed
 * is dropped (the pipeline writes its batches again from there). */
static void group_drop(kafka_sink *s)
{
    if (!s->grp.batches && !s->txn_open)
        return;
    abort_open(s);
    if (s->grp.batches)
        bp_warn("kafka %s: %zu batch(es) up to block %" PRIu64 " were not committed; the "
                "checkpoint is read back",
                s->brokers, s->grp.batches, s->grp.cp.number);
    group_clear(s);
    s->loaded = false;
}

static int kafka_write(bp_sink *base, const bp_batch *b, bp_error *err)
{
    kafka_sink *s = (kafka_sink *)base;
    if (b->count == 0)
        return 0;
    bool done = false;
    if (s->fenced)
        return fenced_error(s, err);
    int rc = bp_stream_check_derived(s->entities, base->derived, b, err);
    if (rc != 0)
        return rc;
    s->budget = b->budget;
    queue_follow(s);
    if (s->grp.batches && strcmp(s->chain, b->chain) != 0)
        rc = end_group(s, err); /* a group is one chain's (a shared output gets no more) */
    if (rc == 0)
        rc = settle(s, b->chain, &b->checkpoint, events_after(s, b), &done, err);
    if (rc == 0 && done)
        group_clear(s); /* the batch ended the group: all of it was committed */
    if (rc == 0 && !done)
        rc = write_txn(s, b, err);
    if (rc != 0 && !s->fenced) {
        check_fenced(s); /* a delivery or flush failure of a fenced producer */
        if (s->fenced)
            rc = fenced_error(s, err);
    }
    if (rc != 0 && !s->inited)
        drop_producer(s); /* the next attempt makes a new one */
    queue_settle(s);
    return rc;
}

static int kafka_flush(bp_sink *base, bp_error *err)
{
    kafka_sink *s = (kafka_sink *)base;
    int rc = end_group(s, err);
    if (rc != 0)
        return rc;
    rd_kafka_resp_err_t e = s->p ? rd_kafka_flush(s->p, s->timeout_ms) : RD_KAFKA_RESP_ERR_NO_ERROR;
    return e ? kerr(s, e, "flush", err) : 0;
}

/* ---- open / close ----------------------------------------------------------------------- */

static void kafka_close(bp_sink *base)
{
    kafka_sink *s = (kafka_sink *)base;
    if (!s)
        return;
    bp_error gerr = {0};
    if (s->grp.batches && end_group(s, &gerr) != 0) /* accepted: the pipeline counts them */
        bp_warn("kafka %s: committing the last batches at close: %s", s->brokers, gerr.msg);
    if (s->p)
        rd_kafka_flush(s->p, s->timeout_ms);
    drop_producer(s);
    if (s->c) {
        rd_kafka_consumer_close(s->c);
        rd_kafka_destroy(s->c);
    }
    if (s->conf)
        rd_kafka_conf_destroy(s->conf);
    free(s->brokers);
    free(s->prefix);
    free(s->name);
    free(s->cp_topic);
    free(s->chain);
    for (int e = 0; e < BP_STREAM_ENTITY_COUNT; e++)
        free(s->topics[e]);
    bp_buf_release(&s->data);
    bp_buf_release(&s->msg);
    bp_buf_release(&s->text);
    bp_buf_release(&s->grp.kept);
    free(s);
}

static char *joined(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 1;
    char *out = malloc(n);
    if (out)
        snprintf(out, n, "%s%s", a, b);
    return out;
}

static uint64_t random_base(void)
{
    uint64_t v = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, &v, sizeof(v)) != (ssize_t)sizeof(v)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        v = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
    }
    if (fd >= 0)
        close(fd);
    return v;
}

/* Whether the URL's parameters or --kafka-set set queue.buffering.max.kbytes. */
static bool queue_cap_given(const char *query, const char *set)
{
    static const char key[] = "queue.buffering.max.kbytes=";
    const char *texts[] = {query, set};
    for (size_t i = 0; i < 2; i++)
        for (const char *p = texts[i]; p && (p = strstr(p, key)) != NULL; p += sizeof(key) - 1)
            if (p == texts[i] || p[-1] == '&' || p[-1] == ';' || p[-1] == ' ')
                return true;
    return false;
}

/* The producer's settings: ours, then the URL's other parameters and --kafka-set (they win). */
static int producer_conf(kafka_sink *s, const char *query, const bp_sink_opts *o, bp_error *err)
{
    const char *txid = bp_sink_opt(o, "transactional_id");
    int rc = 0;
    if (txid)
        snprintf(s->txid, sizeof(s->txid), "%s", txid);
    else if (o->chains)
        rc = default_txid(s, o->chains, err);
    if (rc != 0)
        return rc;
    char timeout[24];
    snprintf(timeout, sizeof(timeout), "%d", s->timeout_ms);
    s->conf = rd_kafka_conf_new();
    rd_kafka_conf_set_opaque(s->conf, s);
    rd_kafka_conf_set_dr_msg_cb(s->conf, on_delivery);
    rd_kafka_conf_set_log_cb(s->conf, on_log);
    const char *const ours[][2] = {
        {"bootstrap.servers", s->brokers},
        {"enable.idempotence", "true"},
        {"message.timeout.ms", timeout},
        {"socket.keepalive.enable", "true"},
        {"linger.ms", "5"},
        {"transactional.id", s->txid},
    };
    size_t count = sizeof(ours) / sizeof(ours[0]) - !s->txid[0]; /* unknown yet: late_txid */
    for (size_t i = 0; rc == 0 && i < count; i++)
        rc = conf_set(s->conf, ours[i][0], ours[i][1], err);
    if (rc == 0 && s->timeout_ms > 60000)
        rc = conf_set(s->conf, "transaction.timeout.ms", timeout, err);
    if (rc == 0)
        rc = conf_list(s->conf, query, '&', true, err);
    if (rc == 0)
        rc = conf_list(s->conf, bp_sink_opt(o, "set"), ';', false, err);
    char cap[32];
    size_t cap_len = sizeof(cap);
    if (rc == 0 && !queue_cap_given(query, bp_sink_opt(o, "set"))) {
        snprintf(cap, sizeof(cap), "%d", QUEUE_MAX_KB);
        rc = conf_set(s->conf, "queue.buffering.max.kbytes", cap, err);
    }
    if (rc == 0 &&
        rd_kafka_conf_get(s->conf, "queue.buffering.max.kbytes", cap, &cap_len) == RD_KAFKA_CONF_OK)
        s->queue_cap = (size_t)strtoull(cap, NULL, 10) << 10;
    size_t got = sizeof(s->txid); /* one given in the URL or --kafka-set wins: name it */
    if (rc == 0 &&
        rd_kafka_conf_get(s->conf, "transactional.id", s->txid, &got) != RD_KAFKA_CONF_OK)
        s->txid[0] = '\0';
    return rc;
}

static int configure(kafka_sink *s, const char *target, const bp_sink_opts *o, bp_error *err)
{
    size_t n = strcspn(target, "?");
    s->brokers = strndup(target, n);
    s->prefix = strdup(bp_sink_opt(o, "prefix") ? bp_sink_opt(o, "prefix") : "");
    s->name = strdup(bp_sink_opt(o, "checkpoint"));
    s->timeout_ms = (int)bp_sink_opt_int(o, "timeout") * 1000;
    s->create_topics = bp_sink_opt_int(o, "create_topics") != 0;
    if (!s->brokers || !s->prefix || !s->name)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    s->cp_topic = joined(s->prefix, bp_sink_opt(o, "checkpoint_topic"));
    for (int e = 0; e < BP_STREAM_ENTITY_COUNT; e++)
        s->topics[e] = joined(s->prefix, bp_stream_entity_names[e]);
    int rc = bp_stream_entities_of(o, &s->entities, &s->base.derived, err);
    if (rc == 0)
        bp_stream_families(s->entities, &s->base);
    if (rc == 0 && !s->brokers[0])
        rc = bp_error_set(err, BP_EINVAL, "no broker: expected kafka://host:port[,host:port]");
    if (rc == 0)
        rc = producer_conf(s, target[n] == '?' ? target + n + 1 : "", o, err);
    return rc;
}

static int kafka_open(bp_sink **out, const char *target, const bp_sink_opts *opts, bp_error *err)
{
    *out = NULL;
    kafka_sink *s = calloc(1, sizeof(*s));
    if (!s)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    bp_buf_init(&s->data, 0);
    bp_buf_init(&s->msg, 0);
    bp_buf_init(&s->text, 0);
    bp_buf_init(&s->grp.kept, 0);
    s->txn_base = random_base();
    /* No broker is asked yet: one that is down at start is the checkpoint read's business. */
    int rc = configure(s, target, opts, err);
    if (rc == 0 && s->txid[0])
        rc = new_producer(s, err);
    if (rc == 0)
        rc = new_reader(s, s->brokers, err);
    if (rc != 0) {
        kafka_close(&s->base);
        return rc;
    }
    bp_info("kafka %s: messages waiting for delivery up to %.1f MiB (queue.buffering.max.kbytes), "
            "beyond %.1f MiB charged to the memory budget; topics %s{entity}, checkpoint %s key "
            "%s:{chain}, transactional.id %s",
            s->brokers, (double)s->queue_cap / 1048576.0, (double)QUEUE_KEEP / 1048576.0, s->prefix,
            s->cp_topic, s->name,
            s->txid[0] ? s->txid : "(blockpipe-{name}-{chain}, once the chain is known)");
    *out = &s->base;
    return 0;
}

static const bp_sink_option g_options[] = {
    BP_STREAM_ENTITIES_OPTION,
    BP_STREAM_METRICS_OPTION,
    {.name = "prefix",
     .flag = "kafka-topic-prefix",
     .env = "KAFKA_TOPIC_PREFIX",
     .key = "kafka_topic_prefix",
     .type = BP_SINK_OPT_STRING,
     .arg = "TEXT",
     .help = "start of every topic name: {prefix}blocks, {prefix}transactions, {prefix}logs, "
             "{prefix}metrics (default none: ethereum-etl's names)"},
    {.name = "checkpoint_topic",
     .flag = "kafka-checkpoint-topic",
     .env = "KAFKA_CHECKPOINT_TOPIC",
     .key = "kafka_checkpoint_topic",
     .type = BP_SINK_OPT_STRING,
     .arg = "NAME",
     .def = "blockpipe_checkpoints",
     .help = "the compacted topic of the checkpoints (after the prefix)"},
    BP_SINK_OPTION_CHECKPOINT_NAME("kafka"),
    {.name = "transactional_id",
     .flag = "kafka-transactional-id",
     .env = "KAFKA_TRANSACTIONAL_ID",
     .key = "kafka_transactional_id",
     .type = BP_SINK_OPT_STRING,
     .arg = "ID",
     .help = "the producer's transactional.id (default blockpipe-{checkpoint name}-{the "
             "chains the process writes, sorted, joined by +}, so each shard has its own): one "
             "writer at a time, a new one fences the old"},
    {.name = "set",
     .flag = "kafka-set",
     .env = "KAFKA_SET",
     .key = "kafka_set",
     .type = BP_SINK_OPT_STRING,
     .arg = "K=V;...",
     .help = "librdkafka settings for the producer, e.g. 'compression.type=lz4;linger.ms=20' "
             "(URL parameters that are not blockpipe's are passed on too)"},
    {.name = "timeout",
     .flag = "kafka-timeout",
     .env = "KAFKA_TIMEOUT",
     .key = "kafka_timeout",
     .type = BP_SINK_OPT_INT,
     .arg = "S",
     .def = "30",
     .min = 1,
     .max = 3600,
     .help = "seconds for a delivery, a commit or a checkpoint read before the batch counts as "
             "failed (and is written again, never twice)"},
    {.name = "create_topics",
     .flag = "kafka-create-topics",
     .env = "KAFKA_CREATE_TOPICS",
     .key = "kafka_create_topics",
     .type = BP_SINK_OPT_BOOL,
     .arg = "on|off",
     .def = "on",
     .help = "create missing topics at start (the checkpoint topic compacted, one partition)"},
};

const bp_sink_ops bp_sink_kafka_ops = {
    .scheme = "kafka",
    .title = "Kafka",
    .usage = "kafka://broker1:9092,broker2:9092",
    .description = "Kafka topics per entity keyed by chain; a batch and its checkpoint in one "
                   "transaction (exactly once for read_committed consumers)",
    .options = g_options,
    .option_count = sizeof(g_options) / sizeof(g_options[0]),
    .open = kafka_open,
    .checkpoint = kafka_checkpoint,
    .recent = kafka_recent,
    .write = kafka_write,
    .flush = kafka_flush,
    .close = kafka_close,
};
