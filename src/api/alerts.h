/* alerts.h - --alert rules on the stats snapshot: each fires once when its condition becomes
 * true and resolves once when it is false again, to the log and to every Slack-compatible
 * webhook (--alert-webhook, repeatable: POST {"text": ..., "blockpipe": {...}}).
 *
 * A rule is NAME>VALUE or NAME<VALUE, or a NAME alone meaning NAME>0:
 *   lag                 blocks behind the head
 *   stalled             seconds since the head last changed (no new head)
 *   endpoint_down       endpoints not in use (ejected, probing, unchecked, other-chain)
 *   output_failing      outputs set aside after failing (--output-failure continue)
 *   waiting             1 while the commit waits on a block that keeps failing
 *   waiting_for_lock    1 while another process holds the chain's writer lock (--lock-wait)
 *   failed, pending     blocks (see the stats line)
 *   blocks_per_s, txs_per_s, memory_used, head_to_commit_p99_ms, rpc_p99_ms (the worst
 *   endpoint's), rpc_errors (all endpoints', since the start)
 * With many chains in one process, every rule watches every chain on its own.
 * Evaluated every second by a thread of its own; it never makes the pipeline wait. */
#ifndef BP_API_ALERTS_H
#define BP_API_ALERTS_H

#include <stdbool.h>
#include <stddef.h>

#include "blockpipe/error.h"
#include "blockpipe/stats.h"

#define BP_ALERT_NAME_MAX 32

typedef struct bp_alert_rule {
    char name[BP_ALERT_NAME_MAX];
    bool above; /* NAME > threshold (else <) */
    double threshold;
    char spec[64]; /* as given, for messages */
} bp_alert_rule;

/* Parses one rule; BP_EINVAL naming it and the names known. */
int bp_alert_parse(const char *spec, bp_alert_rule *out, bp_error *err);

typedef struct bp_alerts bp_alerts;

/* Starts evaluating rules[0..n) on the snapshots of each of stats[0..stats_count) (one hub
 * per chain: every rule fires and resolves per chain, named in the log line and the webhook);
 * each alert goes to every one of webhooks[0..webhook_count) (api/webhooks.h: side by side,
 * never making the evaluation wait), or to the log only when there are none. */
int bp_alerts_start(const bp_alert_rule *rules, size_t n, const char *const *webhooks,
                    size_t webhook_count, bp_stats_hub *const *stats, size_t stats_count,
                    bp_alerts **out, bp_error *err);
/* Stops the thread, then the webhooks (what is in flight or queued is given up to
 * BP_WEBHOOK_TIMEOUT_S). Accepts NULL. */
void bp_alerts_stop(bp_alerts *a);

#endif
