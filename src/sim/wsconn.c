/* wsconn.c - simnode's WebSocket connections: frames in, JSON-RPC answers and newHeads out. */
#include "sim/wsconn.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "blockpipe/error.h"
#include "sim/control.h"
#include "sim/node.h"
#include "sim/render.h"
#include "sim/server.h"
#include "util/buf.h"
#include "util/wsframe.h"

#define MESSAGE_MAX (1u << 20)
#define ANSWER_MAX (1024u << 20)
#define POLL_MS 50
#define CATCH_UP_MAX 256 /* heads announced at most per wake-up: the newest ones */
#define FORK_WALK_MAX 100000

typedef struct conn {
    bp_sim_ws_hub *hub;
    int fd;
    void (*done)(void *);
    void *done_arg;
    bp_buf rx, text, out, frame;
    bp_sim_scratch scratch;
    bp_sim_subs subs;
    double opened;
    char sub_id[BP_SIM_SUB_ID_MAX]; /* "" = not subscribed */
    uint64_t last_n;                /* the last head announced (or the head at subscribe) */
    uint32_t last_fork;
    bp_sim_arch_subs asubs; /* arch: the topics subscribed */
    unsigned seen_episodes; /* arch: rollback / re-apply episodes announced */
    uint64_t events;        /* arch: events sent (ws_bad_every counts them) */
    uint64_t corruptible;   /* arch: events of ws_corrupt_topic sent (ws_corrupt_every) */
    bp_buf broken;          /* arch: the event ws_corrupt_every breaks */
} conn;

static void conn_free(conn *c)
{
    bp_buf_release(&c->rx);
    bp_buf_release(&c->text);
    bp_buf_release(&c->out);
    bp_buf_release(&c->frame);
    bp_buf_release(&c->broken);
    bp_sim_scratch_release(&c->scratch);
    free(c);
}

/* The endpoint's head and the reorg count it is read against. */
static uint64_t endpoint_head(bp_sim_ws_hub *h, uint32_t *forks)
{
    double now = bp_sim_now();
    bp_sim_chain_tick(h->chain, now);
    if (h->arch)
        bp_sim_arch_tick(h->arch, now);
    *forks = atomic_load_explicit(&h->chain->nforks, memory_order_acquire);
    uint64_t head = bp_sim_chain_head(h->chain, now);
    return head > h->lag ? head - h->lag : 0;
}

static bool on_subscribe(void *ud, const char *kind, char id[BP_SIM_SUB_ID_MAX])
{
    conn *c = ud;
    bp_sim_ws_hub *h = c->hub;
    if (strcmp(kind, "newHeads") != 0)
        return false;
    uint64_t seq = atomic_fetch_add(&h->seq, 1);
    snprintf(id, BP_SIM_SUB_ID_MAX, "0x%016llx%016llx",
             (unsigned long long)bp_sim_mix4(h->chain->p.seed, 0x5b, h->endpoint, seq),
             (unsigned long long)bp_sim_mix4(h->chain->p.seed, 0x5c, h->endpoint, seq));
    if (!c->sub_id[0]) { /* announcements start after the head of now, as geth does */
        uint32_t k;
        c->last_n = endpoint_head(h, &k);
        c->last_fork = bp_sim_chain_fork_upto(h->chain, c->last_n, k);
    }
    snprintf(c->sub_id, sizeof(c->sub_id), "%s", id);
    atomic_fetch_add(&h->subscriptions, 1);
    return true;
}

static bool on_unsubscribe(void *ud, const char *id)
{
    conn *c = ud;
    if (!c->sub_id[0] || strcmp(id, c->sub_id) != 0)
        return false;
    c->sub_id[0] = '\0';
    return true;
}

/* Sends the frame in c->frame; a short write or a timeout ends the connection (-1). */
static int send_built(conn *c)
{
    for (size_t at = 0; at < c->frame.len;) {
        ssize_t n = send(c->fd, c->frame.data + at, c->frame.len - at, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        at += (size_t)n;
    }
    return 0;
}

static int send_frame(conn *c, enum bp_wsframe_op op, const void *data, size_t len)
{
    bp_buf_reset(&c->frame);
    return bp_wsframe_append(&c->frame, op, data, len) != 0 ? -1 : send_built(c);
}

static int send_close(conn *c, unsigned code)
{
    bp_buf_reset(&c->frame);
    return bp_wsframe_append_close(&c->frame, code) != 0 ? -1 : send_built(c);
}

/* Arch's subscribe / unsubscribe messages: 1 when text is neither (a JSON-RPC call). */
static int arch_message(conn *c)
{
    bp_sim_ws_hub *h = c->hub;
    bool sub = false;
    int rc = bp_sim_arch_ws_message(h->arch, &c->asubs, c->text.data, c->text.len, &c->out, &sub);
    if (rc != 0)
        return rc > 0 ? 1 : -1;
    if (sub && !c->sub_id[0]) { /* events start after the head of now */
        uint32_t k;
        c->last_n = endpoint_head(h, &k);
        c->last_fork = bp_sim_chain_fork_upto(h->chain, c->last_n, k);
        c->seen_episodes = atomic_load(&h->arch->episodes);
        snprintf(c->sub_id, sizeof(c->sub_id), "arch");
    }
    if (sub)
        atomic_fetch_add(&h->subscriptions, 1);
    return send_frame(c, BP_WSFRAME_TEXT, c->out.data, c->out.len);
}

static int answer_text(conn *c, const uint8_t *p, size_t len)
{
    bp_sim_ws_hub *h = c->hub;
    bp_buf_reset(&c->text);
    if (bp_buf_append(&c->text, p, len) != 0)
        return -1;
    int arc = h->arch ? arch_message(c) : 1;
    if (arc != 1)
        return arc;
    uint32_t k;
    bp_sim_control ctl = {.chain = h->chain, .arch = h->arch};
    bp_sim_request r = {.chain = h->chain,
                        .arch = h->arch,
                        .control = &ctl,
                        .head = endpoint_head(h, &k),
                        .scratch = &c->scratch,
                        .subs = h->arch ? NULL : &c->subs};
    if (bp_sim_answer(&r, c->text.data, c->text.len, &c->out) != 0)
        return -1;
    return send_frame(c, BP_WSFRAME_TEXT, c->out.data, c->out.len);
}

/* 1: the client closed (answered), 0: go on, -1: a protocol or socket error. */
static int on_frame(conn *c, const bp_wsframe *f)
{
    switch (f->op) {
    case BP_WSFRAME_TEXT:
        return answer_text(c, f->payload, f->len);
    case BP_WSFRAME_PING:
        return send_frame(c, BP_WSFRAME_PONG, f->payload, f->len);
    case BP_WSFRAME_CLOSE:
        send_frame(c, BP_WSFRAME_CLOSE, f->payload, f->len >= 2 ? 2 : 0);
        return 1;
    default: /* pong, binary: nothing to answer */
        return 0;
    }
}

/* Decodes and handles every whole frame in rx. */
static int drain(conn *c)
{
    size_t at = 0;
    int rc = 0;
    while (rc == 0) {
        bp_wsframe f;
        long used = bp_wsframe_parse((uint8_t *)c->rx.data + at, c->rx.len - at, MESSAGE_MAX, &f);
        if (used == 0)
            break;
        if (used < 0) {
            send_close(c, bp_wsframe_close_code(used));
            return -1;
        }
        at += (size_t)used;
        rc = on_frame(c, &f);
    }
    memmove(c->rx.data, c->rx.data + at, c->rx.len - at);
    c->rx.len -= at;
    return rc;
}

static int receive(conn *c)
{
    if (bp_buf_reserve(&c->rx, 65536) != 0)
        return -1;
    ssize_t n = recv(c->fd, c->rx.data + c->rx.len, c->rx.cap - c->rx.len - 1, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    if (n <= 0)
        return -1;
    c->rx.len += (size_t)n;
    return drain(c);
}

static int announce_one(conn *c, uint64_t n, uint32_t fork)
{
    bp_error err = {0};
    bp_sim_scratch *s = &c->scratch;
    s->valid = false; /* the scratch block is reused here, not cached */
    if (bp_sim_block_gen(c->hub->chain, n, fork, &s->block, &err) != 0)
        return -1;
    bp_buf_reset(&c->out);
    int rc = bp_buf_printf(&c->out,
                           "{\"jsonrpc\":\"2.0\",\"method\":\"eth_subscription\",\"params\":"
                           "{\"subscription\":\"%s\",\"result\":",
                           c->sub_id);
    if (rc == 0)
        rc = bp_sim_render_header(&s->block, &c->out);
    if (rc == 0)
        rc = bp_buf_puts(&c->out, "}}");
    if (rc != 0 || send_frame(c, BP_WSFRAME_TEXT, c->out.data, c->out.len) != 0)
        return -1;
    atomic_fetch_add(&c->hub->heads, 1);
    return 0;
}

/* The first height to announce up to head: above the highest block the announced branch
 * shares with the canonical one (reorg k), at most CATCH_UP_MAX below head. */
static uint64_t first_new(const conn *c, uint64_t head, uint32_t k)
{
    const bp_sim_chain *ch = c->hub->chain;
    uint64_t x = c->last_n < head ? c->last_n : head;
    for (uint64_t steps = 0; x > 0 && steps < FORK_WALK_MAX; x--, steps++)
        if (bp_sim_chain_fork_upto(ch, x, c->last_fork) == bp_sim_chain_fork_upto(ch, x, k))
            break;
    uint64_t from = x + 1;
    return head >= CATCH_UP_MAX && from < head - CATCH_UP_MAX + 1 ? head - CATCH_UP_MAX + 1 : from;
}

/* ws_corrupt_every: the event as it goes out broken (c->broken): the first hash or key of its
 * data (64 hex digits in quotes; a rolledback / reapplied list's first element) starts "zz",
 * so the decoder names that field; an event without one (dkg) is cut in half (not JSON). */
static int corrupt(conn *c, const char *msg, size_t len)
{
    bp_buf_reset(&c->broken);
    if (bp_buf_append(&c->broken, msg, len) != 0 || bp_buf_putc(&c->broken, '\0') != 0)
        return -1;
    c->broken.len = len;
    char *p = c->broken.data, *end = p + len, *data = strstr(p, "\"data\"");
    for (char *q = data ? data + 6 : end; q + 65 < end; q++)
        if (q[0] == '"' && q[65] == '"' && strspn(q + 1, "0123456789abcdef") >= 64) {
            q[1] = q[2] = 'z';
            return 0;
        }
    c->broken.len = len / 2;
    return 0;
}

static bool corrupt_due(conn *c, unsigned topic)
{
    const bp_sim_ws_hub *h = c->hub;
    if (!h->corrupt_every || (h->corrupt_topics && !(h->corrupt_topics & (1u << topic))))
        return false;
    return ++c->corruptible % h->corrupt_every == 0;
}

static int arch_emit(void *ud, unsigned topic, const char *msg, size_t len)
{
    conn *c = ud;
    if (corrupt_due(c, topic)) { /* ws_corrupt_every: this one goes out broken */
        if (corrupt(c, msg, len) != 0)
            return -1;
        msg = c->broken.data;
        len = c->broken.len;
        atomic_fetch_add(&c->hub->corrupted, 1);
    }
    if (send_frame(c, BP_WSFRAME_TEXT, msg, len) != 0)
        return -1;
    if (topic == BP_SIM_ARCH_BLOCK)
        atomic_fetch_add(&c->hub->heads, 1);
    if (c->hub->bad_every && ++c->events % c->hub->bad_every == 0) { /* ws_bad_every */
        char bad[96];
        int n = snprintf(bad, sizeof(bad), "{\"topic\":\"%s\",\"data\":{\"hash\":\"zz\"}}",
                         bp_sim_arch_topic_name(topic));
        return send_frame(c, BP_WSFRAME_TEXT, bad, (size_t)n);
    }
    return 0;
}

/* Arch: a block's events (its transactions', then its own), as the EVM path's heads. */
static int announce_arch(conn *c, uint64_t n, uint32_t fork)
{
    bp_error err = {0};
    bp_sim_scratch *s = &c->scratch;
    s->valid = false;
    if (bp_sim_block_gen(c->hub->chain, n, fork, &s->block, &err) != 0)
        return -1;
    return bp_sim_arch_block_events(c->hub->arch, &s->block, bp_sim_arch_subs_mask(&c->asubs),
                                    &c->out, arch_emit, c) != 0
               ? -1
               : 0;
}

/* Arch: the rollback / re-apply episodes since the last announcement. */
static int announce_episodes(conn *c)
{
    bp_sim_arch *a = c->hub->arch;
    unsigned k = atomic_load(&a->episodes);
    for (; c->seen_episodes < k; c->seen_episodes++)
        if (bp_sim_arch_episode_event(a, c->seen_episodes, bp_sim_arch_subs_mask(&c->asubs),
                                      &c->out, arch_emit, c) != 0)
            return -1;
    return 0;
}

static int announce(conn *c)
{
    if (!c->sub_id[0] || c->hub->silent)
        return 0;
    uint32_t k;
    uint64_t head = endpoint_head(c->hub, &k);
    uint32_t fork = bp_sim_chain_fork_upto(c->hub->chain, head, k);
    if (c->hub->arch && announce_episodes(c) != 0)
        return -1;
    if (head == c->last_n && fork == c->last_fork)
        return 0;
    for (uint64_t n = first_new(c, head, k); n <= head; n++) {
        uint32_t f = bp_sim_chain_fork_upto(c->hub->chain, n, k);
        if ((c->hub->arch ? announce_arch(c, n, f) : announce_one(c, n, f)) != 0)
            return -1;
    }
    c->last_n = head;
    c->last_fork = fork;
    return 0;
}

static bool drop_due(const conn *c)
{
    const bp_sim_ws_hub *h = c->hub;
    if (h->drop_every <= 0)
        return false;
    double now = bp_sim_now();
    return floor((now - h->started) / h->drop_every) >
           floor((c->opened - h->started) / h->drop_every);
}

static void serve(conn *c)
{
    bp_sim_ws_hub *h = c->hub;
    if (c->rx.len > 0 && drain(c) != 0)
        return;
    while (!atomic_load(h->stopping)) {
        if (drop_due(c)) { /* a network drop: no close frame */
            atomic_fetch_add(&h->drops, 1);
            return;
        }
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int n = poll(&p, 1, POLL_MS);
        if (n < 0 && errno != EINTR)
            return;
        if (n > 0 && receive(c) != 0)
            return;
        if (announce(c) != 0)
            return;
    }
    send_close(c, BP_WSFRAME_GOING_AWAY);
}

static void *conn_main(void *arg)
{
    conn *c = arg;
    bp_sim_ws_hub *h = c->hub;
    serve(c);
    void (*done)(void *) = c->done;
    void *done_arg = c->done_arg;
    conn_free(c);
    done(done_arg);
    pthread_mutex_lock(&h->lock);
    if (--h->active == 0)
        pthread_cond_broadcast(&h->idle);
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

void bp_sim_ws_hub_init(bp_sim_ws_hub *h)
{
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->idle, NULL);
    h->active = 0;
}

void bp_sim_ws_hub_release(bp_sim_ws_hub *h)
{
    pthread_mutex_lock(&h->lock);
    while (h->active > 0)
        pthread_cond_wait(&h->idle, &h->lock);
    pthread_mutex_unlock(&h->lock);
    pthread_cond_destroy(&h->idle);
    pthread_mutex_destroy(&h->lock);
}

/* Blocking writes with a timeout: a client that stops reading cannot hold a thread forever. */
static void socket_mode(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static conn *conn_new(bp_sim_ws_hub *h, int fd, const char *extra, size_t extra_len)
{
    conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->hub = h;
    c->fd = fd;
    c->opened = bp_sim_now();
    c->subs = (bp_sim_subs){.subscribe = on_subscribe, .unsubscribe = on_unsubscribe, .ud = c};
    bp_buf_init(&c->rx, MESSAGE_MAX + 65536);
    bp_buf_init(&c->text, MESSAGE_MAX + 1);
    bp_buf_init(&c->out, ANSWER_MAX);
    bp_buf_init(&c->frame, ANSWER_MAX + BP_WSFRAME_HEADER_MAX);
    bp_buf_init(&c->broken, MESSAGE_MAX);
    bp_sim_scratch_init(&c->scratch);
    if (extra_len > 0 && bp_buf_append(&c->rx, extra, extra_len) != 0) {
        conn_free(c);
        return NULL;
    }
    return c;
}

int bp_sim_ws_start(bp_sim_ws_hub *h, int fd, const char *extra, size_t extra_len,
                    void (*done)(void *), void *done_arg)
{
    int rc = BP_ENOMEM;
    conn *c = conn_new(h, fd, extra, extra_len);
    if (!c)
        goto out;
    c->done = done;
    c->done_arg = done_arg;
    socket_mode(fd);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_mutex_lock(&h->lock);
    h->active++;
    pthread_t t;
    rc = pthread_create(&t, &attr, conn_main, c) == 0 ? 0 : BP_EIO;
    if (rc != 0)
        h->active--;
    pthread_mutex_unlock(&h->lock);
    pthread_attr_destroy(&attr);
    if (rc == 0)
        atomic_fetch_add(&h->connections, 1);
    else
        conn_free(c);
out:
    if (rc != 0)
        done(done_arg);
    return rc;
}
