/* limits.c - an endpoint's limits, as its error answers name them. */
#include "chain/limits.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void bp_rpc_limits_init(bp_rpc_limits *l)
{
    atomic_init(&l->max_calls, 0);
    atomic_init(&l->max_blocks, 0);
    atomic_init(&l->max_bytes, 0);
    atomic_init(&l->no_block_receipts, 0);
    atomic_init(&l->warned, 0);
}

bool bp_rpc_limits_once(bp_rpc_limits *l, enum bp_limits_once what)
{
    return (atomic_fetch_or(&l->warned, (int)what) & (int)what) == 0;
}

/* Lowers a cap (0: none yet) to v; true when it changed. */
static bool lower(atomic_int *cap, int v)
{
    int cur = atomic_load(cap);
    while (cur == 0 || v < cur)
        if (atomic_compare_exchange_weak(cap, &cur, v))
            return true;
    return false;
}

bool bp_rpc_limits_learn_calls(bp_rpc_limits *l, int calls)
{
    return lower(&l->max_calls, calls < 1 ? 1 : calls);
}

bool bp_rpc_limits_learn_blocks(bp_rpc_limits *l, int blocks, size_t bytes)
{
    size_t cur = atomic_load(&l->max_bytes);
    if (bytes && (cur == 0 || bytes < cur))
        atomic_store(&l->max_bytes, bytes);
    return lower(&l->max_blocks, blocks < 1 ? 1 : blocks);
}

static void append(char *out, size_t cap, size_t *len, const char *text)
{
    int n = snprintf(out + *len, cap - *len, "%s%s", *len ? "," : "", text);
    if (n > 0)
        *len = *len + (size_t)n < cap ? *len + (size_t)n : cap - 1;
}

void bp_rpc_limits_describe(bp_rpc_limits *l, char *out, size_t cap)
{
    char part[48];
    size_t len = 0;
    if (!cap)
        return;
    out[0] = '\0';
    int calls = atomic_load(&l->max_calls);
    if (calls == 1)
        append(out, cap, &len, "no-batches");
    else if (calls > 1) {
        snprintf(part, sizeof(part), "batch<=%d", calls);
        append(out, cap, &len, part);
    }
    size_t bytes = atomic_load(&l->max_bytes);
    if (bytes) {
        snprintf(part, sizeof(part), "answers<=%zuKiB", bytes >> 10);
        append(out, cap, &len, part);
    }
    if (atomic_load(&l->no_block_receipts))
        append(out, cap, &len, "no-eth_getBlockReceipts");
}

static bool contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return true;
    return false;
}

static long long error_code(yajl_val error)
{
    yajl_val code = yajl_tree_get(error, (const char *[]){"code", NULL}, yajl_t_number);
    return code && YAJL_IS_INTEGER(code) ? YAJL_GET_INTEGER(code) : 0;
}

static const char *error_message(yajl_val error)
{
    yajl_val m = yajl_tree_get(error, (const char *[]){"message", NULL}, yajl_t_string);
    return m ? YAJL_GET_STRING(m) : NULL;
}

/* Nodes say "this method is missing" in many ways: geth "the method eth_getBlockReceipts
 * does not exist/is not available", others -32601, "method not found", "not supported".
 * "does not exist" alone could be about a block, so it must come with the method. The code
 * alone is not enough either way: ganache says it with -32700. */
bool bp_rpc_is_method_missing(yajl_val error)
{
    const char *msg = error_message(error);
    if (error_code(error) == -32601)
        return true;
    if (!msg)
        return false;
    if (contains_nocase(msg, "method not found") || contains_nocase(msg, "unsupported method") ||
        contains_nocase(msg, "unknown method") || contains_nocase(msg, "method not supported"))
        return true;
    bool names_method = contains_nocase(msg, "method") || contains_nocase(msg, "getBlockReceipts");
    return names_method &&
           (contains_nocase(msg, "not supported") || contains_nocase(msg, "does not exist") ||
            contains_nocase(msg, "not available") || contains_nocase(msg, "not implemented"));
}

/* The first number after one of the words that introduce a cap ("limit of 10", "max 10",
 * "maximum batch size is 10", "allowed: 10"), within a few characters of it. */
static long cap_in(const char *msg)
{
    static const char *const words[] = {"limit", "max", "allowed", "up to"};
    for (const char *p = msg; *p; p++)
        for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++) {
            size_t n = strlen(words[w]);
            if (strncasecmp(p, words[w], n) != 0)
                continue;
            const char *q = p + n;
            for (int k = 0; *q && k < 24 && !isdigit((unsigned char)*q); k++)
                q++;
            if (isdigit((unsigned char)*q))
                return strtol(q, NULL, 10);
        }
    return 0;
}

int bp_rpc_batch_cap(yajl_val error, size_t asked)
{
    const char *msg = error_message(error);
    bool about_batch = msg && contains_nocase(msg, "batch");
    bool rate = msg && (contains_nocase(msg, "rate limit") || contains_nocase(msg, "too many"));
    if ((error_code(error) != -32600 && !about_batch) || rate)
        return 0;
    long cap = msg ? cap_in(msg) : 0;
    if (cap < 1 || (size_t)cap >= asked)
        cap = asked > 1 ? (long)(asked / 2) : 1;
    return (int)cap;
}

bool bp_rpc_is_response_too_big(yajl_val error)
{
    const char *msg = error_message(error);
    if (!msg)
        return false;
    bool about_answer = (contains_nocase(msg, "response") || contains_nocase(msg, "result")) &&
                        !contains_nocase(msg, "rate limit");
    return about_answer && (contains_nocase(msg, "too large") || contains_nocase(msg, "too big") ||
                            contains_nocase(msg, "size exceed") || contains_nocase(msg, "limit"));
}
