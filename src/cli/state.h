/* state.h - the state file of a run: which blocks failed and the command that ran, so that
 * `blockpipe retry-failed --state-dir DIR` can run it again. One file per chain:
 * DIR/<chain>.json. Written atomically (temporary file + rename). */
#ifndef BP_CLI_STATE_H
#define BP_CLI_STATE_H

#include <stdbool.h>
#include <yajl/yajl_tree.h>

#include "blockpipe/error.h"
#include "core/pipeline.h"

/* Saves report and argv (the command's words after "blockpipe"). Creates dir if needed.
 * argv NULL: saved by a program using the library (no command to run again: the program
 * itself resumes from its checkpoints, the failed blocks first). */
int bp_state_save(const char *dir, const bp_pipeline_report *report, int argc, char **argv,
                  bp_error *err);
/* Makes dir (not its parents) when missing and checks that it is a directory this process may
 * write: run and backfill call it at start, so a --state-dir that cannot hold the state file
 * is refused before the work it would record, not after it (the failed blocks it was for
 * lost). */
int bp_state_prepare(const char *dir, bp_error *err);
/* Logs what the last runs left (failed blocks) when dir has state files. */
void bp_state_announce(const char *dir);
/* A state file's tree (NULL, with a warning when it is not one); yajl_tree_free it. */
yajl_val bp_state_load(const char *path);
/* Its member key of type t, NULL when missing; a string's text ("" when not one). */
yajl_val bp_state_get(yajl_val root, const char *key, yajl_type t);
const char *bp_state_str(yajl_val v);
/* A state file's name (NAME.json). */
bool bp_state_is_name(const char *name);
/* `blockpipe retry-failed --state-dir DIR [--chain NAME]`: runs the saved command of every
 * chain whose last run left failed blocks. Returns the exit status. */
int bp_cmd_retry_failed(int argc, char **argv);
/* The text of `blockpipe retry-failed --help` (also in the man page). */
const char *bp_retry_failed_usage(void);

#endif
