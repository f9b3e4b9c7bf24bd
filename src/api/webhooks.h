/* webhooks.h - the alert webhooks (--alert-webhook, repeatable): each message is POSTed as
 * JSON to every webhook by a thread of their own, all webhooks at once (one libcurl multi
 * handle), so a slow or unreachable one delays neither the others nor the caller.
 *
 * Per webhook the messages go one at a time in the order they were posted (a "resolved"
 * never overtakes its "firing"), each given BP_WEBHOOK_TIMEOUT_S; a failure (refused,
 * timed out, an HTTP error) is logged with the URL masked and the message is not sent again.
 * At most BP_WEBHOOK_QUEUE messages wait per webhook: past that the oldest is dropped, with
 * a log line (a webhook that hangs would otherwise hold every later alert in memory). */
#ifndef BP_API_WEBHOOKS_H
#define BP_API_WEBHOOKS_H

#include <stddef.h>

#include "blockpipe/error.h"

#define BP_WEBHOOK_TIMEOUT_S 5
#define BP_WEBHOOK_QUEUE 64

typedef struct bp_webhooks bp_webhooks;

/* Starts the sender thread for urls[0..n) (copied; each registered as a secret). */
int bp_webhooks_start(const char *const *urls, size_t n, bp_webhooks **out, bp_error *err);
/* Queues the JSON body for every webhook and returns at once (never waits on the network). */
void bp_webhooks_post(bp_webhooks *w, const char *json, size_t len);
/* Lets what is in flight or queued finish within BP_WEBHOOK_TIMEOUT_S, then gives the rest
 * up and stops the thread. Accepts NULL. */
void bp_webhooks_stop(bp_webhooks *w);

#endif
