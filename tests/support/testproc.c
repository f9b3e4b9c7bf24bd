/* testproc.c - child servers for tests: spawn, read the port they print, stop. */
#include "testproc.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define ANVIL_DEFAULT BP_SOURCE_DIR "/.local/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"

static int wait_port(const bp_test_server *s, const char *marker)
{
    for (int tries = 0; tries < 600; tries++) {
        char text[8192] = "";
        FILE *f = fopen(s->log_path, "r");
        if (f) {
            size_t n = fread(text, 1, sizeof(text) - 1, f);
            text[n] = '\0';
            fclose(f);
        }
        const char *m = strstr(text, marker);
        if (m && strchr(m, '\n'))
            return atoi(m + strlen(marker));
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid)
            return 0;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

int bp_test_server_start(bp_test_server *s, const char *log_path, char *const argv[],
                         const char *marker)
{
    posix_spawn_file_actions_t fa;
    snprintf(s->log_path, sizeof(s->log_path), "%s", log_path);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, s->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    int rc = posix_spawnp(&s->pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        s->pid = 0;
        return -1;
    }
    s->port = wait_port(s, marker);
    return s->port > 0 ? 0 : -1;
}

void bp_test_server_stop(bp_test_server *s, int sig)
{
    if (s->pid > 0) {
        kill(s->pid, sig);
        waitpid(s->pid, NULL, 0);
    }
    s->pid = 0;
    s->port = 0;
}

const char *bp_test_anvil_path(void)
{
    const char *env = getenv("BP_ANVIL");
    const char *p = env && *env ? env : ANVIL_DEFAULT;
    return access(p, X_OK) == 0 ? p : NULL;
}

int bp_test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}
