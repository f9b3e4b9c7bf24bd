/* manpage.h - blockpipe(1), the man page, in roff: made from the tables --help is made from
 * (main.c's commands, config.c's option table, each output's own options) so that the two
 * cannot disagree. `blockpipe --help-man` prints it; the build writes blockpipe.1 with it. */
#ifndef BP_CLI_MANPAGE_H
#define BP_CLI_MANPAGE_H

#include <stddef.h>
#include <stdio.h>

#include "cli/config.h"

/* A command of `blockpipe --help`'s list. */
typedef struct bp_cli_command {
    const char *name;          /* "run" */
    const char *args;          /* "--rpc URL [options]" */
    const char *summary;       /* one line */
    enum bp_command cmd;       /* an indexing command (options of config.c), or 0 */
    const char *(*help)(void); /* the --help of a command with its own parser (cmd 0), or NULL */
} bp_cli_command;

/* A flag of `blockpipe` itself (--version, --help-markdown ...). */
typedef struct bp_cli_flag {
    const char *flag;
    const char *summary;
} bp_cli_flag;

void bp_manpage(FILE *out, const bp_cli_command *cmds, size_t n_cmds, const bp_cli_flag *flags,
                size_t n_flags);

#endif
