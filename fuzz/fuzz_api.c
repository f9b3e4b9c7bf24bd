/* fuzz_api.c - the API's request handling on arbitrary bytes: "PATH?QUERY" through the query
 * decoder and every route's parameter checks (bp_api_route, no database: the data routes stop
 * at "no output to read"), the push subscription from the same parameters, the bytes as a
 * WebSocket subscription message and as the JSON body of POST /api/predictions. Any input must give
 * an answer or an error message, never a crash, a leak, or an answer that is not JSON with a
 * status. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/push.h"
#include "api/request.h"
#include "api/routes.h"
#include "chain/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void route(const char *text, size_t size)
{
    const char *q = memchr(text, '?', size);
    size_t plen = q ? (size_t)(q - text) : size;
    static bp_api_config cfg; /* no output, no pipeline: parameters are checked all the same */
    static bp_api_ctx ctx = {.cfg = &cfg};
    bp_api_request *req = malloc(sizeof(*req));
    if (!req)
        return;
    bp_api_request_init(req, BP_API_GET, text, plen);
    bp_error err = {0};
    if (q && bp_api_request_query(req, q + 1, size - plen - 1, &err) != 0 && !err.msg[0])
        abort(); /* an error must say what was wrong */
    bp_api_worker w = {0};
    bp_api_response resp = {0};
    bp_buf_init(&resp.body, BP_API_BODY_MAX);
    bp_api_route(&ctx, &w, req, &resp);
    if (resp.status < 200 || resp.status > 599)
        abort();
    yajl_val v = bp_json_parse(resp.body.data ? resp.body.data : "", resp.body.len, NULL, 0);
    if (!v && strcmp(req->path, "/metrics") != 0)
        abort(); /* every answer but /metrics is JSON */
    bp_json_free(v);
    bp_buf_release(&resp.body);
    bp_api_worker_release(&w);
    bp_push_filter f;
    char since[BP_PUSH_CURSOR_MAX];
    if (bp_push_filter_params(req, &f, since, &err) != 0 && !err.msg[0])
        abort();
    free(req);
}

/* The bytes as the body of POST /api/predictions (a JSON list of hashes): checked before any
 * output is read. */
static void post(const char *body, size_t size)
{
    static bp_api_config cfg;
    static bp_api_ctx ctx = {.cfg = &cfg};
    bp_api_request *req = malloc(sizeof(*req));
    if (!req)
        return;
    bp_api_request_init(req, BP_API_POST, "/api/predictions", strlen("/api/predictions"));
    req->body = body;
    req->body_len = size;
    bp_api_worker w = {0};
    bp_api_response resp = {0};
    bp_buf_init(&resp.body, BP_API_BODY_MAX);
    bp_api_route(&ctx, &w, req, &resp);
    yajl_val v = bp_json_parse(resp.body.data ? resp.body.data : "", resp.body.len, NULL, 0);
    if (resp.status < 200 || resp.status > 599 || !v)
        abort();
    bp_json_free(v);
    bp_buf_release(&resp.body);
    bp_api_worker_release(&w);
    free(req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    route(text, strlen(text));
    post(text, size);
    bp_push_filter f;
    char since[BP_PUSH_CURSOR_MAX];
    bp_error err = {0};
    if (bp_push_filter_json(text, size, &f, since, &err) != 0 && !err.msg[0])
        abort();
    free(text);
    return 0;
}
