/* registry.c - the list of output backends, URL dispatch by scheme, and the backends' own
 * options (URL parameters over flag / environment / config file settings over defaults).
 * Adding a backend: its file, one line in BP_BACKENDS, and (if it needs a library) one
 * bp_output() line in CMakeLists.txt. */
#include "blockpipe/sink.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sink/registry.h"
#include "util/buf.h"
#include "util/hex.h"
#include "util/url.h"

/* The backends, one line each (a backend left out of the build still has its line: CMake
 * gives it a stand-in that names what was missing). */
#define BP_BACKENDS(X)                                                                             \
    X(sqlite)                                                                                      \
    X(postgres)                                                                                    \
    X(etlcsv)                                                                                      \
    X(jsonl)                                                                                       \
    X(redis)                                                                                       \
    X(kafka)                                                                                       \
    X(clickhouse)                                                                                  \
    /* one line above per backend */

#define BP_X_DECLARE(name) extern const bp_sink_ops bp_sink_##name##_ops;
BP_BACKENDS(BP_X_DECLARE)
#undef BP_X_DECLARE

static const bp_sink_ops *const g_backends[] = {
#define BP_X_ENTRY(name) &bp_sink_##name##_ops,
    BP_BACKENDS(BP_X_ENTRY)
#undef BP_X_ENTRY
        NULL,
};

const bp_sink_ops *const *bp_sink_backends(void)
{
    return g_backends;
}

/* ---- schemes ---------------------------------------------------------------------------- */

static bool scheme_is(const char *scheme, const char *url, size_t n)
{
    return strlen(scheme) == n && strncasecmp(scheme, url, n) == 0;
}

/* The backend of url's scheme; *used (may be NULL) gets the scheme or alias it matched. */
static const bp_sink_ops *find_backend(const char *url, const char **used)
{
    const char *colon = strchr(url, ':');
    if (!colon)
        return NULL;
    size_t n = (size_t)(colon - url);
    for (const bp_sink_ops *const *b = g_backends; *b; b++) {
        const char *match = scheme_is((*b)->scheme, url, n) ? (*b)->scheme : NULL;
        for (const char *const *a = (*b)->aliases; !match && a && *a; a++)
            match = scheme_is(*a, url, n) ? *a : NULL;
        if (match && used)
            *used = match;
        if (match)
            return *b;
    }
    return NULL;
}

const bp_sink_ops *bp_sink_find(const char *url)
{
    return find_backend(url, NULL);
}

static int unknown_scheme(const char *shown, bp_error *err)
{
    bp_buf known;
    bp_buf_init(&known, 0);
    for (const bp_sink_ops *const *b = g_backends; *b; b++) {
        bp_buf_printf(&known, "%s%s:", known.len ? ", " : "", (*b)->scheme);
        for (const char *const *a = (*b)->aliases; a && *a; a++)
            bp_buf_printf(&known, ", %s:", *a);
    }
    int rc = bp_error_set(err, BP_EINVAL,
                          "output '%s': unknown kind; expected one of %s (e.g. "
                          "sqlite:blockpipe.db)",
                          shown, known.data ? known.data : "");
    bp_buf_release(&known);
    return rc;
}

/* ---- option values ---------------------------------------------------------------------- */

static bool parse_ll(const char *s, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || (*s < '0' || *s > '9'))
        return false;
    *out = v;
    return true;
}

static bool in_choices(const char *choices, const char *v)
{
    size_t n = strlen(v);
    for (const char *c = choices; *c;) {
        size_t len = strcspn(c, "|");
        if (len == n && strncmp(c, v, n) == 0)
            return true;
        c += len + (c[len] == '|');
    }
    return false;
}

static const char *bool_of(const char *v)
{
    static const char *const on[] = {"on", "true", "1", "yes"};
    static const char *const off[] = {"off", "false", "0", "no"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, on[i]) == 0)
            return "1";
        if (strcasecmp(v, off[i]) == 0)
            return "0";
    }
    return NULL;
}

int bp_sink_option_check(const bp_sink_option *o, const char *v, const char *who,
                         const char **canon, bp_error *err)
{
    long long n;
    if (canon)
        *canon = v;
    switch (o->type) {
    case BP_SINK_OPT_INT:
        if (parse_ll(v, &n) && n >= o->min && n <= o->max)
            return 0;
        return bp_error_set(err, BP_EINVAL,
                            "%s: '%s' is not valid: expected an integer from %lld to %lld", who, v,
                            o->min, o->max);
    case BP_SINK_OPT_ENUM:
        if (in_choices(o->choices, v))
            return 0;
        return bp_error_set(err, BP_EINVAL, "%s: '%s' is not valid: expected one of %s", who, v,
                            o->choices);
    case BP_SINK_OPT_BOOL:
        if (bool_of(v)) {
            if (canon)
                *canon = bool_of(v);
            return 0;
        }
        return bp_error_set(err, BP_EINVAL,
                            "%s: '%s' is not valid: expected on or off (true/false, 1/0, yes/no)",
                            who, v);
    case BP_SINK_OPT_STRING:
    default:
        if (*v)
            return 0;
        return bp_error_set(err, BP_EINVAL, "%s: '%s' is not valid: expected a non-empty %s", who,
                            v, o->arg ? o->arg : "value");
    }
}

static int option_index(const bp_sink_opts *o, const char *name)
{
    for (size_t i = 0; o && i < o->count; i++)
        if (strcmp(o->defs[i].name, name) == 0)
            return (int)i;
    return -1;
}

const char *bp_sink_opt(const bp_sink_opts *o, const char *name)
{
    int i = option_index(o, name);
    return i < 0 ? NULL : o->values[i];
}

long long bp_sink_opt_int(const bp_sink_opts *o, const char *name)
{
    const char *v = bp_sink_opt(o, name);
    return v ? strtoll(v, NULL, 10) : 0;
}

/* ---- URLs ------------------------------------------------------------------------------- */

/* Appends the percent-decoded s[0..n) and a NUL to out; returns the offset of the copy, or
 * -1 when out of memory. */
static long put_decoded(bp_buf *out, const char *s, size_t n)
{
    size_t at = out->len;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && bp_hex_digit((unsigned char)s[i + 1]) >= 0 &&
            bp_hex_digit((unsigned char)s[i + 2]) >= 0) {
            rc |= bp_buf_putc(out, (char)(bp_hex_digit((unsigned char)s[i + 1]) * 16 +
                                          bp_hex_digit((unsigned char)s[i + 2])));
            i += 2;
        } else {
            rc |= bp_buf_putc(out, s[i]);
        }
    }
    rc |= bp_buf_putc(out, '\0');
    return rc ? -1 : (long)at;
}

typedef bp_sink_resolved parsed_url;

static int option_by_name(const bp_sink_ops *ops, const char *s, size_t n)
{
    for (size_t i = 0; i < ops->option_count; i++)
        if (strlen(ops->options[i].name) == n && strncmp(ops->options[i].name, s, n) == 0)
            return (int)i;
    return -1;
}

/* "a=b&c=d": the backend's own parameters into p->value_at, the rest kept in the target. */
static void split_query(const bp_sink_ops *ops, const char *q, parsed_url *p)
{
    bool first = true;
    while (*q) {
        size_t n = strcspn(q, "&");
        const char *eq = memchr(q, '=', n);
        size_t kn = eq ? (size_t)(eq - q) : n;
        int i = option_by_name(ops, q, kn);
        if (i >= 0 && eq) {
            p->value_at[i] = put_decoded(&p->store, eq + 1, n - kn - 1);
            p->oom |= p->value_at[i] < 0;
        } else if (n > 0) {
            p->oom |=
                (bp_buf_putc(&p->target, first ? '?' : '&') | bp_buf_append(&p->target, q, n)) != 0;
            first = false;
        }
        q += n + (q[n] == '&');
    }
}

static void parse_url(const bp_sink_ops *ops, const char *url, parsed_url *p)
{
    const char *t = strchr(url, ':') + 1;
    if (strncmp(t, "//", 2) == 0)
        t += 2;
    for (size_t i = 0; i < BP_SINK_MAX_OPTIONS; i++)
        p->value_at[i] = -1;
    size_t base = ops->option_count ? strcspn(t, "?") : strlen(t);
    /* bp_buf keeps its text NUL-terminated; an empty target still gets storage */
    p->oom = bp_buf_reserve(&p->target, base + 1) != 0 || bp_buf_append(&p->target, t, base) != 0;
    if (t[base] == '?')
        split_query(ops, t + base + 1, p);
}

static const char *setting_of(const bp_sink_settings *s, const char *key)
{
    const char *v = NULL;
    for (size_t i = 0; key && s && i < s->count; i++)
        if (strcmp(s->items[i].key, key) == 0)
            v = s->items[i].value; /* the last one given wins */
    return v;
}

/* The option values of one output: URL parameter > setting > default, each checked. */
static int build_opts(const bp_sink_ops *ops, const parsed_url *p, const bp_sink_settings *set,
                      const char *shown, bp_sink_opts *o, bp_error *err)
{
    memset(o, 0, sizeof(*o));
    o->defs = ops->options;
    o->count = ops->option_count;
    o->chains = set ? set->chains : NULL;
    for (size_t i = 0; i < ops->option_count; i++) {
        const bp_sink_option *d = &ops->options[i];
        const char *v = p->value_at[i] >= 0 ? p->store.data + p->value_at[i] : NULL;
        char who[600];
        if (v)
            snprintf(who, sizeof(who), "output '%s': parameter %s", shown, d->name);
        else if ((v = setting_of(set, d->key)) != NULL)
            snprintf(who, sizeof(who), "%s (%s outputs)", d->key, ops->title);
        else
            v = d->def;
        if (v && bp_sink_option_check(d, v, who, &o->values[i], err) != 0)
            return err->code;
    }
    return 0;
}

void bp_sink_resolved_release(bp_sink_resolved *r)
{
    bp_buf_release(&r->target);
    bp_buf_release(&r->store);
}

int bp_sink_resolve(const char *url, const bp_sink_settings *set, bp_sink_resolved *r,
                    bp_error *err)
{
    char shown[512]; /* the URL as messages may show it: no password */
    bp_url_redact(url, shown, sizeof(shown));
    memset(r, 0, sizeof(*r));
    bp_buf_init(&r->target, 0);
    bp_buf_init(&r->store, 0);
    r->ops = bp_sink_find(url);
    if (!r->ops)
        return unknown_scheme(shown, err);
    if (r->ops->missing)
        return bp_error_set(err, BP_EINVAL,
                            "output '%s': this blockpipe was built without the %s output "
                            "(missing at build time: %s); install it and rebuild",
                            shown, r->ops->title, r->ops->missing);
    parse_url(r->ops, url, r);
    int rc = 0;
    if (r->oom)
        rc = bp_error_set(err, BP_ENOMEM, "out of memory");
    else if (r->target.data[0] == '\0' || r->target.data[0] == '?')
        rc = bp_error_set(err, BP_EINVAL, "output '%s': missing %s after the scheme (%s)", shown,
                          strstr(r->ops->usage, "://") ? "the address" : "the path", r->ops->usage);
    else
        rc = build_opts(r->ops, r, set, shown, &r->opts, err);
    find_backend(url, &r->opts.scheme);
    if (rc != 0)
        bp_sink_resolved_release(r);
    return rc;
}

int bp_sink_open(const char *url, const bp_sink_settings *settings, bp_sink **out, bp_error *err)
{
    char shown[512]; /* the URL as messages may show it: no password */
    bp_url_redact(url, shown, sizeof(shown));
    *out = NULL;
    bp_sink_resolved r;
    int rc = bp_sink_resolve(url, settings, &r, err);
    if (rc != 0)
        return rc;
    const bp_sink_ops *ops = r.ops;
    rc = ops->open(out, r.target.data, ops->option_count ? &r.opts : NULL, err);
    bp_sink_resolved_release(&r);
    if (rc != 0)
        return bp_error_prefix(err, "output '%s': ", shown);
    (*out)->ops = ops;
    (*out)->url = strdup(shown);
    if (!(*out)->url) {
        ops->close(*out);
        *out = NULL;
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    }
    return 0;
}

int bp_sink_open_url(const char *url, bp_sink **out, bp_error *err)
{
    return bp_sink_open(url, NULL, out, err);
}

int bp_sink_migrate(const char *url, const bp_sink_settings *settings, char *report, size_t cap,
                    bp_error *err)
{
    char shown[512];
    bp_url_redact(url, shown, sizeof(shown));
    bp_sink_resolved r;
    int rc = bp_sink_resolve(url, settings, &r, err);
    if (rc != 0)
        return rc;
    const bp_sink_ops *ops = r.ops;
    if (!ops->migrate)
        rc = bp_error_set(err, BP_EINVAL,
                          "output '%s': %s outputs have no schema to migrate (their files are "
                          "created when they are opened)",
                          shown, ops->title);
    else if (ops->migrate(r.target.data, ops->option_count ? &r.opts : NULL, report, cap, err) != 0)
        rc = bp_error_prefix(err, "output '%s': ", shown);
    bp_sink_resolved_release(&r);
    return rc;
}

void bp_sink_close(bp_sink *s)
{
    if (!s)
        return;
    char *url = s->url;
    s->ops->close(s);
    free(url);
}

int bp_sink_reader_open(const char *url, const bp_sink_settings *settings, bp_sink_reader **out,
                        bp_error *err)
{
    char shown[512];
    bp_url_redact(url, shown, sizeof(shown));
    *out = NULL;
    bp_sink_resolved r;
    int rc = bp_sink_resolve(url, settings, &r, err);
    if (rc != 0)
        return rc;
    const bp_sink_ops *ops = r.ops;
    if (!ops->open_reader)
        rc = bp_error_set(err, BP_EINVAL,
                          "output '%s': %s outputs cannot be read back (the API reads SQLite "
                          "and PostgreSQL outputs)",
                          shown, ops->title);
    else if (ops->open_reader(out, r.target.data, ops->option_count ? &r.opts : NULL, err) != 0)
        rc = bp_error_prefix(err, "output '%s': ", shown);
    else
        (*out)->ops = ops;
    bp_sink_resolved_release(&r);
    return rc;
}

int bp_sink_read(bp_sink_reader *r, const bp_read_query *q, bp_read_row_fn fn, void *ctx,
                 bp_error *err)
{
    return r->ops->read(r, q, fn, ctx, err);
}

void bp_sink_reader_close(bp_sink_reader *r)
{
    if (r)
        r->ops->close_reader(r);
}
