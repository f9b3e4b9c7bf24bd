/* state.c - `blockpipe retry-failed`: runs again the saved command of a state file
 * (state_file.c writes and reads them). */
#include "cli/state.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/log.h"

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
        args[i + 1] = (char *)bp_state_str(items[i]);
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
    yajl_val root = bp_state_load(path);
    if (!root)
        return 0;
    yajl_val name = bp_state_get(root, "chain", yajl_t_string);
    yajl_val count = bp_state_get(root, "failed_count", yajl_t_number);
    yajl_val argv_val = bp_state_get(root, "argv", yajl_t_array);
    int status = 0;
    if (chain && (!name || strcmp(bp_state_str(name), chain) != 0))
        goto out;
    if (!count || YAJL_GET_INTEGER(count) == 0) {
        bp_info("%s: nothing failed in the last run", path);
        goto out;
    }
    if (bp_state_get(root, "saved_by", yajl_t_string)) {
        bp_err("%s: saved by a program using libblockpipe (%s), not by a command: run that "
               "program again; it resumes from its checkpoints, so the failed blocks come first",
               path, bp_state_str(bp_state_get(root, "saved_by", yajl_t_string)));
        status = 1;
        goto out;
    }
    if (!argv_val) {
        bp_err("%s: no saved command", path);
        status = 1;
        goto out;
    }
    if (YAJL_IS_TRUE(bp_state_get(root, "argv_masked", yajl_t_true))) {
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
        if (!bp_state_is_name(e->d_name))
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        int st = retry_one(path, chain);
        worst = st > worst ? st : worst;
    }
    closedir(d);
    return worst;
}
