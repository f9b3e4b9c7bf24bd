/* url.h - URLs as they may be shown: credentials never reach a log line or an error. */
#ifndef BP_UTIL_URL_H
#define BP_UTIL_URL_H

#include <stddef.h>

/* Copies url into out (truncated to outsz) with the password of "scheme://user:pass@host"
 * replaced by "***" (and a bare "scheme://token@host" by "***@"). Query parameters named
 * like secrets (password, apikey, api_key, key, token) are masked too. */
void bp_url_redact(const char *url, char *out, size_t outsz);

#endif
