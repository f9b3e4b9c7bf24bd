/* state.h - the state file of a run: which blocks failed and the command that ran, so that
 * `blockpipe retry-failed --state-dir DIR` can run it again. One file per chain:
 * DIR/<chain>.json. Written atomically (temporary file + rename). */
#ifndef BP_CLI_STATE_H
#define BP_CLI_STATE_H

#include "blockpipe/error.h"
#include "core/pipeline.h"

/* Saves report and argv (the command's words after "blockpipe"). Creates dir if needed. */
int bp_state_save(const char *dir, const bp_pipeline_report *report, int argc, char **argv,
                  bp_error *err);
/* Logs what the last runs left (failed blocks) when dir has state files. */
void bp_state_announce(const char *dir);
/* `blockpipe retry-failed --state-dir DIR [--chain NAME]`: runs the saved command of every
 * chain whose last run left failed blocks. Returns the exit status. */
int bp_cmd_retry_failed(int argc, char **argv);
/* The text of `blockpipe retry-failed --help` (also in the man page). */
const char *bp_retry_failed_usage(void);

#endif
