/* stats.c - the stats hub: the latest snapshot of a pipeline, copied in and out under a lock
 * (a copy of a few KiB: a reader never holds up the pipeline for longer than that). */
#include "blockpipe/stats.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/url.h"

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

/* The snapshot is what the stats lines, the API and /metrics show: its texts are scrubbed
 * here once, so none of them can show a key an error message quoted. */
static void scrub(bp_stats *s)
{
    for (size_t i = 0; i < s->endpoint_count && i < BP_STATS_MAX_ENDPOINTS; i++)
        bp_secret_scrub(s->endpoints[i].url);
    for (size_t i = 0; i < s->output_count && i < BP_STATS_MAX_OUTPUTS; i++) {
        bp_secret_scrub(s->outputs[i].url);
        bp_secret_scrub(s->outputs[i].error);
    }
    bp_secret_scrub(s->waiting_error);
    bp_secret_scrub(s->realtime.ws_endpoint);
    bp_secret_scrub(s->realtime.last_error);
}

void bp_stats_hub_publish(bp_stats_hub *h, const bp_stats *s)
{
    pthread_mutex_lock(&h->lock);
    uint64_t version = h->s.version + 1;
    memcpy(&h->s, s, sizeof(h->s));
    h->s.version = version;
    scrub(&h->s);
    pthread_mutex_unlock(&h->lock);
}
