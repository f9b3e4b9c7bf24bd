/* redis_lease.h - the Redis output's per-chain writer locks: a lease key per chain
 *
 *   {prefix}lock:{checkpoint name}:{chain} = "blockpipe HOST pid N start T lease K"
 *
 * taken with SET key owner NX PX ttl, renewed every ttl/3 by a thread of its own (its own
 * connection) and by every batch, released (deleted when still ours) by unclaim and close.
 * The owner names the process, so that a process refused the chain can say who holds it, and
 * one on the same host can tell that the holder died (its pid gone) and take the lease over
 * at once rather than wait for it to expire (holder.h).
 *
 * The fence: a batch's MULTI/EXEC runs only while the lease is ours. Before MULTI the writer
 * renews the lease (a script: PEXPIRE only when the value is ours), WATCHes the key and reads
 * it; a lease that expired and was taken meanwhile makes EXEC fail (nil), so a process that
 * was paused past its lease, or cut off from the server, commits nothing once another holds
 * the chain. The renewing thread and the writer exclude each other (bp_redis_leases_lock), so
 * a renewal never touches a watched key. */
#ifndef BP_SINK_REDIS_LEASE_H
#define BP_SINK_REDIS_LEASE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "blockpipe/error.h"
#include "sink/redis_conn.h"
#include "util/holder.h"

typedef struct bp_redis_lease {
    char *chain, *key;
    char owner[BP_HOLDER_MAX + 24]; /* bp_holder_self's name + " lease N" */
    bool lost;    /* another took it, or it expired: this handle writes the chain no more */
    bool pending; /* claimed while the server was away: taken at the chain's first use */
    char holder[BP_HOLDER_MAX + 160]; /* who has it instead, when lost */
} bp_redis_lease;

typedef struct bp_redis_leases {
    const bp_redis_target *t; /* the output's (not owned) */
    long long ttl_ms;         /* 0: no leases */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t tid;
    bool running, stop, warned;
    bp_redis *c; /* the renewing thread's connection */
    bp_redis_lease *v;
    size_t n, cap;
} bp_redis_leases;

void bp_redis_leases_init(bp_redis_leases *l, const bp_redis_target *t, long long ttl_ms);
/* Stops the renewing thread and gives up every lease still ours. */
void bp_redis_leases_release(bp_redis_leases *l);
void bp_redis_leases_lock(bp_redis_leases *l);
void bp_redis_leases_unlock(bp_redis_leases *l);

/* Takes chain's lease (key) on connection c: 0 when ours (now or already), BP_EBUSY with the
 * holder named in holder (cap bytes) and err, another code on failure; after a transient one
 * the lease stays pending (bp_redis_lease_settle). */
int bp_redis_lease_take(bp_redis_leases *l, bp_redis *c, const char *key, const char *chain,
                        char *holder, size_t cap, const char *where, bp_error *err);
/* Gives chain's lease up on c (NULL: the renewing thread's connection). */
void bp_redis_lease_drop(bp_redis_leases *l, bp_redis *c, const char *chain);
/* Takes a pending lease of chain on c, under the lock: 0 when ours (or none is pending),
 * BP_ELOCKLOST naming the holder when another has it, another code on failure. */
int bp_redis_lease_settle(bp_redis_leases *l, bp_redis *c, const char *chain, const char *where,
                          bp_error *err);
/* chain's lease, NULL when none was taken. Under bp_redis_leases_lock. */
bp_redis_lease *bp_redis_lease_of(bp_redis_leases *l, const char *chain);
/* Renews it on c: 0 while ours, BP_ELOCKLOST (marked lost) when not. Under the lock. */
int bp_redis_lease_renew(bp_redis_leases *l, bp_redis *c, bp_redis_lease *e, const char *where,
                         bp_error *err);
/* Renews it, WATCHes its key and reads it back on c, for a MULTI/EXEC that follows: 0 when
 * ours, BP_ELOCKLOST when not. Under the lock until the EXEC. */
int bp_redis_lease_fence(bp_redis_leases *l, bp_redis *c, bp_redis_lease *e, const char *where,
                         bp_error *err);
/* Queues PEXPIRE of its key (inside the batch's MULTI). */
int bp_redis_lease_queue_renew(bp_redis_leases *l, bp_redis *c, const bp_redis_lease *e);
/* The BP_ELOCKLOST error of a lost lease. */
int bp_redis_lease_lost_error(const bp_redis_lease *e, const char *where, bp_error *err);

#endif
