/* url.c - credential-free rendering of URLs for logs and messages. */
#include "util/url.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool secret_param(const char *name, size_t len)
{
    static const char *const names[] = {"password", "apikey", "api_key", "key", "token"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == len && strncasecmp(names[i], name, len) == 0)
            return true;
    return false;
}

/* Appends s[0..n) to out at *pos, never past outsz - 1. */
static void put(char *out, size_t outsz, size_t *pos, const char *s, size_t n)
{
    while (n-- && *pos + 1 < outsz)
        out[(*pos)++] = *s++;
    out[*pos] = '\0';
}

static void redact_query(const char *q, char *out, size_t outsz, size_t *pos)
{
    while (*q) {
        size_t seg = strcspn(q, "&");
        const char *eq = memchr(q, '=', seg);
        if (eq && secret_param(q, (size_t)(eq - q))) {
            put(out, outsz, pos, q, (size_t)(eq - q) + 1);
            put(out, outsz, pos, "***", 3);
        } else {
            put(out, outsz, pos, q, seg);
        }
        q += seg;
        if (*q == '&')
            put(out, outsz, pos, q++, 1);
    }
}

void bp_url_redact(const char *url, char *out, size_t outsz)
{
    size_t pos = 0;
    if (!outsz)
        return;
    out[0] = '\0';
    const char *scheme = strstr(url, "://");
    const char *auth = scheme ? scheme + 3 : url;
    size_t hostpart = strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', hostpart);
    put(out, outsz, &pos, url, (size_t)(auth - url));
    if (at) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        if (colon)
            put(out, outsz, &pos, auth, (size_t)(colon - auth) + 1);
        put(out, outsz, &pos, "***@", 4);
        auth = at + 1;
    }
    const char *q = strchr(auth, '?');
    if (!q) {
        put(out, outsz, &pos, auth, strlen(auth));
        return;
    }
    put(out, outsz, &pos, auth, (size_t)(q - auth) + 1);
    redact_query(q + 1, out, outsz, &pos);
}
