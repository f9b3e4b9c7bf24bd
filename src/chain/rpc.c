/* rpc.c - JSON-RPC over HTTP: one reused libcurl easy handle per bp_rpc (keep-alive). */
#include "chain/rpc.h"

#include <ctype.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain/json.h"
#include "chain/rpc_envelope.h"
#include "util/hex.h"
#include "util/url.h"

#define BP_RPC_DEFAULT_CONNECT_MS 5000L
#define BP_RPC_DEFAULT_TIMEOUT_MS 30000L
#define BP_RPC_DEFAULT_MAX_BYTES ((size_t)256 << 20)
/* A worker keeps its answer buffer between calls; one that grew past this for a huge block
 * is given back instead of pinning the memory for the rest of the run. */
#define BP_RPC_KEEP_BYTES ((size_t)16 << 20)
/* How much of an error body goes into a message: enough to read a node's complaint. */
#define BP_RPC_BODY_EXCERPT 200

struct bp_rpc {
    CURL *curl;
    struct curl_slist *headers;
    char *url;
    char *shown_url; /* url with its keys masked, for messages */
    bp_endpoint_auth auth;
    long connect_timeout_ms;
    long timeout_ms;
    size_t max_bytes;
    const volatile sig_atomic_t *abort_flag;
    long last_retry_after;  /* seconds, from the last answer's Retry-After header */
    size_t last_bytes;      /* size of the last answer body */
    bp_buf *sink;           /* the buffer the current transfer writes into */
    int sink_error;         /* BP_ETOOBIG / BP_ENOMEM / BP_EPARSE seen by the write callback */
    bp_json_stream *stream; /* bp_rpc_batch_stream: a 2xx answer goes here, not to sink */
    int stream_mode;        /* 0: status not read yet; 1: parsing; 2: buffering an error */
    size_t streamed;        /* bytes parsed */
    size_t share;           /* bp_rpc_set_share: cap on the answers' total, 0: none */
    size_t share_used;      /* answer bytes since bp_rpc_set_share */
    bool share_cut;         /* the share cut an answer */
    int (*admit)(void *);   /* bp_rpc_set_admit */
    void *admit_ctx;
    bool admitted; /* admit was asked for the current answer */
    bp_buf req;    /* request body of bp_rpc_call */
    bp_buf resp;   /* answer of bp_rpc_call / bp_rpc_batch */
    char curl_msg[CURL_ERROR_SIZE];
    bp_rpc_limits *limits; /* the endpoint's (shared), or own_limits */
    bp_rpc_limits own_limits;
};

int bp_rpc_global_init(bp_error *err)
{
    CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK)
        return bp_error_set(err, BP_ETRANSPORT, "curl_global_init: %s", curl_easy_strerror(rc));
    return 0;
}

void bp_rpc_global_cleanup(void)
{
    curl_global_cleanup();
}

long bp_rpc_last_retry_after(const bp_rpc *rpc)
{
    return rpc->last_retry_after;
}

size_t bp_rpc_last_bytes(const bp_rpc *rpc)
{
    return rpc->last_bytes;
}

void bp_rpc_set_share(bp_rpc *rpc, size_t share)
{
    rpc->share = share;
    rpc->share_used = 0;
    rpc->share_cut = false;
}

void bp_rpc_set_admit(bp_rpc *rpc, int (*admit)(void *ctx), void *ctx)
{
    rpc->admit = admit;
    rpc->admit_ctx = ctx;
}

size_t bp_rpc_share_used(const bp_rpc *rpc, bool *cut)
{
    if (cut)
        *cut = rpc->share_cut;
    return rpc->share_used;
}

const char *bp_rpc_url(const bp_rpc *rpc)
{
    return rpc->shown_url;
}

bp_rpc_limits *bp_rpc_limits_of(bp_rpc *rpc)
{
    return rpc->limits;
}

static char *shown_url(const char *url)
{
    char shown[1024];
    bp_url_redact(url, shown, sizeof(shown));
    return strdup(shown);
}

/* Streaming: a 2xx answer is parsed as it arrives; anything else is kept for the message. */
static bool stream_chunk(bp_rpc *rpc)
{
    if (rpc->stream_mode == 0) {
        long status = 0;
        curl_easy_getinfo(rpc->curl, CURLINFO_RESPONSE_CODE, &status);
        rpc->stream_mode = status >= 200 && status < 300 ? 1 : 2;
    }
    return rpc->stream_mode == 1;
}

/* An answer that would take the requests since bp_rpc_set_share past their share. */
static bool over_share(bp_rpc *rpc, size_t n)
{
    if (rpc->share && n > rpc->share - rpc->share_used) {
        rpc->share_cut = true;
        return true;
    }
    rpc->share_used += n;
    return false;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *user)
{
    bp_rpc *rpc = user;
    size_t n = size * nmemb;
    if (!rpc->admitted && rpc->admit) {
        long status = 0; /* an error body is small and capped: it needs no admission */
        curl_easy_getinfo(rpc->curl, CURLINFO_RESPONSE_CODE, &status);
        rpc->admitted = true;
        int rc = status >= 200 && status < 300 ? rpc->admit(rpc->admit_ctx) : 0;
        if (rc != 0) {
            rpc->sink_error = rc;
            return 0;
        }
    }
    if (over_share(rpc, n)) {
        rpc->sink_error = BP_ETOOBIG;
        return 0;
    }
    if (rpc->stream && stream_chunk(rpc)) {
        if (rpc->streamed + n > rpc->max_bytes) {
            rpc->sink_error = BP_ETOOBIG;
            return 0;
        }
        rpc->streamed += n;
        if (bp_json_stream_feed(rpc->stream, data, n) != 0) {
            rpc->sink_error = BP_EPARSE; /* no use reading the rest */
            return 0;
        }
        return n;
    }
    if (rpc->sink->len + n > rpc->max_bytes) {
        rpc->sink_error = BP_ETOOBIG;
        return 0; /* makes curl abort the transfer with CURLE_WRITE_ERROR */
    }
    int rc = bp_buf_append(rpc->sink, data, n);
    if (rc != 0) {
        rpc->sink_error = rc;
        return 0;
    }
    return n;
}

static int on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    const bp_rpc *rpc = user;
    return rpc->abort_flag && *rpc->abort_flag ? 1 : 0;
}

/* A private node's CA bundle and our client certificate (files are read by curl when it
 * connects; bp_config checked they are readable). */
static int set_tls(bp_rpc *rpc)
{
    CURL *c = rpc->curl;
    const bp_endpoint_auth *a = &rpc->auth;
    int bad = 0;
    if (a->ca_file)
        bad |= curl_easy_setopt(c, CURLOPT_CAINFO, a->ca_file) != CURLE_OK;
    if (a->cert_file)
        bad |= curl_easy_setopt(c, CURLOPT_SSLCERT, a->cert_file) != CURLE_OK;
    if (a->key_file)
        bad |= curl_easy_setopt(c, CURLOPT_SSLKEY, a->key_file) != CURLE_OK;
    return bad;
}

/* Content-Type and the endpoint's own headers (a header of ours it names is replaced). */
static struct curl_slist *make_headers(const bp_endpoint_auth *a)
{
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    for (size_t i = 0; h && i < a->header_count; i++) {
        struct curl_slist *next = curl_slist_append(h, a->headers[i]);
        if (!next) {
            curl_slist_free_all(h);
            return NULL;
        }
        h = next;
    }
    return h;
}

static int set_options(bp_rpc *rpc)
{
    CURL *c = rpc->curl;
    int bad = 0;
    bad |= curl_easy_setopt(c, CURLOPT_URL, rpc->url) != CURLE_OK;
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85: a redirect or typo must not reach file:// */
    bad |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
#endif
    bad |= curl_easy_setopt(c, CURLOPT_HTTPHEADER, rpc->headers) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_POST, 1L) != CURLE_OK;
    /* "" = every encoding this libcurl can decode (gzip, deflate, ...): blocks compress 5x. */
    bad |= curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "") != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, rpc->connect_timeout_ms) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, rpc->timeout_ms) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK;
    /* Worker threads: no SIGALRM-based DNS timeouts. */
    bad |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_ERRORBUFFER, rpc->curl_msg) != CURLE_OK;
    /* Bigger reads: fewer recv calls and parser feeds for multi-MB answers (curl's default
     * is 16 KiB; this is its maximum). */
    bad |= curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 512L << 10) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_WRITEDATA, rpc) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_USERAGENT, "blockpipe/" BP_VERSION) != CURLE_OK;
    bad |= set_tls(rpc);
    if (rpc->abort_flag) {
        bad |= curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_XFERINFODATA, rpc) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L) != CURLE_OK;
    }
    return bad ? BP_EINVAL : 0;
}

static void apply_defaults(bp_rpc *rpc, const bp_rpc_config *cfg)
{
    rpc->connect_timeout_ms =
        cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : BP_RPC_DEFAULT_CONNECT_MS;
    rpc->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : BP_RPC_DEFAULT_TIMEOUT_MS;
    rpc->max_bytes = cfg->max_response_bytes ? cfg->max_response_bytes : BP_RPC_DEFAULT_MAX_BYTES;
    rpc->abort_flag = cfg->abort_flag;
    rpc->auth = cfg->auth;
    bp_rpc_limits_init(&rpc->own_limits);
    rpc->limits = cfg->limits ? cfg->limits : &rpc->own_limits;
}

int bp_rpc_new(bp_rpc **out, const bp_rpc_config *cfg, bp_error *err)
{
    int rc = BP_ENOMEM;
    *out = NULL;
    if (!cfg || !cfg->url || !*cfg->url)
        return bp_error_set(err, BP_EINVAL, "rpc: no URL given");
    bp_rpc *rpc = calloc(1, sizeof(*rpc));
    if (!rpc)
        return bp_error_set(err, BP_ENOMEM, "rpc: out of memory");
    apply_defaults(rpc, cfg);
    bp_buf_init(&rpc->req, 0);
    bp_buf_init(&rpc->resp, 0); /* the cap is enforced by on_write against max_bytes */
    bp_secret_add_url(cfg->url);
    for (size_t i = 0; i < cfg->auth.header_count; i++)
        bp_secret_add_header(cfg->auth.headers[i]);
    rpc->url = strdup(cfg->url);
    rpc->shown_url = shown_url(cfg->url);
    rpc->curl = curl_easy_init();
    rpc->headers = make_headers(&rpc->auth);
    if (!rpc->url || !rpc->shown_url || !rpc->curl || !rpc->headers) {
        bp_error_set(err, rc, "rpc: out of memory");
        goto out;
    }
    rc = set_options(rpc);
    if (rc != 0) {
        bp_error_set(err, rc, "rpc %s: libcurl refused an option (no http support?)",
                     rpc->shown_url);
        goto out;
    }
    *out = rpc;
    rpc = NULL;
out:
    bp_rpc_free(rpc);
    return rc;
}

void bp_rpc_free(bp_rpc *rpc)
{
    if (!rpc)
        return;
    if (rpc->curl)
        curl_easy_cleanup(rpc->curl);
    curl_slist_free_all(rpc->headers);
    bp_buf_release(&rpc->req);
    bp_buf_release(&rpc->resp);
    free(rpc->url);
    free(rpc->shown_url);
    free(rpc);
}

/* Printable excerpt of an error body for a message (control bytes become '.'). */
static void body_excerpt(const bp_buf *b, char *out, size_t outsz)
{
    size_t n = b->len < outsz - 1 ? b->len : outsz - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)b->data[i];
        out[i] = (ch < 0x20 || ch == 0x7f) ? ' ' : (char)ch;
    }
    out[n] = '\0';
}

static int map_status(bp_rpc *rpc, long status, const bp_buf *resp, long retry_after, bp_error *err)
{
    char excerpt[BP_RPC_BODY_EXCERPT + 1];
    body_excerpt(resp, excerpt, sizeof(excerpt));
    if (status == 429)
        return bp_error_set(err, BP_ERATELIMIT,
                            "POST %s: HTTP 429 Too Many Requests (Retry-After: %lds): %s",
                            rpc->shown_url, retry_after, excerpt);
    /* A 503 that says when to come back is a provider shedding load (some send it for an
     * exhausted plan): "slower", as a 429. One without is a failure like any other (a node
     * that is down: the pool ejects it). */
    if (status == 503 && retry_after > 0)
        return bp_error_set(err, BP_ERATELIMIT,
                            "POST %s: HTTP 503 Service Unavailable (Retry-After: %lds): %s",
                            rpc->shown_url, retry_after, excerpt);
    return bp_error_set(err, BP_EHTTP, "POST %s: HTTP %ld: %s%s", rpc->shown_url, status, excerpt,
                        resp->len > BP_RPC_BODY_EXCERPT ? "..." : "");
}

/* The request's time (--rpc-timeout) ran out. Nothing received: the provider stalled, which
 * says nothing of the block (the message must not send anyone looking at its size). */
static int timed_out(bp_rpc *rpc, const char *why, bp_error *err)
{
    curl_off_t got = 0;
    if (curl_easy_getinfo(rpc->curl, CURLINFO_SIZE_DOWNLOAD_T, &got) != CURLE_OK)
        got = 0;
    if (got <= 0)
        return bp_error_set(err, BP_ETIMEOUT,
                            "POST %s: no answer within the request timeout of %ld ms "
                            "(--rpc-timeout): the provider stalled (%s)",
                            rpc->shown_url, rpc->timeout_ms, why);
    return bp_error_set(err, BP_ETIMEOUT,
                        "POST %s: the answer was not complete within the request timeout of %ld ms "
                        "(--rpc-timeout): %lld bytes received (%s)",
                        rpc->shown_url, rpc->timeout_ms, (long long)got, why);
}

static int map_curl_error(bp_rpc *rpc, CURLcode cc, bp_error *err)
{
    const char *why = rpc->curl_msg[0] ? rpc->curl_msg : curl_easy_strerror(cc);
    if (cc == CURLE_WRITE_ERROR && rpc->sink_error == BP_ETOOBIG && rpc->share_cut)
        return bp_error_set(err, BP_ETOOBIG,
                            "POST %s: the answers passed the %zu bytes of memory granted to "
                            "them (--max-memory)",
                            rpc->shown_url, rpc->share);
    if (cc == CURLE_WRITE_ERROR && rpc->sink_error == BP_ETOOBIG)
        return bp_error_set(err, BP_ETOOBIG,
                            "POST %s: answer larger than the cap of %zu bytes "
                            "(max_response_bytes)",
                            rpc->shown_url, rpc->max_bytes);
    if (cc == CURLE_WRITE_ERROR && rpc->sink_error == BP_ESTOPPED)
        return bp_error_set(err, BP_ESTOPPED, "POST %s: stopped (shutting down)", rpc->shown_url);
    if (cc == CURLE_WRITE_ERROR && rpc->sink_error == BP_ETIMEOUT)
        return bp_error_set(err, BP_ETIMEOUT,
                            "POST %s: no memory was free for the answer in time (--max-memory)",
                            rpc->shown_url);
    if (cc == CURLE_WRITE_ERROR && rpc->sink_error == BP_ENOMEM)
        return bp_error_set(err, BP_ENOMEM, "POST %s: out of memory reading the answer",
                            rpc->shown_url);
    if (cc == CURLE_ABORTED_BY_CALLBACK)
        return bp_error_set(err, BP_ESTOPPED, "POST %s: stopped (shutting down)", rpc->shown_url);
    if (cc == CURLE_OPERATION_TIMEDOUT)
        return timed_out(rpc, why, err);
    return bp_error_set(err, BP_ETRANSPORT, "POST %s: %s", rpc->shown_url, why);
}

/* curl's message may quote the URL, and a node's error body the key it refused. */
static int scrubbed(int rc, bp_error *err)
{
    if (err)
        bp_secret_scrub(err->msg);
    return rc;
}

static long retry_after_seconds(CURL *c)
{
    curl_off_t ra = 0;
    if (curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &ra) != CURLE_OK || ra < 0)
        return 0;
    return ra > 3600 ? 3600 : (long)ra; /* a server asking for hours is not taken literally */
}

int bp_rpc_post(bp_rpc *rpc, const char *body, size_t len, bp_buf *resp, long *retry_after_s,
                bp_error *err)
{
    long status = 0;
    rpc->last_retry_after = 0;
    if (retry_after_s)
        *retry_after_s = 0;
    bp_buf_reset(resp);
    rpc->sink = resp;
    rpc->sink_error = 0;
    rpc->admitted = false;
    rpc->curl_msg[0] = '\0';
    curl_easy_setopt(rpc->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(rpc->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    rpc->stream_mode = 0;
    rpc->streamed = 0;
    CURLcode cc = curl_easy_perform(rpc->curl);
    rpc->sink = NULL;
    rpc->last_bytes = rpc->stream_mode == 1 ? rpc->streamed : resp->len;
    if (cc != CURLE_OK)
        return scrubbed(map_curl_error(rpc, cc, err), err);
    curl_easy_getinfo(rpc->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300)
        return 0;
    long ra = retry_after_seconds(rpc->curl);
    rpc->last_retry_after = ra;
    if (retry_after_s)
        *retry_after_s = ra;
    return scrubbed(map_status(rpc, status, resp, ra, err), err);
}

/* The answer buffer is kept between calls, unless a huge answer grew it. */
static void keep_small(bp_rpc *rpc)
{
    if (rpc->resp.cap > BP_RPC_KEEP_BYTES) {
        bp_buf_release(&rpc->resp);
        bp_buf_init(&rpc->resp, 0);
    }
}

int bp_rpc_batch(bp_rpc *rpc, const char *body, size_t len, size_t n, yajl_val *root,
                 yajl_val *results, yajl_val *errors, bp_error *err)
{
    *root = NULL;
    int rc = bp_rpc_post(rpc, body, len, &rpc->resp, NULL, err);
    if (rc != 0)
        return rc;
    rc = bp_decode_rpc_response(rpc->resp.data ? rpc->resp.data : "", rpc->resp.len, n, root,
                                results, errors, err);
    if (rc != 0)
        bp_error_prefix(err, "POST %s: ", rpc->shown_url);
    keep_small(rpc);
    return rc;
}

/* "JSON-RPC answer is not JSON: <first line of the parser's message>", as parse_body says. */
static int stream_parse_error(bp_rpc *rpc, bp_json_stream *s, bp_error *err)
{
    char ebuf[256];
    (void)bp_json_stream_finish(s, ebuf, sizeof(ebuf));
    char *nl = strchr(ebuf, '\n');
    if (nl)
        *nl = '\0';
    return bp_error_set(err, BP_EPARSE, "POST %s: JSON-RPC answer is not JSON: %s", rpc->shown_url,
                        ebuf);
}

int bp_rpc_batch_stream(bp_rpc *rpc, const char *body, size_t len, size_t n,
                        const bp_json_stream_ops *ops, void *ud, yajl_val *root, yajl_val *results,
                        yajl_val *errors, bp_error *err)
{
    *root = NULL;
    bp_json_stream *s = bp_json_stream_new(ops, ud);
    if (!s)
        return bp_error_set(err, BP_ENOMEM, "POST %s: out of memory", rpc->shown_url);
    rpc->stream = s;
    int rc = bp_rpc_post(rpc, body, len, &rpc->resp, NULL, err);
    rpc->stream = NULL;
    if (rc != 0 && rpc->sink_error == BP_EPARSE)
        rc = stream_parse_error(rpc, s, err);
    if (rc == 0 && !(*root = bp_json_stream_finish(s, NULL, 0)))
        rc = stream_parse_error(rpc, s, err);
    if (rc == 0 && (rc = bp_decode_rpc_tree(*root, n, results, errors, err)) != 0) {
        bp_error_prefix(err, "POST %s: ", rpc->shown_url);
        bp_json_free(*root);
        *root = NULL;
    }
    bp_json_stream_free(s);
    keep_small(rpc); /* an error body can be big too */
    return rc;
}

int bp_rpc_call(bp_rpc *rpc, const char *method, const char *params_json, yajl_val *root,
                yajl_val *result, bp_error *err)
{
    yajl_val error = NULL;
    *root = NULL;
    *result = NULL;
    bp_buf_reset(&rpc->req);
    int rc =
        bp_buf_printf(&rpc->req, "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"%s\",\"params\":%s}",
                      method, params_json ? params_json : "[]");
    if (rc != 0)
        return bp_error_set(err, rc, "%s: cannot build the request", method);
    rc = bp_rpc_batch(rpc, rpc->req.data, rpc->req.len, 1, root, result, &error, err);
    if (rc == 0 && error)
        rc = bp_decode_rpc_error(error, method, err);
    if (rc != 0) {
        bp_json_free(*root);
        *root = NULL;
        *result = NULL;
    }
    return rc;
}

/* A call whose result is one hex quantity (eth_chainId, eth_blockNumber). */
static int call_u64(bp_rpc *rpc, const char *method, uint64_t *out, bp_error *err)
{
    yajl_val root, result;
    int rc = bp_rpc_call(rpc, method, "[]", &root, &result, err);
    if (rc != 0)
        return rc;
    const char *s = YAJL_GET_STRING(result);
    if (!s || bp_hex_to_u64(s, strlen(s), out) != 0)
        rc = bp_error_set(err, BP_EPARSE, "%s at %s: result is not a hex quantity", method,
                          rpc->shown_url);
    bp_json_free(root);
    return rc;
}

int bp_rpc_chain_id(bp_rpc *rpc, uint64_t *out, bp_error *err)
{
    return call_u64(rpc, "eth_chainId", out, err);
}

int bp_rpc_block_number(bp_rpc *rpc, uint64_t *out, bp_error *err)
{
    return call_u64(rpc, "eth_blockNumber", out, err);
}

static int header_hash(yajl_val block, const char *key, char out[67])
{
    const char *path[] = {key, NULL};
    const char *s = YAJL_GET_STRING(yajl_tree_get(block, path, yajl_t_string));
    if (!s || strlen(s) != 66 || !bp_hex_is_data(s, 66))
        return BP_EPARSE;
    for (size_t i = 0; i < 67; i++)
        out[i] = (char)tolower((unsigned char)s[i]);
    return 0;
}

static int header_qty(yajl_val block, const char *key, uint64_t *out)
{
    const char *path[] = {key, NULL};
    const char *s = YAJL_GET_STRING(yajl_tree_get(block, path, yajl_t_string));
    return s ? bp_hex_to_u64(s, strlen(s), out) : BP_EPARSE;
}

static int parse_header(yajl_val block, bp_header *out, const char **bad)
{
    if ((*bad = "number", header_qty(block, "number", &out->number)) != 0 ||
        (*bad = "timestamp", header_qty(block, "timestamp", &out->timestamp)) != 0 ||
        (*bad = "hash", header_hash(block, "hash", out->hash)) != 0 ||
        (*bad = "parentHash", header_hash(block, "parentHash", out->parent_hash)) != 0)
        return BP_EPARSE;
    return 0;
}

/* The block's "transactions" (result.transactions: level 2 of the answer object). */
static bool skip_transactions(void *ud, const bp_json_stream *s)
{
    (void)ud;
    size_t level = bp_json_stream_depth(s) - 1;
    const char *name = bp_json_stream_name(s, level);
    return level == 2 && name && strcmp(name, "transactions") == 0;
}

/* eth_getBlockByNumber(params) as bp_rpc_call, but parsed while received and without the
 * transaction hashes: the prober asks for the head's header every poll, and a 50,000-tx
 * head's answer is 3.4 MB of hashes, which took a 4 MiB answer buffer kept by the rpc and an
 * 8 MiB tree for each poll (12 MiB short peaks while a huge block was being written). */
static int header_call(bp_rpc *rpc, const char *params, yajl_val *root, yajl_val *result,
                       bp_error *err)
{
    static const bp_json_stream_ops ops = {.skip = skip_transactions};
    yajl_val error = NULL;
    bp_buf_reset(&rpc->req);
    int rc = bp_buf_printf(&rpc->req,
                           "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"eth_getBlockByNumber\","
                           "\"params\":%s}",
                           params);
    if (rc != 0)
        return bp_error_set(err, rc, "eth_getBlockByNumber: cannot build the request");
    rc = bp_rpc_batch_stream(rpc, rpc->req.data, rpc->req.len, 1, &ops, NULL, root, result, &error,
                             err);
    if (rc == 0 && error)
        rc = bp_decode_rpc_error(error, "eth_getBlockByNumber", err);
    if (rc != 0) {
        bp_json_free(*root);
        *root = NULL;
        *result = NULL;
    }
    return rc;
}

int bp_rpc_header(bp_rpc *rpc, uint64_t number, bp_header *out, bp_error *err)
{
    char params[48], label[32];
    yajl_val root, result;
    const char *bad = "";
    out->has_final = out->final_unknown = false; /* an EVM node names no finalized block here */
    if (number == UINT64_MAX) {
        snprintf(params, sizeof(params), "[\"latest\",false]");
        snprintf(label, sizeof(label), "latest");
    } else {
        char hex[20];
        bp_u64_to_hex(number, hex);
        snprintf(params, sizeof(params), "[\"%s\",false]", hex);
        snprintf(label, sizeof(label), "%" PRIu64, number);
    }
    int rc = header_call(rpc, params, &root, &result, err);
    if (rc != 0)
        return bp_error_prefix(err, "block %s: ", label);
    if (!result || YAJL_IS_NULL(result))
        rc = bp_error_set(err, BP_ENOTFOUND, "block %s: not found at %s", label, rpc->shown_url);
    else if (!YAJL_IS_OBJECT(result) || parse_header(result, out, &bad) != 0)
        rc = bp_error_set(err, BP_EPARSE, "block %s: header field '%s' missing or malformed", label,
                          bad);
    bp_json_free(root);
    return rc;
}
