/* state.c - the state file of a run (failed blocks + the command) and `retry-failed`. */
#include "cli/state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

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
static yajl_val load_state(const char *path)
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

static const char *str_of(yajl_val v)
{
    const char *s = YAJL_GET_STRING(v);
    return s ? s : "";
}

static yajl_val get(yajl_val root, const char *key, yajl_type t)
{
    const char *path[] = {key, NULL};
    return yajl_tree_get(root, path, t);
}

static void announce_one(const char *path)
{
    yajl_val root = load_state(path);
    yajl_val count = root ? get(root, "failed_count", yajl_t_number) : NULL;
    yajl_val failed = root ? get(root, "failed", yajl_t_array) : NULL;
    if (count && YAJL_GET_INTEGER(count) > 0 && failed && YAJL_GET_ARRAY(failed)->len > 0) {
        yajl_val first = YAJL_GET_ARRAY(failed)->values[0];
        yajl_val num = get(first, "number", yajl_t_number);
        yajl_val why = get(first, "error", yajl_t_string);
        bp_warn("%s: %lld block(s) failed last time (first: block %lld: %s); they are fetched "
                "again now",
                path, YAJL_GET_INTEGER(count), num ? YAJL_GET_INTEGER(num) : -1LL,
                why ? str_of(why) : "?");
    }
    yajl_tree_free(root);
}

static bool is_state_name(const char *name)
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
        if (!is_state_name(e->d_name))
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        announce_one(path);
    }
    closedir(d);
}

/* Runs the saved argv again with this same binary; returns its exit status. */
static int rerun(yajl_val argv_val, const char *path)
{
    yajl_val *items = YAJL_GET_ARRAY(argv_val)->values;
    size_t n = YAJL_GET_ARRAY(argv_val)->len;
    char **args = calloc(n + 2, sizeof(*args));
    if (!args || n == 0) {
        free(args);
        bp_err("%s: no saved command to run", path);
        return 1;
    }
    args[0] = "blockpipe";
    for (size_t i = 0; i < n; i++)
        args[i + 1] = (char *)str_of(items[i]);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        execv("/proc/self/exe", args);
        _exit(127);
    }
    free(args);
    int status = 1;
    if (pid < 0 || waitpid(pid, &status, 0) < 0)
        return 1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

static int retry_one(const char *path, const char *chain)
{
    yajl_val root = load_state(path);
    if (!root)
        return 0;
    yajl_val name = get(root, "chain", yajl_t_string);
    yajl_val count = get(root, "failed_count", yajl_t_number);
    yajl_val argv_val = get(root, "argv", yajl_t_array);
    int status = 0;
    if (chain && (!name || strcmp(str_of(name), chain) != 0))
        goto out;
    if (!count || YAJL_GET_INTEGER(count) == 0) {
        bp_info("%s: nothing failed in the last run", path);
        goto out;
    }
    if (!argv_val) {
        bp_err("%s: no saved command", path);
        status = 1;
        goto out;
    }
    if (YAJL_IS_TRUE(get(root, "argv_masked", yajl_t_true))) {
        bp_err("%s: the saved command had keys on its command line, and keys are never saved "
               "(they show as ***): give them as ${NAME} (an environment variable) or @FILE, "
               "or in the config file, and run the command again",
               path);
        status = 1;
        goto out;
    }
    bp_info("%s: %lld block(s) failed last time; running the saved command again", path,
            YAJL_GET_INTEGER(count));
    status = rerun(argv_val, path);
out:
    yajl_tree_free(root);
    return status;
}

static const char retry_usage[] =
    "blockpipe retry-failed - run again the commands whose blocks failed\n\n"
    "Usage: blockpipe retry-failed --state-dir DIR [--chain NAME]\n\n"
    "  --state-dir DIR   the --state-dir of the runs (env STATE_DIR)\n"
    "  --chain NAME      only this chain (default: every chain with failed blocks)\n\n"
    "A run given --state-dir saves DIR/<chain>.json when it ends: the blocks that used up\n"
    "--max-retries, with their last error, and the command. retry-failed runs that command\n"
    "again; it resumes from the outputs' checkpoints, so the failed blocks come first.\n";

const char *bp_retry_failed_usage(void)
{
    return retry_usage;
}

int bp_cmd_retry_failed(int argc, char **argv)
{
    const char *dir = getenv("STATE_DIR"), *chain = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(retry_usage, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--state-dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(argv[i], "--chain") == 0 && i + 1 < argc)
            chain = argv[++i];
        else {
            fprintf(stderr, "blockpipe: retry-failed: unknown option '%s'\n\n%s", argv[i],
                    retry_usage);
            return 2;
        }
    }
    if (!dir || !*dir) {
        fprintf(stderr, "blockpipe: retry-failed needs --state-dir DIR\n\n%s", retry_usage);
        return 2;
    }
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "blockpipe: --state-dir %s: %s\n", dir, strerror(errno));
        return 2;
    }
    int worst = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!is_state_name(e->d_name))
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        int st = retry_one(path, chain);
        worst = st > worst ? st : worst;
    }
    closedir(d);
    return worst;
}
