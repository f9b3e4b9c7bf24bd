/* creds.h - an endpoint's credentials as the configuration gives them: headers, TLS files,
 * and secrets read from the environment or files rather than the command line.
 *
 * A value (a URL, a header value) may name where its secret is:
 *   ${NAME}  anywhere in it: the environment variable NAME (unset or empty is an error);
 *   @PATH    the whole value: the contents of the file PATH, trailing newlines dropped
 *            (unreadable or empty is an error).
 * So `--rpc 'https://host/v2/${ALCHEMY_KEY}'` keeps the key out of the command line, the
 * process list and the saved command of `retry-failed`. Every value read so, and every
 * header value, is registered with bp_secret_add (never shown). */
#ifndef BP_CLI_CREDS_H
#define BP_CLI_CREDS_H

#include <stddef.h>

#include "blockpipe/error.h"
#include "cli/config.h"

/* *out (malloc'd) is v with ${NAME} / @PATH read; errors name `who` and the variable or
 * file, never the value. */
int bp_creds_expand(const char *v, const char *who, char **out, bp_error *err);
/* Adds the header name: value (value expanded; name a token, no CR/LF anywhere). */
int bp_creds_add_header(bp_endpoint_creds *c, const char *name, size_t name_len, const char *value,
                        const char *who, bp_error *err);
/* "Name: value" (one per line when the text has several lines, as an environment variable
 * may hold them). */
int bp_creds_add_header_lines(bp_endpoint_creds *c, const char *text, const char *who,
                              bp_error *err);
/* A TLS file (CA bundle, certificate, key): must be readable now. */
int bp_creds_set_file(char **slot, const char *path, const char *who, bp_error *err);
/* Drops the headers only (a stronger source replaces the list). */
void bp_creds_clear_headers(bp_endpoint_creds *c);
void bp_creds_release(bp_endpoint_creds *c);

#endif
