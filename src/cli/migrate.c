/* migrate.c - `blockpipe migrate`: create or upgrade the PostgreSQL schema, print the version. */
#include "cli/commands_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sink/pg_conn.h"
#include "util/buf.h"

static const char g_usage[] =
    "usage: blockpipe migrate [URL] [options]\n"
    "Creates or upgrades blockpipe's tables in a PostgreSQL database (also done at the start\n"
    "of run and backfill) and prints the schema version. A schema newer than this program\n"
    "is refused.\n\n"
    "  URL, --output URL        postgres://user:pass@host:port/db (or postgresql://);\n"
    "                           default: environment DATABASE_URL\n"
    "  --pg-schema NAME         schema to use (default public; URL parameter schema=)\n"
    "  --wait-for-db SECONDS    retry an unreachable server this long (default 30;\n"
    "                           URL parameter wait_for_db=)\n";

typedef struct migrate_args {
    const char *url;
    const char *schema;
    const char *wait;
} migrate_args;

static int parse_args(int argc, char **argv, migrate_args *a)
{
    memset(a, 0, sizeof(*a));
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char **slot = strcmp(arg, "--output") == 0        ? &a->url
                            : strcmp(arg, "--pg-schema") == 0   ? &a->schema
                            : strcmp(arg, "--wait-for-db") == 0 ? &a->wait
                                                                : NULL;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return 1;
        if (slot && i + 1 < argc)
            *slot = argv[++i];
        else if (!slot && arg[0] != '-' && !a->url)
            a->url = arg;
        else
            return fprintf(stderr, "blockpipe migrate: bad argument '%s'\n%s", arg, g_usage), 2;
    }
    if (!a->url)
        a->url = getenv("DATABASE_URL");
    if (!a->url || !*a->url)
        return fprintf(stderr,
                       "blockpipe migrate: no database URL (argument, --output or "
                       "DATABASE_URL)\n%s",
                       g_usage),
               2;
    return 0;
}

/* The URL without its scheme plus our options as URL parameters (flags win: appended last). */
static int build_target(const migrate_args *a, bp_buf *out)
{
    const char *u = a->url;
    if (strncmp(u, "postgres://", 11) == 0)
        u += 11;
    else if (strncmp(u, "postgresql://", 13) == 0)
        u += 13;
    else
        return fprintf(stderr, "blockpipe migrate: '%s' is not a postgres:// URL\n", a->url), 2;
    char sep = strchr(u, '?') ? '&' : '?';
    int rc = bp_buf_puts(out, u);
    if (a->schema)
        rc |= bp_buf_printf(out, "%cschema=%s", sep, a->schema), sep = '&';
    if (a->wait)
        rc |= bp_buf_printf(out, "%cwait_for_db=%s", sep, a->wait);
    return rc ? (fprintf(stderr, "blockpipe migrate: out of memory\n"), 1) : 0;
}

int bp_cmd_migrate(int argc, char **argv)
{
    migrate_args a;
    bp_buf target;
    bp_pg_target t = {0};
    PGconn *conn = NULL;
    bp_error err = {0};
    int from = 0, to = 0, status = parse_args(argc, argv, &a);
    if (status != 0) {
        if (status == 1)
            fputs(g_usage, stdout);
        return status == 1 ? 0 : status;
    }
    bp_buf_init(&target, 0);
    status = build_target(&a, &target);
    if (status != 0)
        goto out;
    status = 1;
    if (bp_pg_target_parse(&t, target.data, &err) != 0 || bp_pg_connect(&t, &conn, &err) != 0 ||
        bp_pg_migrate(conn, &t, &from, &to, &err) != 0) {
        fprintf(stderr, "blockpipe migrate: %s\n", err.msg);
        goto out;
    }
    if (from == to)
        printf("schema \"%s\" at %s is up to date (version %d)\n", t.schema, t.where, to);
    else
        printf("schema \"%s\" at %s migrated from version %d to %d\n", t.schema, t.where, from, to);
    status = 0;
out:
    PQfinish(conn);
    bp_pg_target_release(&t);
    bp_buf_release(&target);
    return status;
}
