/* creds.c - endpoint headers, TLS files and secrets read from the environment or files. */
#include "cli/creds.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/url.h"

#define SECRET_FILE_MAX (64 << 10)

static int read_secret_file(const char *path, const char *who, bp_buf *out, bp_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return bp_error_set(err, BP_EINVAL, "%s: cannot read the file '%s' (named by @%s): %s", who,
                            path, path, strerror(errno));
    char chunk[4096];
    size_t n;
    int rc = 0;
    while (rc == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = out->len + n > SECRET_FILE_MAX ? BP_EINVAL : bp_buf_append(out, chunk, n);
    bool failed = ferror(f);
    fclose(f);
    if (rc == BP_EINVAL)
        return bp_error_set(err, rc, "%s: the file '%s' is larger than %d KiB", who, path,
                            SECRET_FILE_MAX >> 10);
    if (rc != 0 || failed)
        return bp_error_set(err, rc ? rc : BP_EIO, "%s: cannot read the file '%s'", who, path);
    while (out->len && (out->data[out->len - 1] == '\n' || out->data[out->len - 1] == '\r'))
        out->len--;
    if (!out->len)
        return bp_error_set(err, BP_EINVAL, "%s: the file '%s' (named by @%s) is empty", who, path,
                            path);
    if (bp_buf_putc(out, '\0') != 0)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    out->len--; /* the caller appends the rest */
    bp_secret_add(out->data);
    return 0;
}

/* One ${NAME} at v (v[0] == '$', v[1] == '{'): its value appended; *used: bytes read. */
static int expand_var(const char *v, const char *who, bp_buf *out, size_t *used, bp_error *err)
{
    const char *close = strchr(v + 2, '}');
    size_t n = close ? (size_t)(close - v - 2) : 0;
    bool ok = n > 0 && !isdigit((unsigned char)v[2]);
    for (size_t i = 0; ok && i < n; i++)
        ok = isalnum((unsigned char)v[2 + i]) || v[2 + i] == '_';
    if (!ok)
        return bp_error_set(err, BP_EINVAL,
                            "%s: '${' must be followed by an environment variable name and '}' "
                            "(e.g. ${API_KEY})",
                            who);
    char name[128];
    if (n >= sizeof(name))
        return bp_error_set(err, BP_EINVAL, "%s: environment variable name too long", who);
    memcpy(name, v + 2, n);
    name[n] = '\0';
    const char *value = getenv(name);
    if (!value || !*value)
        return bp_error_set(err, BP_EINVAL,
                            "%s: the environment variable %s (named by ${%s}) is not set", who,
                            name, name);
    bp_secret_add(value);
    *used = n + 3;
    return bp_buf_puts(out, value);
}

int bp_creds_expand(const char *v, const char *who, char **out, bp_error *err)
{
    bp_buf b;
    int rc = 0;
    *out = NULL;
    bp_buf_init(&b, 0);
    if (v[0] == '@') {
        rc = read_secret_file(v + 1, who, &b, err);
    } else {
        while (rc == 0 && *v) {
            size_t used = 1;
            if (v[0] == '$' && v[1] == '{')
                rc = expand_var(v, who, &b, &used, err);
            else
                rc = bp_buf_putc(&b, *v);
            v += used;
        }
    }
    if (rc == 0)
        rc = bp_buf_putc(&b, '\0');
    if (rc == 0 && !(*out = strdup(b.data)))
        rc = BP_ENOMEM;
    if (rc == BP_ENOMEM)
        bp_error_set(err, rc, "out of memory");
    bp_buf_release(&b);
    return rc;
}

static bool token_char(char c)
{
    return isalnum((unsigned char)c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

int bp_creds_add_header(bp_endpoint_creds *c, const char *name, size_t name_len, const char *value,
                        const char *who, bp_error *err)
{
    bool ok = name_len > 0 && name_len < 128;
    for (size_t i = 0; ok && i < name_len; i++)
        ok = token_char(name[i]);
    if (!ok)
        return bp_error_set(err, BP_EINVAL,
                            "%s: '%.*s' is not a header name (letters, digits and -, e.g. "
                            "Authorization)",
                            who, (int)(name_len < 128 ? name_len : 128), name);
    if (c->header_count == BP_MAX_HEADERS)
        return bp_error_set(err, BP_EINVAL, "%s: too many headers (at most %d)", who,
                            BP_MAX_HEADERS);
    char *v = NULL;
    int rc = bp_creds_expand(value + strspn(value, " \t"), who, &v, err);
    if (rc != 0)
        return rc;
    if (strpbrk(v, "\r\n")) {
        free(v);
        return bp_error_set(err, BP_EINVAL, "%s: the value of header %.*s has a line break", who,
                            (int)name_len, name);
    }
    size_t cap = name_len + strlen(v) + 3;
    char *line = malloc(cap);
    if (line) {
        snprintf(line, cap, "%.*s: %s", (int)name_len, name, v);
        bp_secret_add_header(line);
        c->headers[c->header_count++] = line;
    }
    free(v);
    return line ? 0 : bp_error_set(err, BP_ENOMEM, "out of memory");
}

int bp_creds_add_header_lines(bp_endpoint_creds *c, const char *text, const char *who,
                              bp_error *err)
{
    int rc = 0;
    while (rc == 0 && *text) {
        size_t n = strcspn(text, "\r\n");
        if (n) {
            char *line = strndup(text, n);
            const char *colon = line ? strchr(line, ':') : NULL;
            if (!line)
                rc = bp_error_set(err, BP_ENOMEM, "out of memory");
            else if (!colon)
                rc = bp_error_set(err, BP_EINVAL,
                                  "%s: expected 'Name: value' (e.g. 'Authorization: Bearer "
                                  "${API_KEY}')",
                                  who);
            else
                rc = bp_creds_add_header(c, line, (size_t)(colon - line), colon + 1, who, err);
            free(line);
        }
        text += n + strspn(text + n, "\r\n");
    }
    return rc;
}

int bp_creds_set_file(char **slot, const char *path, const char *who, bp_error *err)
{
    FILE *f = *path ? fopen(path, "rb") : NULL;
    if (!f)
        return bp_error_set(err, BP_EINVAL, "%s: cannot read '%s': %s", who, path,
                            *path ? strerror(errno) : "empty path");
    fclose(f);
    char *copy = strdup(path);
    if (!copy)
        return bp_error_set(err, BP_ENOMEM, "out of memory");
    free(*slot);
    *slot = copy;
    return 0;
}

void bp_creds_clear_headers(bp_endpoint_creds *c)
{
    for (int i = 0; i < c->header_count; i++)
        free(c->headers[i]);
    c->header_count = 0;
}

void bp_creds_release(bp_endpoint_creds *c)
{
    bp_creds_clear_headers(c);
    free(c->ca_file);
    free(c->cert_file);
    free(c->key_file);
    c->ca_file = c->cert_file = c->key_file = NULL;
}

void bp_config_auth(const bp_config *cfg, int i, bp_endpoint_auth *out)
{
    const bp_endpoint_creds *own = i < 0 ? &cfg->ws_creds : &cfg->rpcs[i].creds;
    const bp_endpoint_creds *def = &cfg->rpc_creds;
    /* the --rpc-header defaults are for the HTTP endpoints: a WebSocket may be another
     * provider's */
    const bp_endpoint_creds *hdr = own->header_count || i < 0 ? own : def;
    *out = (bp_endpoint_auth){
        .headers = (const char *const *)hdr->headers,
        .header_count = (size_t)hdr->header_count,
        .ca_file = own->ca_file ? own->ca_file : def->ca_file,
        .cert_file = own->cert_file ? own->cert_file : def->cert_file,
        .key_file = own->key_file ? own->key_file : def->key_file,
    };
    if (own->cert_file && !own->key_file) /* a key of the defaults is not this cert's */
        out->key_file = NULL;
}
