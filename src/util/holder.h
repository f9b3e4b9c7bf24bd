/* holder.h - how a process names itself to others in a writer lock it holds (a Redis lease's
 * value, a file output's lock file), and whether a holder so named is a dead process of this
 * host (its lock then need not wait for an expiry). */
#ifndef BP_UTIL_HOLDER_H
#define BP_UTIL_HOLDER_H

#include <stdbool.h>
#include <stddef.h>

/* "blockpipe HOST pid N start T": the start time T (clock ticks since boot, /proc) tells this
 * process from a later one that got the same pid. At most 100 bytes. */
void bp_holder_self(char *out, size_t cap);
/* Whether text (as bp_holder_self wrote it, possibly followed by more) names a process of this
 * host that is no longer running. false when it cannot tell (another host, another format). */
bool bp_holder_gone(const char *text);

#endif
