/* commands_sim.h - `blockpipe simnode`: a synthetic JSON-RPC node for benchmarks and chaos tests.
 */
#ifndef BP_CLI_COMMANDS_SIM_H
#define BP_CLI_COMMANDS_SIM_H

/* argv[0] is "simnode". Returns the process exit status (0, 2 for a bad option, 1 otherwise). */
int bp_cmd_simnode(int argc, char **argv);
/* The text of `blockpipe simnode --help` (also in the man page). */
const char *bp_simnode_usage(void);

#endif
