/* url.c - credential-free rendering of URLs, headers and messages (rules in url.h). */
#include "util/url.h"

#include <ctype.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MASK "***"

/* A setting's name that says its value is a secret: exact key names, or a word inside a longer
 * one (libpq's sslpassword, librdkafka's sasl.password / ssl.key.password /
 * sasl.oauthbearer.client.secret, a mistyped "sasl.pasword" too: "pass"). */
bool bp_secret_name(const char *name, size_t len)
{
    static const char *const exact[] = {"key", "sig", "auth"};
    static const char *const words[] = {"pass",       "pasw",    "pwd",     "secret",
                                        "token",      "apikey",  "api_key", "api-key",
                                        "credential", "private", "key.pem", "oauthbearer.config"};
    for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
        if (strlen(exact[i]) == len && strncasecmp(exact[i], name, len) == 0)
            return true;
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        size_t n = strlen(words[i]);
        for (size_t at = 0; at + n <= len; at++)
            if (strncasecmp(name + at, words[i], n) == 0)
                return true;
    }
    return false;
}

static bool secret_param(const char *name, size_t len)
{
    return bp_secret_name(name, len);
}

/* Appends s[0..n) to out at *pos, never past outsz - 1. */
static void put(char *out, size_t outsz, size_t *pos, const char *s, size_t n)
{
    while (n-- && *pos + 1 < outsz)
        out[(*pos)++] = *s++;
    out[*pos] = '\0';
}

static void put_mask(char *out, size_t outsz, size_t *pos)
{
    put(out, outsz, pos, MASK, sizeof(MASK) - 1);
}

bool bp_url_key_like(const char *seg, size_t n)
{
    bool letter = false, digit = false, upper = false, lower = false;
    if (n < 10)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)seg[i];
        if (isalpha(c))
            letter = true, upper |= isupper(c) != 0, lower |= islower(c) != 0;
        else if (isdigit(c))
            digit = true;
        else if (!strchr("-_.~+=%;", c)) /* ';': a path parameter, "/;apikey=K" */
            return false;
    }
    /* Letters of both cases (20+) or digits alone (16+) are keys too: no word or chain name
     * looks like either. */
    return (letter && digit) || n >= 32 || (upper && lower && !digit && n >= 20) ||
           (digit && !letter && n >= 16);
}

/* An RPC endpoint's URL: its path and every query value may carry the key. */
static bool endpoint_scheme(const char *url, size_t n)
{
    static const char *const schemes[] = {"http", "https", "ws", "wss"};
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
        if (strlen(schemes[i]) == n && strncasecmp(url, schemes[i], n) == 0)
            return true;
    return false;
}

/* Every value of an endpoint's query; only values of secret names elsewhere (a database
 * URL's "?schema=x" is worth seeing). */
static void redact_query(const char *q, bool all, char *out, size_t outsz, size_t *pos)
{
    while (*q && *q != '#') {
        size_t seg = strcspn(q, "&#");
        const char *eq = memchr(q, '=', seg);
        if (eq && (all || secret_param(q, (size_t)(eq - q)))) {
            put(out, outsz, pos, q, (size_t)(eq - q) + 1);
            if (eq + 1 < q + seg)
                put_mask(out, outsz, pos);
        } else if (!eq && all && seg) {
            put_mask(out, outsz, pos);
        } else {
            put(out, outsz, pos, q, seg);
        }
        q += seg;
        if (*q == '&')
            put(out, outsz, pos, q++, 1);
    }
    if (*q == '#')
        put(out, outsz, pos, all && q[1] ? "#" MASK : q, all && q[1] ? 4 : strlen(q));
}

static void redact_path(const char *p, size_t n, char *out, size_t outsz, size_t *pos)
{
    const char *end = p + n;
    while (p < end) {
        size_t seg = 0;
        while (p + seg < end && p[seg] != '/')
            seg++;
        if (bp_url_key_like(p, seg))
            put_mask(out, outsz, pos);
        else
            put(out, outsz, pos, p, seg);
        p += seg;
        if (p < end)
            put(out, outsz, pos, p++, 1);
    }
}

/* The '@' that ends the userinfo of the authority at auth, or NULL: the last one before the
 * path (a password may hold an '@', a path may too). */
static const char *userinfo_at(const char *auth)
{
    size_t hostpart = strcspn(auth, "/?#");
    const char *at = NULL;
    for (const char *c = auth; c < auth + hostpart; c++)
        at = *c == '@' ? c : at;
    return at;
}

void bp_url_redact(const char *url, char *out, size_t outsz)
{
    size_t pos = 0;
    if (!outsz)
        return;
    out[0] = '\0';
    const char *scheme = strstr(url, "://");
    bool endpoint = scheme && endpoint_scheme(url, (size_t)(scheme - url));
    const char *auth = scheme ? scheme + 3 : url;
    const char *at = userinfo_at(auth);
    put(out, outsz, &pos, url, (size_t)(auth - url));
    if (at) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        if (colon)
            put(out, outsz, &pos, auth, (size_t)(colon - auth) + 1);
        put(out, outsz, &pos, MASK "@", 4);
        auth = at + 1;
    }
    size_t upto_query = strcspn(auth, endpoint ? "?#" : "?");
    if (endpoint) {
        size_t host = strcspn(auth, "/?#");
        put(out, outsz, &pos, auth, host);
        redact_path(auth + host, upto_query - host, out, outsz, &pos);
    } else {
        put(out, outsz, &pos, auth, upto_query);
    }
    const char *q = auth + upto_query;
    if (*q == '?') {
        put(out, outsz, &pos, q, 1);
        redact_query(q + 1, endpoint, out, outsz, &pos);
    } else if (*q == '#') {
        redact_query(q, endpoint, out, outsz, &pos);
    }
}

void bp_header_redact(const char *header, char *out, size_t outsz)
{
    size_t pos = 0;
    if (!outsz)
        return;
    out[0] = '\0';
    const char *colon = strchr(header, ':');
    if (!colon) {
        put_mask(out, outsz, &pos);
        return;
    }
    put(out, outsz, &pos, header, (size_t)(colon - header) + 1);
    const char *v = colon + 1 + strspn(colon + 1, " \t");
    if (*v) {
        put(out, outsz, &pos, " ", 1);
        put_mask(out, outsz, &pos);
    }
}

/* ---- registered secrets ---- */

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static char **g_secrets;
static size_t g_count, g_cap;

static void add_n(const char *s, size_t n)
{
    if (n < BP_SECRET_MIN)
        return;
    pthread_mutex_lock(&g_lock);
    for (size_t i = 0; i < g_count; i++)
        if (strlen(g_secrets[i]) == n && memcmp(g_secrets[i], s, n) == 0)
            goto out;
    if (g_count == g_cap) {
        size_t cap = g_cap ? g_cap * 2 : 16;
        char **grown = realloc(g_secrets, cap * sizeof(*grown));
        if (!grown)
            goto out; /* out of memory: the URL redaction still masks what it shows */
        g_secrets = grown;
        g_cap = cap;
    }
    char *copy = strndup(s, n);
    if (copy)
        g_secrets[g_count++] = copy;
out:
    pthread_mutex_unlock(&g_lock);
}

void bp_secret_add(const char *s)
{
    add_n(s, strlen(s));
}

static void add_query_values(const char *q)
{
    while (*q && *q != '#') {
        size_t seg = strcspn(q, "&#");
        const char *eq = memchr(q, '=', seg);
        const char *v = eq ? eq + 1 : q;
        size_t n = (size_t)(q + seg - v);
        /* Every value is masked in a URL shown; in free text only those that cannot be an
         * ordinary word ("?network=mainnet" must not mask "mainnet" in every line). */
        if ((eq && secret_param(q, (size_t)(eq - q))) || bp_url_key_like(v, n) || n >= 16)
            add_n(v, n);
        q += seg + (q[seg] == '&');
    }
}

void bp_secret_add_url(const char *url)
{
    const char *scheme = strstr(url, "://");
    const char *auth = scheme ? scheme + 3 : url;
    const char *at = userinfo_at(auth);
    if (at) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        const char *pw = colon ? colon + 1 : auth;
        add_n(pw, (size_t)(at - pw));
        auth = at + 1;
    }
    const char *p = auth + strcspn(auth, "/?#");
    while (*p == '/') {
        size_t seg = strcspn(++p, "/?#");
        if (bp_url_key_like(p, seg))
            add_n(p, seg);
        p += seg;
    }
    if (*p == '?')
        add_query_values(p + 1);
}

void bp_secret_add_dsn(const char *url)
{
    const char *scheme = strstr(url, "://");
    const char *auth = scheme ? scheme + 3 : url;
    const char *at = userinfo_at(auth);
    if (at) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        if (colon) /* a database URL's user name alone is worth seeing */
            add_n(colon + 1, (size_t)(at - colon - 1));
    }
    const char *q = strchr(url, '?');
    if (q) /* "?a=1&b=2" and libpq's "key=value key=value" */
        bp_secret_add_settings(q + 1, "&# ");
}

void bp_secret_add_settings(const char *s, const char *seps)
{
    for (;;) {
        size_t seg = strcspn(s, seps);
        const char *eq = memchr(s, '=', seg);
        if (eq && secret_param(s, (size_t)(eq - s)))
            add_n(eq + 1, (size_t)(s + seg - eq - 1));
        if (!s[seg])
            return;
        s += seg + 1;
    }
}

void bp_secret_add_header(const char *header)
{
    const char *colon = strchr(header, ':');
    const char *v = colon ? colon + 1 + strspn(colon + 1, " \t") : header;
    size_t n = strlen(v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    add_n(v, n);
    const char *space = NULL;
    for (const char *c = v; c < v + n; c++)
        space = *c == ' ' ? c : space;
    if (space)
        add_n(space + 1, (size_t)(v + n - space - 1));
}

void bp_secret_scrub(char *text)
{
    pthread_mutex_lock(&g_lock);
    for (size_t i = 0; i < g_count; i++) {
        size_t n = strlen(g_secrets[i]);
        char *hit = text;
        while ((hit = strstr(hit, g_secrets[i])) != NULL) {
            memcpy(hit, MASK, sizeof(MASK) - 1); /* n >= BP_SECRET_MIN > 3: it only shrinks */
            memmove(hit + 3, hit + n, strlen(hit + n) + 1);
            hit += 3;
        }
    }
    pthread_mutex_unlock(&g_lock);
}

void bp_secret_clear(void)
{
    pthread_mutex_lock(&g_lock);
    for (size_t i = 0; i < g_count; i++)
        free(g_secrets[i]);
    free(g_secrets);
    g_secrets = NULL;
    g_count = g_cap = 0;
    pthread_mutex_unlock(&g_lock);
}
