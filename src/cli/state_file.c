/* state_file.c - the state file of a run (state.h): written when a run ends, read to say what
 * the last runs left. In the library too (a pipe's state_dir); retry-failed, which runs the
 * saved command again, is the command's (state.c). */
#include "cli/state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>

#include "util/log.h"
#include "util/url.h"
#define STATE_MAX_BYTES (1 << 20)

static void gen_str(yajl_gen g, const char *s)
{
    yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

static void gen_kv_u64(yajl_gen g, const char *k, uint64_t v)
{
    char num[24];
    gen_str(g, k);
    snprintf(num, sizeof(num), "%" PRIu64, v);
    yajl_gen_number(g, num, strlen(num));
}

static void gen_failed(yajl_gen g, const bp_pipeline_report *r)
{
    gen_str(g, "failed");
    yajl_gen_array_open(g);
    size_t n = r->failed_count < BP_REPORT_MAX_FAILED ? r->failed_count : BP_REPORT_MAX_FAILED;
    for (size_t i = 0; i < n; i++) {
        yajl_gen_map_open(g);
        gen_kv_u64(g, "number", r->failed[i].number);
        gen_kv_u64(g, "attempts", (uint64_t)r->failed[i].attempts);
        char why[sizeof(r->failed[i].error)];
        snprintf(why, sizeof(why), "%s", r->failed[i].error);
        bp_secret_scrub(why); /* a node's answer may quote the key */
        gen_str(g, "error");
        gen_str(g, why);
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
}

/* An argument as it may be saved: URLs redacted, every registered secret masked. */
static bool shown_arg(const char *arg, char *out, size_t outsz)
{
    if (strstr(arg, "://"))
        bp_url_redact(arg, out, outsz);
    else
        snprintf(out, outsz, "%s", arg);
    bp_secret_scrub(out);
    return strcmp(out, arg) != 0;
}

/* The command is saved without its keys: "argv_masked" tells retry-failed it cannot be run
 * as saved (keys belong in the environment, ${NAME}, or in files, @FILE). */
static void gen_argv(yajl_gen g, int argc, char **argv)
{
    if (!argv) { /* the library's: a program's own run, no command to save */
        gen_str(g, "saved_by");
        gen_str(g, "libblockpipe " BP_VERSION);
        return;
    }
    bool masked = false;
    gen_str(g, "argv");
    yajl_gen_array_open(g);
    for (int i = 0; i < argc; i++) {
        char shown[4096];
        masked |= shown_arg(argv[i], shown, sizeof(shown));
        gen_str(g, shown);
    }
    yajl_gen_array_close(g);
    gen_str(g, "argv_masked");
    yajl_gen_bool(g, masked);
}

static void gen_state(yajl_gen g, const bp_pipeline_report *r, int argc, char **argv)
{
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    yajl_gen_map_open(g);
    gen_kv_u64(g, "version", 1);
    gen_str(g, "chain");
    gen_str(g, r->chain);
    gen_str(g, "saved_at");
    gen_str(g, when);
    gen_str(g, "tip");
    if (r->tip_set) {
        char num[24];
        snprintf(num, sizeof(num), "%" PRIu64, r->tip);
        yajl_gen_number(g, num, strlen(num));
    } else {
        yajl_gen_null(g);
    }
    gen_kv_u64(g, "failed_count", r->failed_count);
    gen_failed(g, r);
    gen_argv(g, argc, argv);
    yajl_gen_map_close(g);
}

static int write_atomic(const char *path, const unsigned char *data, size_t len, bp_error *err)
{
    char tmp[4200]; /* path is at most 4096 */
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    /* 0600: the saved command may carry an RPC URL with an API key */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return bp_error_set(err, BP_EIO, "state file %s: %s", tmp, strerror(errno));
    ssize_t w = write(fd, data, len);
    int ok = w == (ssize_t)len && fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, path) != 0)
        return bp_error_set(err, BP_EIO, "state file %s: %s", path, strerror(errno));
    return 0;
}

int bp_state_prepare(const char *dir, bp_error *err)
{
    struct stat st;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        if (errno != ENOENT)
            return bp_error_set(err, BP_EIO, "--state-dir %s: cannot create it: %s", dir,
                                strerror(errno));
        return bp_error_set(err, BP_EINVAL,
                            "--state-dir %s: cannot create it: its parent directory does not "
                            "exist (blockpipe creates the state directory, not its parents)",
                            dir);
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return bp_error_set(err, BP_EINVAL, "--state-dir %s: not a directory", dir);
    if (access(dir, W_OK | X_OK) != 0)
        return bp_error_set(err, BP_EIO, "--state-dir %s: not writable: %s", dir, strerror(errno));
    return 0;
}

int bp_state_save(const char *dir, const bp_pipeline_report *report, int argc, char **argv,
                  bp_error *err)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return bp_error_set(err, BP_EIO, "--state-dir %s: %s", dir, strerror(errno));
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s.json", dir, report->chain[0] ? report->chain : "chain");
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    yajl_gen_config(g, yajl_gen_beautify, 1);
    gen_state(g, report, argc, argv);
    const unsigned char *buf;
    size_t len;
    yajl_gen_get_buf(g, &buf, &len);
    int rc = write_atomic(path, buf, len, err);
    yajl_gen_free(g);
    return rc;
}

/* Reads DIR/NAME into a tree; NULL (and a warning) when it is not a state file. */
yajl_val bp_state_load(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *text = malloc(STATE_MAX_BYTES + 1);
    size_t n = text ? fread(text, 1, STATE_MAX_BYTES, f) : 0;
    fclose(f);
    if (!text)
        return NULL;
    text[n] = '\0';
    char why[256] = "";
    yajl_val root = yajl_tree_parse(text, why, sizeof(why));
    free(text);
    if (!root || !YAJL_IS_OBJECT(root)) {
        bp_warn("state file %s is not valid JSON (%s); ignored", path, why);
        yajl_tree_free(root);
        return NULL;
    }
    return root;
}

const char *bp_state_str(yajl_val v)
{
    const char *s = YAJL_GET_STRING(v);
    return s ? s : "";
}

yajl_val bp_state_get(yajl_val root, const char *key, yajl_type t)
{
    const char *path[] = {key, NULL};
    return yajl_tree_get(root, path, t);
}

static void announce_one(const char *path)
{
    yajl_val root = bp_state_load(path);
    yajl_val count = root ? bp_state_get(root, "failed_count", yajl_t_number) : NULL;
    yajl_val failed = root ? bp_state_get(root, "failed", yajl_t_array) : NULL;
    if (count && YAJL_GET_INTEGER(count) > 0 && failed && YAJL_GET_ARRAY(failed)->len > 0) {
        yajl_val first = YAJL_GET_ARRAY(failed)->values[0];
        yajl_val num = bp_state_get(first, "number", yajl_t_number);
        yajl_val why = bp_state_get(first, "error", yajl_t_string);
        bp_warn("%s: %lld block(s) failed last time (first: block %lld: %s); they are fetched "
                "again now",
                path, YAJL_GET_INTEGER(count), num ? YAJL_GET_INTEGER(num) : -1LL,
                why ? bp_state_str(why) : "?");
    }
    yajl_tree_free(root);
}

bool bp_state_is_name(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && strcmp(name + n - 5, ".json") == 0;
}

void bp_state_announce(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!bp_state_is_name(e->d_name))
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        announce_one(path);
    }
    closedir(d);
}
