/* http_lib_choice.c - the same static answer from libmicrohttpd (a pool of N threads, epoll)
 * or libwebsockets (its one service thread, headers and body in one write, as the API writes
 * them): how the API's server library was chosen, and the baseline of the API benchmark
 * (bench/api_bench.py: "the same library serving a static answer of the same size").
 *
 *   bench_http_lib_choice mhd|lws PORT [BYTES [THREADS]]      then: wrk http://127.0.0.1:PORT/ */
#include <libwebsockets.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *g_body;
static size_t g_len = 1024;
static unsigned char *g_out; /* LWS_PRE + headers + body */

static enum MHD_Result mhd_answer(void *cls, struct MHD_Connection *mc, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **req)
{
    (void)cls, (void)url, (void)method, (void)version, (void)data, (void)size, (void)req;
    struct MHD_Response *r = MHD_create_response_from_buffer(g_len, g_body, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(mc, 200, r);
    MHD_destroy_response(r);
    return ret;
}

static int lws_answer(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                      size_t len)
{
    unsigned char *start = g_out + LWS_PRE, *p = start, *end = start + 512;
    char clen[24];
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        snprintf(clen, sizeof(clen), "%zu", g_len);
        if (lws_add_http_header_status(wsi, 200, &p, end) ||
            lws_add_http_header_by_name(wsi, (const unsigned char *)"content-type:",
                                        (const unsigned char *)"application/json", 16, &p, end) ||
            lws_add_http_header_by_name(wsi, (const unsigned char *)"content-length:",
                                        (const unsigned char *)clen, (int)strlen(clen), &p, end) ||
            lws_finalize_http_header(wsi, &p, end))
            return -1;
        memcpy(p, g_body, g_len);
        p += g_len;
        if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) < (int)(p - start))
            return -1;
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

int main(int argc, char **argv)
{
    if (argc < 3 || (strcmp(argv[1], "mhd") != 0 && strcmp(argv[1], "lws") != 0)) {
        fprintf(stderr, "usage: %s mhd|lws PORT [BYTES [THREADS]]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[2]);
    g_len = argc > 3 ? (size_t)atol(argv[3]) : 1024;
    g_body = malloc(g_len);
    g_out = malloc(LWS_PRE + 512 + g_len);
    if (!g_body || !g_out)
        return 1;
    memset(g_body, 'x', g_len);
    if (strcmp(argv[1], "mhd") == 0) {
        unsigned pool = argc > 4 ? (unsigned)atoi(argv[4]) : 2;
        struct MHD_Daemon *d = MHD_start_daemon(
            MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TURBO, (uint16_t)port, NULL,
            NULL, mhd_answer, NULL, MHD_OPTION_THREAD_POOL_SIZE, pool, MHD_OPTION_CONNECTION_LIMIT,
            4000u, MHD_OPTION_END);
        if (!d)
            return 1;
        for (;;)
            pause();
    }
    static struct lws_protocols protocols[] = {{"http", lws_answer, 0, 0, 0, NULL, 0},
                                               {NULL, NULL, 0, 0, 0, NULL, 0}};
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = port;
    info.iface = "127.0.0.1";
    info.protocols = protocols;
    info.gid = -1;
    info.uid = -1;
    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context *ctx = lws_create_context(&info);
    if (!ctx)
        return 1;
    for (;;)
        lws_service(ctx, 0);
}
