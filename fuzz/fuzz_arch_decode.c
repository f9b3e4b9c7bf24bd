/* fuzz_arch_decode.c - libFuzzer target: bytes as an Arch WebSocket event, a get_block answer
 * and a get_processed_transaction answer (src/arch/arch_decode.h). Every input either decodes
 * or is refused with a message; decoding is deterministic (the same event twice, the same
 * dedup key and data) and a decoded event's data decodes again as the same event. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arch_decode.h"
#include "chain/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HASH "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

static void refused_with_message(int rc, const bp_error *err, const char *what)
{
    if (rc != 0 && !err->msg[0]) {
        fprintf(stderr, "%s refused without a message\n", what);
        abort();
    }
}

static void event(const char *text, size_t len)
{
    bp_error err = {0};
    bp_arch_event a, b;
    int rc = bp_arch_decode_event(text, len, 1.0, &a, &err);
    refused_with_message(rc, &err, "event");
    if (rc != 0)
        return;
    if (bp_arch_decode_event(text, len, 2.0, &b, &err) != 0 || strcmp(a.key, b.key) != 0 ||
        strcmp(a.data, b.data) != 0) {
        fprintf(stderr, "the same event decoded twice differs: %s\n", a.key);
        abort();
    }
    bp_arch_event_free(&b);
    /* The stored data, put back in its envelope, is the same event (the dedup key holds). */
    size_t n = strlen(a.data) + 64;
    char *again = malloc(n);
    snprintf(again, n, "{\"topic\":\"%s\",\"data\":%s}", bp_arch_topic_name(a.topic), a.data);
    if (bp_arch_decode_event(again, strlen(again), 3.0, &b, &err) != 0 ||
        strcmp(a.key, b.key) != 0) {
        fprintf(stderr, "stored data does not decode to the same event: %s\n", err.msg);
        abort();
    }
    bp_arch_event_free(&b);
    free(again);
    bp_arch_event_free(&a);
}

static void answers(const char *text, size_t len)
{
    bp_error err = {0};
    yajl_val root, res;
    int rc = bp_arch_result(text, len, "get_block", &root, &res, &err);
    refused_with_message(rc, &err, "answer");
    if (rc == 0) {
        bp_arch_block b;
        bp_arch_tx t;
        rc = bp_arch_decode_block(res, HASH, &b, &err);
        refused_with_message(rc, &err, "block");
        if (rc == 0) {
            if (b.txid_count != b.tx_count)
                abort();
            bp_arch_block_free(&b);
        }
        rc = bp_arch_decode_tx(res, HASH, 7, &t, &err);
        refused_with_message(rc, &err, "transaction");
        if (rc == 0) {
            if (!t.program_ids || !t.bitcoin_txids || (t.status == BP_ARCH_FAILED) != !!t.failure)
                abort();
            bp_arch_tx_free(&t);
        }
    }
    bp_json_free(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (memchr(data, '\0', size)) /* the parsers take (pointer, length) without NULs */
        return 0;
    event((const char *)data, size);
    answers((const char *)data, size);
    return 0;
}
