/* kafka_mock.c - librdkafka's mock Kafka cluster in a process of its own, for the tests of the
 * Kafka output (the one stand-in the tests allow: no Kafka broker is packaged for Debian 12).
 *
 *   kafka_mock [BROKERS]     prints "bootstrap=127.0.0.1:PORT,..." and serves until its
 *                            standard input ends or says "quit"; "down N" / "up N" take
 *                            broker N (1-based) down and up again (each answered "ok");
 *                            "fail K CODE N": the next N requests of API key K (from any
 *                            client) are answered with error CODE, as a broker answers a
 *                            fenced producer (EndTxn = 26, PRODUCER_FENCED = 90).
 *
 * What the mock does (librdkafka 2.0.2): producer, idempotent producer, transactional
 * producer (InitProducerId, AddPartitionsToTxn, EndTxn accepted), consumers, topic
 * auto-creation (4 partitions). What it does not: transaction markers - an aborted
 * transaction's records are served like committed ones and read_committed consumers are not
 * held at a last stable offset - and CreateTopics. tests/tools/kafka_consume.c therefore
 * also reports each record's bp-txn header, which the tests match against the checkpoint
 * records (see src/sink/kafka.c). */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    int brokers = argc > 1 ? atoi(argv[1]) : 1;
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "kafka_mock: %s\n", err);
        return 1;
    }
    rd_kafka_mock_cluster_t *m = rd_kafka_mock_cluster_new(rk, brokers > 0 ? brokers : 1);
    if (!m) {
        fprintf(stderr, "kafka_mock: cannot make the mock cluster\n");
        return 1;
    }
    printf("bootstrap=%s\n", rd_kafka_mock_cluster_bootstraps(m));
    fflush(stdout);
    char line[256];
    while (fgets(line, sizeof(line), stdin)) {
        int id = 0, key = 0, code = 0, n = 0;
        if (strncmp(line, "quit", 4) == 0)
            break;
        if (sscanf(line, "fail %d %d %d", &key, &code, &n) == 3 && n > 0 && n <= 64) {
            rd_kafka_resp_err_t codes[64];
            for (int i = 0; i < n; i++)
                codes[i] = (rd_kafka_resp_err_t)code;
            rd_kafka_mock_push_request_errors_array(m, (int16_t)key, (size_t)n, codes);
        } else if (sscanf(line, "down %d", &id) == 1)
            rd_kafka_mock_broker_set_down(m, id);
        else if (sscanf(line, "up %d", &id) == 1)
            rd_kafka_mock_broker_set_up(m, id);
        else
            continue;
        printf("ok\n");
        fflush(stdout);
    }
    rd_kafka_mock_cluster_destroy(m);
    rd_kafka_destroy(rk);
    return 0;
}
