/* commands_migrate.h - `blockpipe migrate`: create or upgrade the schema of outputs. */
#ifndef BP_CLI_COMMANDS_MIGRATE_H
#define BP_CLI_COMMANDS_MIGRATE_H

/* blockpipe migrate [URL] [--output URL] [output options]: creates or upgrades the schema of
 * each output (its backend's migrate op) and prints what it did. argv[0] is "migrate".
 * Returns the process exit status (0, 1 on a database error, 2 on a usage error). */
int bp_cmd_migrate(int argc, char **argv);

#endif
