/* prober.c - the coordinator's questions to its endpoints, on threads of their own. */
#include "core/prober.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct slot {
    bp_prober *pr;
    size_t ep;
    bp_rpc *rpc; /* its thread's alone while a question is out */
    pthread_t thread;
    bool out;      /* a thread was started and not joined yet */
    bool answered; /* its answer is in `answer` */
    bool check_chain;
    uint64_t want_chain;
    bp_probe_answer answer;
} slot;

struct bp_prober {
    bp_pool *pool;
    const bp_source_ops *src;
    slot *slots;
    size_t count;
    volatile sig_atomic_t abort; /* the rpcs' abort_flag: set by bp_prober_free */
    void (*wake)(void *ctx);
    void *wake_ctx;
    pthread_mutex_t lock;
    pthread_cond_t cv;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int bp_prober_new(bp_prober **out, bp_pool *pool, const bp_source_ops *src,
                  const bp_rpc_config *cfgs, size_t n, bp_error *err)
{
    bp_prober *pr = calloc(1, sizeof(*pr));
    slot *slots = calloc(n ? n : 1, sizeof(*slots));
    if (!pr || !slots) {
        free(pr);
        free(slots);
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    pr->pool = pool;
    pr->src = src;
    pr->slots = slots;
    pr->count = n;
    pthread_mutex_init(&pr->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&pr->cv, &attr);
    pthread_condattr_destroy(&attr);
    *out = pr;
    for (size_t i = 0; i < n; i++) {
        bp_rpc_config c = cfgs[i];
        c.abort_flag = &pr->abort;
        slots[i].pr = pr;
        slots[i].ep = i;
        int rc = bp_rpc_new(&slots[i].rpc, &c, err);
        if (rc != 0) {
            bp_prober_free(pr);
            *out = NULL;
            return rc;
        }
    }
    return 0;
}

void bp_prober_set_wake(bp_prober *pr, void (*wake)(void *ctx), void *ctx)
{
    pthread_mutex_lock(&pr->lock);
    pr->wake = wake;
    pr->wake_ctx = ctx;
    pthread_mutex_unlock(&pr->lock);
}

/* One request framed as the coordinator's are: not sent while a 429's pause lasts. */
static int framed(slot *s, int (*ask)(slot *s, bp_probe_answer *a), bp_probe_answer *a)
{
    int ep = (int)s->ep;
    long left = bp_pool_may_call(s->pr->pool, ep);
    if (left != 0)
        return bp_error_set(&a->err, BP_ERATELIMIT, "rate-limited for another %ld ms", left);
    int rc = ask(s, a);
    bp_pool_called(s->pr->pool, ep, rc, bp_rpc_last_retry_after(s->rpc));
    return rc;
}

static int ask_chain(slot *s, bp_probe_answer *a)
{
    return s->pr->src->identity(s->rpc, &a->chain_id, &a->err);
}

static int ask_head(slot *s, bp_probe_answer *a)
{
    return s->pr->src->header(s->rpc, UINT64_MAX, &a->head, &a->err);
}

static void *run(void *arg)
{
    slot *s = arg;
    bp_probe_answer a = {.chain_asked = s->check_chain};
    if (a.chain_asked)
        a.chain_rc = framed(s, ask_chain, &a);
    if (!a.chain_asked || (a.chain_rc == 0 && a.chain_id == s->want_chain)) {
        a.head_asked = true;
        a.head_rc = framed(s, ask_head, &a);
    }
    a.done_ms = now_ms();
    bp_prober *pr = s->pr;
    pthread_mutex_lock(&pr->lock);
    s->answer = a;
    s->answered = true;
    pthread_cond_broadcast(&pr->cv);
    if (pr->wake) /* under the lock: bp_prober_set_wake(NULL) means no call after it */
        pr->wake(pr->wake_ctx);
    pthread_mutex_unlock(&pr->lock);
    return NULL;
}

int bp_prober_ask(bp_prober *pr, size_t ep, bool check_chain, uint64_t want_chain, bp_error *err)
{
    slot *s = &pr->slots[ep];
    pthread_mutex_lock(&pr->lock);
    bool out = s->out;
    if (!out) {
        s->out = true;
        s->answered = false;
        s->check_chain = check_chain;
        s->want_chain = want_chain;
    }
    pthread_mutex_unlock(&pr->lock);
    if (out)
        return bp_error_set(err, BP_EBUSY, "rpc[%zu]: a question is out already", ep);
    int rc = pthread_create(&s->thread, NULL, run, s);
    if (rc == 0)
        return 0;
    pthread_mutex_lock(&pr->lock);
    s->out = false;
    pthread_mutex_unlock(&pr->lock);
    return bp_error_set(err, BP_ENOMEM, "rpc[%zu]: no thread for the coordinator's request: %s", ep,
                        strerror(rc));
}

bool bp_prober_busy(bp_prober *pr, size_t ep)
{
    pthread_mutex_lock(&pr->lock);
    bool out = pr->slots[ep].out;
    pthread_mutex_unlock(&pr->lock);
    return out;
}

bool bp_prober_any_busy(bp_prober *pr)
{
    bool any = false;
    pthread_mutex_lock(&pr->lock);
    for (size_t i = 0; i < pr->count && !any; i++)
        any = pr->slots[i].out;
    pthread_mutex_unlock(&pr->lock);
    return any;
}

bool bp_prober_take(bp_prober *pr, size_t ep, bp_probe_answer *out)
{
    slot *s = &pr->slots[ep];
    pthread_mutex_lock(&pr->lock);
    bool ready = s->out && s->answered;
    if (ready)
        *out = s->answer;
    pthread_mutex_unlock(&pr->lock);
    if (!ready)
        return false;
    pthread_join(s->thread, NULL); /* it is past its last use of the slot */
    pthread_mutex_lock(&pr->lock);
    s->out = false;
    pthread_mutex_unlock(&pr->lock);
    return true;
}

static bool answer_waiting(const bp_prober *pr)
{
    for (size_t i = 0; i < pr->count; i++)
        if (pr->slots[i].out && pr->slots[i].answered)
            return true;
    return false;
}

void bp_prober_wait(bp_prober *pr, long timeout_ms)
{
    int64_t at = now_ms() + timeout_ms;
    struct timespec ts = {.tv_sec = at / 1000, .tv_nsec = (at % 1000) * 1000000L};
    pthread_mutex_lock(&pr->lock);
    while (!answer_waiting(pr) && pthread_cond_timedwait(&pr->cv, &pr->lock, &ts) == 0)
        ;
    pthread_mutex_unlock(&pr->lock);
}

void bp_prober_free(bp_prober *pr)
{
    if (!pr)
        return;
    pr->abort = 1;
    for (size_t i = 0; i < pr->count; i++) {
        slot *s = &pr->slots[i];
        if (s->out)
            pthread_join(s->thread, NULL);
        bp_rpc_free(s->rpc);
    }
    pthread_mutex_destroy(&pr->lock);
    pthread_cond_destroy(&pr->cv);
    free(pr->slots);
    free(pr);
}
