/* commands_stream.h - `blockpipe stream`: keyed streams (include/blockpipe/keyed.h) on the
 * command line: publish, latest, history, keys, subscribe. */
#ifndef BP_CLI_COMMANDS_STREAM_H
#define BP_CLI_COMMANDS_STREAM_H

/* argv[0] is "stream". Returns the process exit status (0; 1 for a store error or no entry;
 * 2 for a bad command line). */
int bp_cmd_stream(int argc, char **argv);
/* The text of `blockpipe stream --help` (also in the man page). */
const char *bp_stream_usage(void);

#endif
