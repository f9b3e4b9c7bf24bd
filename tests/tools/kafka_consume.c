/* kafka_consume.c - a read-committed consumer for the Kafka output's tests: reads topics from
 * their beginning to their end and prints each record as a JSON line
 *   {"topic":"..","partition":P,"offset":O,"key":"..","txn":"..","value":<the value>}
 * (value as it is when it is JSON, else a string; txn the bp-txn header, null without one).
 *
 *   kafka_consume BOOTSTRAP TOPIC...
 *
 * isolation.level=read_committed, as the consumers the Kafka output promises exactly once to.
 * Against librdkafka's mock cluster, which has no transaction markers, aborted records come
 * through too: the tests keep a record only when its txn has a checkpoint record
 * (tests/tools/kafka.py, tests/contract/readers.c). Exit 1 with a message on an error. */
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void quoted(const char *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void print(const rd_kafka_message_t *m)
{
    printf("{\"topic\":");
    const char *t = rd_kafka_topic_name(m->rkt);
    quoted(t, strlen(t));
    printf(",\"partition\":%" PRId32 ",\"offset\":%" PRId64 ",\"key\":", m->partition, m->offset);
    if (m->key)
        quoted(m->key, m->key_len);
    else
        printf("null");
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t vn = 0;
    printf(",\"txn\":");
    if (rd_kafka_message_headers(m, &h) == 0 && rd_kafka_header_get_last(h, "bp-txn", &v, &vn) == 0)
        quoted(v, vn);
    else
        printf("null");
    printf(",\"value\":");
    const char *p = m->payload;
    if (m->len && (p[0] == '{' || p[0] == '['))
        fwrite(p, 1, m->len, stdout);
    else
        quoted(p ? p : "", m->len);
    printf("}\n");
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: kafka_consume BOOTSTRAP TOPIC...\n");
        return 2;
    }
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *set[][2] = {{"bootstrap.servers", argv[1]},   {"group.id", "blockpipe-test-reader"},
                            {"enable.auto.commit", "false"},  {"isolation.level", "read_committed"},
                            {"enable.partition.eof", "true"}, {"log_level", "3"}};
    for (size_t i = 0; i < sizeof(set) / sizeof(set[0]); i++)
        if (rd_kafka_conf_set(conf, set[i][0], set[i][1], err, sizeof(err)) != RD_KAFKA_CONF_OK) {
            fprintf(stderr, "kafka_consume: %s\n", err);
            return 1;
        }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "kafka_consume: %s\n", err);
        return 1;
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    rd_kafka_topic_partition_list_t *ends = rd_kafka_topic_partition_list_new(16);
    int parts = 0;
    for (int i = 2; i < argc; i++) {
        rd_kafka_topic_t *t = rd_kafka_topic_new(rk, argv[i], NULL);
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, 10000);
        rd_kafka_topic_destroy(t);
        if (e) {
            fprintf(stderr, "kafka_consume: metadata of %s: %s\n", argv[i], rd_kafka_err2str(e));
            return 1;
        }
        for (int p = 0; md->topic_cnt == 1 && !md->topics[0].err && p < md->topics[0].partition_cnt;
             p++) {
            int64_t lo, hi;
            e = rd_kafka_query_watermark_offsets(rk, argv[i], p, &lo, &hi, 10000);
            if (e) {
                fprintf(stderr, "kafka_consume: offsets of %s [%d]: %s\n", argv[i], p,
                        rd_kafka_err2str(e));
                return 1;
            }
            if (hi > lo) {
                rd_kafka_topic_partition_list_add(l, argv[i], p)->offset = lo;
                rd_kafka_topic_partition_list_add(ends, argv[i], p)->offset = hi;
                parts++;
            }
        }
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    time_t deadline = time(NULL) + 60;
    while (parts > 0) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m) {
            if (time(NULL) > deadline) {
                fprintf(stderr, "kafka_consume: no end of the partitions within 60 s\n");
                return 1;
            }
            continue;
        }
        /* A partition is done at its end as of the start: at the high watermark (the mock
         * cluster answers a fetch there only after 500 ms) or, read committed on a broker
         * with a transaction open, at the EOF of its last stable offset. */
        rd_kafka_topic_partition_t *end =
            rd_kafka_topic_partition_list_find(ends, rd_kafka_topic_name(m->rkt), m->partition);
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (end && end->offset >= 0)
                parts--;
            if (end)
                end->offset = -1;
        } else if (m->err) {
            fprintf(stderr, "kafka_consume: %s\n", rd_kafka_message_errstr(m));
            return 1;
        } else {
            print(m);
            if (end && end->offset >= 0 && m->offset + 1 >= end->offset) {
                end->offset = -1;
                parts--;
            }
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_topic_partition_list_destroy(ends);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return 0;
}
