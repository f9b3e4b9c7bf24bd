/* stream.c - `blockpipe stream ...`: keyed streams on the command line (commands_stream.h).
 * Every entry is printed as one JSON line: {"key":"..","id":"..","time_ms":N,"value":<JSON>}. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockpipe/keyed.h"
#include "cli/commands_stream.h"
#include "util/buf.h"
#include "util/jsonw.h"

#define DEFAULT_STORE "sqlite:blockpipe.db"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static const char g_usage[] =
    "usage: blockpipe stream [--store URL] COMMAND ...\n"
    "  publish KEY JSON|-        store a JSON value under KEY (- reads it from stdin)\n"
    "  latest KEY                the newest entry of KEY (exit 1 when it has none)\n"
    "  history KEY [--limit N]   the newest N entries (default 10), newest first\n"
    "  keys [PREFIX]             the keys, sorted\n"
    "  subscribe KEY [--from ID|0] [--count N]\n"
    "                            entries as they are published (--from: after entry ID, 0:\n"
    "                            every entry kept); ends after N entries or on Ctrl-C\n"
    "--store URL: sqlite:PATH or redis://[:password@]host:port[/db] (rediss:// for TLS; the\n"
    "Redis output's URL parameters apply: prefix, maxlen, tls_ca, ...); env STREAM_STORE;\n"
    "default " DEFAULT_STORE ".\n"
    "Each entry is printed as a JSON line: {\"key\":..,\"id\":..,\"time_ms\":..,\"value\":..}\n";

const char *bp_stream_usage(void)
{
    return g_usage;
}

static void print_entry(const char *key, const bp_keyed_entry *e)
{
    bp_buf b;
    bp_jsonw w;
    bp_buf_init(&b, 0);
    bp_jsonw_init(&w, &b, BP_JSONW_ESC_U);
    bp_jsonw_begin_object(&w);
    bp_jsonw_key(&w, "key");
    bp_jsonw_str(&w, key);
    bp_jsonw_key(&w, "id");
    bp_jsonw_str(&w, e->id);
    bp_jsonw_key(&w, "time_ms");
    bp_jsonw_i64(&w, e->time_ms);
    bp_jsonw_key(&w, "value");
    bp_jsonw_raw(&w, e->value, strlen(e->value));
    bp_jsonw_end_object(&w);
    if (bp_jsonw_finish(&w) == 0)
        printf("%s\n", b.data);
    fflush(stdout);
    bp_buf_release(&b);
}

/* The value argument, or stdin for "-" (malloc'd). */
static char *value_of(const char *arg)
{
    if (strcmp(arg, "-") != 0)
        return strdup(arg);
    bp_buf b;
    bp_buf_init(&b, 64u << 20);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
        if (bp_buf_append(&b, chunk, n) != 0) {
            bp_buf_release(&b);
            return NULL;
        }
    if (!b.data && bp_buf_puts(&b, "") != 0)
        return NULL;
    return b.data;
}

typedef struct sub {
    const char *key;
    long left; /* entries still to print; < 0: no limit */
} sub;

static int on_entry(void *ctx, const bp_keyed_entry *e)
{
    sub *s = ctx;
    print_entry(s->key, e);
    return s->left > 0 && --s->left == 0;
}

typedef struct args {
    const char *store, *cmd, *pos[2], *from;
    long limit, count;
    int npos;
} args;

static int parse(int argc, char **argv, args *a)
{
    const char *env = getenv("STREAM_STORE");
    *a = (args){.store = env && *env ? env : DEFAULT_STORE, .limit = 10, .count = -1};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        bool has = i + 1 < argc;
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0)
            return 1;
        if (strcmp(o, "--store") == 0 && has)
            a->store = argv[++i];
        else if (strcmp(o, "--limit") == 0 && has)
            a->limit = strtol(argv[++i], NULL, 10);
        else if (strcmp(o, "--count") == 0 && has)
            a->count = strtol(argv[++i], NULL, 10);
        else if (strcmp(o, "--from") == 0 && has)
            a->from = argv[++i];
        else if (o[0] == '-' && o[1] == '-')
            return -1;
        else if (!a->cmd)
            a->cmd = o;
        else if (a->npos < 2)
            a->pos[a->npos++] = o;
        else
            return -1;
    }
    return a->cmd && a->limit > 0 ? 0 : -1;
}

static int run(bp_keyed *k, const args *a, bp_error *err)
{
    const char *cmd = a->cmd, *key = a->pos[0];
    bp_keyed_entry e = {0};
    if (strcmp(cmd, "publish") == 0 && a->npos == 2) {
        char *v = value_of(a->pos[1]);
        int rc = v ? bp_keyed_publish(k, key, v, &e, err)
                   : bp_error_set(err, BP_EIO, "cannot read the value from stdin");
        if (rc == 0)
            print_entry(key, &e);
        bp_keyed_entry_release(&e);
        free(v);
        return rc;
    }
    if (strcmp(cmd, "latest") == 0 && a->npos == 1) {
        bool found = false;
        int rc = bp_keyed_latest(k, key, &e, &found, err);
        if (rc == 0 && !found)
            return bp_error_set(err, BP_ENOTFOUND, "key '%s' has no entry", key);
        if (rc == 0)
            print_entry(key, &e);
        bp_keyed_entry_release(&e);
        return rc;
    }
    if (strcmp(cmd, "history") == 0 && a->npos == 1) {
        size_t n = 0;
        bp_keyed_entry *list = calloc((size_t)a->limit, sizeof(*list));
        int rc = list ? bp_keyed_history(k, key, (size_t)a->limit, list, &n, err)
                      : bp_error_set(err, BP_ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
            print_entry(key, &list[i]);
            bp_keyed_entry_release(&list[i]);
        }
        free(list);
        return rc;
    }
    if (strcmp(cmd, "keys") == 0 && a->npos <= 1) {
        char **keys = NULL;
        size_t n = 0;
        int rc = bp_keyed_keys(k, a->npos ? key : "", &keys, &n, err);
        for (size_t i = 0; rc == 0 && i < n; i++)
            printf("%s\n", keys[i]);
        bp_keyed_keys_free(keys, n);
        return rc;
    }
    if (strcmp(cmd, "subscribe") == 0 && a->npos == 1) {
        sub s = {key, a->count};
        if (a->count == 0)
            return 0;
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        return bp_keyed_subscribe(k, key, a->from, on_entry, &s, &g_stop, err);
    }
    return BP_EINVAL;
}

int bp_cmd_stream(int argc, char **argv)
{
    args a;
    int p = parse(argc, argv, &a);
    if (p != 0) {
        fputs(g_usage, p > 0 ? stdout : stderr);
        return p > 0 ? 0 : 2;
    }
    bp_keyed *k = NULL;
    bp_error err = {0};
    int rc = bp_keyed_open(a.store, &k, &err);
    if (rc == 0)
        rc = run(k, &a, &err);
    bp_keyed_close(k);
    if (rc == BP_EINVAL && !err.msg[0]) {
        fputs(g_usage, stderr);
        return 2;
    }
    if (rc != 0)
        fprintf(stderr, "blockpipe stream: %s\n", err.msg);
    return rc == 0 ? 0 : rc == BP_EINVAL ? 2 : 1;
}
