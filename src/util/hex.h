/* hex.h - hex quantities and 256-bit integers: the hot path of decoding.
 * JSON-RPC quantities are "0x"-prefixed hex with no leading zeros ("0x0" for zero); we also
 * accept leading zeros (some nodes send them) but refuse an empty "0x", a missing prefix,
 * non-hex digits and values that do not fit. */
#ifndef BP_UTIL_HEX_H
#define BP_UTIL_HEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blockpipe/model.h"

/* The value of a hex digit (0-9, a-f, A-F), -1 for any other byte: one table lookup, inline
 * for the decoding loops. The one hex digit decoder of the program. */
extern const unsigned char bp_hex_digit_table[256];
static inline int bp_hex_digit(unsigned char c)
{
    return (int)bp_hex_digit_table[c] - 1;
}

/* Parse "0x..." (len bytes, not necessarily NUL-terminated) into a u64.
 * Returns 0, or BP_EPARSE (bad syntax) / BP_ETOOBIG (more than 64 bits). */
int bp_hex_to_u64(const char *s, size_t len, uint64_t *out);
/* Same for 256 bits. */
int bp_hex_to_u256(const char *s, size_t len, bp_u256 *out);
/* True when s[0..len) is "0x" followed by only hex digits (possibly none): byte strings. */
bool bp_hex_is_data(const char *s, size_t len);
/* The bytes of "0x" + an even number of hex digits: (len - 2) / 2 bytes into out; -1 for a
 * missing prefix, an odd digit count or a non-hex digit. */
long bp_hex_to_bytes(const char *s, size_t len, unsigned char *out);

/* s[0..len), "0x" and hex digits of either case (bp_hex_is_data: checked by the caller), as a
 * bp_hexb (model.h) in arena a: its bytes, in the long form past BP_HEXB_MAX digits (in the
 * text form, lower-cased, past 2^32 - 1). NULL when out of memory. */
struct bp_arena;
bp_hexb *bp_hexb_make(struct bp_arena *a, const char *s, size_t len);

/* Decimal text of v into out (at least BP_U256_DEC_MAX bytes); returns the length. */
#define BP_U256_DEC_MAX 80
size_t bp_u256_to_dec(const bp_u256 *v, char *out);
/* Parse decimal text; BP_EPARSE / BP_ETOOBIG on failure. */
int bp_u256_from_dec(const char *s, size_t len, bp_u256 *out);
/* "0x" + minimal hex into out (at least 67 bytes); returns the length. */
size_t bp_u256_to_hex(const bp_u256 *v, char *out);
void bp_u256_from_u64(bp_u256 *out, uint64_t x);
bool bp_u256_fits_u64(const bp_u256 *v);
/* -1, 0, 1 */
int bp_u256_cmp(const bp_u256 *a, const bp_u256 *b);
/* out = a + b; returns 1 on overflow (out then wraps). */
int bp_u256_add(bp_u256 *out, const bp_u256 *a, const bp_u256 *b);
/* out = a * m (m small); returns 1 on overflow. */
int bp_u256_mul_u64(bp_u256 *out, const bp_u256 *a, uint64_t m);

/* Writes "0x" + lower-case hex of n, no padding ("0x0" for zero) into out (>= 19 bytes). */
size_t bp_u64_to_hex(uint64_t n, char *out);

#endif
