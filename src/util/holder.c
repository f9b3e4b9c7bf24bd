/* holder.c - a process's name in the writer locks it holds (holder.h). */
#include "util/holder.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
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

/* A word of the name: what a reader's %s takes back whole. */
static void one_word(char *s)
{
    for (; *s; s++)
        if (isspace((unsigned char)*s) || !isprint((unsigned char)*s))
            *s = '?';
}

void bp_holder_id_self(bp_holder_id *id)
{
    memset(id, 0, sizeof(*id));
    if (gethostname(id->host, sizeof(id->host) - 1) != 0 || !id->host[0])
        snprintf(id->host, sizeof(id->host), "?");
    one_word(id->host);
    snprintf(id->boot, sizeof(id->boot), "?");
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f) {
        char line[64] = "";
        if (fgets(line, sizeof(line), f) && sscanf(line, "%39s", id->boot) != 1)
            snprintf(id->boot, sizeof(id->boot), "?");
        fclose(f);
    }
    one_word(id->boot);
    struct stat st;
    if (stat("/proc/self/ns/pid", &st) == 0)
        id->pidns = (unsigned long long)st.st_ino;
}

void bp_holder_self(char *out, size_t cap)
{
    bp_holder_id id;
    bp_holder_id_self(&id);
    long pid = (long)getpid();
    snprintf(out, cap, "blockpipe %s boot %s pidns %llu pid %ld start %llu", id.host, id.boot,
             id.pidns, pid, start_time(pid));
}

bool bp_holder_gone_from(const char *text, const bp_holder_id *self)
{
    char host[80] = "", boot[48] = "";
    unsigned long long pidns = 0, start = 0;
    long pid = 0;
    if (sscanf(text, "blockpipe %79s boot %47s pidns %llu pid %ld start %llu", host, boot, &pidns,
               &pid, &start) != 5 ||
        pid <= 0)
        return false; /* the previous format among others: not provably gone */
    if (strcmp(host, self->host) != 0 || strcmp(host, "?") == 0)
        return false;
    if (strcmp(boot, self->boot) != 0 || strcmp(boot, "?") == 0)
        return false;
    if (pidns == 0 || pidns != self->pidns)
        return false; /* its pid is another namespace's: kill() here would ask about another */
    if (kill((pid_t)pid, 0) != 0)
        return errno == ESRCH;
    unsigned long long now = start_time(pid); /* 0: not readable here (hidepid): alive */
    return now != 0 && now != start;
}

bool bp_holder_gone(const char *text)
{
    bp_holder_id self;
    bp_holder_id_self(&self);
    return bp_holder_gone_from(text, &self);
}
