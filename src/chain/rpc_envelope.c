/* rpc_envelope.c - the JSON-RPC envelope of an answer: results and errors matched to their
 * requests by id, and a node's error object turned into a code and message. */
#include "chain/rpc_envelope.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chain/json.h"

/* The request id as a slot index, or -1 when absent; -2 when not a usable id. */
static long long answer_id(yajl_val obj)
{
    yajl_val id = yajl_tree_get(obj, (const char *[]){"id", NULL}, yajl_t_any);
    if (!id || YAJL_IS_NULL(id))
        return -1;
    if (YAJL_IS_INTEGER(id))
        return id->u.number.i >= 0 ? id->u.number.i : -2;
    if (YAJL_IS_STRING(id)) {
        char *end;
        const char *s = id->u.string;
        unsigned long long x = strtoull(s, &end, 10);
        return *s >= '0' && *s <= '9' && !*end && x < (1ULL << 62) ? (long long)x : -2;
    }
    return -2;
}

static int split_answer(yajl_val obj, yajl_val *result, yajl_val *error, bp_error *err)
{
    if (!YAJL_IS_OBJECT(obj))
        return bp_error_set(err, BP_EPARSE, "JSON-RPC answer: expected an object, got %s",
                            bp_json_type_name(obj));
    yajl_val r = yajl_tree_get(obj, (const char *[]){"result", NULL}, yajl_t_any);
    yajl_val e = yajl_tree_get(obj, (const char *[]){"error", NULL}, yajl_t_any);
    if (e && YAJL_IS_NULL(e))
        e = NULL;
    if (!r && !e)
        return bp_error_set(err, BP_EPARSE, "JSON-RPC answer has neither 'result' nor 'error'");
    *result = e ? NULL : r;
    *error = e;
    return BP_OK;
}

static int place_single(yajl_val obj, size_t n, yajl_val *results, yajl_val *errors, bp_error *err);

static int place_batch(yajl_val arr, size_t n, yajl_val *results, yajl_val *errors, bp_error *err)
{
    /* geth refuses a batch over its limit with a one-entry array holding the error */
    if (arr->u.array.len == 1 && n > 1 && YAJL_IS_OBJECT(arr->u.array.values[0]) &&
        yajl_tree_get(arr->u.array.values[0], (const char *[]){"error", NULL}, yajl_t_object))
        return place_single(arr->u.array.values[0], n, results, errors, err);
    if (arr->u.array.len != n)
        return bp_error_set(err, BP_EPARSE, "batch answer has %zu entries, expected %zu",
                            arr->u.array.len, n);
    for (size_t i = 0; i < n; i++) {
        yajl_val obj = arr->u.array.values[i];
        yajl_val r = NULL, e = NULL;
        int rc = split_answer(obj, &r, &e, err);
        if (rc != BP_OK)
            return bp_error_prefix(err, "batch entry %zu: ", i);
        long long id = answer_id(obj);
        size_t slot = id == -1 ? i : (size_t)id;
        if (id == -2 || slot >= n)
            return bp_error_set(err, BP_EPARSE, "batch entry %zu: unexpected id", i);
        if (results[slot] || errors[slot])
            return bp_error_set(err, BP_EPARSE, "batch entry %zu: duplicate id %zu", i, slot);
        results[slot] = r;
        errors[slot] = e;
    }
    return BP_OK;
}

/* One object for a batch: the node refused the whole batch; every slot gets its error. */
static int place_single(yajl_val obj, size_t n, yajl_val *results, yajl_val *errors, bp_error *err)
{
    yajl_val r = NULL, e = NULL;
    int rc = split_answer(obj, &r, &e, err);
    if (rc != BP_OK)
        return rc;
    if (n > 1 && !e)
        return bp_error_set(err, BP_EPARSE, "one answer for a batch of %zu requests", n);
    for (size_t i = 0; i < n; i++) {
        results[i] = r;
        errors[i] = e;
    }
    return BP_OK;
}

int bp_decode_rpc_tree(yajl_val root, size_t n, yajl_val *results, yajl_val *errors, bp_error *err)
{
    for (size_t i = 0; i < n; i++)
        results[i] = errors[i] = NULL;
    if (n == 0)
        return bp_error_set(err, BP_EINVAL, "no requests to match answers to");
    if (YAJL_IS_ARRAY(root))
        return place_batch(root, n, results, errors, err);
    if (YAJL_IS_OBJECT(root))
        return place_single(root, n, results, errors, err);
    return bp_error_set(err, BP_EPARSE, "JSON-RPC answer: expected an object or array, got %s",
                        bp_json_type_name(root));
}

/* body is written to (and must outlive the tree) when inplace. */
static int parse_body(char *body, size_t len, bool inplace, yajl_val *root, bp_error *err)
{
    if (!body)
        return bp_error_set(err, BP_EPARSE, "empty JSON-RPC answer");
    char ebuf[256];
    *root = inplace ? bp_json_parse_inplace(body, len, ebuf, sizeof(ebuf))
                    : bp_json_parse(body, len, ebuf, sizeof(ebuf));
    if (!*root) {
        char *nl = strchr(ebuf, '\n');
        if (nl)
            *nl = '\0';
        return bp_error_set(err, BP_EPARSE, "JSON-RPC answer is not JSON: %s", ebuf);
    }
    return BP_OK;
}

static int decode_rpc_response(char *body, size_t len, bool inplace, size_t n, yajl_val *root,
                               yajl_val *results, yajl_val *errors, bp_error *err)
{
    *root = NULL;
    for (size_t i = 0; i < n; i++)
        results[i] = errors[i] = NULL;
    if (n == 0)
        return bp_error_set(err, BP_EINVAL, "no requests to match answers to");
    int rc = parse_body(body, len, inplace, root, err);
    if (rc != BP_OK)
        return rc;
    rc = bp_decode_rpc_tree(*root, n, results, errors, err);
    if (rc != BP_OK) {
        bp_json_free(*root);
        *root = NULL;
        for (size_t i = 0; i < n; i++)
            results[i] = errors[i] = NULL;
    }
    return rc;
}

int bp_decode_rpc_response(const char *body, size_t len, size_t n, yajl_val *root,
                           yajl_val *results, yajl_val *errors, bp_error *err)
{
    /* Not written through: the copying parser only reads. */
    return decode_rpc_response((char *)(uintptr_t)body, len, false, n, root, results, errors, err);
}

int bp_decode_rpc_response_inplace(char *body, size_t len, size_t n, yajl_val *root,
                                   yajl_val *results, yajl_val *errors, bp_error *err)
{
    return decode_rpc_response(body, len, true, n, root, results, errors, err);
}

/* Case-insensitive substring test (strcasestr is a GNU extension). */
static bool contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && tolower((unsigned char)hay[i]) == needle[i])
            i++;
        if (i == n)
            return true;
    }
    return false;
}

static int classify_rpc_error(long long code, const char *msg)
{
    if (code == -32601 || contains_ci(msg, "method not found") ||
        contains_ci(msg, "not supported") || contains_ci(msg, "does not exist"))
        return BP_EUNSUPPORTED;
    /* -32007 and "request limit reached": QuickNode's ("15/second request limit reached") */
    if (code == -32005 || code == -32007 || code == 429 || contains_ci(msg, "rate limit") ||
        contains_ci(msg, "too many requests") || contains_ci(msg, "request limit reached"))
        return BP_ERATELIMIT;
    return BP_ERPC;
}

int bp_decode_rpc_error(yajl_val error, const char *method, bp_error *err)
{
    const char *m = method ? method : "request";
    if (!error || !YAJL_IS_OBJECT(error))
        return bp_error_set(err, BP_ERPC, "%s: node error (malformed error object: %s)", m,
                            bp_json_type_name(error));
    yajl_val code = yajl_tree_get(error, (const char *[]){"code", NULL}, yajl_t_any);
    yajl_val msg = yajl_tree_get(error, (const char *[]){"message", NULL}, yajl_t_any);
    long long c = code && YAJL_IS_INTEGER(code) ? code->u.number.i : 0;
    const char *text = msg && YAJL_IS_STRING(msg) ? msg->u.string : "";
    return bp_error_set(err, classify_rpc_error(c, text), "%s: node error %lld: %.300s", m, c,
                        text);
}
