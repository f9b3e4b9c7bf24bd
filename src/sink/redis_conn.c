/* redis_conn.c - a Redis connection: TCP or TLS socket, RESP pipeline, hiredis' reply parser
 * (redis_conn.h). */
#include "sink/redis_conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/hex.h"

#define IO_CHUNK (256u << 10)

struct bp_redis {
    const bp_redis_target *t;
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    redisReader *reader;
    bp_buf out;      /* queued commands */
    size_t sent;     /* bytes of out already sent */
    size_t expected; /* replies the sent and queued commands will get */
    redisReply **replies;
    size_t nreplies, cap;
};

/* ---- target ----------------------------------------------------------------------------- */

static char *decoded(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; out && i < n; i++) {
        if (s[i] == '%' && i + 2 < n && bp_hex_digit((unsigned char)s[i + 1]) >= 0 &&
            bp_hex_digit((unsigned char)s[i + 2]) >= 0) {
            out[k++] = (char)(bp_hex_digit((unsigned char)s[i + 1]) * 16 +
                              bp_hex_digit((unsigned char)s[i + 2]));
            i += 2;
        } else {
            out[k++] = s[i];
        }
    }
    if (out)
        out[k] = '\0';
    return out;
}

/* "[user[:pass]@]" at the front of *p: taken off. */
static int take_userinfo(bp_redis_target *t, const char **p, bp_error *err)
{
    const char *s = *p, *at = strrchr(s, '@');
    if (!at)
        return 0;
    const char *colon = memchr(s, ':', (size_t)(at - s));
    if (colon) {
        if (colon > s)
            t->user = decoded(s, (size_t)(colon - s));
        t->password = decoded(colon + 1, (size_t)(at - colon - 1));
    } else if (at > s) {
        t->password = decoded(s, (size_t)(at - s)); /* redis://secret@host: a password */
    }
    *p = at + 1;
    if ((colon && colon > s && !t->user) || ((colon || at > s) && !t->password))
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    return 0;
}

/* "host[:port]" or "[v6][:port]" of s[0..n). */
static int take_host(bp_redis_target *t, const char *s, size_t n, bp_error *err)
{
    const char *port = NULL;
    size_t hn = n;
    if (n && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close)
            return bp_error_set(err, BP_EINVAL, "'%.*s': missing ']' after an IPv6 address", (int)n,
                                s);
        t->host = decoded(s + 1, (size_t)(close - s - 1));
        port = close + 1 < s + n && close[1] == ':' ? close + 2 : NULL;
    } else {
        const char *colon = memchr(s, ':', n);
        hn = colon ? (size_t)(colon - s) : n;
        port = colon ? colon + 1 : NULL;
        t->host = decoded(s, hn);
    }
    if (!t->host)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    if (!t->host[0])
        return bp_error_set(err, BP_EINVAL, "no host name");
    size_t pn = port ? (size_t)(s + n - port) : 0;
    if (!port) {
        snprintf(t->port, sizeof(t->port), "6379");
        return 0;
    }
    char *end = NULL;
    long v = pn ? strtol(port, &end, 10) : -1;
    if (pn == 0 || pn > 5 || end != port + pn || v < 1 || v > 65535)
        return bp_error_set(err, BP_EINVAL, "port '%.*s' is not valid: expected 1 to 65535",
                            (int)pn, port);
    snprintf(t->port, sizeof(t->port), "%ld", v);
    return 0;
}

int bp_redis_target_init(bp_redis_target *t, const char *target, bool tls, bp_error *err)
{
    memset(t, 0, sizeof(*t));
    t->tls = tls;
    t->timeout_ms = 10000;
    const char *p = target;
    size_t end = strcspn(p, "?");
    if (p[end] == '?')
        return bp_error_set(err, BP_EINVAL,
                            "unknown parameter '%s' (the parameters are listed by "
                            "blockpipe --help)",
                            p + end + 1);
    int rc = take_userinfo(t, &p, err);
    if (rc != 0)
        return rc;
    size_t hostlen = strcspn(p, "/");
    rc = take_host(t, p, hostlen, err);
    if (rc != 0)
        return rc;
    const char *db = p + hostlen;
    if (*db == '/' && db[1]) {
        char *e = NULL;
        long v = strtol(db + 1, &e, 10);
        if (*e || v < 0 || v > 1000000 || db[1] < '0' || db[1] > '9')
            return bp_error_set(err, BP_EINVAL, "database '%s' is not valid: expected a number",
                                db + 1);
        t->db = (int)v;
    }
    snprintf(t->where, sizeof(t->where), "%s%s%s%s:%s/%d", tls ? "rediss://" : "",
             strchr(t->host, ':') ? "[" : "", t->host, strchr(t->host, ':') ? "]" : "", t->port,
             t->db);
    return 0;
}

void bp_redis_target_release(bp_redis_target *t)
{
    free(t->host);
    free(t->user);
    free(t->password);
    free(t->tls_ca);
    free(t->tls_cert);
    free(t->tls_key);
    memset(t, 0, sizeof(*t));
}

/* ---- sockets ---------------------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int lost(bp_redis *c, const char *what, int e, bp_error *err)
{
    return bp_error_set(err, BP_ETRANSPORT, "redis %s: %s: %s", c->t->where, what,
                        e ? strerror(e) : "connection closed by the server");
}

static int timed_out(bp_redis *c, const char *what, bp_error *err)
{
    return bp_error_set(err, BP_ETIMEOUT, "redis %s: %s: no answer within %d ms", c->t->where, what,
                        c->t->timeout_ms);
}

static void set_keepalive(int fd, int idle)
{
    int on = 1, intvl = idle > 10 ? 10 : idle, cnt = 3;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    if (idle <= 0)
        return;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

/* A non-blocking connect to one address, waited for up to the timeout. */
static int connect_one(bp_redis *c, const struct addrinfo *ai, int *e)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) {
        *e = errno;
        return -1;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
        *e = errno;
        close(fd);
        return -1;
    }
    struct pollfd pfd = {fd, POLLOUT, 0};
    int n = poll(&pfd, 1, c->t->timeout_ms);
    socklen_t len = sizeof(*e);
    if (n <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, e, &len) != 0 || *e != 0) {
        if (n == 0)
            *e = ETIMEDOUT;
        close(fd);
        return -1;
    }
    return fd;
}

static int open_socket(bp_redis *c, bp_error *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int g = getaddrinfo(c->t->host, c->t->port, &hints, &res);
    if (g != 0)
        return bp_error_set(err, BP_ETRANSPORT, "redis %s: cannot resolve '%s': %s", c->t->where,
                            c->t->host, gai_strerror(g));
    int e = 0;
    for (const struct addrinfo *ai = res; ai && c->fd < 0; ai = ai->ai_next)
        c->fd = connect_one(c, ai, &e);
    freeaddrinfo(res);
    if (c->fd < 0)
        return e == ETIMEDOUT ? timed_out(c, "connect", err) : lost(c, "connect", e, err);
    set_keepalive(c->fd, c->t->keepalive_s);
    return 0;
}

/* ---- TLS -------------------------------------------------------------------------------- */

static int tls_failed(bp_redis *c, const char *what, bp_error *err)
{
    char detail[256] = "";
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, detail, sizeof(detail));
    long v = c->ssl ? SSL_get_verify_result(c->ssl) : X509_V_OK;
    if (v != X509_V_OK)
        snprintf(detail, sizeof(detail), "certificate: %s", X509_verify_cert_error_string(v));
    ERR_clear_error();
    return bp_error_set(err, BP_ETRANSPORT, "redis %s: TLS %s failed%s%s", c->t->where, what,
                        detail[0] ? ": " : "", detail);
}

static int tls_context(bp_redis *c, bp_error *err)
{
    const bp_redis_target *t = c->t;
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (!c->ctx)
        return tls_failed(c, "setup", err);
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(c->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    int ok = t->tls_ca ? SSL_CTX_load_verify_locations(c->ctx, t->tls_ca, NULL)
                       : SSL_CTX_set_default_verify_paths(c->ctx);
    if (ok != 1)
        return tls_failed(c, t->tls_ca ? "loading the CA file" : "loading the system CAs", err);
    if (t->tls_cert && (SSL_CTX_use_certificate_chain_file(c->ctx, t->tls_cert) != 1 ||
                        SSL_CTX_use_PrivateKey_file(c->ctx, t->tls_key ? t->tls_key : t->tls_cert,
                                                    SSL_FILETYPE_PEM) != 1))
        return tls_failed(c, "loading the client certificate", err);
    return 0;
}

/* Waits for what SSL asked (WANT_READ / WANT_WRITE) until deadline. */
static int tls_wait(bp_redis *c, int r, int64_t deadline, const char *what, bp_error *err)
{
    int code = SSL_get_error(c->ssl, r);
    if (code != SSL_ERROR_WANT_READ && code != SSL_ERROR_WANT_WRITE)
        return tls_failed(c, what, err);
    struct pollfd pfd = {c->fd, code == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, 0};
    int left = (int)(deadline - now_ms());
    if (left <= 0 || poll(&pfd, 1, left) <= 0)
        return timed_out(c, what, err);
    return 0;
}

static int tls_handshake(bp_redis *c, bp_error *err)
{
    int rc = tls_context(c, err);
    if (rc != 0)
        return rc;
    c->ssl = SSL_new(c->ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1)
        return tls_failed(c, "setup", err);
    unsigned char ip[16];
    bool is_ip =
        inet_pton(AF_INET, c->t->host, ip) == 1 || inet_pton(AF_INET6, c->t->host, ip) == 1;
    X509_VERIFY_PARAM *param = SSL_get0_param(c->ssl);
    if (is_ip) {
        X509_VERIFY_PARAM_set1_ip_asc(param, c->t->host);
    } else {
        SSL_set_tlsext_host_name(c->ssl, c->t->host);
        SSL_set1_host(c->ssl, c->t->host);
    }
    int64_t deadline = now_ms() + c->t->timeout_ms;
    for (;;) {
        int r = SSL_connect(c->ssl);
        if (r == 1)
            return 0;
        rc = tls_wait(c, r, deadline, "handshake", err);
        if (rc != 0)
            return rc;
    }
}

/* ---- I/O -------------------------------------------------------------------------------- */

/* A write that never raises SIGPIPE (a server that closed the connection is an error here,
 * not the end of the program): send(MSG_NOSIGNAL) for TCP; for TLS, SIGPIPE blocked around
 * SSL_write and a pending one taken. */
static ssize_t write_some(bp_redis *c, const char *p, size_t n, int *want)
{
    *want = 0;
    if (!c->ssl)
        return send(c->fd, p, n, MSG_NOSIGNAL);
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    int r = SSL_write(c->ssl, p, (int)n);
    int code = r > 0 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, r);
    sigpending(&pending);
    if (!was_pending && sigismember(&pending, SIGPIPE))
        sigtimedwait(&pipe_set, NULL, &(struct timespec){0, 0});
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r > 0)
        return r;
    if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) {
        *want = code == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        errno = EAGAIN;
    } else if (errno == 0) {
        errno = ECONNRESET;
    }
    return -1;
}

static ssize_t read_some(bp_redis *c, char *p, size_t n, int *want)
{
    *want = 0;
    if (!c->ssl)
        return recv(c->fd, p, n, 0);
    int r = SSL_read(c->ssl, p, (int)n);
    if (r > 0)
        return r;
    int code = SSL_get_error(c->ssl, r);
    if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) {
        *want = code == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        errno = EAGAIN;
        return -1;
    }
    ERR_clear_error();
    if (code == SSL_ERROR_ZERO_RETURN || (code == SSL_ERROR_SYSCALL && errno == 0))
        return 0;
    if (errno == 0)
        errno = ECONNRESET;
    return -1;
}

static int keep_reply(bp_redis *c, redisReply *r)
{
    if (c->nreplies == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 64;
        redisReply **p = realloc(c->replies, cap * sizeof(*p));
        if (!p)
            return BP_ENOMEM;
        c->replies = p;
        c->cap = cap;
    }
    c->replies[c->nreplies++] = r;
    return 0;
}

static void drop_replies(bp_redis *c)
{
    for (size_t i = 0; i < c->nreplies; i++)
        freeReplyObject(c->replies[i]);
    c->nreplies = 0;
}

/* Parses what the reader holds into replies. */
static int take_replies(bp_redis *c, size_t want, bp_error *err)
{
    while (c->nreplies < want) {
        void *r = NULL;
        if (redisReaderGetReply(c->reader, &r) != REDIS_OK)
            return bp_error_set(err, BP_EPARSE, "redis %s: bad reply: %s", c->t->where,
                                c->reader->errstr);
        if (!r)
            return 0;
        if (keep_reply(c, r) != 0) {
            freeReplyObject(r);
            return bp_error_set(err, BP_ENOMEM, "out of memory");
        }
    }
    return 0;
}

/* Writes out[sent..] and, unless only_send, reads until `want` replies are parsed. Every wait
 * is bounded by the timeout since the last progress. */
static int pump(bp_redis *c, size_t want, bool only_send, const char *what, bp_error *err)
{
    char chunk[64 << 10];
    int64_t last = now_ms();
    int want_r = 0, want_w = 0;
    for (;;) {
        int rc = take_replies(c, want, err);
        if (rc != 0)
            return rc;
        bool writing = c->sent < c->out.len;
        if (!writing && (only_send || c->nreplies >= want))
            return 0;
        bool buffered = c->ssl && SSL_pending(c->ssl) > 0;
        struct pollfd pfd = {c->fd, (short)((only_send ? 0 : POLLIN) | (writing ? POLLOUT : 0)), 0};
        pfd.events |= (short)(want_r | want_w);
        int left = (int)(last + c->t->timeout_ms - now_ms());
        int n = buffered ? 1 : left <= 0 ? 0 : poll(&pfd, 1, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            return timed_out(c, what, err);
        if (buffered)
            pfd.revents = POLLIN;
        if (pfd.revents & (POLLOUT | POLLERR | POLLHUP) && writing) {
            size_t len = c->out.len - c->sent;
            ssize_t k =
                write_some(c, c->out.data + c->sent, len < IO_CHUNK ? len : IO_CHUNK, &want_w);
            if (k < 0 && errno != EAGAIN && errno != EINTR)
                return lost(c, what, errno, err);
            if (k > 0) {
                c->sent += (size_t)k;
                last = now_ms();
            }
        }
        if (pfd.revents & (POLLIN | POLLERR | POLLHUP) && !only_send) {
            ssize_t k = read_some(c, chunk, sizeof(chunk), &want_r);
            if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR))
                return lost(c, what, k == 0 ? 0 : errno, err);
            if (k > 0) {
                if (redisReaderFeed(c->reader, chunk, (size_t)k) != REDIS_OK)
                    return bp_error_set(err, BP_ENOMEM, "out of memory");
                last = now_ms();
            }
        }
    }
}

int bp_redis_send(bp_redis *c, bp_error *err)
{
    return pump(c, 0, true, "sending", err);
}

int bp_redis_exchange(bp_redis *c, bp_error *err)
{
    drop_replies(c);
    int rc = pump(c, c->expected, false, "waiting for replies", err);
    bp_buf_reset(&c->out);
    c->sent = 0;
    c->expected = 0;
    return rc;
}

size_t bp_redis_reply_count(const bp_redis *c)
{
    return c->nreplies;
}

const redisReply *bp_redis_reply(const bp_redis *c, size_t i)
{
    return i < c->nreplies ? c->replies[i] : NULL;
}

/* ---- commands --------------------------------------------------------------------------- */

/* "*argc\r\n" or "$len\r\n": written by hand (snprintf here was a tenth of the Redis
 * output's CPU time: two headers for each of an entry's 18 arguments). */
static int put_len(bp_redis *c, char kind, size_t n)
{
    char head[32], *p = head + sizeof(head);
    *--p = '\n';
    *--p = '\r';
    do
        *--p = (char)('0' + n % 10);
    while ((n /= 10) > 0);
    *--p = kind;
    return bp_buf_append(&c->out, p, (size_t)(head + sizeof(head) - p));
}

int bp_redis_cmd_begin(bp_redis *c, int argc)
{
    c->expected++;
    return put_len(c, '*', (size_t)argc);
}

int bp_redis_arg(bp_redis *c, const char *s, size_t n)
{
    int rc = put_len(c, '$', n);
    if (rc == 0)
        rc = bp_buf_append(&c->out, s, n);
    return rc ? rc : bp_buf_append(&c->out, "\r\n", 2);
}

int bp_redis_arg_str(bp_redis *c, const char *s)
{
    return bp_redis_arg(c, s, strlen(s));
}

int bp_redis_arg_u64(bp_redis *c, unsigned long long v)
{
    char dec[24];
    int n = snprintf(dec, sizeof(dec), "%llu", v);
    return bp_redis_arg(c, dec, (size_t)n);
}

int bp_redis_cmd(bp_redis *c, int argc, const char *const *argv, const size_t *lens)
{
    int rc = bp_redis_cmd_begin(c, argc);
    for (int i = 0; i < argc && rc == 0; i++)
        rc = bp_redis_arg(c, argv[i], lens ? lens[i] : strlen(argv[i]));
    return rc;
}

size_t bp_redis_queued_bytes(const bp_redis *c)
{
    return c->out.len - c->sent;
}

bool bp_redis_script_refused(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && r->str &&
           (strncmp(r->str, "NOPERM", 6) == 0 || strstr(r->str, "unknown command") ||
            strstr(r->str, "cript"));
}

const char *bp_redis_reply_text(const redisReply *r, char *buf, size_t cap)
{
    if (!r)
        snprintf(buf, cap, "no reply");
    else if (r->type == REDIS_REPLY_ERROR || r->type == REDIS_REPLY_STATUS ||
             r->type == REDIS_REPLY_STRING)
        snprintf(buf, cap, "%.*s", (int)(r->len < 400 ? r->len : 400), r->str);
    else if (r->type == REDIS_REPLY_INTEGER)
        snprintf(buf, cap, "%lld", r->integer);
    else if (r->type == REDIS_REPLY_NIL)
        snprintf(buf, cap, "nil");
    else
        snprintf(buf, cap, "an array of %zu", r->elements);
    return buf;
}

int bp_redis_call(bp_redis *c, int argc, const char *const *argv, const redisReply **reply,
                  bp_error *err)
{
    *reply = NULL;
    if (bp_redis_cmd(c, argc, argv, NULL) != 0)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    int rc = bp_redis_exchange(c, err);
    if (rc == 0)
        *reply = c->replies[c->nreplies - 1];
    return rc;
}

/* ---- connect ---------------------------------------------------------------------------- */

/* AUTH, SELECT and PING in one round trip. */
static int handshake(bp_redis *c, bp_error *err)
{
    const bp_redis_target *t = c->t;
    char db[16];
    snprintf(db, sizeof(db), "%d", t->db);
    int rc = 0;
    if (t->password && t->user)
        rc = bp_redis_cmd(c, 3, (const char *[]){"AUTH", t->user, t->password}, NULL);
    else if (t->password)
        rc = bp_redis_cmd(c, 2, (const char *[]){"AUTH", t->password}, NULL);
    if (rc == 0 && t->db)
        rc = bp_redis_cmd(c, 2, (const char *[]){"SELECT", db}, NULL);
    if (rc == 0)
        rc = bp_redis_cmd(c, 1, (const char *[]){"PING"}, NULL);
    if (rc != 0)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    rc = bp_redis_exchange(c, err);
    for (size_t i = 0; rc == 0 && i < c->nreplies; i++) {
        const redisReply *r = c->replies[i];
        if (r->type != REDIS_REPLY_ERROR)
            continue;
        char text[512];
        bp_redis_reply_text(r, text, sizeof(text));
        /* a server that just started answers LOADING until its data is in memory (it listens
         * meanwhile): a state to wait out like a refused connection, not a refusal (the Redis
         * output in stop mode gave up when it reconnected to a restarted server too soon) */
        if (r->len >= 8 && strncmp(r->str, "LOADING ", 8) == 0)
            return bp_error_set(err, BP_ETRANSPORT, "redis %s: %s", t->where, text);
        bool auth = t->password && i == 0;
        return bp_error_set(err, BP_EDB, "redis %s: %s refused: %s", t->where,
                            auth                                            ? "AUTH"
                            : (t->db && i == (size_t)(t->password != NULL)) ? "SELECT"
                                                                            : "PING",
                            text);
    }
    return rc;
}

int bp_redis_connect(const bp_redis_target *t, bp_redis **out, bp_error *err)
{
    *out = NULL;
    bp_redis *c = calloc(1, sizeof(*c));
    if (!c)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    c->t = t;
    c->fd = -1;
    bp_buf_init(&c->out, 0);
    c->reader = redisReaderCreate();
    int rc = c->reader ? 0 : bp_error_set(err, BP_ENOMEM, "out of memory");
    if (rc == 0)
        rc = open_socket(c, err);
    if (rc == 0 && t->tls)
        rc = tls_handshake(c, err);
    if (rc == 0)
        rc = handshake(c, err);
    if (rc != 0) {
        bp_redis_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void bp_redis_free(bp_redis *c)
{
    if (!c)
        return;
    drop_replies(c);
    free(c->replies);
    if (c->ssl)
        SSL_free(c->ssl); /* no close_notify: the peer may be gone, and it would block */
    if (c->ctx)
        SSL_CTX_free(c->ctx);
    if (c->fd >= 0)
        close(c->fd);
    if (c->reader)
        redisReaderFree(c->reader);
    bp_buf_release(&c->out);
    free(c);
}
