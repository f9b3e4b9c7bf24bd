/* streams.h - the streams push topic (push.h): a thread that follows the keyed-streams store
 * (blockpipe/keyed.h) for the keys the hub's streams subscribers want and hands each new
 * entry to the hub. A publication of this process (the API's POST, the C API) wakes it at
 * once (bp_keyed_watch); those of other processes (`blockpipe stream publish`, any program)
 * are seen by XREAD BLOCK on Redis and by reading the SQLite table every 100 ms. */
#ifndef BP_API_STREAMS_H
#define BP_API_STREAMS_H

#include "api/push.h"
#include "blockpipe/error.h"

typedef struct bp_api_follower bp_api_follower;

/* Starts the thread; the store (a URL for bp_keyed_open) is opened by it, again after a
 * failure. */
int bp_api_follower_start(const char *store, bp_push_hub *hub, bp_api_follower **out,
                          bp_error *err);
/* Stops and joins the thread. Accepts NULL. */
void bp_api_follower_stop(bp_api_follower *fw);

#endif
