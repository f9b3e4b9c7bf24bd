/* queue.c - bounded blocking FIFO (ring of pointers, one mutex, one condition). */
#include "core/queue.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "blockpipe/error.h"

int bp_queue_init(bp_queue *q, size_t cap)
{
    q->items = calloc(cap ? cap : 1, sizeof(void *));
    if (!q->items)
        return BP_ENOMEM;
    q->cap = cap ? cap : 1;
    q->head = q->len = 0;
    q->closed = false;
    pthread_mutex_init(&q->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&q->cv, &attr);
    pthread_condattr_destroy(&attr);
    return 0;
}

void bp_queue_release(bp_queue *q)
{
    if (!q->items)
        return;
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->cv);
    free(q->items);
    q->items = NULL;
}

int bp_queue_push(bp_queue *q, void *item)
{
    int rc = 0;
    pthread_mutex_lock(&q->lock);
    if (q->closed)
        rc = BP_ESTOPPED;
    else if (q->len == q->cap)
        rc = BP_ETOOBIG;
    else {
        q->items[(q->head + q->len) % q->cap] = item;
        q->len++;
        pthread_cond_signal(&q->cv);
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

static void deadline_after(struct timespec *ts, long ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

void *bp_queue_pop(bp_queue *q, long timeout_ms)
{
    struct timespec until;
    if (timeout_ms >= 0)
        deadline_after(&until, timeout_ms);
    void *item = NULL;
    pthread_mutex_lock(&q->lock);
    while (q->len == 0 && !q->closed) {
        if (timeout_ms < 0)
            pthread_cond_wait(&q->cv, &q->lock);
        else if (pthread_cond_timedwait(&q->cv, &q->lock, &until) == ETIMEDOUT)
            break;
    }
    if (q->len > 0) {
        item = q->items[q->head];
        q->head = (q->head + 1) % q->cap;
        q->len--;
    }
    pthread_mutex_unlock(&q->lock);
    return item;
}

void bp_queue_close(bp_queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->closed = true;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->lock);
}

size_t bp_queue_len(bp_queue *q)
{
    pthread_mutex_lock(&q->lock);
    size_t n = q->len;
    pthread_mutex_unlock(&q->lock);
    return n;
}
