/* commands_pg.h - the PostgreSQL commands of the blockpipe CLI. */
#ifndef BP_CLI_COMMANDS_PG_H
#define BP_CLI_COMMANDS_PG_H

/* blockpipe migrate [URL] [--output URL] [--pg-schema NAME] [--wait-for-db SECONDS]:
 * creates or upgrades the PostgreSQL schema and prints its version. argv[0] is "migrate".
 * Returns the process exit status (0, 1 on a database error, 2 on a usage error). */
int bp_cmd_migrate(int argc, char **argv);

#endif
