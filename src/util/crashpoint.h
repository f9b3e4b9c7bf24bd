/* crashpoint.h - named places where a test makes the process die, to prove that an output
 * survives a crash exactly there (tests/contract/outputs_contract.c).
 *
 * bp_crashpoint(name) does nothing unless the process is armed with that name: from the
 * environment (BP_CRASHPOINT=name, read once, so `blockpipe` itself can be crashed by a
 * script; name:N dies at the N-th pass) or by bp_crashpoint_arm(). Armed, it ends the process at once with
 * _exit(BP_CRASHPOINT_EXIT): no atexit handler, no stdio flush, no COMMIT, no close() of
 * ours - what survives is what survives a crash (the kernel's page cache, a server's view of
 * a dropped connection). Power loss is not simulated. The exit status tells the test that
 * the point was reached, rather than the process dying some other way.
 *
 * Unarmed cost: one pthread_once check and a NULL test per call. */
#ifndef BP_UTIL_CRASHPOINT_H
#define BP_UTIL_CRASHPOINT_H

#define BP_CRASHPOINT_EXIT 86

void bp_crashpoint(const char *name);
/* Arms name (kept, not copied; NULL disarms), overriding BP_CRASHPOINT. For a test's forked
 * child: call it before starting any thread. */
void bp_crashpoint_arm(const char *name);

#endif
