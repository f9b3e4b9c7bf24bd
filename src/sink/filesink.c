/* filesink.c - append-only output files with an atomic checkpoint.json (etl-csv, jsonl). */
#include "sink/filesink.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "sink/format.h"
#include "util/crashpoint.h"
#include "util/holder.h"
#include "util/log.h"

#define CP_NAME "checkpoint.json"
#define CP_TMP "checkpoint.json.tmp"
#define CP_MAX (16u << 20) /* a checkpoint.json larger than this is not ours */
#define LOCK_NAME "blockpipe.lock"

/* ---- small I/O helpers ------------------------------------------------------------------ */

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int io_error(bp_error *err, const bp_filesink *fs, const char *name, const char *what)
{
    return bp_error_set(err, BP_EIO, "%s/%s: %s: %s", fs->dir, name, what, strerror(errno));
}

/* mkdir -p */
static int make_dirs(const char *dir, bp_error *err)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path))
        return bp_error_set(err, BP_EINVAL, "%.64s...: directory name too long", dir);
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return bp_error_set(err, BP_EIO, "%s: cannot create directory: %s", path,
                                strerror(errno));
        *p = c;
        if (c == '\0')
            return 0;
    }
}

/* Reads DIR/checkpoint.json into a NUL-terminated buffer; *found = false when absent. */
static int read_cp_file(bp_filesink *fs, bp_buf *text, bool *found, bp_error *err)
{
    *found = false;
    int fd = openat(fs->dirfd, CP_NAME, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : io_error(err, fs, CP_NAME, "cannot open");
    int rc = 0;
    char chunk[4096];
    ssize_t r;
    while ((r = read(fd, chunk, sizeof(chunk))) != 0 && rc == 0) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            rc = io_error(err, fs, CP_NAME, "cannot read");
        else if (bp_buf_append(text, chunk, (size_t)r) != 0)
            rc = bp_error_set(err, BP_EPARSE, "%s/" CP_NAME ": larger than %u bytes", fs->dir,
                              CP_MAX);
    }
    close(fd);
    *found = rc == 0;
    if (rc == 0 && bp_buf_putc(text, '\0') == 0)
        text->len--; /* an empty file still gets a terminator */
    return rc;
}

/* ---- checkpoint.json -------------------------------------------------------------------- */

static int parse_u64(yajl_val v, uint64_t *out)
{
    if (!YAJL_IS_NUMBER(v) || !v->u.number.r || v->u.number.r[0] == '-')
        return -1;
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(v->u.number.r, &end, 10);
    if (errno != 0 || end == v->u.number.r || *end != '\0')
        return -1;
    *out = (uint64_t)x;
    return 0;
}

static bp_filesink_chain *find_chain(bp_filesink *fs, const char *name)
{
    for (size_t i = 0; i < fs->nchains; i++)
        if (strcmp(fs->chains[i].name, name) == 0)
            return &fs->chains[i];
    return NULL;
}

static bp_filesink_chain *add_chain(bp_filesink *fs, const char *name)
{
    bp_filesink_chain *c = find_chain(fs, name);
    if (c)
        return c;
    c = realloc(fs->chains, (fs->nchains + 1) * sizeof(*c));
    if (!c)
        return NULL;
    fs->chains = c;
    c = &fs->chains[fs->nchains];
    memset(c, 0, sizeof(*c));
    if (!(c->name = strdup(name)))
        return NULL;
    fs->nchains++;
    return c;
}

/* "recent": [[number, "0x.."], ...] - optional (older files have none): what is not a
 * well-formed, consecutive list is ignored, the window then starts at the checkpoint. */
static void parse_recent(bp_filesink_chain *c, yajl_val v)
{
    const char *pr[] = {"recent", NULL};
    yajl_val list = yajl_tree_get(v, pr, yajl_t_array);
    c->nrecent = 0;
    for (size_t i = 0; list && i < list->u.array.len && c->nrecent < BP_FILESINK_RECENT; i++) {
        yajl_val e = list->u.array.values[i];
        uint64_t n;
        if (!YAJL_IS_ARRAY(e) || e->u.array.len != 2 || parse_u64(e->u.array.values[0], &n) ||
            !YAJL_IS_STRING(e->u.array.values[1]) ||
            (c->nrecent && n != c->recent[c->nrecent - 1].number + 1)) {
            c->nrecent = 0;
            return;
        }
        bp_checkpoint *r = &c->recent[c->nrecent++];
        r->set = true;
        r->number = n;
        snprintf(r->hash, sizeof(r->hash), "%s", YAJL_GET_STRING(e->u.array.values[1]));
    }
}

static int parse_chain(bp_filesink *fs, const char *name, yajl_val v, bp_error *err)
{
    const char *pn[] = {"number", NULL}, *ph[] = {"hash", NULL};
    yajl_val num = yajl_tree_get(v, pn, yajl_t_number);
    const char *hash = YAJL_GET_STRING(yajl_tree_get(v, ph, yajl_t_string));
    bp_filesink_chain *c = NULL;
    uint64_t n = 0;
    if (!num || !hash || parse_u64(num, &n) != 0 || strlen(hash) >= sizeof(c->cp.hash))
        return bp_error_set(err, BP_EPARSE,
                            "%s/" CP_NAME ": chain '%s': expected {\"number\":N,\"hash\":\"0x..\"}",
                            fs->dir, name);
    if (!(c = add_chain(fs, name)))
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    c->cp.set = true;
    c->cp.number = n;
    snprintf(c->cp.hash, sizeof(c->cp.hash), "%s", hash);
    /* an Arch chain's resync floor (bp_checkpoint.floor), when there is one */
    const char *pf[] = {"resync_floor", NULL};
    yajl_val floor = yajl_tree_get(v, pf, yajl_t_number);
    c->cp.floor_set = floor && parse_u64(floor, &c->cp.floor) == 0;
    parse_recent(c, v);
    return 0;
}

/* Fills fs->chains and sizes[i] (0 for a file not recorded) from the JSON text. */
static int parse_cp(bp_filesink *fs, const char *text, uint64_t *sizes, bp_error *err)
{
    char msg[256] = "";
    yajl_val root = yajl_tree_parse(text, msg, sizeof(msg));
    const char *pc[] = {"chains", NULL}, *ps[] = {"sizes", NULL};
    yajl_val chains = root ? yajl_tree_get(root, pc, yajl_t_object) : NULL;
    yajl_val sz = root ? yajl_tree_get(root, ps, yajl_t_object) : NULL;
    int rc = 0;
    if (!chains || !sz) {
        rc = bp_error_set(err, BP_EPARSE, "%s/" CP_NAME ": not a blockpipe checkpoint%s%s", fs->dir,
                          msg[0] ? ": " : "", msg);
        goto out;
    }
    for (size_t i = 0; i < chains->u.object.len && rc == 0; i++)
        rc = parse_chain(fs, chains->u.object.keys[i], chains->u.object.values[i], err);
    for (size_t i = 0; i < sz->u.object.len && rc == 0; i++) {
        for (size_t f = 0; f < fs->nfiles; f++) {
            if (strcmp(sz->u.object.keys[i], fs->files[f].name) != 0)
                continue;
            if (parse_u64(sz->u.object.values[i], &sizes[f]) != 0)
                rc = bp_error_set(err, BP_EPARSE, "%s/" CP_NAME ": size of %s: not a number",
                                  fs->dir, fs->files[f].name);
        }
    }
out:
    yajl_tree_free(root);
    return rc;
}

static void format_cp(const bp_filesink *fs, const uint64_t *sizes, bp_fmt *f)
{
    bp_fmt_str(f, "{\"version\":1,\"chains\":{");
    bool first = true;
    for (size_t i = 0; i < fs->nchains; i++) {
        const bp_filesink_chain *c = &fs->chains[i];
        if (!c->cp.set)
            continue;
        bp_fmt_str(f, first ? "" : ",");
        bp_fmt_json_str(f, c->name);
        bp_fmt_str(f, ":{\"number\":");
        bp_fmt_u64(f, c->cp.number);
        bp_fmt_str(f, ",\"hash\":");
        bp_fmt_json_str(f, c->cp.hash);
        if (c->cp.floor_set) {
            bp_fmt_str(f, ",\"resync_floor\":");
            bp_fmt_u64(f, c->cp.floor);
        }
        bp_fmt_str(f, ",\"recent\":[");
        for (size_t k = 0; k < c->nrecent; k++) {
            bp_fmt_str(f, k ? ",[" : "[");
            bp_fmt_u64(f, c->recent[k].number);
            bp_fmt_char(f, ',');
            bp_fmt_json_str(f, c->recent[k].hash);
            bp_fmt_char(f, ']');
        }
        bp_fmt_str(f, "]}");
        first = false;
    }
    bp_fmt_str(f, "},\"sizes\":{");
    for (size_t i = 0; i < fs->nfiles; i++) {
        bp_fmt_str(f, i ? ",\"" : "\"");
        bp_fmt_str(f, fs->files[i].name);
        bp_fmt_str(f, "\":");
        bp_fmt_u64(f, sizes[i]);
    }
    bp_fmt_str(f, "}}\n");
}

/* Replaces DIR/checkpoint.json atomically and durably. */
static int save_cp(bp_filesink *fs, const uint64_t *sizes, bp_error *err)
{
    bp_buf text;
    bp_buf_init(&text, 0);
    bp_fmt f = {.buf = &text};
    format_cp(fs, sizes, &f);
    int rc = f.rc ? bp_error_set(err, f.rc, "%s/" CP_TMP ": out of memory", fs->dir) : 0;
    int fd = rc ? -1 : openat(fs->dirfd, CP_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (rc == 0 && fd < 0)
        rc = io_error(err, fs, CP_TMP, "cannot create");
    if (rc == 0 && (write_all(fd, text.data, text.len) != 0 || fsync(fd) != 0))
        rc = io_error(err, fs, CP_TMP, "cannot write");
    if (fd >= 0 && close(fd) != 0 && rc == 0)
        rc = io_error(err, fs, CP_TMP, "cannot close");
    bp_crashpoint("filesink.before_rename"); /* a whole new checkpoint, not yet in place */
    if (rc == 0 && renameat(fs->dirfd, CP_TMP, fs->dirfd, CP_NAME) != 0)
        rc = io_error(err, fs, CP_NAME, "cannot rename " CP_TMP " to it");
    if (rc == 0 && fsync(fs->dirfd) != 0)
        rc = io_error(err, fs, "", "cannot fsync the directory");
    bp_buf_release(&text);
    return rc;
}

/* ---- open ------------------------------------------------------------------------------- */

/* Brings file i back to the size the checkpoint records. */
static int recover_file(bp_filesink *fs, size_t i, uint64_t want, bp_error *err)
{
    bp_filesink_file *file = &fs->files[i];
    struct stat st;
    if (fstat(file->fd, &st) != 0)
        return io_error(err, fs, file->name, "cannot stat");
    uint64_t have = (uint64_t)st.st_size;
    if (have < want)
        return bp_error_set(err, BP_EIO,
                            "%s/%s: %" PRIu64 " bytes, but " CP_NAME " records %" PRIu64
                            ": data was lost; restore the file or start in a new directory",
                            fs->dir, file->name, have, want);
    if (have > want) {
        if (ftruncate(file->fd, (off_t)want) != 0 || fsync(file->fd) != 0)
            return io_error(err, fs, file->name, "cannot truncate to the checkpoint");
        bp_warn("%s/%s: dropped %" PRIu64 " bytes written after the last checkpoint "
                "(an interrupted batch)",
                fs->dir, file->name, have - want);
    }
    file->size = want;
    return 0;
}

/* No checkpoint.json: only a directory without data of ours (or anyone's) is taken. */
static int check_fresh_file(bp_filesink *fs, size_t i, bp_error *err)
{
    struct stat st;
    if (fstat(fs->files[i].fd, &st) != 0)
        return io_error(err, fs, fs->files[i].name, "cannot stat");
    if (st.st_size > 0)
        return bp_error_set(err, BP_EINVAL,
                            "%s/%s: file exists and is not empty, but there is no " CP_NAME
                            ": refusing to append to data that blockpipe did not write",
                            fs->dir, fs->files[i].name);
    return 0;
}

static int open_files(bp_filesink *fs, bool have_cp, const uint64_t *sizes, bp_error *err)
{
    for (size_t i = 0; i < fs->nfiles; i++) {
        bp_filesink_file *file = &fs->files[i];
        file->fd = openat(fs->dirfd, file->name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (file->fd < 0)
            return io_error(err, fs, file->name, "cannot open");
        int rc = have_cp ? recover_file(fs, i, sizes[i], err) : check_fresh_file(fs, i, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* What load() read, let go: the files closed, the chains forgotten (another process may write
 * the directory next: what is known of it is read again once it is ours again). */
static void forget_files(bp_filesink *fs)
{
    for (size_t i = 0; i < fs->nfiles; i++) {
        if (fs->files[i].fd >= 0)
            close(fs->files[i].fd);
        fs->files[i].fd = -1;
        fs->files[i].size = 0;
    }
    for (size_t i = 0; i < fs->nchains; i++)
        free(fs->chains[i].name);
    free(fs->chains);
    fs->chains = NULL;
    fs->nchains = 0;
}

/* The files and checkpoint.json, read (and torn ends cut) once the directory is ours. On
 * failure nothing read is kept (the files opened before the failing one are closed): a claim
 * asked again reads everything again. */
static int load(bp_filesink *fs, bp_error *err)
{
    uint64_t sizes[BP_FILESINK_MAX_FILES] = {0};
    bool found = false;
    bp_buf text;
    bp_buf_init(&text, CP_MAX);
    int rc = read_cp_file(fs, &text, &found, err);
    if (rc == 0 && found)
        rc = parse_cp(fs, text.data ? text.data : "", sizes, err);
    if (rc == 0)
        rc = open_files(fs, found, sizes, err);
    if (rc == 0 && !found)
        rc = save_cp(fs, sizes, err);
    bp_buf_release(&text);
    if (rc != 0)
        forget_files(fs);
    return rc;
}

/* ---- the directory's writer lock ---------------------------------------------------------
 * The files are shared by the directory's chains and checkpoint.json covers them all, so the
 * lock is the directory's: flock on DIR/blockpipe.lock, which names its holder. Taken by the
 * first claim of a chain (or, for a caller that claims nothing, the first read or write), then
 * the files are read, never before (reading cuts a torn batch off: not while another writes).
 * Let go when the last chain claimed is unclaimed, so that a chain waiting for another lock
 * of its (a PostgreSQL lock it lost) does not keep the directory from a process that holds
 * that one and waits for the directory; a process killed lets go at once (the kernel drops
 * the lock). */

static void lock_holder(bp_filesink *fs, char *out, size_t cap)
{
    char text[BP_HOLDER_MAX + 16] = "";
    ssize_t n = pread(fs->lockfd, text, sizeof(text) - 1, 0);
    text[n > 0 ? n : 0] = '\0';
    text[strcspn(text, "\n")] = '\0';
    if (text[0])
        snprintf(out, cap, "'%s' (lock file %s/" LOCK_NAME ")", text, fs->dir);
    else
        snprintf(out, cap, "another process (lock file %s/" LOCK_NAME ")", fs->dir);
}

/* 0 when the directory is ours and loaded, BP_EBUSY naming its holder, another code. */
static int take_dir(bp_filesink *fs, char *holder, size_t cap, bp_error *err)
{
    if (fs->loaded)
        return 0;
    if (flock(fs->lockfd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK)
            return io_error(err, fs, LOCK_NAME, "cannot lock");
        lock_holder(fs, holder, cap);
        return bp_error_set(err, BP_EBUSY,
                            "%s: written by %s (a file output's directory has one writer: give "
                            "each process a directory of its own)",
                            fs->dir, holder);
    }
    char self[BP_HOLDER_MAX + 1];
    bp_holder_self(self, sizeof(self) - 1);
    size_t n = strlen(self);
    self[n++] = '\n';
    if (ftruncate(fs->lockfd, 0) != 0 || pwrite(fs->lockfd, self, n, 0) != (ssize_t)n)
        bp_warn("%s/" LOCK_NAME ": cannot write who holds it: %s", fs->dir, strerror(errno));
    int rc = load(fs, err);
    fs->loaded = rc == 0;
    if (rc != 0)
        (void)flock(fs->lockfd, LOCK_UN); /* nothing of ours is written meanwhile */
    return rc;
}

/* The directory let go: what was read of it forgotten, the lock file no longer naming us. */
static void drop_dir(bp_filesink *fs)
{
    if (!fs->loaded)
        return;
    forget_files(fs);
    if (ftruncate(fs->lockfd, 0) != 0)
        bp_debug("%s/" LOCK_NAME ": cannot empty it: %s", fs->dir, strerror(errno));
    (void)flock(fs->lockfd, LOCK_UN);
    fs->loaded = false;
}

static int ensure_dir(bp_filesink *fs, bp_error *err)
{
    char holder[BP_ERROR_MSG_MAX];
    return take_dir(fs, holder, sizeof(holder), err);
}

static bool claimed(const bp_filesink *fs, const char *chain, size_t *at)
{
    for (size_t i = 0; i < fs->nclaims; i++)
        if (strcmp(fs->claims[i], chain) == 0)
            return *at = i, true;
    return false;
}

int bp_filesink_claim(bp_sink *s, const char *chain, char *holder, size_t cap, bp_error *err)
{
    bp_filesink *fs = (bp_filesink *)s;
    size_t at;
    int rc = take_dir(fs, holder, cap, err);
    if (rc != 0 || claimed(fs, chain, &at))
        return rc;
    char **v = realloc(fs->claims, (fs->nclaims + 1) * sizeof(*v));
    if (v)
        fs->claims = v;
    if (!v || !(v[fs->nclaims] = strdup(chain))) {
        if (fs->nclaims == 0)
            drop_dir(fs);
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    fs->nclaims++;
    return 0;
}

void bp_filesink_unclaim(bp_sink *s, const char *chain)
{
    bp_filesink *fs = (bp_filesink *)s;
    size_t at;
    if (!claimed(fs, chain, &at))
        return;
    free(fs->claims[at]);
    fs->claims[at] = fs->claims[--fs->nclaims];
    if (fs->nclaims > 0 || !fs->loaded)
        return; /* the directory's other chains write on */
    drop_dir(fs);
    bp_debug("%s/" LOCK_NAME ": let go (no chain of this process claims the directory)", fs->dir);
}

/* The directory made and its lock file opened. When nobody holds the lock its files are read
 * at once (a directory that is not ours is refused at start) and the lock let go again: it is
 * taken by the first claim. */
static int open_dir(bp_filesink *fs, bp_error *err)
{
    int rc = make_dirs(fs->dir, err);
    if (rc == 0 && (fs->dirfd = open(fs->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        rc = bp_error_set(err, BP_EIO, "%s: cannot open directory: %s", fs->dir, strerror(errno));
    if (rc == 0 &&
        (fs->lockfd = openat(fs->dirfd, LOCK_NAME, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0)
        rc = io_error(err, fs, LOCK_NAME, "cannot open");
    if (rc != 0)
        return rc;
    bp_error busy = {0};
    rc = ensure_dir(fs, &busy);
    if (rc == BP_EBUSY) { /* the pipeline's claim waits for it (--lock-wait) */
        bp_info("%s", busy.msg);
        return 0;
    }
    if (rc != 0)
        *err = busy;
    drop_dir(fs);
    return rc;
}

int bp_filesink_open(bp_sink **out, const char *dir, const char *const *names, size_t n,
                     bp_filesink_format_fn format, bp_error *err)
{
    *out = NULL;
    if (n > BP_FILESINK_MAX_FILES)
        return bp_error_set(err, BP_EINVAL, "%s: too many files (%zu)", dir, n);
    bp_filesink *fs = calloc(1, sizeof(*fs));
    if (!fs || !(fs->dir = strdup(dir))) {
        free(fs);
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    fs->dirfd = fs->lockfd = -1;
    fs->format = format;
    fs->nfiles = n;
    for (size_t i = 0; i < n; i++) {
        fs->files[i].name = names[i];
        fs->files[i].fd = -1;
        bp_buf_init(&fs->files[i].buf, 0);
    }
    int rc = open_dir(fs, err);
    if (rc != 0) {
        bp_filesink_close(&fs->base);
        return rc;
    }
    *out = &fs->base;
    return 0;
}

/* ---- write ------------------------------------------------------------------------------ */

bp_buf *bp_filesink_buf(bp_filesink *fs, size_t i)
{
    bp_filesink_file *file = &fs->files[i];
    if (file->buf.len >= BP_FILESINK_SPILL && fs->spill_errno == 0) {
        if (write_all(file->fd, file->buf.data, file->buf.len) != 0) {
            fs->spill_errno = errno;
            fs->spill_file = i;
        } else {
            file->spilled += file->buf.len;
            bp_buf_reset(&file->buf);
        }
    }
    return &file->buf;
}

bool bp_filesink_is_empty(const bp_filesink *fs, size_t i)
{
    const bp_filesink_file *file = &fs->files[i];
    return file->size == 0 && file->spilled == 0 && file->buf.len == 0;
}

/* Appends every buffer to its file and fsyncs the files written; sizes[] get the new sizes. */
static int append_all(bp_filesink *fs, uint64_t *sizes, bp_error *err)
{
    if (fs->spill_errno != 0) {
        errno = fs->spill_errno;
        return io_error(err, fs, fs->files[fs->spill_file].name, "cannot append");
    }
    for (size_t i = 0; i < fs->nfiles; i++) {
        bp_filesink_file *file = &fs->files[i];
        sizes[i] = file->size + file->spilled + file->buf.len;
        if (file->buf.len > 0 && write_all(file->fd, file->buf.data, file->buf.len) != 0)
            return io_error(err, fs, file->name, "cannot append");
    }
    for (size_t i = 0; i < fs->nfiles; i++)
        if (sizes[i] > fs->files[i].size && fdatasync(fs->files[i].fd) != 0)
            return io_error(err, fs, fs->files[i].name, "cannot fsync");
    return 0;
}

/* After a failed commit: cut the files back to what checkpoint.json covers, so the next
 * batch (or a restart) starts from a clean end. */
static void undo_append(bp_filesink *fs)
{
    for (size_t i = 0; i < fs->nfiles; i++)
        if (ftruncate(fs->files[i].fd, (off_t)fs->files[i].size) != 0)
            bp_warn("%s/%s: cannot truncate after a failed write: %s (reopen fixes it)", fs->dir,
                    fs->files[i].name, strerror(errno));
}

/* The batch's APPLYs extend the kept blocks, its REVERTs cut them back. */
static void track_recent(bp_filesink_chain *c, const bp_batch *batch)
{
    for (size_t i = 0; i < batch->count; i++) {
        const bp_block *b = batch->events[i].block;
        if (batch->events[i].kind == BP_EVENT_ARCH_EVENTS)
            continue; /* no block: the checkpoint stays */
        if (batch->events[i].kind == BP_EVENT_REVERT) {
            while (c->nrecent && c->recent[c->nrecent - 1].number >= b->number)
                c->nrecent--;
            continue;
        }
        if (c->nrecent && c->recent[c->nrecent - 1].number + 1 != b->number)
            c->nrecent = 0; /* a jump: the window starts again here */
        if (c->nrecent == BP_FILESINK_RECENT) {
            memmove(c->recent, c->recent + 1, (BP_FILESINK_RECENT - 1) * sizeof(c->recent[0]));
            c->nrecent--;
        }
        bp_checkpoint *r = &c->recent[c->nrecent++];
        r->set = true;
        r->number = b->number;
        snprintf(r->hash, sizeof(r->hash), "%s", b->hash);
    }
}

static int commit(bp_filesink *fs, const bp_batch *batch, bp_error *err)
{
    uint64_t sizes[BP_FILESINK_MAX_FILES];
    bp_filesink_chain *c = add_chain(fs, batch->chain);
    if (!c)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    bp_filesink_chain old = *c;
    int rc = append_all(fs, sizes, err);
    if (rc == 0) {
        bp_crashpoint("filesink.after_data"); /* the batch is in the files, not the checkpoint */
        c->cp = batch->checkpoint;
        track_recent(c, batch);
        rc = save_cp(fs, sizes, err);
    }
    if (rc != 0) {
        *c = old;
        undo_append(fs);
        return rc;
    }
    for (size_t i = 0; i < fs->nfiles; i++)
        fs->files[i].size = sizes[i];
    return 0;
}

int bp_filesink_write(bp_sink *s, const bp_batch *batch, bp_error *err)
{
    bp_filesink *fs = (bp_filesink *)s;
    int rc = ensure_dir(fs, err);
    if (rc != 0)
        return rc;
    rc = fs->format(fs, batch, err);
    if (rc == 0)
        rc = commit(fs, batch, err);
    else
        undo_append(fs); /* rows spilled before the failure */
    for (size_t i = 0; i < fs->nfiles; i++) {
        bp_buf_reset(&fs->files[i].buf);
        fs->files[i].spilled = 0;
    }
    fs->spill_errno = 0;
    return rc;
}

int bp_filesink_checkpoint(bp_sink *s, const char *chain, bp_checkpoint *out, bp_error *err)
{
    memset(out, 0, sizeof(*out));
    int rc = ensure_dir((bp_filesink *)s, err);
    if (rc != 0)
        return rc;
    const bp_filesink_chain *c = find_chain((bp_filesink *)s, chain);
    if (c)
        *out = c->cp;
    else
        memset(out, 0, sizeof(*out));
    return 0;
}

int bp_filesink_recent(bp_sink *s, const char *chain, bp_checkpoint *out, size_t max, size_t *n,
                       bp_error *err)
{
    *n = 0;
    int rc = ensure_dir((bp_filesink *)s, err);
    if (rc != 0)
        return rc;
    const bp_filesink_chain *c = find_chain((bp_filesink *)s, chain);
    for (size_t k = c ? c->nrecent : 0; k-- > 0 && *n < max;)
        out[(*n)++] = c->recent[k];
    return 0;
}

void bp_filesink_close(bp_sink *s)
{
    bp_filesink *fs = (bp_filesink *)s;
    if (!fs)
        return;
    for (size_t i = 0; i < fs->nfiles; i++) {
        if (fs->files[i].fd >= 0)
            close(fs->files[i].fd);
        bp_buf_release(&fs->files[i].buf);
    }
    for (size_t i = 0; i < fs->nchains; i++)
        free(fs->chains[i].name);
    free(fs->chains);
    for (size_t i = 0; i < fs->nclaims; i++)
        free(fs->claims[i]);
    free(fs->claims);
    if (fs->dirfd >= 0)
        close(fs->dirfd);
    if (fs->lockfd >= 0)
        close(fs->lockfd); /* lets the directory go */
    free(fs->dir);
    free(fs);
}
