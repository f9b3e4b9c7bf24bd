/* server.c - simnode's HTTP endpoints on libmicrohttpd, with fault injection and /stats. */
#include "sim/server.h"

#include <arpa/inet.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sim/control.h"
#include "sim/node.h"
#include "sim/wsconn.h"
#include "util/wsframe.h"

#define BODY_MAX (16u << 20)
#define ANSWER_MAX (1024u << 20)
/* A request that arrives inside a wait this endpoint announced (a 429's Retry-After) but
 * within this long of the announcement was on its way before the client could have read it
 * (another connection's request in flight): counted as in_flight, not as ignored. */
#define IN_FLIGHT_GRACE_S 0.5

static const char GARBAGE[] = "<html><body>502 Bad Gateway (simnode garbage)</body></html>\n";
static const char RATE_LIMITED[] = "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32005,"
                                   "\"message\":\"rate limit exceeded (simnode)\"}}";
static const char UNAVAILABLE[] = "503 Service Unavailable (simnode: over the limit)\n";
static const char LIMIT_32007[] = "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32007,"
                                  "\"message\":\"15/second request limit reached - reduce calls "
                                  "per second or upgrade your account at quicknode.com\"}}";

struct bp_sim_endpoint {
    bp_sim_server *srv;
    size_t index;
    bp_sim_faults f;
    struct MHD_Daemon *d;
    uint16_t port;
    atomic_uint_fast64_t seq, call_seq, requests, calls, bytes;
    atomic_uint_fast64_t counts[BP_SIM_F_COUNT];
    pthread_mutex_t rl_lock; /* the limits and the waits below */
    int64_t rl_window;
    uint64_t rl_count;
    double q_end; /* the quota window ends (monotonic s) */
    uint64_t q_count;
    /* The waits this endpoint announced and what clients did with them: the current wait
     * [wait_from, wait_until), the last 429 whose next request is not here yet (gap_from, 0:
     * none) and the shortest time from a 429 to the next request (min_gap, < 0: none). */
    double wait_from, wait_until, gap_from, min_gap;
    uint64_t waits, in_flight, ignored;
    bp_sim_ws_hub ws;
};

/* Per TCP connection: the request body, the answer (sent from here), generation scratch. */
typedef struct conn {
    bp_buf body;
    bp_buf out;
    bp_sim_scratch scratch;
    bool too_big;
    double arrived; /* the request's headers were read (monotonic s) */
} conn;

double bp_sim_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void count(bp_sim_endpoint *ep, enum bp_sim_fault f)
{
    atomic_fetch_add(&ep->counts[f], 1);
}

static bool roll(const bp_sim_endpoint *ep, uint64_t seq, enum bp_sim_fault f)
{
    double p = ep->f.rate[f];
    if (p <= 0)
        return false;
    if (p >= 1)
        return true;
    uint64_t x = bp_sim_mix4(ep->srv->chain.p.seed ^ 0xfa017, ep->index, seq, (uint64_t)f);
    return (double)(x >> 11) * 0x1p-53 < p;
}

static bool fail_call(void *ud, const char *method)
{
    bp_sim_endpoint *ep = ud;
    if (ep->f.error_method[0] && strcmp(method, ep->f.error_method) != 0)
        return false; /* error_method: the other methods are answered */
    if (!roll(ep, atomic_fetch_add(&ep->call_seq, 1), BP_SIM_F_ERROR))
        return false;
    count(ep, BP_SIM_F_ERROR);
    return true;
}

/* Sleeps up to s seconds, waking early when the server stops. */
static void nap(bp_sim_endpoint *ep, double s)
{
    double end = bp_sim_now() + s;
    while (!atomic_load(&ep->srv->stopping)) {
        double left = end - bp_sim_now();
        if (left <= 0)
            break;
        if (left > 0.05)
            left = 0.05;
        struct timespec ts = {0, (long)(left * 1e9)};
        nanosleep(&ts, NULL);
    }
}

/* Seconds left in the window when the request is over a limit (the quota first), else 0. */
static double over_limit(bp_sim_endpoint *ep, double now)
{
    double left = 0;
    pthread_mutex_lock(&ep->rl_lock);
    if (ep->f.quota > 0) {
        if (now >= ep->q_end) {
            ep->q_end = now + ep->f.quota_window;
            ep->q_count = 0;
        }
        if (++ep->q_count > ep->f.quota)
            left = ep->q_end - now;
    }
    if (left <= 0 && ep->f.rate_limit > 0) {
        int64_t window = (int64_t)now;
        if (window != ep->rl_window) {
            ep->rl_window = window;
            ep->rl_count = 0;
        }
        if ((double)++ep->rl_count > ep->f.rate_limit)
            left = (double)(window + 1) - now;
    }
    pthread_mutex_unlock(&ep->rl_lock);
    return left;
}

/* The Retry-After of a 429 with `left` seconds of its window to go: the header's text (NULL:
 * none) and in *wait the seconds it asks for (0: none). */
static const char *retry_after(const bp_sim_endpoint *ep, double left, char *buf, size_t size,
                               double *wait)
{
    struct timespec ts;
    switch (ep->f.retry_after) {
    case BP_SIM_RA_NONE:
        *wait = 0;
        return NULL;
    case BP_SIM_RA_FIXED:
        *wait = (double)ep->f.retry_after_s;
        snprintf(buf, size, "%llu", (unsigned long long)ep->f.retry_after_s);
        return buf;
    case BP_SIM_RA_DATE: {
        clock_gettime(CLOCK_REALTIME, &ts);
        double wall = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
        time_t at = (time_t)ceil(wall + left);
        struct tm tm;
        gmtime_r(&at, &tm);
        strftime(buf, size, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        *wait = (double)at - wall;
        return buf;
    }
    case BP_SIM_RA_AUTO:
    default:
        break;
    }
    long secs = (long)ceil(left);
    *wait = secs < 1 ? 1 : (double)secs;
    snprintf(buf, size, "%ld", secs < 1 ? 1 : secs);
    return buf;
}

/* A request arrived at `at`: measures the gap since the last 429 and whether it came inside
 * an announced wait. */
static void note_arrival(bp_sim_endpoint *ep, double at)
{
    pthread_mutex_lock(&ep->rl_lock);
    if (ep->gap_from > 0 && at >= ep->gap_from) {
        double gap = at - ep->gap_from;
        if (ep->min_gap < 0 || gap < ep->min_gap)
            ep->min_gap = gap;
        ep->gap_from = 0;
    }
    if (at >= ep->wait_from && at < ep->wait_until) {
        if (at - ep->wait_from < IN_FLIGHT_GRACE_S)
            ep->in_flight++;
        else
            ep->ignored++;
    }
    pthread_mutex_unlock(&ep->rl_lock);
}

/* A 429 asking for `wait` seconds (0: no Retry-After) goes out now. */
static void note_429(bp_sim_endpoint *ep, double wait)
{
    double now = bp_sim_now();
    pthread_mutex_lock(&ep->rl_lock);
    ep->gap_from = now;
    if (wait > 0) {
        if (now >= ep->wait_until) {
            ep->wait_from = now;
            ep->waits++;
        }
        if (now + wait > ep->wait_until)
            ep->wait_until = now + wait;
    }
    pthread_mutex_unlock(&ep->rl_lock);
}

static enum MHD_Result respond(struct MHD_Connection *mc, unsigned status, const char *type,
                               const char *data, size_t len, const char *retry_after)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (retry_after)
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, retry_after);
    enum MHD_Result ret = MHD_queue_response(mc, status, r);
    MHD_destroy_response(r);
    return ret;
}

#define TEXT(mc, status, lit) respond((mc), (status), "text/plain", (lit), sizeof(lit) - 1, NULL)

/* A real TCP reset: with SO_LINGER 0 the last close of the socket sends an RST. libmicrohttpd
 * would shut the socket down (a FIN) first, so the connection's socket is closed right here by
 * dup2()ing a fresh unconnected socket over its descriptor; the library then closes that one.
 * Only this connection's thread uses the descriptor (a thread per connection). */
static void reset_connection(struct MHD_Connection *mc)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(ci->connect_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    int spare = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (spare >= 0) {
        dup2(spare, ci->connect_fd);
        close(spare);
    }
}

/* Faults decided before any answer is built; MHD_NO closes the connection (a reset). */
/* Whether the request body calls `method` ("": any request). The method's name in quotes is
 * enough for simnode's own tests: no parameter of theirs is a method name. */
static bool calls_method(const char *method, const char *body, size_t len)
{
    if (!method[0])
        return true;
    char quoted[72];
    int n = snprintf(quoted, sizeof(quoted), "\"%s\"", method);
    if (n <= 0 || (size_t)n >= sizeof(quoted))
        return false;
    for (size_t i = 0; i + (size_t)n <= len; i++)
        if (memcmp(body + i, quoted, (size_t)n) == 0)
            return true;
    return false;
}

static bool early_fault(bp_sim_endpoint *ep, struct MHD_Connection *mc, uint64_t seq,
                        const char *body, size_t len, enum MHD_Result *ret)
{
    double left = over_limit(ep, bp_sim_now());
    if (left > 0) {
        char buf[64];
        double wait;
        const char *ra = retry_after(ep, left, buf, sizeof(buf), &wait);
        count(ep, BP_SIM_F_RATE_LIMIT);
        note_429(ep, wait);
        if (ep->f.limit_answer == BP_SIM_LA_HTTP503)
            *ret = respond(mc, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", UNAVAILABLE,
                           sizeof(UNAVAILABLE) - 1, ra);
        else if (ep->f.limit_answer == BP_SIM_LA_RPC32007)
            *ret = respond(mc, MHD_HTTP_OK, "application/json", LIMIT_32007,
                           sizeof(LIMIT_32007) - 1, NULL);
        else
            *ret = respond(mc, MHD_HTTP_TOO_MANY_REQUESTS, "application/json", RATE_LIMITED,
                           sizeof(RATE_LIMITED) - 1, ra);
        return true;
    }
    if (roll(ep, seq, BP_SIM_F_RESET)) {
        count(ep, BP_SIM_F_RESET);
        reset_connection(mc);
        *ret = MHD_NO;
        return true;
    }
    if (roll(ep, seq, BP_SIM_F_STALL) && calls_method(ep->f.stall_method, body, len)) {
        count(ep, BP_SIM_F_STALL);
        nap(ep, ep->f.stall_s);
    }
    if (ep->f.latency_s > 0) {
        count(ep, BP_SIM_F_LATENCY);
        nap(ep, ep->f.latency_s);
    }
    if (roll(ep, seq, BP_SIM_F_HTTP500)) {
        count(ep, BP_SIM_F_HTTP500);
        *ret = TEXT(mc, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal server error (simnode)\n");
        return true;
    }
    if (roll(ep, seq, BP_SIM_F_GARBAGE)) {
        count(ep, BP_SIM_F_GARBAGE);
        *ret = respond(mc, MHD_HTTP_OK, "application/json", GARBAGE, sizeof(GARBAGE) - 1, NULL);
        return true;
    }
    return false;
}

static enum MHD_Result serve_rpc(bp_sim_endpoint *ep, struct MHD_Connection *mc, conn *c)
{
    uint64_t seq = atomic_fetch_add(&ep->seq, 1);
    atomic_fetch_add(&ep->requests, 1);
    note_arrival(ep, c->arrived);
    enum MHD_Result ret;
    if (early_fault(ep, mc, seq, c->body.data ? c->body.data : "", c->body.len, &ret))
        return ret;
    bp_sim_chain *chain = &ep->srv->chain;
    double now = bp_sim_now();
    bp_sim_chain_tick(chain, now);
    if (ep->srv->is_arch)
        bp_sim_arch_tick(&ep->srv->arch, now);
    uint64_t head = bp_sim_chain_head(chain, now);
    bp_sim_control ctl = {.chain = chain, .arch = ep->srv->is_arch ? &ep->srv->arch : NULL};
    bp_sim_request r = {.chain = chain,
                        .arch = ep->srv->is_arch ? &ep->srv->arch : NULL,
                        .control = &ctl,
                        .head = head > ep->f.lag ? head - ep->f.lag : 0,
                        .fail_call = fail_call,
                        .ud = ep,
                        .missing_method = ep->f.missing_method,
                        .scratch = &c->scratch,
                        .max_batch = (size_t)ep->f.max_batch,
                        .max_response_bytes = (size_t)ep->f.max_response_bytes,
                        .bad = ep->f.bad};
    if (bp_sim_answer(&r, c->body.data ? c->body.data : "", c->body.len, &c->out) != 0)
        return TEXT(mc, MHD_HTTP_INTERNAL_SERVER_ERROR, "answer too large or out of memory\n");
    atomic_fetch_add(&ep->calls, r.calls);
    size_t len = c->out.len;
    if (roll(ep, seq, BP_SIM_F_TRUNCATE)) {
        count(ep, BP_SIM_F_TRUNCATE);
        len /= 2;
    }
    atomic_fetch_add(&ep->bytes, len);
    return respond(mc, MHD_HTTP_OK, "application/json", c->out.data, len, NULL);
}

static enum MHD_Result serve_get(bp_sim_endpoint *ep, struct MHD_Connection *mc, const char *url,
                                 conn *c)
{
    if (strcmp(url, "/stats") == 0) {
        if (bp_sim_server_stats(ep->srv, &c->out) != 0)
            return TEXT(mc, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
        return respond(mc, MHD_HTTP_OK, "application/json", c->out.data, c->out.len, NULL);
    }
    if (strcmp(url, "/") == 0)
        return TEXT(mc, MHD_HTTP_OK, "blockpipe simnode: POST JSON-RPC here; GET /stats\n");
    return TEXT(mc, MHD_HTTP_NOT_FOUND, "not found\n");
}

static void ws_done(void *urh)
{
    MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
}

static void on_upgrade(void *cls, struct MHD_Connection *mc, void *req_cls, const char *extra,
                       size_t extra_len, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
    (void)mc;
    (void)req_cls;
    bp_sim_endpoint *ep = cls;
    bp_sim_ws_start(&ep->ws, sock, extra, extra_len, ws_done, urh);
}

static bool header_has(struct MHD_Connection *mc, const char *name, const char *token)
{
    const char *v = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, name);
    size_t n = strlen(token);
    for (; v && *v; v++)
        if (strncasecmp(v, token, n) == 0)
            return true;
    return false;
}

/* The RFC 6455 handshake on the HTTP port (as geth and anvil do): 101 and the socket goes to
 * a WebSocket connection thread. The first offered subprotocol is echoed (clients that offer
 * one may insist on it). */
static enum MHD_Result serve_upgrade(bp_sim_endpoint *ep, struct MHD_Connection *mc)
{
    const char *key = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Sec-WebSocket-Key");
    const char *proto = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Sec-WebSocket-Protocol");
    char accept[BP_WSFRAME_ACCEPT_LEN + 1], first[64];
    if (!key || bp_wsframe_accept(key, accept) != 0)
        return TEXT(mc, MHD_HTTP_BAD_REQUEST, "WebSocket upgrade without a valid key\n");
    struct MHD_Response *r = MHD_create_response_for_upgrade(on_upgrade, ep);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_UPGRADE, "websocket");
    MHD_add_response_header(r, "Sec-WebSocket-Accept", accept);
    if (proto && sscanf(proto, " %63[^, ]", first) == 1)
        MHD_add_response_header(r, "Sec-WebSocket-Protocol", first);
    enum MHD_Result ret = MHD_queue_response(mc, MHD_HTTP_SWITCHING_PROTOCOLS, r);
    MHD_destroy_response(r);
    return ret;
}

/* Every --require-header is there with its value; else c->out holds the 401's body, which
 * quotes the header that came and the path, as some providers' answers do (blockpipe must
 * not show either). */
static bool authorized(const bp_sim_server *s, struct MHD_Connection *mc, const char *url, conn *c)
{
    for (size_t i = 0; i < s->require_count; i++) {
        const char *want = s->require_headers[i], *colon = strchr(want, ':');
        char name[128];
        if (!colon || (size_t)(colon - want) >= sizeof(name))
            continue;
        memcpy(name, want, (size_t)(colon - want));
        name[colon - want] = '\0';
        const char *value = colon + 1 + strspn(colon + 1, " ");
        const char *got = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, name);
        if (got && strcmp(got, value) == 0)
            continue;
        char quoted[256];
        size_t n = 0;
        for (const char *g = got ? got : "(none)"; *g && n + 1 < sizeof(quoted); g++)
            if (*g != '"' && *g != '\\' && (unsigned char)*g >= 0x20)
                quoted[n++] = *g;
        quoted[n] = '\0';
        bp_buf_reset(&c->out);
        bp_buf_printf(&c->out,
                      "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32001,\"message\":"
                      "\"unauthorized (simnode): header %s is wrong: got '%s' on %.200s\"}}",
                      name, quoted, strchr(url, '"') ? "?" : url);
        return false;
    }
    return true;
}

static conn *conn_of(struct MHD_Connection *mc)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **req_cls)
{
    (void)version;
    bp_sim_endpoint *ep = cls;
    conn *c = conn_of(mc);
    if (!c)
        return MHD_NO;
    if (!*req_cls) { /* headers only: get ready for the body */
        *req_cls = c;
        bp_buf_reset(&c->body);
        c->too_big = false;
        c->arrived = bp_sim_now();
        return MHD_YES;
    }
    if (*upload_size) {
        if (!c->too_big && bp_buf_append(&c->body, upload, *upload_size) != 0)
            c->too_big = true;
        *upload_size = 0;
        return MHD_YES;
    }
    bool upgrade =
        strcmp(method, "GET") == 0 && header_has(mc, MHD_HTTP_HEADER_UPGRADE, "websocket");
    if ((upgrade || strcmp(method, "POST") == 0) && !authorized(ep->srv, mc, url, c))
        return respond(mc, MHD_HTTP_UNAUTHORIZED, "application/json", c->out.data, c->out.len,
                       NULL);
    if (upgrade)
        return serve_upgrade(ep, mc);
    if (strcmp(method, "GET") == 0)
        return serve_get(ep, mc, url, c);
    if (strcmp(method, "POST") != 0)
        return TEXT(mc, MHD_HTTP_METHOD_NOT_ALLOWED, "POST JSON-RPC, or GET /stats\n");
    if (c->too_big)
        return TEXT(mc, 413, "request body larger than 16 MiB\n");
    return serve_rpc(ep, mc, c);
}

static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    (void)cls;
    (void)mc;
    conn *c = *socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        c = calloc(1, sizeof(*c));
        if (c) {
            bp_buf_init(&c->body, BODY_MAX);
            bp_buf_init(&c->out, ANSWER_MAX);
            bp_sim_scratch_init(&c->scratch);
        }
        *socket_context = c;
        return;
    }
    if (c) {
        bp_buf_release(&c->body);
        bp_buf_release(&c->out);
        bp_sim_scratch_release(&c->scratch);
        free(c);
    }
    *socket_context = NULL;
}

static int resolve_host(const char *host, struct in_addr *a, bp_error *err)
{
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (inet_pton(AF_INET, host, a) != 1)
        return bp_error_set(err, BP_EINVAL, "--listen: '%s' is not an IPv4 address", host);
    return 0;
}

static int start_endpoint(bp_sim_endpoint *ep, const bp_sim_server_config *cfg, bp_error *err)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    int rc = resolve_host(cfg->host, &sa.sin_addr, err);
    if (rc != 0)
        return rc;
    uint16_t port = cfg->port ? (uint16_t)(cfg->port + ep->index) : 0;
    sa.sin_port = htons(port);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_ALLOW_UPGRADE;
    ep->d = MHD_start_daemon(flags, port, NULL, NULL, on_request, ep, MHD_OPTION_SOCK_ADDR, &sa,
                             MHD_OPTION_NOTIFY_CONNECTION, on_connection, ep,
                             MHD_OPTION_CONNECTION_TIMEOUT, 600u,
                             MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
    if (!ep->d)
        return bp_error_set(err, BP_EIO, "cannot listen on %s:%u (in use?)", cfg->host,
                            (unsigned)port);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(ep->d, MHD_DAEMON_INFO_BIND_PORT);
    ep->port = di ? di->port : port;
    return 0;
}

int bp_sim_server_start(bp_sim_server *s, const bp_sim_server_config *cfg, bp_error *err)
{
    memset(s, 0, sizeof(*s));
    atomic_init(&s->stopping, false);
    s->started = bp_sim_now();
    if (cfg->endpoints < 1 || cfg->endpoints > BP_SIM_MAX_ENDPOINTS)
        return bp_error_set(err, BP_EINVAL, "--endpoints %zu: expected 1 to %d", cfg->endpoints,
                            BP_SIM_MAX_ENDPOINTS);
    int rc = bp_sim_chain_init(&s->chain, &cfg->chain, s->started, err);
    if (rc != 0)
        return rc;
    s->is_arch = cfg->arch;
    if (s->is_arch &&
        (rc = bp_sim_arch_init(&s->arch, &s->chain, cfg->rollback_every, s->started, err)) != 0) {
        bp_sim_chain_release(&s->chain);
        return rc;
    }
    if (s->is_arch && cfg->rollback_depth)
        s->arch.rollback_depth = cfg->rollback_depth;
    if (s->is_arch && cfg->finality)
        s->arch.finality = cfg->finality;
    if (s->is_arch) {
        s->arch.ts_shape = cfg->arch_ts;
        s->arch.dkg_status = cfg->dkg_status;
    }
    s->eps = calloc(cfg->endpoints, sizeof(*s->eps));
    s->require_headers = cfg->require_headers;
    s->require_count = cfg->require_count;
    if (!s->eps) {
        if (s->is_arch)
            bp_sim_arch_release(&s->arch);
        bp_sim_chain_release(&s->chain);
        return bp_error_set(err, BP_ENOMEM, "simnode: out of memory");
    }
    for (size_t i = 0; i < cfg->endpoints; i++) {
        bp_sim_endpoint *ep = &s->eps[i];
        ep->srv = s;
        ep->index = i;
        ep->f = cfg->faults[i];
        ep->min_gap = -1;
        pthread_mutex_init(&ep->rl_lock, NULL);
        ep->ws = (bp_sim_ws_hub){.chain = &s->chain,
                                 .arch = s->is_arch ? &s->arch : NULL,
                                 .stopping = &s->stopping,
                                 .started = s->started,
                                 .endpoint = i,
                                 .lag = ep->f.lag,
                                 .drop_every = ep->f.ws_drop_every,
                                 .silent = ep->f.ws_silent,
                                 .bad_every = ep->f.ws_bad_every,
                                 .corrupt_every = ep->f.ws_corrupt_every,
                                 .corrupt_topics = ep->f.ws_corrupt_topics};
        bp_sim_ws_hub_init(&ep->ws);
        s->n = i + 1;
        rc = start_endpoint(ep, cfg, err);
        if (rc != 0) {
            bp_sim_server_stop(s);
            return rc;
        }
    }
    return 0;
}

uint16_t bp_sim_server_port(const bp_sim_server *s, size_t i)
{
    return i < s->n ? s->eps[i].port : 0;
}

static int endpoint_stats(bp_sim_endpoint *ep, uint64_t head, bp_buf *out)
{
    uint64_t h = head > ep->f.lag ? head - ep->f.lag : 0;
    int rc = bp_buf_printf(
        out,
        "{\"name\":\"ep%zu\",\"port\":%u,\"head\":%llu,\"requests\":%llu,\"calls\":%llu,"
        "\"bytes\":%llu,\"faults\":{",
        ep->index + 1, (unsigned)ep->port, (unsigned long long)h,
        (unsigned long long)atomic_load(&ep->requests), (unsigned long long)atomic_load(&ep->calls),
        (unsigned long long)atomic_load(&ep->bytes));
    for (int f = 0; rc == 0 && f < BP_SIM_F_COUNT; f++)
        rc = bp_buf_printf(out, "%s\"%s\":%llu", f ? "," : "", bp_sim_fault_name(f),
                           (unsigned long long)atomic_load(&ep->counts[f]));
    pthread_mutex_lock(&ep->rl_lock);
    if (rc == 0)
        rc = bp_buf_printf(out,
                           "},\"waits\":{\"announced\":%llu,\"in_flight\":%llu,\"ignored\":%llu,"
                           "\"min_gap_ms\":%.1f",
                           (unsigned long long)ep->waits, (unsigned long long)ep->in_flight,
                           (unsigned long long)ep->ignored,
                           ep->min_gap < 0 ? -1.0 : ep->min_gap * 1000.0);
    pthread_mutex_unlock(&ep->rl_lock);
    if (rc == 0)
        rc = bp_buf_printf(out,
                           "},\"ws\":{\"connections\":%llu,\"subscriptions\":%llu,\"heads\":%llu,"
                           "\"drops\":%llu,\"corrupted\":%llu}",
                           (unsigned long long)atomic_load(&ep->ws.connections),
                           (unsigned long long)atomic_load(&ep->ws.subscriptions),
                           (unsigned long long)atomic_load(&ep->ws.heads),
                           (unsigned long long)atomic_load(&ep->ws.drops),
                           (unsigned long long)atomic_load(&ep->ws.corrupted));
    return rc != 0 ? rc : bp_buf_putc(out, '}');
}

int bp_sim_server_stats(bp_sim_server *s, bp_buf *out)
{
    double now = bp_sim_now();
    bp_sim_chain_tick(&s->chain, now);
    if (s->is_arch)
        bp_sim_arch_tick(&s->arch, now);
    uint64_t head = bp_sim_chain_head(&s->chain, now);
    bp_buf_reset(out);
    int rc = bp_buf_printf(out, "{\"head\":%llu,\"reorgs\":%u,\"fork\":%u,\"uptime_s\":%.3f,",
                           (unsigned long long)head, atomic_load(&s->chain.nforks),
                           bp_sim_chain_fork_at(&s->chain, head), now - s->started);
    if (rc == 0 && s->is_arch) /* episodes: even ones roll back, odd ones re-apply */
        rc = bp_buf_printf(out, "\"chain_type\":\"arch\",\"episodes\":%u,",
                           atomic_load(&s->arch.episodes));
    if (rc == 0)
        rc = bp_buf_puts(out, "\"endpoints\":[");
    for (size_t i = 0; rc == 0 && i < s->n; i++) {
        if (i > 0)
            rc = bp_buf_putc(out, ',');
        if (rc == 0)
            rc = endpoint_stats(&s->eps[i], head, out);
    }
    return rc != 0 ? rc : bp_buf_puts(out, "]}");
}

void bp_sim_server_stop(bp_sim_server *s)
{
    atomic_store(&s->stopping, true);
    /* WebSocket connections end first: each closes its upgraded socket through the daemon. */
    for (size_t i = 0; i < s->n; i++)
        bp_sim_ws_hub_release(&s->eps[i].ws);
    for (size_t i = 0; i < s->n; i++) {
        if (s->eps[i].d)
            MHD_stop_daemon(s->eps[i].d);
        pthread_mutex_destroy(&s->eps[i].rl_lock);
    }
    free(s->eps);
    s->eps = NULL;
    s->n = 0;
    if (s->is_arch)
        bp_sim_arch_release(&s->arch);
    bp_sim_chain_release(&s->chain);
}
