/* registry.h - how an output URL is resolved (for the registry and its tests): the backend of
 * its scheme, the target the backend gets (our query parameters removed, others kept) and the
 * values of the backend's options (URL parameter > setting > default, each checked). */
#ifndef BP_SINK_REGISTRY_H
#define BP_SINK_REGISTRY_H

#include <stdbool.h>

#include "blockpipe/sink.h"
#include "util/buf.h"

typedef struct bp_sink_resolved {
    const bp_sink_ops *ops;
    bp_buf target;                      /* NUL-terminated text in target.data */
    bp_buf store;                       /* the URL's parameter values (opts point into it) */
    long value_at[BP_SINK_MAX_OPTIONS]; /* offset in store of the URL's value, -1: none */
    bool oom;
    bp_sink_opts opts;
} bp_sink_resolved;

/* BP_EINVAL naming the problem (unknown scheme, backend left out of the build, no target, a
 * bad option value). On success release r with bp_sink_resolved_release. */
int bp_sink_resolve(const char *url, const bp_sink_settings *settings, bp_sink_resolved *r,
                    bp_error *err);
void bp_sink_resolved_release(bp_sink_resolved *r);

#endif
