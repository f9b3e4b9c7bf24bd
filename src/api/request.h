/* request.h - an API request as the routes see it (method, path, query parameters, body) and
 * the checked reading of its parameters. No sockets: the server fills it, the unit tests and
 * the fuzz target build it from text.
 *
 * A bad parameter is a 400 whose message names it and shows its value (made printable: bytes
 * outside printable ASCII as \xNN, at most 64 of them), e.g.
 *   "limit: 'abc' is not valid: expected an integer from 1 to 1000". */
#ifndef BP_API_REQUEST_H
#define BP_API_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blockpipe/error.h"

#define BP_API_MAX_PARAMS 32
#define BP_API_PATH_MAX 512
#define BP_API_STORE 4096 /* bytes of parameter names and values */

enum bp_api_method { BP_API_GET = 1, BP_API_HEAD, BP_API_POST, BP_API_OPTIONS, BP_API_OTHER };

typedef struct bp_api_param {
    const char *name, *value; /* in the request's store */
} bp_api_param;

typedef struct bp_api_request {
    enum bp_api_method method;
    char path[BP_API_PATH_MAX];
    bp_api_param params[BP_API_MAX_PARAMS];
    size_t nparams;
    char store[BP_API_STORE];
    size_t used;
    const char *body; /* POST body (not owned), NULL: none */
    size_t body_len;
    char last_event_id[128]; /* SSE Last-Event-ID header, "" when absent */
} bp_api_request;

void bp_api_request_init(bp_api_request *r, enum bp_api_method m, const char *path, size_t len);
/* Adds one parameter "name=value" (already percent-decoded; no '=': an empty value).
 * BP_EINVAL when there are too many or they are too long. */
int bp_api_request_add(bp_api_request *r, const char *frag, size_t len, bp_error *err);
/* Splits a raw query string "a=1&b=%41" (percent and '+' decoding) into parameters. */
int bp_api_request_query(bp_api_request *r, const char *qs, size_t len, bp_error *err);

/* Removes every parameter called name (e.g. ?token once it has been checked). */
void bp_api_param_remove(bp_api_request *r, const char *name);
/* The value of the last parameter called name, NULL when absent. */
const char *bp_api_param_get(const bp_api_request *r, const char *name);

/* ---- checked values: 0 (absent: *set false), or BP_EINVAL naming the parameter ---- */

/* An integer from lo to hi. */
int bp_api_param_u64(const bp_api_request *r, const char *name, uint64_t lo, uint64_t hi, bool *set,
                     uint64_t *out, bp_error *err);
/* 0x + 2 * bytes hex digits (any case), lower-cased into out (2 + 2 * bytes + 1 bytes). */
int bp_api_param_hex(const bp_api_request *r, const char *name, size_t bytes, bool *set, char *out,
                     bp_error *err);
/* One of the words of choices ("a|b|c"). */
int bp_api_param_enum(const bp_api_request *r, const char *name, const char *choices, bool *set,
                      const char **out, bp_error *err);
/* Refuses parameters that are not in the NULL-terminated list: a typo must not be ignored. */
int bp_api_params_known(const bp_api_request *r, const char *const *known, bp_error *err);

/* Checks a text (a hash, an address, a number) the same way outside a parameter, e.g. a path
 * segment: 0x + 2 * bytes hex digits, lower-cased into out. */
bool bp_api_hex_ok(const char *s, size_t bytes, char *out);
bool bp_api_u64_ok(const char *s, uint64_t *out);
/* s made printable for a message (see above) into out[cap]. */
void bp_api_printable(const char *s, char *out, size_t cap);

#endif
