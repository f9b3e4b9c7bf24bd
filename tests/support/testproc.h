/* testproc.h - servers that tests start (anvil, the python tools) as child processes. */
#ifndef BP_TEST_TESTPROC_H
#define BP_TEST_TESTPROC_H

#include <sys/types.h>

typedef struct bp_test_server {
    pid_t pid;
    int port;
    char log_path[512];
} bp_test_server;

/* Spawns argv with stdout+stderr into log_path and waits (up to 30 s) for the first integer
 * after `marker` in that output: the port it listens on. 0 when it came, -1 otherwise. */
int bp_test_server_start(bp_test_server *s, const char *log_path, char *const argv[],
                         const char *marker);
/* Sends sig and reaps the child; harmless when it is not running. */
void bp_test_server_stop(bp_test_server *s, int sig);
/* A TCP port on 127.0.0.1 that was free a moment ago (for servers that take --port). */
int bp_test_free_port(void);
/* anvil from $BP_ANVIL or the project's .local install; NULL when neither is there. */
const char *bp_test_anvil_path(void);

#endif
