/* sqlite_lock.c - the SQLite output's per-chain writer locks (OFD byte locks on the file). */
#define _GNU_SOURCE /* F_OFD_SETLK */
#include "sink/sqlite_lock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static off_t lock_byte(const char *chain)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)chain; *p; p++)
        h = (h ^ *p) * 16777619u;
    return (off_t)(((uint64_t)1 << 32) + h);
}

static int ofd_lock(int fd, short type, off_t at)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = at, .l_len = 1};
    return fcntl(fd, F_OFD_SETLK, &fl);
}

/* Does /proc/pid/fdinfo/fd hold an OFD lock starting at `at`? */
static int fd_locks(const char *pid, const char *fd, off_t at)
{
    char path[300], line[256], want[48];
    snprintf(path, sizeof(path), "/proc/%.20s/fdinfo/%.20s", pid, fd);
    snprintf(want, sizeof(want), " %lld %lld", (long long)at, (long long)at);
    FILE *f = fopen(path, "r");
    int found = 0;
    while (f && !found && fgets(line, sizeof(line), f))
        found = strncmp(line, "lock:", 5) == 0 && strstr(line, "OFDLCK") && strstr(line, want);
    if (f)
        fclose(f);
    return found;
}

/* The process whose descriptor of the file (st) holds byte `at`, from /proc (processes of
 * other users are not readable unless we are root). */
static void find_holder(const struct stat *st, off_t at, char *out, size_t cap)
{
    snprintf(out, cap, "another process on this host (its pid is not readable here)");
    DIR *procs = opendir("/proc");
    struct dirent *p;
    int found = 0;
    while (procs && !found && (p = readdir(procs))) {
        if (p->d_name[0] < '1' || p->d_name[0] > '9' || atoi(p->d_name) == getpid())
            continue;
        char dir[300];
        snprintf(dir, sizeof(dir), "/proc/%.20s/fd", p->d_name);
        DIR *fds = opendir(dir);
        struct dirent *d;
        while (fds && !found && (d = readdir(fds))) {
            char link[600];
            struct stat fst;
            snprintf(link, sizeof(link), "%s/%.20s", dir, d->d_name);
            if (d->d_name[0] == '.' || stat(link, &fst) != 0 || fst.st_ino != st->st_ino ||
                fst.st_dev != st->st_dev || !fd_locks(p->d_name, d->d_name, at))
                continue;
            char comm[300] = "", name[64] = "?";
            snprintf(comm, sizeof(comm), "/proc/%.20s/comm", p->d_name);
            FILE *f = fopen(comm, "r");
            if (f && fgets(name, sizeof(name), f))
                name[strcspn(name, "\n")] = '\0';
            if (f)
                fclose(f);
            snprintf(out, cap, "process %.20s (%s) on this host", p->d_name, name);
            found = 1;
        }
        if (fds)
            closedir(fds);
    }
    if (procs)
        closedir(procs);
}

void bp_sqlite_locks_init(bp_sqlite_locks *l)
{
    l->fd = -1;
}

int bp_sqlite_lock_take(bp_sqlite_locks *l, const char *path, const char *chain, char *holder,
                        size_t cap, bp_error *err)
{
    if (!path[0] || strcmp(path, ":memory:") == 0)
        return 0;
    if (l->fd < 0 && (l->fd = open(path, O_RDWR | O_CLOEXEC)) < 0)
        return bp_error_set(err, BP_EIO, "%s: opening it to lock chain '%s': %s", path, chain,
                            strerror(errno));
    off_t at = lock_byte(chain);
    if (ofd_lock(l->fd, F_WRLCK, at) == 0)
        return 0;
    if (errno != EAGAIN && errno != EACCES)
        return bp_error_set(err, BP_EIO, "%s: locking chain '%s': %s", path, chain,
                            strerror(errno));
    struct stat st;
    if (fstat(l->fd, &st) == 0)
        find_holder(&st, at, holder, cap);
    else
        snprintf(holder, cap, "another process on this host");
    return bp_error_set(err, BP_EBUSY, "%s: chain '%s' is written by %s", path, chain, holder);
}

void bp_sqlite_lock_drop(bp_sqlite_locks *l, const char *chain)
{
    if (l->fd >= 0)
        ofd_lock(l->fd, F_UNLCK, lock_byte(chain));
}

void bp_sqlite_locks_close(bp_sqlite_locks *l)
{
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
}
