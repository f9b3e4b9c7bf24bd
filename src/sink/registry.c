/* registry.c - the list of output backends and URL dispatch. Adding a backend: one file plus
 * one line in g_backends. */
#include "blockpipe/sink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/url.h"

extern const bp_sink_ops bp_sink_sqlite_ops;
extern const bp_sink_ops bp_sink_etlcsv_ops;
extern const bp_sink_ops bp_sink_jsonl_ops;
extern const bp_sink_ops bp_sink_postgres_ops;
extern const bp_sink_ops bp_sink_postgresql_ops;

static const bp_sink_ops *const g_backends[] = {
    &bp_sink_sqlite_ops,   &bp_sink_etlcsv_ops,     &bp_sink_jsonl_ops,
    &bp_sink_postgres_ops, &bp_sink_postgresql_ops, NULL,
};

const bp_sink_ops *const *bp_sink_backends(void)
{
    return g_backends;
}

int bp_sink_open_url(const char *url, bp_sink **out, bp_error *err)
{
    char shown[512]; /* the URL as messages may show it: no password */
    bp_url_redact(url, shown, sizeof(shown));
    *out = NULL;
    const char *colon = strchr(url, ':');
    if (colon) {
        size_t slen = (size_t)(colon - url);
        for (const bp_sink_ops *const *b = g_backends; *b; b++) {
            if (strlen((*b)->scheme) != slen || strncmp((*b)->scheme, url, slen) != 0)
                continue;
            const char *target = colon + 1;
            if (strncmp(target, "//", 2) == 0)
                target += 2;
            if (*target == '\0')
                return bp_error_set(err, BP_EINVAL, "output '%s': missing path after '%.*s:'",
                                    shown, (int)slen, url);
            int rc = (*b)->open(out, target, err);
            if (rc != 0)
                return bp_error_prefix(err, "output '%s': ", shown);
            (*out)->ops = *b;
            (*out)->url = strdup(shown);
            if (!(*out)->url) {
                (*b)->close(*out);
                *out = NULL;
                return bp_error_set(err, BP_ENOMEM, "out of memory");
            }
            return 0;
        }
    }
    char known[256] = "";
    for (const bp_sink_ops *const *b = g_backends; *b; b++) {
        strncat(known, (*b)->scheme, sizeof(known) - strlen(known) - 1);
        strncat(known, ": ", sizeof(known) - strlen(known) - 1);
    }
    return bp_error_set(err, BP_EINVAL,
                        "output '%s': unknown kind; expected one of %s(e.g. sqlite:blockpipe.db)",
                        shown, known);
}

void bp_sink_close(bp_sink *s)
{
    if (!s)
        return;
    char *url = s->url;
    s->ops->close(s);
    free(url);
}
