/* hex.c - hex quantities and 256-bit integer arithmetic (no allocation: decoding hot path). */
#include "util/hex.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockpipe/columns.h"
#include "blockpipe/error.h"
#include "util/arena.h"

__extension__ typedef unsigned __int128 bp_u128;

#define POW10_19 10000000000000000000ULL

/* Digit value + 1 for hex digits, 0 otherwise (the default of every other entry): one
 * lookup per byte instead of range checks. */
const unsigned char bp_hex_digit_table[256] = {
    ['0'] = 0 + 1,  ['1'] = 1 + 1,  ['2'] = 2 + 1,  ['3'] = 3 + 1,  ['4'] = 4 + 1,  ['5'] = 5 + 1,
    ['6'] = 6 + 1,  ['7'] = 7 + 1,  ['8'] = 8 + 1,  ['9'] = 9 + 1,  ['a'] = 10 + 1, ['b'] = 11 + 1,
    ['c'] = 12 + 1, ['d'] = 13 + 1, ['e'] = 14 + 1, ['f'] = 15 + 1, ['A'] = 10 + 1, ['B'] = 11 + 1,
    ['C'] = 12 + 1, ['D'] = 13 + 1, ['E'] = 14 + 1, ['F'] = 15 + 1,
};
#define HEX_DIGIT(c) bp_hex_digit((unsigned char)(c))

static const char hex_chars[] = "0123456789abcdef";

static bool has_prefix(const char *s, size_t len)
{
    return s && len >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
}

/* Checks the syntax of a quantity and returns the span of significant digits. */
static int quantity_digits(const char *s, size_t len, const char **digits, size_t *ndigits)
{
    if (!has_prefix(s, len) || len == 2)
        return BP_EPARSE;
    size_t i = 2;
    while (i < len && s[i] == '0')
        i++;
    for (size_t j = i; j < len; j++) {
        if (HEX_DIGIT(s[j]) < 0)
            return BP_EPARSE;
    }
    *digits = s + i;
    *ndigits = len - i;
    return BP_OK;
}

int bp_hex_to_u64(const char *s, size_t len, uint64_t *out)
{
    const char *d;
    size_t n;
    int rc = quantity_digits(s, len, &d, &n);
    if (rc != BP_OK)
        return rc;
    if (n > 16)
        return BP_ETOOBIG;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 4) | (uint64_t)HEX_DIGIT(d[i]);
    *out = v;
    return BP_OK;
}

int bp_hex_to_u256(const char *s, size_t len, bp_u256 *out)
{
    const char *d;
    size_t n;
    int rc = quantity_digits(s, len, &d, &n);
    if (rc != BP_OK)
        return rc;
    if (n > 64)
        return BP_ETOOBIG;
    bp_u256 v = {{0, 0, 0, 0}};
    /* Walk from the least significant digit so each nibble lands in a known limb. */
    for (size_t k = 0; k < n; k++) {
        uint64_t nib = (uint64_t)HEX_DIGIT(d[n - 1 - k]);
        v.w[k / 16] |= nib << (4 * (k % 16));
    }
    *out = v;
    return BP_OK;
}

bool bp_hex_is_data(const char *s, size_t len)
{
    if (!has_prefix(s, len))
        return false;
    for (size_t i = 2; i < len; i++) {
        if (HEX_DIGIT(s[i]) < 0)
            return false;
    }
    return true;
}

long bp_hex_to_bytes(const char *s, size_t len, unsigned char *out)
{
    if (!has_prefix(s, len) || (len & 1u))
        return -1;
    size_t n = (len - 2) / 2;
    const unsigned char *h = (const unsigned char *)s + 2;
    for (size_t i = 0; i < n; i++) {
        int hi = bp_hex_digit(h[2 * i]), lo = bp_hex_digit(h[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return (long)n;
}

void bp_u256_from_u64(bp_u256 *out, uint64_t x)
{
    out->w[0] = x;
    out->w[1] = out->w[2] = out->w[3] = 0;
}

bool bp_u256_fits_u64(const bp_u256 *v)
{
    return (v->w[1] | v->w[2] | v->w[3]) == 0;
}

static bool u256_is_zero(const bp_u256 *v)
{
    return (v->w[0] | v->w[1] | v->w[2] | v->w[3]) == 0;
}

int bp_u256_cmp(const bp_u256 *a, const bp_u256 *b)
{
    for (int i = 3; i >= 0; i--) {
        if (a->w[i] != b->w[i])
            return a->w[i] < b->w[i] ? -1 : 1;
    }
    return 0;
}

int bp_u256_add(bp_u256 *out, const bp_u256 *a, const bp_u256 *b)
{
    uint64_t carry = 0;
    for (int i = 0; i < 4; i++) {
        bp_u128 t = (bp_u128)a->w[i] + b->w[i] + carry;
        out->w[i] = (uint64_t)t;
        carry = (uint64_t)(t >> 64);
    }
    return carry ? 1 : 0;
}

int bp_u256_mul_u64(bp_u256 *out, const bp_u256 *a, uint64_t m)
{
    uint64_t carry = 0;
    for (int i = 0; i < 4; i++) {
        bp_u128 t = (bp_u128)a->w[i] * m + carry;
        out->w[i] = (uint64_t)t;
        carry = (uint64_t)(t >> 64);
    }
    return carry ? 1 : 0;
}

/* v /= d in place; returns the remainder. */
static uint64_t u256_divmod_u64(bp_u256 *v, uint64_t d)
{
    bp_u128 rem = 0;
    for (int i = 3; i >= 0; i--) {
        bp_u128 cur = (rem << 64) | v->w[i];
        v->w[i] = (uint64_t)(cur / d);
        rem = cur % d;
    }
    return (uint64_t)rem;
}

/* Writes x as exactly 19 zero-padded digits ending at end (exclusive). */
static void put_19(char *end, uint64_t x)
{
    for (int i = 0; i < 19; i++) {
        *--end = (char)('0' + x % 10);
        x /= 10;
    }
}

size_t bp_u256_to_dec(const bp_u256 *v, char *out)
{
    /* 2^256 has 78 digits: five 19-digit groups (95) cover it; build right to left. */
    char tmp[5 * 19];
    char *end = tmp + sizeof(tmp);
    bp_u256 q = *v;
    int groups = 0;
    do {
        uint64_t r = u256_divmod_u64(&q, POW10_19);
        put_19(end - 19 * groups, r);
        groups++;
    } while (!u256_is_zero(&q));
    char *p = end - 19 * groups;
    while (p < end - 1 && *p == '0')
        p++;
    size_t n = (size_t)(end - p);
    memcpy(out, p, n);
    out[n] = '\0';
    return n;
}

/* Folds up to 19 decimal digits into v (v = v * 10^n + chunk). */
static int fold_dec_chunk(bp_u256 *v, const char *s, size_t n)
{
    uint64_t chunk = 0, scale = 1;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(unsigned char)s[i] - '0';
        if (d > 9)
            return BP_EPARSE;
        chunk = chunk * 10 + d;
        scale *= 10;
    }
    bp_u256 add;
    bp_u256_from_u64(&add, chunk);
    if (bp_u256_mul_u64(v, v, scale) || bp_u256_add(v, v, &add))
        return BP_ETOOBIG;
    return BP_OK;
}

int bp_u256_from_dec(const char *s, size_t len, bp_u256 *out)
{
    if (!s || len == 0)
        return BP_EPARSE;
    bp_u256 v = {{0, 0, 0, 0}};
    size_t first = len % 19 ? len % 19 : 19;
    int rc = BP_OK;
    for (size_t i = 0; i < len && rc == BP_OK; i += (i == 0 ? first : 19))
        rc = fold_dec_chunk(&v, s + i, i == 0 ? first : 19);
    /* A syntax error anywhere wins over an overflow found earlier. */
    if (rc == BP_ETOOBIG) {
        for (size_t i = 0; i < len; i++) {
            if (s[i] < '0' || s[i] > '9')
                return BP_EPARSE;
        }
    }
    if (rc != BP_OK)
        return rc;
    *out = v;
    return BP_OK;
}

size_t bp_u64_to_hex(uint64_t n, char *out)
{
    char tmp[16];
    size_t k = 0;
    do {
        tmp[k++] = hex_chars[n & 0xf];
        n >>= 4;
    } while (n);
    out[0] = '0';
    out[1] = 'x';
    for (size_t i = 0; i < k; i++)
        out[2 + i] = tmp[k - 1 - i];
    out[2 + k] = '\0';
    return 2 + k;
}

size_t bp_u256_to_hex(const bp_u256 *v, char *out)
{
    size_t n = 2;
    out[0] = '0';
    out[1] = 'x';
    bool started = false;
    for (int i = 63; i >= 0; i--) {
        unsigned nib = (unsigned)(v->w[i / 16] >> (4 * (i % 16))) & 0xf;
        if (!nib && !started && i > 0)
            continue;
        started = true;
        out[n++] = hex_chars[nib];
    }
    out[n] = '\0';
    return n;
}

/* The bytes of n digits d (either case) at out; an odd count's last digit high. */
static void hexb_bytes(unsigned char *out, const unsigned char *d, size_t n)
{
    for (size_t i = 0; i < n / 2; i++)
        out[i] = (unsigned char)(bp_hex_digit(d[2 * i]) << 4 | bp_hex_digit(d[2 * i + 1]));
    if (n & 1)
        out[n / 2] = (unsigned char)(bp_hex_digit(d[n - 1]) << 4);
}

bp_hexb *bp_hexb_make(bp_arena *a, const char *s, size_t len)
{
    size_t n = len - 2;
    const unsigned char *d = (const unsigned char *)s + 2;
    bp_hexb *h;
    if (n > BP_HEXB_MAX && n <= UINT32_MAX) {
        h = bp_arena_alloc_bytes(a, sizeof(*h) + 4 + (n + 1) / 2);
        if (!h)
            return NULL;
        h->n[0] = BP_HEXB_IS_LONG & 0xff;
        h->n[1] = BP_HEXB_IS_LONG >> 8;
        for (int i = 0; i < 4; i++)
            h->b[i] = (unsigned char)(n >> (8 * i));
        hexb_bytes(h->b + 4, d, n);
        return h;
    }
    if (n > BP_HEXB_MAX) {
        h = bp_arena_alloc_bytes(a, sizeof(*h) + len + 1);
        if (!h)
            return NULL;
        h->n[0] = h->n[1] = 0xff;
        h->b[0] = '0';
        h->b[1] = 'x';
        for (size_t i = 0; i < n; i++)
            h->b[2 + i] = (unsigned char)(d[i] | 0x20); /* hex digits: | 0x20 lower-cases */
        h->b[len] = '\0';
        return h;
    }
    h = bp_arena_alloc_bytes(a, sizeof(*h) + (n + 1) / 2);
    if (!h)
        return NULL;
    h->n[0] = (unsigned char)(n & 0xff);
    h->n[1] = (unsigned char)(n >> 8);
    hexb_bytes(h->b, d, n);
    return h;
}

/* Grown to the longest value this thread wrote, freed with the thread (the key's
 * destructor). */
static _Thread_local char *long_text;
static _Thread_local size_t long_cap;
static pthread_key_t long_key;
static pthread_once_t long_once = PTHREAD_ONCE_INIT;
static bool long_key_ok;

/* No bp_value can carry an error, and a NULL would write the row without its input: stop
 * before the batch commits, so that the restart writes it again (nothing lost). */
static _Noreturn void out_of_memory(size_t need)
{
    fprintf(stderr,
            "blockpipe: out of memory for a transaction input's text (%zu bytes): "
            "stopping before its row is written\n",
            need);
    abort();
}

static void long_key_init(void)
{
    long_key_ok = pthread_key_create(&long_key, free) == 0;
}

const char *bp_hexb_long_text(const bp_hexb *h)
{
    size_t need = bp_hexb_text_len(h) + 1;
    if (need > long_cap) {
        size_t cap = need < 4096 ? 4096 : need + need / 2;
        char *p = NULL;
        if (pthread_once(&long_once, long_key_init) == 0 && long_key_ok)
            p = realloc(long_text, cap);
        if (!p)
            out_of_memory(need);
        (void)pthread_setspecific(long_key, p); /* fails only on its first call: then kept */
        long_text = p;
        long_cap = cap;
    }
    bp_hexb_text(long_text, h);
    return long_text;
}
