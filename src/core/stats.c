/* stats.c - the stats hub: the latest snapshot of a pipeline, copied in and out under a lock
 * (a copy of a few KiB: a reader never holds up the pipeline for longer than that). */
#include "blockpipe/stats.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct bp_stats_hub {
    pthread_mutex_t lock;
    bp_stats s;
};

bp_stats_hub *bp_stats_hub_new(void)
{
    bp_stats_hub *h = calloc(1, sizeof(*h));
    if (h && pthread_mutex_init(&h->lock, NULL) != 0) {
        free(h);
        h = NULL;
    }
    return h;
}

void bp_stats_hub_free(bp_stats_hub *h)
{
    if (!h)
        return;
    pthread_mutex_destroy(&h->lock);
    free(h);
}

void bp_stats_hub_read(bp_stats_hub *h, bp_stats *out)
{
    pthread_mutex_lock(&h->lock);
    memcpy(out, &h->s, sizeof(*out));
    pthread_mutex_unlock(&h->lock);
}

void bp_stats_hub_publish(bp_stats_hub *h, const bp_stats *s)
{
    pthread_mutex_lock(&h->lock);
    uint64_t version = h->s.version + 1;
    memcpy(&h->s, s, sizeof(h->s));
    h->s.version = version;
    pthread_mutex_unlock(&h->lock);
}
