/* filter.c - push subscriptions from query parameters or a WebSocket JSON message. */
#include <stdio.h>
#include <string.h>

#include "api/push.h"
#include "chain/json.h"
#include "util/hex.h"

#define FILTER_JSON_MAX 65536

static const char *const g_topics[BP_PUSH_TOPICS] = {"blocks",  "transactions", "logs",   "reorgs",
                                                     "metrics", "status",       "streams"};

const char *bp_push_topic_name(unsigned bit)
{
    for (unsigned i = 0; i < BP_PUSH_TOPICS; i++)
        if (bit == 1u << i)
            return g_topics[i];
    return "?";
}

static int bad(const char *what, const char *v, size_t len, const char *expected, bp_error *err)
{
    char raw[128], shown[300];
    size_t n = len < sizeof(raw) - 1 ? len : sizeof(raw) - 1;
    memcpy(raw, v, n);
    raw[n] = '\0';
    bp_api_printable(raw, shown, sizeof(shown));
    return bp_error_set(err, BP_EINVAL, "%s: '%s' is not valid: expected %s", what, shown,
                        expected);
}

/* Adds one topic word s[0..len) to *bits. */
static int topic_word(const char *s, size_t len, unsigned *bits, bp_error *err)
{
    for (unsigned i = 0; i < BP_PUSH_TOPICS; i++)
        if (strlen(g_topics[i]) == len && memcmp(g_topics[i], s, len) == 0) {
            *bits |= 1u << i;
            return 0;
        }
    if (len == 3 && memcmp(s, "all", 3) == 0) {
        *bits |= BP_TOPIC_ALL;
        return 0;
    }
    return bad("topics", s, len,
               "blocks, transactions, logs, reorgs, metrics, status, streams or all", err);
}

/* "blocks,logs" */
static int topic_list(const char *s, unsigned *bits, bp_error *err)
{
    while (*s) {
        size_t w = strcspn(s, ",");
        if (w) {
            int rc = topic_word(s, w, bits, err);
            if (rc != 0)
                return rc;
        }
        s += w + (s[w] == ',');
    }
    return 0;
}

static int min_value(const char *s, size_t len, bp_u256 *out, bp_error *err)
{
    int rc = len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') ? bp_hex_to_u256(s, len, out)
                                                                    : bp_u256_from_dec(s, len, out);
    if (rc != 0 || len == 0)
        return bad("min_value", s, len, "a decimal or 0x-hex amount of wei below 2^256", err);
    return 0;
}

static int hex_value(const char *what, const char *s, size_t len, size_t bytes, char *out,
                     bp_error *err)
{
    char tmp[80];
    bool ok = len < sizeof(tmp) && !memchr(s, '\0', len);
    if (ok) {
        memcpy(tmp, s, len);
        tmp[len] = '\0';
        ok = bp_api_hex_ok(tmp, bytes, out);
    }
    if (!ok) {
        char expected[48];
        snprintf(expected, sizeof(expected), "0x and %zu hex digits", 2 * bytes);
        return bad(what, s, len, expected, err);
    }
    return 0;
}

/* A stream key: 1 to 512 bytes, no control characters (keyed.h). */
static int key_value(const char *s, size_t len, char *key, bp_error *err)
{
    bool ok = len > 0 && len < BP_PUSH_KEY_MAX;
    for (size_t i = 0; ok && i < len; i++)
        ok = (unsigned char)s[i] >= 0x20 && s[i] != 0x7f;
    if (!ok)
        return bad("key", s, len, "a stream key of 1 to 512 bytes without control characters", err);
    memcpy(key, s, len);
    key[len] = '\0';
    return 0;
}

static int since_value(const char *s, size_t len, char *since, bp_error *err)
{
    if (len >= BP_PUSH_CURSOR_MAX || memchr(s, '\0', len))
        return bad("since", s, len, "a cursor of a message", err);
    memcpy(since, s, len);
    since[len] = '\0';
    return 0;
}

int bp_push_filter_params(const bp_api_request *r, bp_push_filter *f, char *since, bp_error *err)
{
    static const char *const known[] = {"topics", "topic", "address", "topic0", "min_value",
                                        "since",  "key",   "token",   NULL};
    memset(f, 0, sizeof(*f));
    since[0] = '\0';
    int rc = bp_api_params_known(r, known, err);
    const char *v;
    if (rc == 0 && ((v = bp_api_param_get(r, "topics")) || (v = bp_api_param_get(r, "topic"))))
        rc = topic_list(v, &f->topics, err);
    if (rc == 0 && (v = bp_api_param_get(r, "address"))) {
        rc = hex_value("address", v, strlen(v), 20, f->address, err);
        f->has_address = rc == 0;
    }
    if (rc == 0 && (v = bp_api_param_get(r, "topic0"))) {
        rc = hex_value("topic0", v, strlen(v), 32, f->topic0, err);
        f->has_topic0 = rc == 0;
    }
    if (rc == 0 && (v = bp_api_param_get(r, "min_value"))) {
        rc = min_value(v, strlen(v), &f->min_value, err);
        f->has_min_value = rc == 0;
    }
    if (rc == 0 && (v = bp_api_param_get(r, "since")))
        rc = since_value(v, strlen(v), since, err);
    if (rc == 0 && (v = bp_api_param_get(r, "key")))
        rc = key_value(v, strlen(v), f->key, err);
    if (rc == 0 && !f->topics)
        f->topics = BP_TOPIC_BLOCKS;
    return rc;
}

/* One member of a subscribe message. */
static int json_member(const char *k, yajl_val v, bp_push_filter *f, char *since, bp_error *err)
{
    bool is_str = YAJL_IS_STRING(v);
    const char *s = is_str ? YAJL_GET_STRING(v) : NULL;
    size_t len = is_str ? bp_json_strlen(v) : 0;
    if (strcmp(k, "subscribe") == 0 || strcmp(k, "topics") == 0) {
        if (is_str)
            return memchr(s, '\0', len) ? bad("topics", s, len, "topic names", err)
                                        : topic_list(s, &f->topics, err);
        if (!YAJL_IS_ARRAY(v))
            return bp_error_set(err, BP_EINVAL, "%s: expected a list of topics", k);
        for (size_t i = 0; i < v->u.array.len; i++) {
            yajl_val t = v->u.array.values[i];
            if (!YAJL_IS_STRING(t))
                return bp_error_set(err, BP_EINVAL, "%s: expected topic names, not %s", k,
                                    bp_json_type_name(t));
            int rc = topic_word(YAJL_GET_STRING(t), bp_json_strlen(t), &f->topics, err);
            if (rc != 0)
                return rc;
        }
        return 0;
    }
    if (strcmp(k, "address") != 0 && strcmp(k, "topic0") != 0 && strcmp(k, "min_value") != 0 &&
        strcmp(k, "since") != 0 && strcmp(k, "key") != 0)
        return bp_error_set(err, BP_EINVAL,
                            "unknown key '%.40s' (expected subscribe, address, topic0, min_value, "
                            "since, key)",
                            k);
    if (strcmp(k, "min_value") == 0 && YAJL_IS_NUMBER(v)) {
        s = v->u.number.r;
        len = strlen(s);
        is_str = true;
    }
    if (!is_str)
        return bp_error_set(err, BP_EINVAL, "%s: expected a string, not %s", k,
                            bp_json_type_name(v));
    int rc;
    bool *flag;
    if (strcmp(k, "address") == 0) {
        rc = hex_value(k, s, len, 20, f->address, err);
        flag = &f->has_address;
    } else if (strcmp(k, "topic0") == 0) {
        rc = hex_value(k, s, len, 32, f->topic0, err);
        flag = &f->has_topic0;
    } else if (strcmp(k, "min_value") == 0) {
        rc = min_value(s, len, &f->min_value, err);
        flag = &f->has_min_value;
    } else if (strcmp(k, "key") == 0) {
        return memchr(s, '\0', len) ? bad("key", s, len, "a stream key", err)
                                    : key_value(s, len, f->key, err);
    } else {
        return since_value(s, len, since, err);
    }
    *flag = rc == 0;
    return rc;
}

int bp_push_filter_json(const char *json, size_t len, bp_push_filter *f, char *since, bp_error *err)
{
    char msg[256];
    memset(f, 0, sizeof(*f));
    since[0] = '\0';
    if (len > FILTER_JSON_MAX)
        return bp_error_set(err, BP_EINVAL, "subscription: more than %d bytes", FILTER_JSON_MAX);
    yajl_val root = bp_json_parse(json, len, msg, sizeof(msg));
    if (!root)
        return bp_error_set(err, BP_EINVAL, "subscription: not JSON: %s", msg);
    int rc = 0;
    if (!YAJL_IS_OBJECT(root))
        rc = bp_error_set(err, BP_EINVAL, "subscription: expected an object, not %s",
                          bp_json_type_name(root));
    for (size_t i = 0; rc == 0 && i < YAJL_GET_OBJECT(root)->len; i++)
        rc = json_member(root->u.object.keys[i], root->u.object.values[i], f, since, err);
    if (rc == 0 && !f->topics)
        f->topics = BP_TOPIC_BLOCKS;
    bp_json_free(root);
    return rc;
}
