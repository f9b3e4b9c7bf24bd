/* request.c - request parameters: storage, query string decoding, checked values. */
#include "api/request.h"

#include <stdio.h>
#include <string.h>

#include "util/hex.h"

void bp_api_request_init(bp_api_request *r, enum bp_api_method m, const char *path, size_t len)
{
    memset(r, 0, sizeof(*r));
    r->method = m;
    if (len >= sizeof(r->path))
        len = sizeof(r->path) - 1;
    memcpy(r->path, path, len);
    r->path[len] = '\0';
}

static char *store(bp_api_request *r, const char *s, size_t len)
{
    if (r->used + len + 1 > sizeof(r->store))
        return NULL;
    char *p = r->store + r->used;
    memcpy(p, s, len);
    p[len] = '\0';
    r->used += len + 1;
    return p;
}

int bp_api_request_add(bp_api_request *r, const char *frag, size_t len, bp_error *err)
{
    if (r->nparams == BP_API_MAX_PARAMS)
        return bp_error_set(err, BP_EINVAL, "too many query parameters (at most %d)",
                            BP_API_MAX_PARAMS);
    const char *eq = memchr(frag, '=', len);
    size_t nlen = eq ? (size_t)(eq - frag) : len;
    const char *name = store(r, frag, nlen);
    const char *value = name ? store(r, eq ? eq + 1 : "", eq ? len - nlen - 1 : 0) : NULL;
    if (!value)
        return bp_error_set(err, BP_EINVAL, "query parameters too long (at most %d bytes)",
                            BP_API_STORE);
    r->params[r->nparams++] = (bp_api_param){name, value};
    return 0;
}

/* Percent- and '+'-decodes s[0..len) into out (at least len bytes); returns the length, or
 * -1 for a '%' not followed by two hex digits. */
static long decode(const char *s, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%') {
            if (i + 2 >= len)
                return -1;
            int hi = bp_hex_digit((unsigned char)s[i + 1]),
                lo = bp_hex_digit((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    return (long)o;
}

int bp_api_request_query(bp_api_request *r, const char *qs, size_t len, bp_error *err)
{
    char tmp[BP_API_STORE];
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && qs[end] != '&')
            end++;
        if (end - i > sizeof(tmp))
            return bp_error_set(err, BP_EINVAL, "query parameters too long (at most %d bytes)",
                                BP_API_STORE);
        if (end > i) {
            long n = decode(qs + i, end - i, tmp);
            if (n < 0)
                return bp_error_set(err, BP_EINVAL, "query string: bad percent-encoding");
            int rc = bp_api_request_add(r, tmp, (size_t)n, err);
            if (rc != 0)
                return rc;
        }
        i = end + 1;
    }
    return 0;
}

void bp_api_param_remove(bp_api_request *r, const char *name)
{
    size_t k = 0;
    for (size_t i = 0; i < r->nparams; i++)
        if (strcmp(r->params[i].name, name) != 0)
            r->params[k++] = r->params[i];
    r->nparams = k;
}

const char *bp_api_param_get(const bp_api_request *r, const char *name)
{
    for (size_t i = r->nparams; i-- > 0;)
        if (strcmp(r->params[i].name, name) == 0)
            return r->params[i].value;
    return NULL;
}

void bp_api_printable(const char *s, char *out, size_t cap)
{
    size_t o = 0, shown = 0;
    for (; *s && o + 5 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (++shown > 64) {
            o += (size_t)snprintf(out + o, cap - o, "...");
            break;
        }
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
    }
    out[o < cap ? o : cap - 1] = '\0';
}

static int invalid(const char *name, const char *v, const char *expected, bp_error *err)
{
    char shown[300];
    bp_api_printable(v, shown, sizeof(shown));
    return bp_error_set(err, BP_EINVAL, "%s: '%s' is not valid: expected %s", name, shown,
                        expected);
}

bool bp_api_u64_ok(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s || strlen(s) > 20)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

int bp_api_param_u64(const bp_api_request *r, const char *name, uint64_t lo, uint64_t hi, bool *set,
                     uint64_t *out, bp_error *err)
{
    const char *v = bp_api_param_get(r, name);
    *set = false;
    if (!v)
        return 0;
    if (!bp_api_u64_ok(v, out) || *out < lo || *out > hi) {
        char expected[96];
        snprintf(expected, sizeof(expected), "an integer from %llu to %llu", (unsigned long long)lo,
                 (unsigned long long)hi);
        return invalid(name, v, expected, err);
    }
    *set = true;
    return 0;
}

bool bp_api_hex_ok(const char *s, size_t bytes, char *out)
{
    if (strlen(s) != 2 + 2 * bytes || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
        return false;
    out[0] = '0';
    out[1] = 'x';
    for (size_t i = 2; i < 2 + 2 * bytes; i++) {
        int d = bp_hex_digit((unsigned char)s[i]);
        if (d < 0)
            return false;
        out[i] = "0123456789abcdef"[d];
    }
    out[2 + 2 * bytes] = '\0';
    return true;
}

int bp_api_param_hex(const bp_api_request *r, const char *name, size_t bytes, bool *set, char *out,
                     bp_error *err)
{
    const char *v = bp_api_param_get(r, name);
    *set = false;
    if (!v)
        return 0;
    if (!bp_api_hex_ok(v, bytes, out)) {
        char expected[64];
        snprintf(expected, sizeof(expected), "0x and %zu hex digits", 2 * bytes);
        return invalid(name, v, expected, err);
    }
    *set = true;
    return 0;
}

int bp_api_param_enum(const bp_api_request *r, const char *name, const char *choices, bool *set,
                      const char **out, bp_error *err)
{
    const char *v = bp_api_param_get(r, name);
    *set = false;
    if (!v)
        return 0;
    size_t n = strlen(v);
    for (const char *c = choices; *c;) {
        size_t w = strcspn(c, "|");
        if (w == n && strncmp(c, v, n) == 0) {
            *set = true;
            *out = v;
            return 0;
        }
        c += w + (c[w] == '|');
    }
    char expected[160];
    snprintf(expected, sizeof(expected), "one of %s", choices);
    return invalid(name, v, expected, err);
}

int bp_api_params_known(const bp_api_request *r, const char *const *known, bp_error *err)
{
    for (size_t i = 0; i < r->nparams; i++) {
        bool ok = false;
        for (const char *const *k = known; *k && !ok; k++)
            ok = strcmp(*k, r->params[i].name) == 0;
        if (!ok) {
            char shown[300], list[256] = "";
            bp_api_printable(r->params[i].name, shown, sizeof(shown));
            for (const char *const *k = known; *k; k++)
                snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
                         k == known ? "" : ", ", *k);
            return bp_error_set(err, BP_EINVAL, "unknown parameter '%s' (expected %s)", shown,
                                *list ? list : "none");
        }
    }
    return 0;
}
