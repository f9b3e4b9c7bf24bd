/* stream_bench.c - the stream outputs' speed: stream entries per second through blockpipe's
 * Redis and Kafka outputs, and the same entries through a plain client doing only the
 * sending (the server's or the client library's own limit), driven by bench/stream_bench.py.
 *
 *   stream_bench redis-sink URL BLOCKS BATCH
 *       synthetic blocks (tests/unit/sink_fixture.h: 4 transactions, 5 logs, 2 withdrawals
 *       each) through the redis output, BATCH blocks per write (one MULTI/EXEC each)
 *   stream_bench redis-plain HOST PORT BLOCKS BATCH MAXLEN PUBLISH
 *       the same entries (their JSON made before each batch's clock starts) as hiredis
 *       pipelined XADD key MAXLEN ~ MAXLEN * ... (and PUBLISH when PUBLISH is 1), BATCH
 *       blocks' entries per pipeline - redis-benchmark's way
 *   stream_bench kafka-sink BLOCKS BATCH       through the kafka output into librdkafka's mock
 *   stream_bench kafka-sink-head BLOCKS BATCH  cluster (made in this process), every write but
 *   stream_bench kafka-plain BLOCKS BATCH      the last marked as a backfill's (bp_batch.more:
 *       the output groups batches in a transaction), or none (one transaction per write, as at
 *       the head); or the same messages from a plain producer loop (no transactions), flushed
 *       after each batch's worth
 * Every mode carries blocks, transactions and logs. Each prints
 * "msgs=N seconds=S msgs_per_s=R"; seconds count only the writing. */
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blockpipe/sink.h"
#include "core/budget.h"
#include "sink/stream.h"
#include "sink_fixture.h"
#include "util/log.h"

#define CHAIN "bench"
/* blocks, transactions, logs: the entities measured (metrics need derived rows) */
#define RAW_ENTITIES BP_STREAM_METRICS

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report(uint64_t msgs, double secs)
{
    printf("msgs=%" PRIu64 " seconds=%.3f msgs_per_s=%.0f\n", msgs, secs, (double)msgs / secs);
}

static uint64_t entries_of(const bp_block *b)
{
    uint64_t n = 0;
    for (int e = 0; e < RAW_ENTITIES; e++)
        n += bp_stream_rows(e, b);
    return n;
}

/* Blocks first..first+n-1 (full, with receipts), chained. */
static void make_blocks(bp_block **bl, uint64_t first, size_t n)
{
    for (size_t k = 0; k < n; k++)
        bl[k] = fx_block(first + k, 0, true, true);
}

static void free_blocks(bp_block **bl, size_t n)
{
    for (size_t k = 0; k < n; k++)
        bp_block_free(bl[k]);
}

/* ---- through a sink --------------------------------------------------------------------- */

/* more: each batch but the last is written as a backfill's (bp_batch.more). */
static int bench_sink(const char *url, uint64_t blocks, size_t batch, bool more)
{
    bp_sink *s = NULL;
    bp_error err = {0};
    bp_checkpoint cp;
    if (bp_sink_open_url(url, &s, &err) != 0 || s->ops->checkpoint(s, CHAIN, &cp, &err) != 0) {
        fprintf(stderr, "stream_bench: %s\n", err.msg);
        return 1;
    }
    bp_block **bl = calloc(batch, sizeof(*bl));
    bp_event *ev = calloc(batch, sizeof(*ev));
    /* BENCH_BUDGET=1: the writes carry a memory budget (1 GiB), as the pipeline's do: what an
     * output charges to it (Kafka: its queue beyond its fixed part) is then counted */
    bp_budget budget;
    bool with_budget = getenv("BENCH_BUDGET") && atoi(getenv("BENCH_BUDGET")) != 0;
    bp_budget_init(&budget, (size_t)1 << 30);
    uint64_t msgs = 0;
    double secs = 0;
    int rc = 0;
    for (uint64_t i = 0; i < blocks && rc == 0; i += batch) {
        size_t n = blocks - i < batch ? (size_t)(blocks - i) : batch;
        make_blocks(bl, i, n);
        for (size_t k = 0; k < n; k++) {
            ev[k] = (bp_event){.kind = BP_EVENT_APPLY, .block = bl[k]};
            msgs += entries_of(bl[k]);
        }
        bp_batch b = {.chain = CHAIN,
                      .chain_id = 1,
                      .events = ev,
                      .count = n,
                      .checkpoint = fx_cp(bl[n - 1]->number, 0),
                      .more = more && i + n < blocks,
                      .budget = with_budget ? &budget : NULL};
        double t0 = now_s();
        rc = s->ops->write(s, &b, &err);
        secs += now_s() - t0;
        free_blocks(bl, n);
    }
    if (rc != 0)
        fprintf(stderr, "stream_bench: %s\n", err.msg);
    else
        report(msgs, secs);
    free(bl);
    free(ev);
    bp_sink_close(s);
    bp_budget_release(&budget);
    return rc != 0;
}

/* ---- the entries, made before the clock starts ------------------------------------------ */

typedef struct entry {
    int entity;
    const bp_block *b;
    char *data, *msg;
    size_t dlen, mlen;
} entry;

static size_t make_entries(bp_block **bl, size_t n, entry *out)
{
    bp_buf data, msg;
    bp_buf_init(&data, 0);
    bp_buf_init(&msg, 0);
    size_t m = 0;
    for (size_t k = 0; k < n; k++)
        for (int e = 0; e < RAW_ENTITIES; e++)
            for (size_t r = 0; r < bp_stream_rows(e, bl[k]); r++) {
                const bp_block *b = bl[k];
                bp_stream_row_json(&data, e, &(bp_batch){.chain = CHAIN}, b, r, NULL);
                bp_stream_message(&msg, "apply", CHAIN, b->number, b->hash, b->parent_hash,
                                  data.data, data.len);
                out[m++] = (entry){
                    e,        b,      strndup(data.data, data.len), strndup(msg.data, msg.len),
                    data.len, msg.len};
            }
    bp_buf_release(&data);
    bp_buf_release(&msg);
    return m;
}

static void free_entries(entry *en, size_t m)
{
    for (size_t i = 0; i < m; i++) {
        free(en[i].data);
        free(en[i].msg);
    }
}

/* ---- plain Redis ------------------------------------------------------------------------ */

static int bench_redis_plain(const char *host, int port, uint64_t blocks, size_t batch,
                             const char *maxlen, int publish)
{
    redisContext *c = redisConnect(host, port);
    if (!c || c->err) {
        fprintf(stderr, "stream_bench: redis: %s\n", c ? c->errstr : "out of memory");
        return 1;
    }
    bp_block **bl = calloc(batch, sizeof(*bl));
    entry *en = calloc(batch * 16, sizeof(*en));
    char keys[RAW_ENTITIES][64], chans[RAW_ENTITIES][64];
    for (int e = 0; e < RAW_ENTITIES; e++) {
        snprintf(keys[e], sizeof(keys[e]), "plain:%s:" CHAIN, bp_stream_entity_names[e]);
        snprintf(chans[e], sizeof(chans[e]), "plain:%s_updates:" CHAIN, bp_stream_entity_names[e]);
    }
    uint64_t msgs = 0;
    double secs = 0;
    int rc = 0;
    for (uint64_t i = 0; i < blocks && rc == 0; i += batch) {
        size_t n = blocks - i < batch ? (size_t)(blocks - i) : batch;
        make_blocks(bl, i, n);
        size_t m = make_entries(bl, n, en), sent = 0;
        double t0 = now_s();
        for (size_t k = 0; k < m; k++) {
            char num[24];
            snprintf(num, sizeof(num), "%" PRIu64, en[k].b->number);
            const char *argv[] = {"XADD",        keys[en[k].entity],
                                  "MAXLEN",      "~",
                                  maxlen,        "*",
                                  "type",        "apply",
                                  "chain",       CHAIN,
                                  "number",      num,
                                  "hash",        en[k].b->hash,
                                  "parent_hash", en[k].b->parent_hash,
                                  "data",        en[k].data};
            size_t lens[18];
            for (int a = 0; a < 18; a++)
                lens[a] = strlen(argv[a]);
            lens[17] = en[k].dlen;
            redisAppendCommandArgv(c, 18, argv, lens);
            sent++;
            if (publish) {
                const char *pv[] = {"PUBLISH", chans[en[k].entity], en[k].msg};
                size_t pl[] = {7, strlen(chans[en[k].entity]), en[k].mlen};
                redisAppendCommandArgv(c, 3, pv, pl);
                sent++;
            }
        }
        for (size_t k = 0; k < sent && rc == 0; k++) {
            void *reply = NULL;
            if (redisGetReply(c, &reply) != REDIS_OK ||
                ((redisReply *)reply)->type == REDIS_REPLY_ERROR) {
                fprintf(stderr, "stream_bench: redis: %s\n",
                        reply ? ((redisReply *)reply)->str : c->errstr);
                rc = 1;
            }
            freeReplyObject(reply);
        }
        secs += now_s() - t0;
        msgs += m;
        free_entries(en, m);
        free_blocks(bl, n);
    }
    if (rc == 0)
        report(msgs, secs);
    free(bl);
    free(en);
    redisFree(c);
    return rc;
}

/* ---- Kafka (librdkafka's mock cluster in this process) ---------------------------------- */

static rd_kafka_t *g_mock_rk;
static rd_kafka_mock_cluster_t *g_mock;

static const char *mock_bootstrap(void)
{
    char e[256];
    g_mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), e, sizeof(e));
    g_mock = g_mock_rk ? rd_kafka_mock_cluster_new(g_mock_rk, 1) : NULL;
    return g_mock ? rd_kafka_mock_cluster_bootstraps(g_mock) : NULL;
}

static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    if (m->err)
        (*(size_t *)opaque)++;
}

static int bench_kafka_plain(const char *bootstrap, uint64_t blocks, size_t batch)
{
    char e[512];
    size_t failed = 0;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, e, sizeof(e));
    rd_kafka_conf_set(conf, "linger.ms", "5", e, sizeof(e)); /* as the sink's producer */
    rd_kafka_conf_set_dr_msg_cb(conf, on_dr);
    rd_kafka_conf_set_opaque(conf, &failed);
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof(e));
    if (!p) {
        fprintf(stderr, "stream_bench: %s\n", e);
        return 1;
    }
    rd_kafka_topic_t *t[RAW_ENTITIES];
    for (int k = 0; k < RAW_ENTITIES; k++) {
        char name[64];
        snprintf(name, sizeof(name), "plain_%s", bp_stream_entity_names[k]);
        t[k] = rd_kafka_topic_new(p, name, NULL);
        const struct rd_kafka_metadata *md = NULL;
        if (rd_kafka_metadata(p, 0, t[k], &md, 10000) == 0)
            rd_kafka_metadata_destroy(md);
    }
    bp_block **bl = calloc(batch, sizeof(*bl));
    entry *en = calloc(batch * 16, sizeof(*en));
    uint64_t msgs = 0;
    double secs = 0;
    for (uint64_t i = 0; i < blocks; i += batch) {
        size_t n = blocks - i < batch ? (size_t)(blocks - i) : batch;
        make_blocks(bl, i, n);
        size_t m = make_entries(bl, n, en);
        double t0 = now_s();
        for (size_t k = 0; k < m; k++)
            while (rd_kafka_producev(p, RD_KAFKA_V_RKT(t[en[k].entity]),
                                     RD_KAFKA_V_KEY(CHAIN, strlen(CHAIN)),
                                     RD_KAFKA_V_VALUE(en[k].msg, en[k].mlen),
                                     RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                     RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(p, 10);
        rd_kafka_flush(p, 60000);
        secs += now_s() - t0;
        msgs += m;
        free_entries(en, m);
        free_blocks(bl, n);
    }
    if (failed)
        fprintf(stderr, "stream_bench: %zu messages not delivered\n", failed);
    else
        report(msgs, secs);
    for (int k = 0; k < RAW_ENTITIES; k++)
        rd_kafka_topic_destroy(t[k]);
    rd_kafka_destroy(p);
    free(bl);
    free(en);
    return failed != 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: stream_bench redis-sink URL BLOCKS BATCH\n"
                    "       stream_bench redis-plain HOST PORT BLOCKS BATCH MAXLEN PUBLISH\n"
                    "       stream_bench kafka-sink|kafka-sink-head|kafka-plain BLOCKS BATCH\n");
    return 2;
}

int main(int argc, char **argv)
{
    bp_log_set_level(BP_LOG_WARN);
    if (argc == 5 && strcmp(argv[1], "redis-sink") == 0)
        return bench_sink(argv[2], strtoull(argv[3], NULL, 10), strtoull(argv[4], NULL, 10), true);
    if (argc == 8 && strcmp(argv[1], "redis-plain") == 0)
        return bench_redis_plain(argv[2], atoi(argv[3]), strtoull(argv[4], NULL, 10),
                                 strtoull(argv[5], NULL, 10), argv[6], atoi(argv[7]));
    if (argc != 4 || strncmp(argv[1], "kafka-", 6) != 0)
        return usage();
    const char *bs = mock_bootstrap();
    if (!bs) {
        fprintf(stderr, "stream_bench: cannot make the mock cluster\n");
        return 1;
    }
    uint64_t blocks = strtoull(argv[2], NULL, 10);
    size_t batch = strtoull(argv[3], NULL, 10);
    int rc;
    if (strcmp(argv[1], "kafka-plain") == 0) {
        rc = bench_kafka_plain(bs, blocks, batch);
    } else {
        char url[512];
        snprintf(url, sizeof(url), "kafka://%s?create_topics=off&entities=blocks,transactions,logs",
                 bs);
        rc = bench_sink(url, blocks, batch, strcmp(argv[1], "kafka-sink") == 0);
    }
    rd_kafka_mock_cluster_destroy(g_mock);
    rd_kafka_destroy(g_mock_rk);
    return rc;
}
