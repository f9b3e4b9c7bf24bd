/* ws_fanout.c - N WebSocket clients of blockpipe's push API on one epoll thread, for the
 * commit-to-client latency benchmark (bench/api_bench.py): each block message carries
 * committed_ms (unix ms when every output had the block); receive time minus it, over every
 * client and block, is printed as "latency_ms p50 p99 max count" once every client has seen
 * `blocks` blocks (or after `seconds`). Exit status 3 when a client was closed or had fewer
 * than `blocks` (tests/integration/test_api_clients.py runs it with 1,000 clients too).
 *
 *   bench_ws_fanout PORT CLIENTS BLOCKS SECONDS
 *
 * Plain C so that the readers' own delay stays out of the figure (a Python reader of 1,000
 * sockets adds tens of milliseconds at the tail on 2 cores). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct client {
    int fd;
    bool open;
    unsigned char buf[1 << 16];
    size_t len;
    int blocks;
} client;

static double unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Blocking connect + upgrade (the handshake's answer is read to its blank line). */
static int connect_ws(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "GET /api/ws?topics=blocks HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: "
                     "websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
                     "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     port);
    if (write(fd, req, (size_t)n) != n)
        return -1;
    char resp[1024];
    size_t got = 0;
    while (got < sizeof(resp) - 1) {
        ssize_t r = read(fd, resp + got, 1); /* byte by byte: nothing past the headers */
        if (r <= 0)
            return -1;
        got++;
        resp[got] = '\0';
        if (got >= 4 && memcmp(resp + got - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    if (!strstr(resp, " 101 "))
        return -1;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* Whole server frames in c->buf: latencies of block applies into lat. */
static void frames(client *c, double now, double *lat, size_t *nlat, size_t cap)
{
    size_t off = 0;
    while (c->len - off >= 2) {
        unsigned char *p = c->buf + off;
        uint64_t n = p[1] & 0x7f;
        size_t h = 2;
        if (n == 126) {
            if (c->len - off < 4)
                break;
            n = (uint64_t)p[2] << 8 | p[3];
            h = 4;
        } else if (n == 127) {
            if (c->len - off < 10)
                break;
            n = 0;
            for (int i = 0; i < 8; i++)
                n = n << 8 | p[2 + i];
            h = 10;
        }
        if (c->len - off < h + n)
            break;
        char *msg = (char *)p + h;
        char saved = msg[n];
        msg[n] = '\0';
        char *cm = strstr(msg, "\"committed_ms\":");
        if ((p[0] & 0x0f) == 1 && cm && strstr(msg, "\"type\":\"apply\"") && *nlat < cap) {
            lat[(*nlat)++] = now - strtod(cm + 15, NULL);
            c->blocks++;
        }
        msg[n] = saved;
        off += h + (size_t)n;
    }
    memmove(c->buf, c->buf + off, c->len - off);
    c->len -= off;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s PORT CLIENTS BLOCKS SECONDS\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]), n = atoi(argv[2]), blocks = atoi(argv[3]);
    double until = unix_ms() + atof(argv[4]) * 1000.0;
    client *cs = calloc((size_t)n, sizeof(*cs));
    size_t cap = (size_t)n * (size_t)blocks * 2 + 16, nlat = 0;
    double *lat = malloc(cap * sizeof(*lat));
    int ep = epoll_create1(0);
    if (!cs || !lat || ep < 0)
        return 1;
    for (int i = 0; i < n; i++) {
        cs[i].fd = connect_ws(port);
        if (cs[i].fd < 0) {
            fprintf(stderr, "client %d: cannot connect: %s\n", i, strerror(errno));
            return 1;
        }
        cs[i].open = true;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
    }
    printf("ready %d\n", n);
    fflush(stdout);
    int done = 0;
    struct epoll_event evs[256];
    while (done < n && unix_ms() < until) {
        int k = epoll_wait(ep, evs, 256, 1000);
        double now = unix_ms();
        for (int i = 0; i < k; i++) {
            client *c = evs[i].data.ptr;
            ssize_t r = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
            if (r <= 0) {
                if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    c->open = false;
                    done++;
                }
                continue;
            }
            c->len += (size_t)r;
            int before = c->blocks;
            frames(c, now, lat, &nlat, cap);
            if (before < blocks && c->blocks >= blocks)
                done++;
        }
    }
    qsort(lat, nlat, sizeof(*lat), cmp);
    if (nlat == 0) {
        printf("latency_ms none\n");
        return 1;
    }
    printf("latency_ms %.2f %.2f %.2f %zu\n", lat[nlat / 2], lat[(size_t)(0.99 * (double)nlat)],
           lat[nlat - 1], nlat);
    int short_of = 0;
    for (int i = 0; i < n; i++) {
        short_of += !cs[i].open || cs[i].blocks < blocks;
        close(cs[i].fd);
    }
    if (short_of)
        fprintf(stderr, "%d of %d clients were closed or got fewer than %d blocks\n", short_of, n,
                blocks);
    free(cs);
    free(lat);
    return short_of ? 3 : 0;
}
