/* faults.c - parsing of simnode's per-endpoint fault profiles (--faults text, YAML/JSON file). */
#include "sim/faults.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "sim/arch.h"

static const char *const NAMES[BP_SIM_F_COUNT] = {
    [BP_SIM_F_LATENCY] = "latency",       [BP_SIM_F_ERROR] = "error",
    [BP_SIM_F_RATE_LIMIT] = "rate_limit", [BP_SIM_F_HTTP500] = "http500",
    [BP_SIM_F_TRUNCATE] = "truncate",     [BP_SIM_F_GARBAGE] = "garbage",
    [BP_SIM_F_RESET] = "reset",           [BP_SIM_F_STALL] = "stall",
};

/* The `*_rate` keys and the fault each one sets. */
static const struct {
    const char *key;
    enum bp_sim_fault f;
} RATES[] = {
    {"error_rate", BP_SIM_F_ERROR},       {"http500_rate", BP_SIM_F_HTTP500},
    {"truncate_rate", BP_SIM_F_TRUNCATE}, {"garbage_rate", BP_SIM_F_GARBAGE},
    {"reset_rate", BP_SIM_F_RESET},       {"stall_rate", BP_SIM_F_STALL},
};

#define KEYS_TEXT                                                                                  \
    "latency, error_rate, rate_limit, quota, quota_window, limit_answer, retry_after, "            \
    "http500_rate, truncate_rate, garbage_rate, reset_rate, stall_rate, stall, lag, "              \
    "ws_drop_every, ws_silent, ws_bad_every, ws_corrupt_every, ws_corrupt_topic, "                 \
    "error_method, stall_method, missing_method, max_batch, max_response_bytes, bad"

const char *bp_sim_fault_name(enum bp_sim_fault f)
{
    return f < BP_SIM_F_COUNT ? NAMES[f] : "?";
}

void bp_sim_faults_clear(bp_sim_faults *eps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        memset(&eps[i], 0, sizeof(eps[i]));
        eps[i].stall_s = 10;
        eps[i].quota_window = 4;
    }
}

static bool parse_number(const char *v, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || *end || errno || !isfinite(d) || d < 0)
        return false;
    *out = d;
    return true;
}

/* "50ms", "1.5s", "0". */
static bool parse_duration(const char *v, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || errno || !isfinite(d) || d < 0)
        return false;
    if (strcmp(end, "ms") == 0)
        d /= 1000;
    else if (strcmp(end, "s") != 0 && !(*end == '\0' && d == 0))
        return false;
    *out = d;
    return true;
}

static int bad_value(const char *ep, const char *key, const char *v, const char *want,
                     bp_error *err)
{
    return bp_error_set(err, BP_EINVAL, "faults: %s: %s='%s' is not valid: expected %s", ep, key, v,
                        want);
}

static int set_rate(bp_sim_faults *f, const char *ep, const char *key, const char *v, bp_error *err)
{
    for (size_t i = 0; i < sizeof(RATES) / sizeof(RATES[0]); i++) {
        if (strcmp(key, RATES[i].key) != 0)
            continue;
        double p;
        if (!parse_number(v, &p) || p > 1)
            return bad_value(ep, key, v, "a probability from 0 to 1", err);
        f->rate[RATES[i].f] = p;
        return 0;
    }
    return bp_error_set(err, BP_EINVAL, "faults: %s: unknown key '%s' (known: " KEYS_TEXT ")", ep,
                        key);
}

/* The provider's limits and the rule its answers break. */
static int set_limit_key(bp_sim_faults *f, const char *ep, const char *key, const char *v,
                         bp_error *err)
{
    double d;
    if (strcmp(key, "max_batch") == 0 || strcmp(key, "max_response_bytes") == 0) {
        if (!parse_number(v, &d) || d != floor(d) || d > 1e12)
            return bad_value(ep, key, v, "a whole number (0 = no cap)", err);
        *(key[4] == 'b' ? &f->max_batch : &f->max_response_bytes) = (uint64_t)d;
        return 0;
    }
    for (int b = 0; b < BP_SIM_BAD_COUNT; b++)
        if (strcmp(v, bp_sim_bad_name((enum bp_sim_bad)b)) == 0) {
            f->bad = (enum bp_sim_bad)b;
            return 0;
        }
    return bad_value(ep, key, v,
                     "none, log_index_per_tx, log_index_swap, receipt_hash, receipt_index, "
                     "receipt_block_hash, receipt_number or tx_index",
                     err);
}

/* "rolledback_transactions+reapplied_transactions": the topics ws_corrupt_every counts. */
static int set_topics(bp_sim_faults *f, const char *ep, const char *v, bp_error *err)
{
    unsigned mask = 0;
    for (const char *p = v; *p;) {
        size_t n = strcspn(p, "+");
        unsigned t = 0;
        while (bp_sim_arch_topic_name(t) &&
               (strlen(bp_sim_arch_topic_name(t)) != n || strncmp(p, bp_sim_arch_topic_name(t), n)))
            t++;
        if (!bp_sim_arch_topic_name(t))
            return bad_value(ep, "ws_corrupt_topic", v,
                             "Arch topics joined by '+' (block, transaction, account_update, "
                             "rolledback_transactions, reapplied_transactions, dkg)",
                             err);
        mask |= 1u << t;
        p += n + (p[n] == '+');
    }
    f->ws_corrupt_topics = mask;
    return 0;
}

static int set_ws_key(bp_sim_faults *f, const char *ep, const char *key, const char *v,
                      bp_error *err)
{
    double d;
    if (strcmp(key, "max_batch") == 0 || strcmp(key, "max_response_bytes") == 0 ||
        strcmp(key, "bad") == 0)
        return set_limit_key(f, ep, key, v, err);
    if (strcmp(key, "ws_drop_every") == 0) {
        if (!(parse_number(v, &d) || parse_duration(v, &d)) || d > 86400)
            return bad_value(ep, key, v, "seconds like 5 or 500ms (0 = never, at most 1 day)", err);
        f->ws_drop_every = d;
        return 0;
    }
    if (strcmp(key, "ws_bad_every") == 0) {
        if (!parse_number(v, &d) || d != floor(d) || d > 1e9)
            return bad_value(ep, key, v, "a whole number of events (0 = never)", err);
        f->ws_bad_every = (uint64_t)d;
        return 0;
    }
    if (strcmp(key, "ws_corrupt_every") == 0) {
        if (!parse_number(v, &d) || d != floor(d) || d > 1e9)
            return bad_value(ep, key, v, "a whole number of events (0 = never)", err);
        f->ws_corrupt_every = (uint64_t)d;
        return 0;
    }
    if (strcmp(key, "ws_corrupt_topic") == 0)
        return set_topics(f, ep, v, err);
    if (strcmp(key, "error_method") == 0) {
        if (!v[0] || strlen(v) >= sizeof(f->error_method))
            return bad_value(ep, key, v, "a method name (at most 63 characters)", err);
        snprintf(f->error_method, sizeof(f->error_method), "%s", v);
        return 0;
    }
    if (strcmp(key, "stall_method") == 0) {
        if (!v[0] || strlen(v) >= sizeof(f->stall_method))
            return bad_value(ep, key, v, "a method name (at most 63 characters)", err);
        snprintf(f->stall_method, sizeof(f->stall_method), "%s", v);
        return 0;
    }
    if (strcmp(key, "missing_method") == 0) {
        if (!v[0] || strlen(v) >= sizeof(f->missing_method))
            return bad_value(ep, key, v, "a method name (at most 63 characters)", err);
        snprintf(f->missing_method, sizeof(f->missing_method), "%s", v);
        return 0;
    }
    if (strcmp(key, "ws_silent") == 0) {
        if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0 && strcmp(v, "true") != 0 &&
            strcmp(v, "false") != 0)
            return bad_value(ep, key, v, "0 or 1", err);
        f->ws_silent = v[0] == '1' || v[0] == 't';
        return 0;
    }
    return set_rate(f, ep, key, v, err);
}

static int set_quota_key(bp_sim_faults *f, const char *ep, const char *key, const char *v,
                         bp_error *err)
{
    double d;
    if (strcmp(key, "quota") == 0) {
        if (!parse_number(v, &d) || d != floor(d) || d > 1e9)
            return bad_value(ep, key, v, "requests per window (0 = none)", err);
        f->quota = (uint64_t)d;
        return 0;
    }
    if (strcmp(key, "quota_window") == 0) {
        if (!(parse_number(v, &d) || parse_duration(v, &d)) || d < 0.001 || d > 3600)
            return bad_value(ep, key, v, "a duration like 4s or 500ms (at most 1h)", err);
        f->quota_window = d;
        return 0;
    }
    if (strcmp(key, "limit_answer") == 0) {
        static const char *const KINDS[] = {"http429", "http503", "rpc32007"};
        for (int k = 0; k < 3; k++)
            if (strcmp(v, KINDS[k]) == 0) {
                f->limit_answer = (enum bp_sim_limit_answer)k;
                return 0;
            }
        return bad_value(ep, key, v, "http429, http503 or rpc32007", err);
    }
    if (strcmp(key, "retry_after") == 0) {
        static const char *const MODES[] = {"auto", "", "none", "date"};
        for (int m = 0; m < 4; m++)
            if (MODES[m][0] && strcmp(v, MODES[m]) == 0) {
                f->retry_after = (enum bp_sim_retry_after)m;
                return 0;
            }
        if (!parse_number(v, &d) || d != floor(d) || d > 3600)
            return bad_value(ep, key, v, "auto, none, date or whole seconds (at most 3600)", err);
        f->retry_after = BP_SIM_RA_FIXED;
        f->retry_after_s = (uint64_t)d;
        return 0;
    }
    return set_ws_key(f, ep, key, v, err);
}

static int set_key(bp_sim_faults *f, const char *ep, const char *key, const char *v, bp_error *err)
{
    double d;
    if (strcmp(key, "latency") == 0 || strcmp(key, "stall") == 0) {
        if (!parse_duration(v, &d) || d > 3600)
            return bad_value(ep, key, v, "a duration like 50ms or 2s (at most 1h)", err);
        *(key[0] == 'l' ? &f->latency_s : &f->stall_s) = d;
        return 0;
    }
    if (strcmp(key, "rate_limit") == 0) {
        if (!parse_number(v, &d))
            return bad_value(ep, key, v, "requests per second (0 = none)", err);
        f->rate_limit = d;
        return 0;
    }
    if (strcmp(key, "lag") == 0) {
        if (!parse_number(v, &d) || d != floor(d) || d > 1e12)
            return bad_value(ep, key, v, "a number of blocks", err);
        f->lag = (uint64_t)d;
        return 0;
    }
    return set_quota_key(f, ep, key, v, err);
}

/* "ep3" -> 2; "*" / "all" -> n (every endpoint). */
static int endpoint_index(const char *name, size_t n, size_t *out, bp_error *err)
{
    if (strcmp(name, "*") == 0 || strcmp(name, "all") == 0) {
        *out = n;
        return 0;
    }
    char *end;
    unsigned long k = strncmp(name, "ep", 2) == 0 ? strtoul(name + 2, &end, 10) : 0;
    if (k == 0 || *end || k > n)
        return bp_error_set(err, BP_EINVAL,
                            "faults: unknown endpoint '%s' (expected ep1..ep%zu, * or all)", name,
                            n);
    *out = k - 1;
    return 0;
}

static int apply(bp_sim_faults *eps, size_t n, size_t which, const char *ep, const char *key,
                 const char *v, bp_error *err)
{
    for (size_t i = which == n ? 0 : which; i < n && (which == n || i == which); i++) {
        int rc = set_key(&eps[i], ep, key, v, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* One "NAME:k=v,k=v" (or "k=v,..." for every endpoint), modified in place. */
static int parse_profile(char *seg, bp_sim_faults *eps, size_t n, bp_error *err)
{
    const char *ep = "*";
    char *colon = strchr(seg, ':');
    if (colon) {
        *colon = '\0';
        ep = seg;
        seg = colon + 1;
    }
    size_t which;
    int rc = endpoint_index(ep, n, &which, err);
    char *save = NULL;
    for (char *kv = strtok_r(seg, ",", &save); rc == 0 && kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq)
            return bp_error_set(err, BP_EINVAL, "faults: %s: '%s' is not key=value", ep, kv);
        *eq = '\0';
        rc = apply(eps, n, which, ep, kv, eq + 1, err);
    }
    return rc;
}

int bp_sim_faults_parse(const char *spec, bp_sim_faults *eps, size_t n, bp_error *err)
{
    char *copy = strdup(spec);
    if (!copy)
        return bp_error_set(err, BP_ENOMEM, "faults: out of memory");
    int rc = 0;
    char *save = NULL;
    for (char *seg = strtok_r(copy, ";", &save); rc == 0 && seg; seg = strtok_r(NULL, ";", &save))
        rc = parse_profile(seg, eps, n, err);
    free(copy);
    return rc;
}

/* ---- YAML / JSON file ---- */

static const char *scalar(yaml_document_t *doc, int id)
{
    yaml_node_t *node = yaml_document_get_node(doc, id);
    return node && node->type == YAML_SCALAR_NODE ? (const char *)node->data.scalar.value : NULL;
}

static int load_endpoint(yaml_document_t *doc, yaml_node_pair_t *p, bp_sim_faults *eps, size_t n,
                         const char *path, bp_error *err)
{
    const char *ep = scalar(doc, p->key);
    yaml_node_t *map = yaml_document_get_node(doc, p->value);
    if (!ep || !map || map->type != YAML_MAPPING_NODE)
        return bp_error_set(err, BP_EINVAL,
                            "faults file %s: expected a mapping of endpoint name to a mapping "
                            "of fault keys",
                            path);
    size_t which;
    int rc = endpoint_index(ep, n, &which, err);
    for (yaml_node_pair_t *q = map->data.mapping.pairs.start;
         rc == 0 && q < map->data.mapping.pairs.top; q++) {
        const char *k = scalar(doc, q->key), *v = scalar(doc, q->value);
        if (!k || !v)
            return bp_error_set(err, BP_EINVAL, "faults file %s: %s: values must be scalars", path,
                                ep);
        rc = apply(eps, n, which, ep, k, v, err);
    }
    return rc;
}

int bp_sim_faults_load(const char *path, bp_sim_faults *eps, size_t n, bp_error *err)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    bool parser_ok = false, doc_ok = false;
    int rc = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        rc = bp_error_set(err, BP_EIO, "faults file %s: %s", path, strerror(errno));
        goto out;
    }
    parser_ok = yaml_parser_initialize(&parser);
    if (!parser_ok) {
        rc = bp_error_set(err, BP_ENOMEM, "faults file %s: out of memory", path);
        goto out;
    }
    yaml_parser_set_input_file(&parser, f);
    doc_ok = yaml_parser_load(&parser, &doc);
    if (!doc_ok) {
        rc = bp_error_set(err, BP_EINVAL, "faults file %s: line %zu: %s", path,
                          parser.problem_mark.line + 1, parser.problem ? parser.problem : "?");
        goto out;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root && root->type != YAML_MAPPING_NODE) {
        rc = bp_error_set(err, BP_EINVAL, "faults file %s: expected a mapping at the top", path);
        goto out;
    }
    for (yaml_node_pair_t *p = root ? root->data.mapping.pairs.start : NULL;
         rc == 0 && root && p < root->data.mapping.pairs.top; p++)
        rc = load_endpoint(&doc, p, eps, n, path, err);
out:
    if (doc_ok)
        yaml_document_delete(&doc);
    if (parser_ok)
        yaml_parser_delete(&parser);
    if (f)
        fclose(f);
    return rc;
}
