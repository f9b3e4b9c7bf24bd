/* holder.c - a process's name in the writer locks it holds (holder.h). */
#include "util/holder.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot; 0 when
 * there is no such process. */
static unsigned long long start_time(long pid)
{
    char path[64], line[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(line, 1, sizeof(line) - 1, f);
    fclose(f);
    line[n] = '\0';
    const char *p = strrchr(line, ')'); /* the command name may hold spaces */
    unsigned long long t = 0;
    /* after ")": state (3), then fields 4..21, then starttime (22) */
    if (p && sscanf(p + 1,
                    " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
                    "%*d %*d %llu",
                    &t) != 1)
        t = 0;
    return t;
}

static void host_name(char *out, size_t cap)
{
    if (gethostname(out, cap - 1) != 0)
        snprintf(out, cap, "?");
    out[cap - 1] = '\0';
}

void bp_holder_self(char *out, size_t cap)
{
    char host[64] = "";
    host_name(host, sizeof(host));
    long pid = (long)getpid();
    snprintf(out, cap, "blockpipe %.36s pid %ld start %llu", host, pid, start_time(pid));
}

bool bp_holder_gone(const char *text)
{
    char host[64] = "", mine[64] = "";
    long pid = 0;
    unsigned long long start = 0;
    if (sscanf(text, "blockpipe %63s pid %ld start %llu", host, &pid, &start) != 3 || pid <= 0)
        return false;
    host_name(mine, sizeof(mine));
    char cut[40];
    snprintf(cut, sizeof(cut), "%.36s", mine);
    if (strcmp(host, cut) != 0)
        return false;
    if (kill((pid_t)pid, 0) != 0)
        return errno == ESRCH;
    unsigned long long now = start_time(pid); /* 0: not readable here (hidepid): alive */
    return now != 0 && now != start;
}
