/* keyed_group.c - group commit for keyed streams (keyed_internal.h): the publishers of one
 * store in this process queue their entries; the first to find no commit under way leads,
 * committing every queued entry at once on its own handle (one SQLite transaction, one Redis
 * pipeline), and the others sleep until their entry's outcome is known. The Redis store's reads
 * use a group of their own the same way (one pipeline of every queued read).
 *
 * Waking: each publisher sleeps on a word of its own (a futex), not on the group's lock, so a
 * finished group wakes its publishers with one system call each and none of them queues on a
 * lock to leave. The leader stores an entry's outcome and then its state (release); after that
 * it only wakes the word's address, which the kernel looks up without touching the memory, so
 * the publisher may return (its entry is on its stack) as soon as it sees the state. */
#include <linux/futex.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sink/keyed_internal.h"

#define GROUP_MAX 1024         /* entries in one commit */
#define GROUP_BYTES (4u << 20) /* and their values' bytes (at least one entry) */
#define GATHER_US 200          /* a leader's wait for the publishers of the last commit */

enum { WAITING, LEAD, DONE };

struct bp_keyed_group {
    char *name;
    int refs;
    pthread_mutex_t lock;
    bp_keyed_pub *head, **tail;
    size_t queued, last; /* entries in the queue; in the last commit */
    bool leading, gathering;
    pthread_cond_t grown; /* the queue reached what a gathering leader waits for */
    struct bp_keyed_group *next;
};

static pthread_mutex_t g_groups_lock = PTHREAD_MUTEX_INITIALIZER;
static bp_keyed_group *g_groups;

bp_keyed_group *bp_keyed_group_get(const char *name)
{
    pthread_mutex_lock(&g_groups_lock);
    bp_keyed_group *g = g_groups;
    while (g && strcmp(g->name, name) != 0)
        g = g->next;
    if (!g && (g = calloc(1, sizeof(*g))) && !(g->name = strdup(name))) {
        free(g);
        g = NULL;
    } else if (g && !g->refs++) {
        pthread_mutex_init(&g->lock, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&g->grown, &ca);
        pthread_condattr_destroy(&ca);
        g->tail = &g->head;
        g->next = g_groups;
        g_groups = g;
    }
    pthread_mutex_unlock(&g_groups_lock);
    return g;
}

void bp_keyed_group_put(bp_keyed_group *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g_groups_lock);
    if (--g->refs == 0) {
        bp_keyed_group **p = &g_groups;
        while (*p != g)
            p = &(*p)->next;
        *p = g->next;
        pthread_mutex_destroy(&g->lock);
        pthread_cond_destroy(&g->grown);
        free(g->name);
        free(g);
    }
    pthread_mutex_unlock(&g_groups_lock);
}

static void futex_wait(atomic_int *word, int value)
{
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, value, NULL, NULL, 0);
}

static void futex_wake(atomic_int *word)
{
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Up to GROUP_MAX queued entries (GROUP_BYTES of values) off the queue; the lock is held.
 * (A read's reply is not bounded here: the queue holds one read per reader thread.) */
static bp_keyed_pub *take(bp_keyed_group *g, size_t *n)
{
    bp_keyed_pub *list = g->head, *last = list;
    size_t bytes = last->json ? strlen(last->json) : 0;
    for (*n = 1; *n < GROUP_MAX && last->next; (*n)++) {
        bytes += last->next->json ? strlen(last->next->json) : 0;
        if (bytes > GROUP_BYTES)
            break;
        last = last->next;
    }
    g->head = last->next;
    g->queued -= *n;
    if (!g->head)
        g->tail = &g->head;
    last->next = NULL;
    return list;
}

/* When the last commit held more entries than are queued, their publishers are likely on
 * their way back with the next ones: the leader waits up to GATHER_US for as many (on a
 * loaded machine a commit's own duration was too short for them to be scheduled: SQLite's
 * groups averaged 1.3 entries with 32 publishers). One publisher alone never waits. */
static void gather(bp_keyed_group *g)
{
    if (g->queued >= g->last)
        return;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += GATHER_US * 1000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    g->gathering = true;
    while (g->queued < g->last && pthread_cond_timedwait(&g->grown, &g->lock, &until) == 0)
        ;
    g->gathering = false;
}

/* Commits list on k; every entry's outcome stored, then each publisher woken (not self). */
static void lead(bp_keyed_group *g, bp_keyed *k, bp_keyed_commit_fn commit, bp_keyed_pub *list,
                 size_t n, const bp_keyed_pub *self)
{
    bp_error err = {0};
    int rc = commit(k, list, n, &err);
    pthread_mutex_lock(&g->lock);
    g->leading = false;
    g->last = n;
    if (g->head) { /* the next leader: in the queue, so not done and still there */
        atomic_store_explicit(&g->head->state, LEAD, memory_order_release);
        futex_wake(&g->head->state);
    }
    pthread_mutex_unlock(&g->lock);
    for (bp_keyed_pub *q = list, *next; q; q = next) {
        next = q->next; /* q may be gone once its state is DONE */
        if (rc != 0) {
            q->rc = rc;
            *q->err = err;
        }
        atomic_store_explicit(&q->state, DONE, memory_order_release);
        if (q != self)
            futex_wake(&q->state);
    }
}

void bp_keyed_group_publish(bp_keyed_group *g, bp_keyed *k, bp_keyed_commit_fn commit,
                            bp_keyed_pub *p)
{
    atomic_init(&p->state, WAITING);
    p->rc = 0;
    p->next = NULL;
    pthread_mutex_lock(&g->lock);
    *g->tail = p;
    g->tail = &p->next;
    if (++g->queued >= g->last && g->gathering)
        pthread_cond_signal(&g->grown);
    for (;;) {
        /* (an empty queue: ours was taken by a leader that has not marked it yet) */
        if (!g->leading && g->head) {
            g->leading = true;
            gather(g);
            size_t n;
            bp_keyed_pub *list = take(g, &n); /* ours among them, unless a full group */
            pthread_mutex_unlock(&g->lock);
            lead(g, k, commit, list, n, p);
            if (atomic_load_explicit(&p->state, memory_order_acquire) == DONE)
                return;
            pthread_mutex_lock(&g->lock); /* a full group was ahead of us */
            continue;
        }
        /* someone else leads: a call to lead that came first is void (not when the other
         * leader took and finished ours meanwhile: then DONE stays) */
        int st = LEAD;
        atomic_compare_exchange_strong(&p->state, &st, WAITING);
        pthread_mutex_unlock(&g->lock);
        while ((st = atomic_load_explicit(&p->state, memory_order_acquire)) == WAITING)
            futex_wait(&p->state, WAITING);
        if (st == DONE)
            return;
        pthread_mutex_lock(&g->lock); /* LEAD: the previous leader is done; lead if no one does */
    }
}
