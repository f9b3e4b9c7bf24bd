/* queue.h - blocking FIFO of pointers between the coordinator and the fetch workers.
 *
 * Bounded by its capacity: bp_queue_push never blocks, it fails with BP_ETOOBIG when full,
 * because the coordinator must never wait on its own workers (it sizes the queue so that
 * this cannot happen). Pops block with a timeout. Thread-safe; the queue does not own the
 * items. */
#ifndef BP_CORE_QUEUE_H
#define BP_CORE_QUEUE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct bp_queue {
    void **items;
    size_t cap, head, len;
    bool closed;
    pthread_mutex_t lock;
    pthread_cond_t cv;
} bp_queue;

int bp_queue_init(bp_queue *q, size_t cap);
void bp_queue_release(bp_queue *q);
/* 0, or BP_ETOOBIG when full, BP_ESTOPPED when closed. */
int bp_queue_push(bp_queue *q, void *item);
/* Waits up to timeout_ms (< 0: forever) for an item. Returns the item, or NULL on timeout or
 * when the queue is closed and empty. */
void *bp_queue_pop(bp_queue *q, long timeout_ms);
/* Wakes every waiter; pops keep draining what is left, then return NULL. */
void bp_queue_close(bp_queue *q);
size_t bp_queue_len(bp_queue *q);

#endif
