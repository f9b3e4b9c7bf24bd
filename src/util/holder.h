/* holder.h - how a process names itself to others in a writer lock it holds (a Redis lease's
 * value, a file output's lock file), and whether a holder so named is a dead process of this
 * host (its lock then need not wait for an expiry). */
#ifndef BP_UTIL_HOLDER_H
#define BP_UTIL_HOLDER_H

#include <stdbool.h>
#include <stddef.h>

/* What tells this process's pids apart from another's: the whole host name (whitespace made
 * '?'), the kernel's boot id (/proc/sys/kernel/random/boot_id) and the inode of the pid
 * namespace (/proc/self/ns/pid). Kubernetes replicas share a long name's first characters,
 * and containers may share a host name while each has its own pids: a pid means the same
 * process to two of them only when all three are equal. boot "?" / pidns 0: not known. */
typedef struct bp_holder_id {
    char host[72];
    char boot[40];
    unsigned long long pidns;
} bp_holder_id;

#define BP_HOLDER_MAX 200 /* the most bp_holder_self writes, with its NUL */

void bp_holder_id_self(bp_holder_id *id);
/* "blockpipe HOST boot B pidns I pid N start T": the start time T (clock ticks since boot,
 * /proc) tells this process from a later one that got the same pid. The identity comes before
 * "pid" so that a blockpipe of the previous format ("blockpipe HOST pid N start T", whose
 * reader compared 36 characters of the host and the pid only) cannot parse it and never takes
 * it for gone. */
void bp_holder_self(char *out, size_t cap);
/* Whether text (as bp_holder_self wrote it, possibly followed by more) names a process that is
 * no longer running: same host, boot and pid namespace as self, and its pid not running or
 * running with another start time. false when it cannot tell: another host, boot or namespace,
 * a part not known on either side, or the previous format (which names none of them: such a
 * holder is waited out, once, during an upgrade). */
bool bp_holder_gone_from(const char *text, const bp_holder_id *self);
/* bp_holder_gone_from with this process's identity. */
bool bp_holder_gone(const char *text);

#endif
